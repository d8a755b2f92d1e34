"""Every command of the README's command-line walk-through runs, and prints what the
README shows (so the documentation stays true). The commands run in a scratch
directory that sees the repository's ``captures/``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def walkthrough() -> list[tuple[str, list[str]]]:
    """(command, output lines shown) for each ``$`` line of the first console block
    under "## Command line"."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Command line\n") :]
    block = re.search(r"```console\n(.*?)```", section, re.S)
    assert block is not None
    steps: list[tuple[str, list[str]]] = []
    for line in block.group(1).splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            steps[-1][1].append(line)
    return steps


def test_readme_walkthrough_runs_as_shown(tmp_path: Path) -> None:
    steps = walkthrough()
    commands = [c.split()[1] for c, _ in steps]
    for sub in ("list", "follow", "export", "stats"):
        assert sub in commands
    (tmp_path / "captures").symlink_to(ROOT / "captures")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for command, shown in steps:
        assert command.startswith("pcapflows ")
        shell = f"{sys.executable} -m {command}"  # pcapflows ... -> python -m pcapflows ...
        r = subprocess.run(
            shell + (" 2>&1" if ">" not in command else ""),
            shell=True,
            cwd=tmp_path,
            env=env,
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert r.returncode == 0, (command, r.stdout, r.stderr)
        if shown:
            assert r.stdout.decode().splitlines() == shown, command
    assert (tmp_path / "app-and-logo.bin").stat().st_size > 0
    assert sorted(p.name for p in (tmp_path / "demo-flows").iterdir())[-1] == "index.tsv"
