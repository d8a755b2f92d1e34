"""The subcommands list, follow, export and stats, run as a user runs them (subprocesses),
checked against the capture script's ground truth (captures/expected.json), never
against output of pcapflows saved once.

Subprocesses are shared: one ``list --json`` and one ``export --format jsonl`` over
every sample capture at once serve many checks.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tcptable import CAPTURES

TRUTH: dict[str, dict[str, Any]] = json.loads((CAPTURES / "expected.json").read_text())["captures"]
DEMO = CAPTURES / "demo.pcapng"
ALL = [str(CAPTURES / name) for name in sorted(TRUTH)]


def pcapflows(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "pcapflows", *args],
        capture_output=True,
        input=stdin,
        timeout=120,
        check=False,
    )


def endpoint(addr: list[Any]) -> str:
    host, port = str(addr[0]), addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def truth_ending(flow: dict[str, Any]) -> str:
    """How the connection ended, in the README's words, from the ground truth."""
    if flow["closed_by"] == "rst":
        return f"reset by {flow['rst_from']}"
    if flow["closed_by"] == "fin":
        return "fin"
    if flow["packets"] and flow["packets"]["server"] == 0:
        return "no reply"
    return "open at end"


def content(message: list[Any]) -> bytes:
    data = message[1]
    return bytes.fromhex(data["hex"]) if isinstance(data, dict) else data.encode()


def side_bytes(flow: dict[str, Any], client: bool) -> bytes:
    return b"".join(content(m) for m in flow["messages"] if m[0] is client)


@pytest.fixture(scope="module")
def schema() -> Any:
    jsonschema = pytest.importorskip("jsonschema")
    from pcapflows.cli.jsonl import schema_path

    validator_class = jsonschema.validators.validator_for(json.loads(schema_path().read_text()))
    return validator_class(json.loads(schema_path().read_text()))


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """``export --format jsonl`` of every sample capture, in one run."""
    out = tmp_path_factory.mktemp("export") / "all.jsonl"
    r = pcapflows("export", *ALL, "--format", "jsonl", "-o", str(out), "-q")
    assert r.returncode == 0, r.stderr
    assert r.stderr == b""  # -q: not even the "wrote N flows" line
    return [json.loads(line) for line in out.read_text().splitlines()]


