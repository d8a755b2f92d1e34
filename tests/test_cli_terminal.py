"""The command on a terminal and interrupted: colour and the progress line appear on a
terminal (a pseudo-terminal here) and never in a pipe; Ctrl-C mid-read prints what was
found so far and exits 130. Also the endings a network engineer names, on a capture
built here packet by packet (the ground truth is what was put on the wire)."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap
from tcptable import CAPTURES

DEMO = CAPTURES / "demo.pcapng"
ROOT = Path(__file__).resolve().parents[1]


def run_on_pty(args: list[str], *, stdout_tty: bool) -> tuple[bytes, bytes]:
    """Run pcapflows with standard error on a pseudo-terminal (and standard output too
    when ``stdout_tty``, else a pipe); return what each received."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pcapflows", *args],
        stdout=slave if stdout_tty else subprocess.PIPE,
        stderr=slave,
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "NO_COLOR"},
    )
    os.close(slave)
    tty = bytearray()
    while True:
        ready, _, _ = select.select([master], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal (EIO on Linux)
            break
        if not chunk:
            break
        tty += chunk
    out = proc.stdout.read() if proc.stdout is not None else b""
    proc.wait(timeout=60)
    os.close(master)
    return bytes(tty), out


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A capture long enough to be interrupted and to draw progress (30,000 short
    connections, about 9 MB)."""
    from synth import pcap

    path = tmp_path_factory.mktemp("term") / "big.pcap"
    path.write_bytes(pcap(30000, spacing=0.01))
    return path


def test_colour_on_a_terminal_never_in_a_pipe() -> None:
    tty, _ = run_on_pty(["follow", str(DEMO), "2"], stdout_tty=True)
    assert b"\x1b[31m>>> client" in tty and b"\x1b[34m<<< server" in tty
    _, piped = run_on_pty(["follow", str(DEMO), "2"], stdout_tty=False)
    assert b">>> client" in piped and b"\x1b[" not in piped
    forced = subprocess.run(
        [sys.executable, "-m", "pcapflows", "follow", str(DEMO), "2", "--color"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert b"\x1b[31m>>> client" in forced.stdout


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Enough packets for a progress line (it is first drawn at packet 256)."""
    from synth import pcap

    path = tmp_path_factory.mktemp("term") / "small.pcap"
    path.write_bytes(pcap(300, spacing=0.01))
    return path


def test_progress_on_a_terminal_only(small: Path) -> None:
    big = small
    tty, out = run_on_pty(["stats", str(big)], stdout_tty=False)
    assert b"%  " + str(big).encode() in tty and b" flows  " in tty and b"/s" in tty
    assert tty.endswith(b"\r\x1b[K")  # erased at the end
    assert b"\x1b[" not in out
    quiet, _ = run_on_pty(["stats", str(big), "--quiet"], stdout_tty=False)
    assert b"%" not in quiet
    piped = subprocess.run(
        [sys.executable, "-m", "pcapflows", "stats", str(big)],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert piped.returncode == 0 and piped.stderr == b""


def test_ctrl_c_prints_what_was_found_and_exits_130(big: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pcapflows", "list", "--json", str(big)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # Unbuffered: communicate() reads the pipe itself, so what a buffered
        # readline() had read ahead would be lost to it (a line cut in two).
        bufsize=0,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()  # reading has started: flows are coming out
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    lines = [first, *rest.splitlines()]
    indices = [json.loads(line)["index"] for line in lines if line.strip()]
    assert indices == list(range(len(indices)))  # what was found, in order, no hole
    assert 0 < len(indices) < 30000
    message = err.decode()
    assert "interrupted after" in message and "Traceback" not in message
    assert message.count("\n") == 1


# -- endings ---------------------------------------------------------------------------

C, S = "192.0.2.1", "198.51.100.2"


def _pkt(
    t: float,
    src: str,
    dst: str,
    sport: int,
    dport: int,
    flags: str,
    seq: int,
    ack: int = 0,
    data: bytes = b"",
) -> object:
    p = (
        Ether()
        / IP(src=src, dst=dst)
        / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack)
        / data
    )
    p.time = t  # type: ignore[attr-defined]
    return p


def _endings_capture(path: Path) -> dict[int, str]:
    """One connection per ending; returns client port -> the expected word."""
    pkts: list[object] = []
    want: dict[int, str] = {}
    t = 1_700_000_000.0

    def hello(port: int) -> None:
        pkts.extend(
            [
                _pkt(t, C, S, port, 80, "S", 100),
                _pkt(t + 0.01, S, C, 80, port, "SA", 500, 101),
                _pkt(t + 0.02, C, S, port, 80, "A", 101, 501),
                _pkt(t + 0.03, C, S, port, 80, "PA", 101, 501, b"ping"),
                _pkt(t + 0.04, S, C, 80, port, "PA", 501, 105, b"pong"),
            ]
        )

    # fin
    hello(1001)
    pkts += [
        _pkt(t + 0.05, C, S, 1001, 80, "FA", 105, 505),
        _pkt(t + 0.06, S, C, 80, 1001, "FA", 505, 106),
        _pkt(t + 0.07, C, S, 1001, 80, "A", 106, 506),
    ]
    want[1001] = "fin"
    t += 1
    # reset by server, after data
    hello(1002)
    pkts.append(_pkt(t + 0.05, S, C, 80, 1002, "RA", 505, 105))
    want[1002] = "reset by server"
    t += 1
    # rejected: SYN answered by RST
    pkts += [_pkt(t, C, S, 1003, 80, "S", 100), _pkt(t + 0.01, S, C, 80, 1003, "RA", 0, 101)]
    want[1003] = "rejected"
    t += 1
    # no reply: a SYN, retransmitted, never answered
    pkts += [_pkt(t, C, S, 1004, 80, "S", 100), _pkt(t + 1, C, S, 1004, 80, "S", 100)]
    want[1004] = "no reply"
    t += 2
    # idle: quiet for longer than --idle-timeout 60 while another connection goes on
    hello(1005)
    want[1005] = "idle"
    # open at end: the last connection, still open when the capture ends
    t += 100
    hello(1006)
    want[1006] = "open at end"
    wrpcap(str(path), pkts)
    return want


def test_endings_in_words(tmp_path: Path) -> None:
    path = tmp_path / "endings.pcap"
    want = _endings_capture(path)
    r = subprocess.run(
        [sys.executable, "-m", "pcapflows", "list", "--json", str(path), "--idle-timeout", "60"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    got = {
        rec["client"]["port"]: rec["ending"]
        for rec in map(json.loads, r.stdout.decode().splitlines())
    }
    assert got == want
