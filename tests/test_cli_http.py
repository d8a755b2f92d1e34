"""``list --http`` and ``follow --http`` run as a user runs them (subprocesses),
checked against captures/expected.json: the requests and responses are found in the
ground truth's bytes by a walk written here (heads up to the empty line, bodies by
Content-Length), not by pcapflows' parser."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_cli_commands import DEMO, TRUTH, endpoint, side_bytes

Exchange = dict[str, Any]


def pcapflows(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pcapflows", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _messages(data: bytes) -> list[tuple[bytes, list[tuple[str, str]], bytes]]:
    """(start line, fields, body) of each message, bodies by Content-Length (the
    demo has no chunked bodies); a body cut short keeps what is there."""
    out = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        start, *lines = head.decode("latin-1").split("\r\n")
        fields = [(k, v.strip()) for k, _, v in (line.partition(":") for line in lines)]
        n = int(next((v for k, v in fields if k.lower() == "content-length"), "0"))
        out.append((start.encode(), fields, rest[:n]))
        data = rest[n:]
    return out


def _truth(name: str) -> list[tuple[dict[str, Any], list[Exchange]]]:
    flows = []
    for flow in TRUTH[name]["flows"]:
        requests = _messages(side_bytes(flow, True))
        responses = _messages(side_bytes(flow, False))
        exchanges = []
        for i, (start, fields, _) in enumerate(requests):
            method, target, _v = start.decode().split(" ")
            host = dict((k.lower(), v) for k, v in fields)["host"]
            resp = responses[i] if i < len(responses) else None
            exchanges.append(
                {
                    "method": method,
                    "url": f"http://{host}{target}",
                    "request_head": [start.decode(), *(f"{k}: {v}" for k, v in fields)],
                    "status": resp[0].decode().split(" ")[1] if resp else None,
                    "status_line": resp[0].decode() if resp else None,
                    "ctype": dict((k.lower(), v) for k, v in resp[1])["content-type"]
                    if resp
                    else None,
                    "body": resp[2] if resp else b"",
                }
            )
        flows.append((flow, exchanges))
    return flows


@pytest.fixture(scope="module")
def listed(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, Path]:
    """``list --http`` and the bare form with ``-w`` (one run each)."""
    out = tmp_path_factory.mktemp("http") / "out.mitm"
    a = pcapflows("list", str(DEMO), "--http")
    b = pcapflows(str(DEMO), "--http", "-w", str(out))
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    assert b.stderr.strip() == f"pcapflows: wrote 5 flows to {out}"
    return a.stdout, b.stdout, out


def test_list_http_lines_as_the_truth(listed: tuple[str, str, Path]) -> None:
    text, bare, _ = listed
    assert bare == text
    lines = text.splitlines()
    want = [(flow, ex) for flow, exs in _truth("demo.pcapng") for ex in exs]
    assert len(lines) == len(want)
    for line, (flow, ex) in zip(lines, want, strict=True):
        client = re.escape(endpoint(flow["client"]))
        ctype = re.escape(ex["ctype"])
        assert re.match(
            rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{{6}} {client} {ex['method']} "
            rf"{re.escape(ex['url'])} << {ex['status']} OK {ctype} \S+ \d+ms",
            line,
        ), line
    # The download the client aborted: its response is cut, and the line says so.
    assert lines[-1].endswith("[response incomplete: the connection ended first]")


def test_list_http_write_loads_in_mitmproxy(listed: tuple[str, str, Path]) -> None:
    mitmproxy_io = pytest.importorskip("mitmproxy.io")
    from mitmproxy import http

    _, _, out = listed
    with out.open("rb") as f:
        flows = list(mitmproxy_io.FlowReader(f).stream())
    want = [ex for _, exs in _truth("demo.pcapng") for ex in exs]
    assert all(isinstance(f, http.HTTPFlow) for f in flows)
    assert [(f.request.method, f.request.pretty_url) for f in flows] == [
        (ex["method"], ex["url"]) for ex in want
    ]
    # Bodies as sent (the aborted download's as far as the truth has it: its
    # Content-Length is 100000).
    for f, ex in zip(flows, want, strict=True):
        assert f.response is not None and str(f.response.status_code) == ex["status"]
        assert f.response.raw_content == ex["body"]
    assert f.response.headers["content-length"] == "100000" and len(ex["body"]) < 100000


def test_follow_http_shows_heads_and_bodies() -> None:
    (flow, exchanges) = _truth("demo.pcapng")[2]  # keep-alive: /app.js, /logo.png
    res = pcapflows("follow", str(DEMO), "2", "--http", "--max-bytes", "100")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert (
        lines[0]
        == f"Stream 2: client {endpoint(flow['client'])}  server {endpoint(flow['server'])}"
    )
    at = 0
    for ex in exchanges:
        for want in ["    " + h for h in ex["request_head"]] + ["    " + ex["status_line"]]:
            at = lines.index(want, at) + 1
        body = ex["body"]
        if body.startswith(b"\x89PNG"):
            assert lines[at + 6].startswith("    00000000  89 50 4e 47")  # the hex dump
        else:
            first = body.decode().splitlines()[0]
            assert "    " + first in lines[at:]
        note = f"    [--max-bytes 100: {len(body) - 100} more bytes not shown]"
        at = lines.index(note, at) + 1
    # The same through the command without a subcommand.
    bare = pcapflows(str(DEMO), "--follow", "2", "--http", "--max-bytes", "100")
    assert bare.stdout == res.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["list", "--http", "--json"], "--json does nothing with --http"),
        (["follow", "--http", "--format", "raw", "--side", "client"], "--format raw does nothing"),
    ],
)
def test_http_option_errors_are_one_line(args: list[str], message: str) -> None:
    sub, *rest = args
    cmd = [sub, str(DEMO), *(["2"] if sub == "follow" else []), *rest]
    res = pcapflows(*cmd)
    assert res.returncode == 2 and res.stdout == ""
    assert len(res.stderr.splitlines()) == 1 and message in res.stderr


def test_readme_transcript_is_what_the_command_prints(listed: tuple[str, str, Path]) -> None:
    """The README's HTTP transcript shows this very listing (and the file's count)."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    start = readme.index("$ pcapflows captures/demo.pcapng --http -w out.mitm\n")
    block = readme[start:].split("\n$ mitmdump", 1)[0].splitlines()[1:]
    assert block == [*listed[1].splitlines(), "pcapflows: wrote 5 flows to out.mitm"]
