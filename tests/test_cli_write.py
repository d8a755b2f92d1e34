"""``pcapflows CAPTURE -w OUT``: the command line writing mitmproxy flow files, run as a
user would (subprocesses, a real pipe into the real ``mitmdump``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tcptable import CAPTURES, require_corpus

from pcapflows import read, read_mitm

DEMO = CAPTURES / "demo.pcapng"
MITMDUMP = [sys.executable, "-c", "from mitmproxy.tools.main import mitmdump; mitmdump()"]


def pcapflows(*args: str) -> list[str]:
    return [sys.executable, "-m", "pcapflows", *args]


def run(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(pcapflows(*args), capture_output=True, timeout=120, check=False)


def test_write_to_a_file_keeps_the_listing(tmp_path: Path) -> None:
    out = tmp_path / "demo.mitm"
    plain = run(str(DEMO))
    p = run(str(DEMO), "-w", str(out))
    assert p.returncode == 0
    assert p.stdout == plain.stdout and p.stdout.count(b"\n") == 5  # header, 4 flows
    assert p.stderr == f"pcapflows: wrote 4 flows to {out}\n".encode()
    # Every flow, in the order they finished (read()'s order), with the same state.
    assert [f.get_state() for f in read_mitm(out)] == [f.get_state() for f in read(DEMO)]


def test_write_to_standard_output_writes_only_the_flow_file(tmp_path: Path) -> None:
    out = tmp_path / "demo.mitm"
    assert run(str(DEMO), "--write", str(out)).returncode == 0
    p = run(str(DEMO), "-w", "-")
    assert p.returncode == 0
    assert p.stdout == out.read_bytes()
    assert p.stderr == b""


def test_piped_into_mitmdump(tmp_path: Path) -> None:
    """``pcapflows cap.pcapng -w - | mitmdump -nr -`` with a real pipe between the two."""
    writer = subprocess.Popen(pcapflows(str(DEMO), "-w", "-"), stdout=subprocess.PIPE)
    assert writer.stdout is not None
    mitmdump = subprocess.Popen(
        [*MITMDUMP, "-n", "-r", "-"],
        stdin=writer.stdout,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    writer.stdout.close()  # mitmdump holds the only reading end
    out, err = mitmdump.communicate(timeout=120)
    assert writer.wait(timeout=60) == 0
    assert mitmdump.returncode == 0
    assert err == b""
    lines = out.decode().splitlines()
    flows = list(read(DEMO))
    assert len(lines) == sum(len(f.messages) for f in flows) + sum(1 for f in flows if f.error)
    for f in flows:
        client = f"{f.client_conn.peername[0]}:{f.client_conn.peername[1]}"
        if ":" in f.client_conn.peername[0]:
            client = f"[{f.client_conn.peername[0]}]:{f.client_conn.peername[1]}"
        assert sum(line.startswith(client + " ") for line in lines) == len(f.messages)
    assert lines[-1] == "Error in TCP connection to 203.0.113.80:80: connection reset by client"


def test_write_with_follow_is_a_usage_error(tmp_path: Path) -> None:
    out = tmp_path / "x.mitm"
    p = run(str(DEMO), "-w", str(out), "--follow", "0")
    assert p.returncode == 2
    assert p.stdout == b""
    assert p.stderr == b"pcapflows: error: --write and --follow cannot be combined\n"
    assert not out.exists()


def test_an_unreadable_capture_writes_no_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture at all")
    out = tmp_path / "x.mitm"
    p = run(str(bad), "-w", str(out))
    assert p.returncode == 1
    assert not out.exists()


def test_a_file_that_cannot_be_created_is_a_one_line_error(tmp_path: Path) -> None:
    out = tmp_path / "no" / "such" / "dir.mitm"
    p = run(str(DEMO), "-w", str(out))
    assert p.returncode == 4
    assert p.stderr == f"pcapflows: error: cannot write {out}: No such file or directory\n".encode()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_a_full_disk_is_a_one_line_error() -> None:
    p = run(str(DEMO), "-w", "/dev/full")
    assert p.returncode == 4
    assert p.stderr == b"pcapflows: error: cannot write /dev/full: No space left on device\n"
    with open("/dev/full", "wb") as full:
        p = subprocess.run(
            pcapflows(str(DEMO), "-w", "-"), stdout=full, stderr=subprocess.PIPE, timeout=60
        )
    assert p.returncode == 4
    assert p.stderr == b"pcapflows: error: cannot write output: No space left on device\n"


def test_the_reader_of_the_pipe_quitting_is_quiet() -> None:
    """``pcapflows BIG -w - | head -c 10``: a flow file far bigger than a pipe's buffer,
    whose reader goes away: exit 141 and nothing on stderr, as for the listing."""
    big = require_corpus() / "many_flows/httpreplay__2015-10-30-Nuclear-EK-traffic.pcap"
    p = subprocess.Popen(
        pcapflows(str(big), "-w", "-"), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert p.stdout is not None and p.stderr is not None
    assert p.stdout.read(10)[:1].isdigit()
    p.stdout.close()
    err = p.stderr.read()
    assert p.wait(timeout=60) == 141
    assert err == b""


def test_help_mentions_write() -> None:
    p = run("--help")
    assert b"-w OUT, --write OUT" in p.stdout
