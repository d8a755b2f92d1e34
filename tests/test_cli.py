"""The command line, run as a user would: ``python -m pcapflows`` in a subprocess.

The captures are crafted here with scapy, so the expected lines come from what was put
on the wire, not from pcapflows.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap
from tcptable import CAPTURES

REQUEST = b"GET /index.html HTTP/1.1\r\nHost: example\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
BINARY = bytes(range(256)) * 2


def conversation(
    ip: type,
    cli: str,
    srv: str,
    sport: int,
    payloads: list[tuple[bool, bytes]],
    t0: float,
    rst: bool = False,
) -> list[object]:
    pkts = []
    c_seq, s_seq = 1000, 9000
    eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")

    def c2s(flags: str, data: bytes = b"") -> object:
        return (
            eth
            / ip(src=cli, dst=srv)
            / TCP(sport=sport, dport=80, flags=flags, seq=c_seq, ack=s_seq)
            / data
        )

    def s2c(flags: str, data: bytes = b"") -> object:
        return (
            eth
            / ip(src=srv, dst=cli)
            / TCP(sport=80, dport=sport, flags=flags, seq=s_seq, ack=c_seq)
            / data
        )

    t = t0
    p = eth / ip(src=cli, dst=srv) / TCP(sport=sport, dport=80, flags="S", seq=c_seq - 1)
    pkts.append((t, p))
    p = (
        eth
        / ip(src=srv, dst=cli)
        / TCP(sport=80, dport=sport, flags="SA", seq=s_seq - 1, ack=c_seq)
    )
    pkts.append((t + 0.01, p))
    pkts.append((t + 0.02, c2s("A")))
    t += 0.1
    for from_client, data in payloads:
        if from_client:
            pkts.append((t, c2s("PA", data)))
            c_seq += len(data)
        else:
            pkts.append((t, s2c("PA", data)))
            s_seq += len(data)
        t += 0.1
    if rst:
        pkts.append((t, s2c("RA")))
    else:
        pkts.append((t, c2s("FA")))
        c_seq += 1
        pkts.append((t + 0.01, s2c("FA")))
        s_seq += 1
        pkts.append((t + 0.02, c2s("A")))
    out = []
    for ts, pk in pkts:
        pk.time = ts  # type: ignore[attr-defined]
        out.append(pk)
    return out


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "two.pcap"
    pkts = conversation(
        IP, "192.0.2.1", "192.0.2.2", 40000, [(True, REQUEST), (False, RESPONSE)], 1_700_000_000.0
    )
    pkts += conversation(
        IPv6,
        "2001:db8::1",
        "2001:db8::2",
        40001,
        [(True, b"bin"), (False, BINARY)],
        1_700_000_010.0,
        rst=True,
    )
    wrpcap(str(path), pkts)
    return path


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "pcapflows", *args],
        capture_output=True,
        input=stdin,
        timeout=60,
        check=False,
    )


def rows(out: bytes) -> list[list[str]]:
    """The table ``pcapflows CAPTURE --bytes`` prints, split into cells (two or more
    spaces apart), after checking its header row."""
    lines = out.decode().splitlines()
    assert lines[0].split()[:4] == ["#", "client", "server", "start"], lines[0]
    assert "(UTC)" in lines[0]
    return [re.split(r"\s{2,}", line.strip()) for line in lines[1:]]


def test_listing(capture: Path) -> None:
    """``pcapflows CAPTURE`` is ``pcapflows list CAPTURE``: a header row, then one
    aligned row per connection."""
    r = run(str(capture))
    assert r.returncode == 0, r.stderr
    assert r.stdout == run("list", str(capture)).stdout
    assert r.stderr == b""
    exact = rows(run(str(capture), "--bytes").stdout)
    assert len(exact) == 2
    first, second = exact
    assert first[:4] == ["0", "192.0.2.1:40000", "192.0.2.2:80", "2023-11-14 22:13:20.000"]
    # packets c>s, s>c, bytes c>s, s>c, messages, gaps, conflicts, ending
    assert first[7:] == [str(len(REQUEST)), str(len(RESPONSE)), "2", "0", "0", "fin"]
    assert second[1:3] == ["[2001:db8::1]:40001", "[2001:db8::2]:80"]
    assert second[8] == str(len(BINARY)) and second[-1] == "reset by server"
    # Columns line up: each row's start time under the header's.
    header, *lines = r.stdout.decode().splitlines()
    assert {line.index("2023-") for line in lines} == {header.index("start (UTC)")}


def test_follow_text_and_hex(capture: Path) -> None:
    r = run(str(capture), "--follow", "0")
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert ">>> client" in out and "<<< server" in out
    assert "    GET /index.html HTTP/1.1" in out
    assert "    hello" in out
    assert out.index("GET /index.html") < out.index("HTTP/1.1 200 OK")

    r = run(str(capture), "--follow", "1")
    out = r.stdout.decode()
    assert r.returncode == 0
    assert "ended: reset by server" in out
    # Binary content is shown as a hex dump: first line of BINARY.
    assert "00000000  00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f" in out


def test_stdin_and_module_equal(capture: Path) -> None:
    a = run(str(capture))
    b = run("-", stdin=capture.read_bytes())
    assert a.stdout == b.stdout and b.returncode == 0


def test_exit_codes(tmp_path: Path, capture: Path) -> None:
    not_capture = tmp_path / "notes.txt"
    not_capture.write_text("hello, this is not a capture\n")
    r = run(str(not_capture))
    assert r.returncode == 1
    err = r.stderr.decode()
    assert err.count("\n") == 1 and "notes.txt" in err and "Traceback" not in err

    r = run(str(tmp_path / "missing.pcap"))
    assert r.returncode == 1 and b"Traceback" not in r.stderr

    r = run(str(capture), "--follow", "7")
    assert r.returncode == 3 and b"no flow 7" in r.stderr

    r = run()
    assert r.returncode == 2


def test_stats(capture: Path) -> None:
    r = run(str(capture), "--stats")
    assert r.returncode == 0
    assert b"flows 2" in r.stderr


def test_limits_from_the_command_line() -> None:
    """demo.pcapng has four connections, partly overlapping: with room for one at a
    time, some are closed early, and the listing and --stats say so."""
    demo = str(CAPTURES / "demo.pcapng")
    r = run(demo, "--max-connections", "1", "--stats")
    assert r.returncode == 0
    assert b"evicted" in r.stdout
    assert b"limit max_connections cut in" in r.stderr
    plain = run(demo)
    assert b"evicted" not in plain.stdout
    assert run(demo, "--max-connections", "x").returncode == 2


def _endpoint(addr: list[object]) -> str:
    host, port = str(addr[0]), addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


#: The ground truth of every sample capture (captures/expected.json).
TRUTH: dict[str, dict[str, Any]] = json.loads((CAPTURES / "expected.json").read_text())["captures"]


@pytest.fixture(scope="module")
def listings() -> dict[str, list[list[str]]]:
    """``pcapflows CAP1 CAP2 ... --bytes``, every sample capture in one run (rows
    labelled by capture), split per capture."""
    names = sorted(TRUTH)
    r = run(*(str(CAPTURES / n) for n in names), "--bytes")
    assert r.returncode == 0, r.stderr
    header, *lines = r.stdout.decode().splitlines()
    assert header.split()[:3] == ["capture", "#", "client"], header
    out: dict[str, list[list[str]]] = {n: [] for n in names}
    for line in lines:
        label, *cells = re.split(r"\s{2,}", line.strip())
        out[Path(label).name].append(cells)
    return out


@pytest.mark.parametrize("name", sorted(TRUTH))
def test_listing_of_every_sample_capture_matches_ground_truth(
    name: str, listings: dict[str, list[list[str]]]
) -> None:
    """The listing line of every flow of every sample capture, against expected.json."""
    entry = TRUTH[name]
    table = listings[name]
    assert len(table) == len(entry["flows"]), name
    for i, (cells, flow) in enumerate(zip(table, entry["flows"], strict=True)):
        assert cells[0] == str(i)
        assert cells[1:3] == [_endpoint(flow["client"]), _endpoint(flow["server"])]
        if flow.get("bytes"):
            assert cells[7:9] == [str(flow["bytes"]["client"]), str(flow["bytes"]["server"])]
        assert cells[9] == str(len(flow["messages"])), (name, cells)
        if flow.get("closed_by") == "rst":
            assert cells[-1].startswith(f"reset by {flow['rst_from']}"), (name, cells)
        elif flow.get("open_at_end"):
            # A SYN the server never answered is "no reply", open or not.
            want = "no reply" if cells[6] == "0" else "open at end"
            assert cells[-1].startswith(want), (name, cells)


# -- output that cannot be written --------------------------------------------------------


@pytest.fixture(scope="module")
def long_listing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A capture whose listing (about 400 kB) is far larger than a pipe's buffer."""
    from synth import pcap

    path = tmp_path_factory.mktemp("cli") / "many.pcap"
    path.write_bytes(pcap(3000, spacing=0.01))
    return path


