"""The compiled (mypyc) build and plain Python: which one runs, and that they agree.

What is checked here is the decision in ``pcapflows._accel``, in fresh interpreters:
``PCAPFLOWS_PURE=1`` always means the sources; ``pcapflows.__compiled__`` tells the
truth about where the listed modules came from; a build whose sources changed is not
used. Whether the suite runs compiled or not depends on the install (``pip install
-e .`` compiles when it can); both builds must pass every other test.
"""

from __future__ import annotations

import importlib.machinery
import json
import os
import subprocess
import sys
from pathlib import Path

import pcapflows
from pcapflows import _accel

ROOT = Path(pcapflows.__file__).resolve().parent.parent

PROBE = """
import importlib.machinery, json, sys
import pcapflows, pcapflows._accel as a
import pcapflows.http  # the HTTP layer: imported on first use (read_http, HTTPFlow)
ext = tuple(importlib.machinery.EXTENSION_SUFFIXES)
files = {m: sys.modules[m].__file__ for m in a.COMPILED_MODULES if m in sys.modules}
print(json.dumps({"compiled": pcapflows.__compiled__, "reason": a.REASON, "files": files,
                  "shared": "pcapflows__mypyc" in sys.modules}))
"""


def _run_probe(root: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """PROBE in a fresh interpreter importing the package under ``root`` (run from
    ``root``: ``python -c`` puts the working directory first on sys.path)."""
    full = {k: v for k, v in os.environ.items() if k != _accel.PURE_ENV}
    full.update(env)
    full["PYTHONPATH"] = str(root)
    return subprocess.run(
        [sys.executable, "-c", PROBE],
        env=full,
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )


def _probe(**env: str) -> dict[str, object]:
    result: dict[str, object] = json.loads(_run_probe(ROOT, **env).stdout)
    return result


def test_listed_modules_exist_and_are_imported_by_the_package() -> None:
    for module in _accel.COMPILED_MODULES:
        assert _accel.source_path(module, ROOT).is_file(), module
    files = _probe(PCAPFLOWS_PURE="1")["files"]
    assert isinstance(files, dict)
    # Every listed module is imported by ``import pcapflows`` or, for the HTTP layer,
    # on its first use: the decision made at ``import pcapflows`` covers them all.
    assert sorted(files) == sorted(_accel.COMPILED_MODULES)


def test_pure_env_runs_the_sources() -> None:
    result = _probe(PCAPFLOWS_PURE="1")
    assert result["compiled"] is False
    assert result["shared"] is False
    files = result["files"]
    assert isinstance(files, dict)
    assert all(str(f).endswith(".py") for f in files.values()), files


def test_compiled_flag_matches_the_loaded_files() -> None:
    result = _probe()
    files = result["files"]
    assert isinstance(files, dict)
    from_ext = [not str(f).endswith(".py") for f in files.values()]
    if result["compiled"]:
        assert all(from_ext) and result["shared"] is True, result
    else:
        assert not any(from_ext), result
    # Compiled exactly when a build manifest matching the sources is there.
    manifest = ROOT / "pcapflows" / _accel.MANIFEST
    if manifest.is_file():
        built = json.loads(manifest.read_text())["modules"]
        fresh = all(_accel.digest(_accel.source_path(m, ROOT)) == sha for m, sha in built.items())
        assert result["compiled"] is fresh, result
    else:
        assert result["compiled"] is False and result["reason"] == "no compiled build"


def test_a_stale_manifest_means_the_sources(tmp_path: Path) -> None:
    """A copy of the package whose manifest names a source that differs (as after an
    edit since the build) runs that source, even with an extension module beside it."""
    pkg = tmp_path / "pcapflows"
    subprocess.run(["cp", "-r", str(ROOT / "pcapflows"), str(pkg)], check=True, capture_output=True)
    module = "pcapflows.reassembly.seqnum"
    (pkg / _accel.MANIFEST).write_text(json.dumps({"modules": {module: "0" * 64}}))
    # A file that is no extension module: loading it would fail the import.
    fake = pkg / "reassembly" / f"seqnum{importlib.machinery.EXTENSION_SUFFIXES[0]}"
    fake.write_bytes(b"not an extension module")
    out = _run_probe(tmp_path)
    result = json.loads(out.stdout)
    assert result["compiled"] is False
    assert result["reason"] == f"stale build ({module})"
    assert result["files"][module] == str(pkg / "reassembly" / "seqnum.py")
    assert "changed since it was compiled" in out.stderr
