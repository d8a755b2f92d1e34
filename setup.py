"""Build: the reassembly core compiled with mypyc when possible, plain Python otherwise.

Everything else about the package is in pyproject.toml. This file only adds the
optional compiled build of ``pcapflows._accel.COMPILED_MODULES``:

* compiled when mypyc (a build requirement, see pyproject.toml) and a working C
  compiler are there; the ``.py`` files are installed too and stay the one source;
* plain Python, with a message, when anything about compiling fails (no compiler,
  mypy rejects the code, mypyc crashes, not CPython): the install never fails for it;
* plain Python when ``PCAPFLOWS_PURE=1`` (also honoured at run time, see ``_accel``).

mypyc runs only when the ``build_ext`` command runs, not each time pip asks the
build backend for metadata. A successful build writes ``pcapflows/_compiled.json``
(module -> SHA-256 of its source), which tells the package at import that the
extension modules match the sources; without it they are ignored.

Developers: ``python setup.py build_ext --inplace`` rebuilds in place (about 20 s on
two cores), ``PCAPFLOWS_PURE=1 python ...`` runs the sources regardless.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


def _accel() -> Any:
    """pcapflows/_accel.py, loaded on its own: the package imports dpkt, which the
    isolated build environment does not have."""
    spec = importlib.util.spec_from_file_location("_pcapflows_accel", ROOT / "pcapflows/_accel.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ACCEL = _accel()


def _say(message: str) -> None:
    # pip shows a build's output with -v only; stderr lines marked this way are easy
    # to find in a CI log.
    print(f"pcapflows build: {message}", file=sys.stderr, flush=True)


#: mypy options for the type check mypyc runs before compiling: errors count in the
#: compiled modules only, not in the modules they import on the way (the package's
#: ``__init__`` names the mitmproxy bridge, the HTTP layer imports brotli and zstandard
#: for their types). pip's build environment holds the build requirements only, not
#: those optional extras, so their modules cannot check cleanly there; the project's
#: own mypy run (``scripts/test``) checks them, with the extras installed.
MYPYC_OPTIONS = ["--follow-imports=silent"]

_DECIDED: list[Extension] | None = None


class BuildCompiled(build_ext):
    """build_ext that compiles with mypyc, or builds nothing if that fails."""

    def finalize_options(self) -> None:
        self.distribution.ext_modules = self._mypyc_extensions()
        if self.parallel is None and self.distribution.ext_modules:
            self.parallel = os.cpu_count() or 1
        super().finalize_options()

    def _mypyc_extensions(self) -> list[Extension]:
        # setuptools may finalize several build_ext commands in one run: decide once.
        global _DECIDED
        if _DECIDED is None:
            _DECIDED = self._decide()
        return _DECIDED

    def _decide(self) -> list[Extension]:
        if sys.argv[1:2] in (["egg_info"], ["dist_info"]):
            # pip asks for the metadata in processes of their own, which finalize this
            # command too: mypyc there would run three times per install (about 15 s
            # each) for a result only the build itself uses.
            return []
        if ACCEL.pure_requested():
            _say(f"{ACCEL.PURE_ENV} is set: plain Python")
            return []
        if platform.python_implementation() != "CPython":
            _say("not CPython: plain Python")
            return []
        try:
            from mypyc.build import mypycify
        except ImportError:
            _say("mypyc is not installed: plain Python")
            return []
        paths = [str(ACCEL.source_path(m, Path())) for m in ACCEL.COMPILED_MODULES]
        start = time.monotonic()
        try:
            # mypycify type-checks first and exits on a type error: any failure here,
            # SystemExit included, means plain Python.
            extensions: list[Extension] = mypycify(
                [*MYPYC_OPTIONS, *paths],
                opt_level="3",
                group_name=ACCEL.GROUP,
                target_dir="build/mypyc",
            )
        except (Exception, SystemExit) as exc:
            _say(f"mypyc failed ({exc!r}): plain Python")
            return []
        _say(f"mypyc generated C for {len(paths)} modules in {time.monotonic() - start:.1f} s")
        return extensions

    def run(self) -> None:
        if not self.extensions:
            return
        start = time.monotonic()
        try:
            super().run()
        except Exception as exc:
            # All or nothing: a module's extension without the shared library (or the
            # reverse) cannot load, so remove whatever was built.
            _say(f"compiling failed ({exc!r}): plain Python")
            for path in self._built_paths():
                path.unlink(missing_ok=True)
            self.extensions = []
            self.distribution.ext_modules = []
            global _DECIDED
            _DECIDED = []
            return
        manifest = self._manifest_path()
        manifest.parent.mkdir(parents=True, exist_ok=True)
        sources = {m: ACCEL.digest(ACCEL.source_path(m, ROOT)) for m in ACCEL.COMPILED_MODULES}
        manifest.write_text(json.dumps({"modules": sources}, indent=1, sort_keys=True) + "\n")
        _say(f"compiled in {time.monotonic() - start:.1f} s")

    def _built_paths(self) -> list[Path]:
        paths = [self._manifest_path()]
        for ext in self.extensions:
            paths.append(Path(self.get_ext_fullpath(ext.name)))
            paths.append(Path(self.build_lib, self.get_ext_filename(ext.name)))
        return paths

    def _manifest_path(self) -> Path:
        # Beside the compiled modules: the source tree when in place (editable), the
        # build directory otherwise.
        return Path(self.get_ext_fullpath("pcapflows.x")).parent / ACCEL.MANIFEST

    def get_outputs(self) -> list[str]:
        outputs: list[str] = super().get_outputs()
        if self.extensions:
            outputs.append(str(self._manifest_path()))
        return outputs


setup(
    # A stand-in so that setuptools runs build_ext; BuildCompiled replaces it with
    # mypyc's extensions (or none) when the command really runs.
    ext_modules=[Extension("pcapflows._placeholder", sources=[])],
    cmdclass={"build_ext": BuildCompiled},
)