def _module() -> list[str]:
    return [sys.executable, "-m", "pcapflows"]


@pytest.mark.parametrize("which", ["short", "long"])
@pytest.mark.parametrize("follow", [False, True])
def test_output_pipe_closed_before_writing_is_quiet(
    capture: Path, long_listing: Path, which: str, follow: bool
) -> None:
    """The reader of the pipe is gone before anything is written. Short output is only
    written when it is flushed at the end, long output while reading: both end with
    the shell's code for a command stopped by a closed pipe (141) and nothing on
    stderr (no traceback, no "Exception ignored" at interpreter exit)."""
    import os

    path = capture if which == "short" else long_listing
    args = [str(path), "--follow", "0"] if follow else [str(path)]
    r, w = os.pipe()
    os.close(r)
    try:
        p = subprocess.run(
            [*_module(), *args], stdout=w, stderr=subprocess.PIPE, timeout=120, check=False
        )
    finally:
        os.close(w)
    assert p.stderr == b""
    assert p.returncode == 141


def test_reader_of_the_output_quitting_early_is_quiet(long_listing: Path) -> None:
    """``pcapflows CAPTURE | head -c 10``: the first bytes arrive, the rest is dropped
    quietly."""
    p = subprocess.Popen(
        [*_module(), str(long_listing)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert p.stdout is not None and p.stderr is not None
    head = p.stdout.read(10)
    p.stdout.close()
    err = p.stderr.read()
    assert p.wait(timeout=120) == 141
    assert head.lstrip().startswith(b"#  clie")  # the header row, index column padded
    assert err == b""


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize("which", ["short", "long"])
def test_full_disk_is_a_one_line_error(capture: Path, long_listing: Path, which: str) -> None:
    path = capture if which == "short" else long_listing
    with open("/dev/full", "wb") as full:
        p = subprocess.run(
            [*_module(), str(path)], stdout=full, stderr=subprocess.PIPE, timeout=120, check=False
        )
    assert p.returncode == 4
    assert p.stderr == b"pcapflows: error: cannot write output: No space left on device\n"


def test_closed_standard_input_is_a_one_line_error() -> None:
    p = subprocess.run(
        [*_module(), "-"], stdin=subprocess.DEVNULL, capture_output=True, timeout=60, check=False
    )
    assert p.returncode == 1  # /dev/null: an empty capture
    assert p.stderr == b"pcapflows: error: <stdin>: an empty file, not a pcap or pcapng capture\n"
    # A shell's ``<&-``: no standard input at all.
    p = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, runpy, sys; os.close(0); sys.stdin = None; "
            "sys.argv = ['pcapflows', '-']; runpy.run_module('pcapflows', run_name='__main__')",
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert p.returncode == 1
    assert p.stderr == b"pcapflows: error: <stdin>: standard input is closed or not binary\n"


def test_error_stream_closed_too_is_quiet(capture: Path) -> None:
    """--stats writes to stderr after the listing: with stderr's reader gone as well,
    the command still ends quietly (nothing left for the interpreter to report)."""
    import os

    r, w = os.pipe()
    os.close(r)
    try:
        p = subprocess.run(
            [*_module(), str(capture), "--stats"],
            stdout=subprocess.DEVNULL,
            stderr=w,
            timeout=60,
            check=False,
        )
    finally:
        os.close(w)
    assert p.returncode == 141