def by_capture(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        out.setdefault(Path(rec["capture"]).name, []).append(rec)
    for recs in out.values():
        recs.sort(key=lambda r: r["index"])
    return out


# -- export --format jsonl -------------------------------------------------------------


def test_jsonl_export_of_every_capture_is_the_ground_truth(
    exported: list[dict[str, Any]], schema: Any
) -> None:
    for rec in exported:
        schema.validate(rec)
    got = by_capture(exported)
    assert set(got) == set(TRUTH)
    for name, entry in TRUTH.items():
        recs = got[name]
        assert [r["index"] for r in recs] == list(range(len(entry["flows"]))), name
        for rec, flow in zip(recs, entry["flows"], strict=True):
            assert [rec["client"]["ip"], rec["client"]["port"]] == flow["client"], name
            assert [rec["server"]["ip"], rec["server"]["port"]] == flow["server"], name
            meta = rec["metadata"]["pcapflows"]
            assert meta["bytes"] == flow["bytes"], name
            if flow["packets"] is not None:
                assert meta["packets"] == flow["packets"], name
            assert [[g["from_client"], g["offset"], g["length"]] for g in meta["gaps"]] == flow[
                "gaps"
            ], name
            assert [
                [c["from_client"], c["offset"], c["length"]] for c in meta["conflicts"]
            ] == flow["conflicts"], name
            assert rec["ending"] == truth_ending(flow), name
            assert rec["message_count"] == len(flow["messages"]) == len(rec["messages"])
            for m, want in zip(rec["messages"], flow["messages"], strict=True):
                assert m["from_client"] is want[0]
                assert base64.b64decode(m["content"]) == content(want), name
                if want[2] is not None:
                    assert m["timestamp"] == pytest.approx(want[2], abs=1e-6)
            # Offsets: the messages and the gaps of each direction tile its stream.
            for client in (True, False):
                spans = sorted(
                    [
                        (m["offset"], m["length"])
                        for m in rec["messages"]
                        if m["from_client"] is client
                    ]
                    + [(g[1], g[2]) for g in flow["gaps"] if g[0] is client]
                )
                pos = 0
                for off, length in spans:
                    assert off == pos, (name, spans)
                    pos += length


def test_jsonl_to_standard_output_and_from_standard_input(schema: Any) -> None:
    r = pcapflows("export", "-", "--format", "jsonl", "-o", "-", stdin=DEMO.read_bytes())
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    assert len(lines) == len(TRUTH["demo.pcapng"]["flows"])
    for line in lines:
        rec = json.loads(line)
        schema.validate(rec)
        assert rec["capture"] == "<stdin>"


# -- list ------------------------------------------------------------------------------


def test_list_json_of_every_capture(schema: Any) -> None:
    r = pcapflows("list", "--json", *ALL)
    assert r.returncode == 0, r.stderr
    recs = [json.loads(line) for line in r.stdout.decode().splitlines()]
    for rec in recs:
        schema.validate(rec)
        assert "messages" not in rec
    got = by_capture(recs)
    # In the order of first packets within each capture, captures in the order given.
    assert [Path(r["capture"]).name for r in recs] == [
        n for n in sorted(TRUTH) for _ in TRUTH[n]["flows"]
    ]
    for name, entry in TRUTH.items():
        for rec, flow in zip(got[name], entry["flows"], strict=True):
            assert rec["message_count"] == len(flow["messages"])
            assert rec["ending"] == truth_ending(flow)
            assert rec["metadata"]["pcapflows"]["bytes"] == flow["bytes"]


def columns_of(line: str) -> list[int]:
    """Start positions of the cells of a table line (cells are split by 2+ spaces)."""
    return [m.start() for m in re.finditer(r"(?:(?<=  )|^)\S", line)]


def test_list_table_has_a_header_aligned_columns_utc_and_human_sizes() -> None:
    r = pcapflows("list", str(DEMO))
    assert r.returncode == 0, r.stderr
    assert r.stderr == b""
    lines = r.stdout.decode().splitlines()
    header, rows = lines[0], lines[1:]
    assert header.split("  ")[0] == "#" and "start (UTC)" in header and "ending" in header
    flows = TRUTH["demo.pcapng"]["flows"]
    assert len(rows) == len(flows)
    # Every column ends (numbers) or starts (text) where the header's does.
    ends = {h: header.index(h) + len(h) for h in ("pkts c>s", "bytes s>c", "msgs", "gaps")}
    starts = {h: header.index(h) for h in ("client", "server", "start (UTC)", "ending")}
    for row, flow in zip(rows, flows, strict=True):
        for h, end in ends.items():
            assert row[end - 1] != " " and row[end] == " ", (h, row)
        for h, start in starts.items():
            assert row[start] != " " and row[start - 1] == " ", (h, row)
        assert row[starts["client"] :].startswith(endpoint(flow["client"]))
        assert row[starts["server"] :].startswith(endpoint(flow["server"]))
        assert row[starts["ending"] :] == truth_ending(flow)
        # Human sizes: 2065 bytes is 2.0 KiB.
        server_bytes = flow["bytes"]["server"]
        assert f"{server_bytes / 1024:.1f} KiB" in row
    assert "2023-11-14 22:13:20.020" in rows[0]  # 1_700_000_000.0201 in UTC
    exact = pcapflows("list", str(DEMO), "--bytes").stdout.decode().splitlines()
    for row, flow in zip(exact[1:], flows, strict=True):
        assert f" {flow['bytes']['client']} " in row and f" {flow['bytes']['server']} " in row


def test_several_captures_are_labelled_and_stdin_works() -> None:
    other = CAPTURES / "rule_conflict.pcap"
    r = pcapflows("list", str(DEMO), "-", stdin=other.read_bytes())
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    assert lines[0].startswith("capture")
    assert [line.split()[0] for line in lines[1:]] == [str(DEMO)] * 4 + ["<stdin>"]
    assert lines[-1].split()[1] == "0"  # indices count per capture


# -- filters ---------------------------------------------------------------------------


def listed(*args: str) -> list[int]:
    r = pcapflows("list", "--json", str(DEMO), *args)
    assert r.returncode == 0, r.stderr
    return [json.loads(line)["index"] for line in r.stdout.decode().splitlines()]


def test_filters_select_by_the_ground_truth_and_keep_indices() -> None:
    flows = TRUTH["demo.pcapng"]["flows"]

    def where(pred: Any) -> list[int]:
        return [i for i, f in enumerate(flows) if pred(f)]

    assert listed("--port", "52118") == where(lambda f: f["client"][1] == 52118) == [2]
    assert listed("--host", "2001:db8:2:0::80") == where(lambda f: ":" in f["server"][0])
    assert listed("--net", "192.168.0.0/16") == where(lambda f: "." in f["client"][0])
    assert listed("--net", "10.0.0.0/8") == []
    assert listed("--flow", "3", "--flow", "0") == [0, 3]
    assert listed("--min-bytes", "2800") == where(
        lambda f: f["bytes"]["client"] + f["bytes"]["server"] >= 2800
    )
    # Flow 0's first packet is at 1_700_000_000.0201, the others at .3 s and after.
    assert listed("--since", "2023-11-14T22:13:20.1Z") == [1, 2, 3]
    assert listed("--until", "1700000000.1") == [0]
    assert listed("--port", "80", "--host", "203.0.113.80", "--port", "443") == [0, 2, 3]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["list", str(DEMO), "--hex"], "--hex does nothing with list"),
        (["list", str(DEMO), "--side", "client"], "--side does nothing with list"),
        (["stats", str(DEMO), "--json"], "--json does nothing with stats"),
        (["list", str(DEMO), "--net", "10.0.0/33"], "--net"),
        (["list", str(DEMO), "--since", "yesterday"], "bad time"),
        (["follow", str(DEMO), "1.2.3.4:5-::1:80"], "bad flow"),
        (["follow", str(DEMO), "2", "--format", "raw"], "--side"),
        (["export", str(DEMO), "--format", "dir", "-o", "-"], "directory"),
        (["list", str(DEMO), "--port", "70000"], "--port"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(args: list[str], words: str) -> None:
    r = pcapflows(*args)
    assert r.returncode == 2, r.stderr
    err = r.stderr.decode()
    assert err.count("\n") == 1 and words in err and "Traceback" not in err


def test_input_errors(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a capture\n")
    for args in (["list", str(text)], ["stats", str(tmp_path / "missing.pcap")]):
        r = pcapflows(*args)
        assert r.returncode == 1
        assert r.stderr.decode().count("\n") == 1 and b"Traceback" not in r.stderr
    r = pcapflows("follow", str(DEMO), "9")
    assert r.returncode == 3
    assert r.stderr == f"pcapflows: error: no flow 9 in {DEMO} (4 flows)\n".encode()


# -- follow ----------------------------------------------------------------------------


def test_follow_by_index_and_by_endpoints_is_the_conversation() -> None:
    flow = TRUTH["demo.pcapng"]["flows"][1]  # IPv6
    a = pcapflows("follow", str(DEMO), "1")
    spec = f"{endpoint(flow['server'])}-{endpoint(flow['client'])}"  # either order
    b = pcapflows("follow", str(DEMO), spec)
    assert a.returncode == b.returncode == 0, (a.stderr, b.stderr)
    assert a.stdout == b.stdout
    out = a.stdout.decode()
    assert "\x1b[" not in out  # never colour in a pipe
    lines = out.splitlines()
    assert (
        lines[0]
        == f"Stream 1: client {endpoint(flow['client'])}  server {endpoint(flow['server'])}"
    )
    heads = [line for line in lines if line.startswith((">>> client", "<<< server"))]
    assert [h.startswith(">>>") for h in heads] == [m[0] for m in flow["messages"]]
    for head, m in zip(heads, flow["messages"], strict=True):
        assert f"  {len(content(m))} bytes at offset" in head
    body = "\n".join(line[4:] for line in lines if line.startswith("    "))
    for m in flow["messages"]:
        for text_line in content(m).decode().splitlines():
            assert text_line in body


def test_follow_raw_hex_json_and_max_bytes(schema: Any) -> None:
    flow = TRUTH["demo.pcapng"]["flows"][2]  # a binary body (logo.png)
    raw = pcapflows("follow", str(DEMO), "2", "--format", "raw", "--side", "server")
    assert raw.returncode == 0 and raw.stdout == side_bytes(flow, False)
    cut = pcapflows(
        "follow", str(DEMO), "2", "--format", "raw", "--side", "client", "--max-bytes", "100"
    )
    assert cut.stdout == side_bytes(flow, True)[:100]
    hx = pcapflows("follow", str(DEMO), "2", "--format", "hex").stdout.decode()
    dumped = bytearray()
    for line in hx.splitlines():
        m = re.match(r"^    ([0-9a-f]{8})  ((?:[0-9a-f]{2} ?)+)", line)
        if m:
            dumped += bytes.fromhex(m.group(2).replace(" ", ""))
    assert bytes(dumped) == b"".join(content(m) for m in flow["messages"])
    js = pcapflows("follow", str(DEMO), "2", "--format", "json", "--max-bytes", "300")
    rec = json.loads(js.stdout)
    schema.validate(rec)
    assert rec["truncated"] is True
    got = b"".join(base64.b64decode(m["content"]) for m in rec["messages"])
    assert got == b"".join(content(m) for m in flow["messages"])[:300]
    text = pcapflows("follow", str(DEMO), "2", "--max-bytes", "300").stdout.decode()
    total = sum(len(content(m)) for m in flow["messages"])
    assert f"[--max-bytes 300: {total - 300} more bytes not shown]" in text


def test_follow_shows_gaps_and_conflicts_as_annotations() -> None:
    gap = TRUTH["rule_gap_acked.pcap"]["flows"][0]
    out = pcapflows("follow", str(CAPTURES / "rule_gap_acked.pcap"), "0").stdout.decode()
    (from_client, offset, length) = gap["gaps"][0]
    assert from_client is True
    note = f"[gap: {length} bytes from client missing in the capture at stream offset {offset}"
    assert note in out
    # Between the two client messages around the gap, and no byte invented for it.
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("[gap"))
    assert (
        lines[at + 1].startswith(">>> client") and f"at offset {offset + length}" in lines[at + 1]
    )
    conflict = TRUTH["rule_conflict.pcap"]["flows"][0]
    out = pcapflows("follow", str(CAPTURES / "rule_conflict.pcap"), "0").stdout.decode()
    for c_client, c_off, c_len in conflict["conflicts"]:
        who = "client" if c_client else "server"
        assert (
            f"[conflict: {who} bytes {c_off}-{c_off + c_len - 1}: a later copy ({c_len} bytes"
            in out
        )
    # The first copy is what is shown (the ground truth's bytes).
    assert content(conflict["messages"][0]).decode().splitlines()[0] in out


# -- export mitm and dir ---------------------------------------------------------------


def test_export_mitm_and_dir(tmp_path: Path) -> None:
    import pcapflows as lib

    flows = TRUTH["demo.pcapng"]["flows"]
    r = pcapflows("export", str(DEMO), "--format", "mitm", "-o", str(tmp_path / "d.mitm"))
    assert (
        r.returncode == 0
        and r.stderr == f"pcapflows: wrote 4 flows to {tmp_path / 'd.mitm'}\n".encode()
    )
    back = sorted(
        lib.read_mitm(tmp_path / "d.mitm"), key=lambda f: f.metadata["pcapflows"]["stream"]
    )
    for got, want in zip(back, flows, strict=True):
        assert list(got.client_conn.peername) == want["client"]
        assert [m.content for m in got.messages] == [content(m) for m in want["messages"]]
    out = tmp_path / "dir"
    r = pcapflows("export", str(DEMO), "--format", "dir", "-o", str(out))
    assert r.returncode == 0, r.stderr
    index = [line.split("\t") for line in (out / "index.tsv").read_text().splitlines()]
    assert index[0][:4] == ["capture", "index", "client", "server"]
    for row in index[1:]:
        want = flows[int(row[1])]
        assert row[2] == endpoint(want["client"]) and row[5] == truth_ending(want)
        assert (out / row[6]).read_bytes() == side_bytes(want, True)
        assert (out / row[8]).read_bytes() == side_bytes(want, False)
    again = pcapflows("export", str(DEMO), "--format", "dir", "-o", str(out))
    assert again.returncode == 2 and b"not empty" in again.stderr


# -- stats -----------------------------------------------------------------------------


def test_stats_counts_what_the_ground_truth_says() -> None:
    names = ["demo.pcapng", "rule_gap_acked.pcap", "rule_conflict.pcap", "rule_syn_only.pcap"]
    r = pcapflows("stats", *(str(CAPTURES / n) for n in names))
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    entries = [TRUTH[n] for n in names]
    flows = [f for e in entries for f in e["flows"]]

    def value(label: str) -> str:
        m = re.search(rf"^  {re.escape(label)} +(.*)$", out, re.M)
        assert m, (label, out)
        return m.group(1)

    records = sum(e["records"] for e in entries)
    tcp = records - sum(e["non_tcp_records"] for e in entries)
    assert value("packets").startswith(f"{records} ({tcp} TCP segments)")
    assert value("flows") == str(len(flows))
    assert value("80") == str(sum(1 for f in flows if f["server"][1] == 80))
    for word in ("fin", "reset by client", "no reply"):
        assert value(word) == str(sum(1 for f in flows if truth_ending(f) == word))
    gaps = [g for f in flows for g in f["gaps"]]
    assert value("gaps") == f"{len(gaps)} ({sum(g[2] for g in gaps)} B missing)"
    assert value("conflicts") == str(sum(len(f["conflicts"]) for f in flows))
    assert value("resets") == str(sum(1 for f in flows if f["closed_by"] == "rst"))
    assert value("open at end") == str(sum(1 for f in flows if f["open_at_end"]))
    assert value("not tcp: udp") == "4"  # demo's DNS
    assert value("ethertype 0x0806") == "2"  # demo's ARP


# -- start-up --------------------------------------------------------------------------


def test_import_and_help_load_nothing_they_do_not_need() -> None:
    code = (
        "import sys, pcapflows; assert 'pcapflows.cli' not in sys.modules, 'cli'\n"
        "from pcapflows.cli import main\n"
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['--help']); main(['list', '--help'])\n"
        "bad = [m for m in ('mitmproxy', 'asyncio', 'jsonschema', 'pcapflows.cli.follow',"
        " 'pcapflows.cli.export', 'pcapflows.mitmproxy_bridge') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr


def test_help_shows_examples_and_defaults() -> None:
    for sub in ("list", "follow", "export", "stats"):
        out = pcapflows(sub, "--help").stdout.decode()
        assert "examples:" in out and f"pcapflows {sub} captures/demo.pcapng" in out
        assert "(default: 3600)" in out  # --idle-timeout
    assert "(default: text)" in pcapflows("follow", "--help").stdout.decode()
    top = pcapflows("--help").stdout.decode()
    for sub in ("list", "follow", "export", "stats"):
        assert f"  {sub} " in top


def test_follow_verbose_reports_the_read_as_list_does() -> None:
    """``follow -v`` (and ``pcapflows CAPTURE --follow N --stats``) ends with the same
    report as ``list -v`` when the flow followed is the capture's only one: the read
    stops at that flow, which is then the whole capture. Breaking out of the scan had
    left its generator suspended, so the payload line was missing."""
    capture = str(CAPTURES / "ip_options.pcap")
    listed = pcapflows("list", capture, "-v")
    followed = pcapflows("follow", capture, "0", "-v")
    old_form = pcapflows(capture, "--follow", "0", "--stats")
    assert listed.returncode == followed.returncode == old_form.returncode == 0
    report = listed.stderr.decode().splitlines()[1:]  # the first line counts flows
    assert any(line.startswith("payload bytes ") for line in report), report
    assert followed.stderr.decode().splitlines()[1:] == report
    assert old_form.stderr.decode().splitlines()[1:] == report
