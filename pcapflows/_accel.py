"""Whether this process runs the compiled (mypyc) build of the per-packet modules.

``pip install .`` compiles :data:`COMPILED_MODULES` with mypyc when mypyc and a C
compiler are there (see ``setup.py``); the same ``.py`` files are installed beside the
extension modules and stay the one source of truth. The import system prefers an
extension module to the ``.py`` beside it, so a compiled build silently shadows edited
sources. This module decides, once, before the package imports any of them:

* ``PCAPFLOWS_PURE=1`` in the environment: plain Python, whatever is built;
* no build manifest (``_compiled.json``, written by ``setup.py`` only after every module
  compiled): plain Python, and any stray extension module is ignored;
* a module's source differs from the one it was compiled from (a developer edited it
  after an editable install): plain Python, with a warning saying how to rebuild;
* the compiled modules do not load: plain Python, with a warning;
* otherwise the compiled modules.

"Plain Python" means a finder placed first on ``sys.meta_path`` loads the ``.py`` of
each listed module, so a half-compiled, half-edited mix never runs. Only the standard
library is imported here: ``setup.py`` reads :data:`COMPILED_MODULES` from this file
without importing the package.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

#: The modules ``setup.py`` compiles: the reassembly core and what it builds flows
#: with, and the HTTP layer's stream, parser and converter, where compiling pays
#: (measured in docs/performance.md and the README's HTTP section). The readers and the
#: decoder stay interpreted: compiled as they are they ran slower (an interpreted
#: ``Packet`` built with ``object.__new__``, untyped ``struct`` tuples).
COMPILED_MODULES: tuple[str, ...] = (
    "pcapflows.decode.segment",
    "pcapflows.reassembly.seqnum",
    "pcapflows.reassembly.pending",
    "pcapflows.reassembly.half",
    "pcapflows.reassembly.summary",
    "pcapflows.reassembly.state",
    "pcapflows.reassembly.events",
    "pcapflows.reassembly.connection",
    "pcapflows.reassembly.assembler",
    "pcapflows.model.build",
    "pcapflows.flowspec",
    "pcapflows.pcapwrite",
    "pcapflows.http.stream",
    "pcapflows.http.parser",
    "pcapflows.http.convert",
)
#: mypyc's group name: the shared library of the build is the top-level module
#: ``pcapflows__mypyc``, each listed module a small extension that loads it.
GROUP = "pcapflows"
#: Written beside the package's ``__init__.py`` by a successful build: module name to
#: SHA-256 of the source it was compiled from.
MANIFEST = "_compiled.json"
#: Set to anything but ``0`` or empty: no compiling at install, no compiled code at run.
PURE_ENV = "PCAPFLOWS_PURE"

PACKAGE_DIR = Path(__file__).resolve().parent


def pure_requested() -> bool:
    """Whether the environment asks for plain Python (:data:`PURE_ENV`)."""
    return os.environ.get(PURE_ENV, "") not in ("", "0")


def source_path(module: str, root: Path) -> Path:
    """The ``.py`` of ``module`` (a ``pcapflows.`` name) under the directory holding
    the ``pcapflows`` package."""
    return root.joinpath(*module.split(".")).with_suffix(".py")


def digest(path: Path) -> str:
    """SHA-256 of a source file, as the manifest records it."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Loads the listed modules from their ``.py``, never from an extension beside it."""

    def __init__(self, modules: Sequence[str], root: Path) -> None:
        self.paths = {m: source_path(m, root) for m in modules}

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        source = self.paths.get(fullname)
        if source is None or not source.is_file():
            return None
        return importlib.util.spec_from_file_location(fullname, source)


def _warn(message: str) -> None:
    warnings.warn(f"pcapflows: {message}; running plain Python", RuntimeWarning, stacklevel=3)


def _decide() -> tuple[bool, str, list[str]]:
    """(compiled?, why, the modules a compiled build on disk has)."""
    manifest = PACKAGE_DIR / MANIFEST
    try:
        built: dict[str, str] = json.loads(manifest.read_text())["modules"]
    except (OSError, ValueError, KeyError, TypeError):
        return False, "no compiled build", list(COMPILED_MODULES)
    modules = sorted(set(built) | set(COMPILED_MODULES))
    if pure_requested():
        return False, f"{PURE_ENV} is set", modules
    root = PACKAGE_DIR.parent
    for module, sha in sorted(built.items()):
        try:
            same = digest(source_path(module, root)) == sha
        except OSError:
            same = False
        if not same:
            _warn(
                f"{source_path(module, root)} changed since it was compiled "
                "(rebuild: pip install -e . or python setup.py build_ext --inplace)"
            )
            return False, f"stale build ({module})", modules
    try:
        importlib.import_module(GROUP + "__mypyc")
    except ImportError as exc:
        _warn(f"the compiled build does not load ({exc})")
        return False, "compiled build does not load", modules
    return True, "compiled", modules


def activate() -> bool:
    """Decide once whether the compiled modules run; when not, make the import system
    load their sources. Call before importing any of :data:`COMPILED_MODULES`."""
    global COMPILED, REASON
    compiled, REASON, modules = _decide()
    if not compiled and not any(isinstance(f, _SourceFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _SourceFinder(modules, PACKAGE_DIR.parent))
    COMPILED = compiled
    return compiled


def compiled_in_use() -> bool:
    """Whether every listed module that is imported came from an extension module."""
    loaded = [sys.modules[m] for m in COMPILED_MODULES if m in sys.modules]
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    return bool(loaded) and all(str(getattr(m, "__file__", "")).endswith(suffixes) for m in loaded)


#: The decision of :func:`activate` and its reason ("compiled", "no compiled build",
#: "PCAPFLOWS_PURE is set", "stale build (module)", ...), for bug reports.
COMPILED = False
REASON = "not decided"

# The package imports this module first, so the decision precedes every other import.
# (setup.py loads this file under another name only to read COMPILED_MODULES.)
if __name__ == "pcapflows._accel":
    activate()
