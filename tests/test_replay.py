"""mitmproxy addons run over a capture: ``pcapflows.replay`` and ``pcapflows CAPTURE -s``.

An addon file that records every hook it gets (as JSON) is run by mitmproxy's own
machinery over sample captures and corpus files, in process and through the command
line; what it saw is checked against truth computed independently of the replay:
the flows ``read()`` gives (ids, messages, errors, final state), the capture's frame
numbers and times (the order of the hooks), and the events ``events()`` gives.
"""

from __future__ import annotations

import io
import itertools
import json
import re
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from tcptable import CAPTURES, CORPUS, have_corpus
from test_to_mitmproxy import CORPUS_FEW, HIDE_MITMPROXY

import pcapflows
from pcapflows import AddonError, TCPFlow
from pcapflows.io.reader import CaptureReader
from pcapflows.model.flow import Flow

try:
    import mitmproxy  # noqa: F401
except ImportError:  # pragma: no cover - the test extra installs it
    pytest.fail("mitmproxy>=11,<12 is required: pip install -e '.[test]'", pytrace=False)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "tcp_log.py"

#: An addon script, as a user would write it for mitmdump: it records every hook call
#: and writes them, as JSON, next to itself when mitmproxy calls ``done``.
RECORDER = textwrap.dedent(
    """
    import json
    from pathlib import Path

    OUT = Path(__file__).with_suffix(".json")
    calls = []


    def _bytes(o):
        return {"hex": o.hex()} if isinstance(o, bytes) else repr(o)


    def _flow(hook, flow):
        entry = {
            "hook": hook,
            "id": flow.id,
            "n": len(flow.messages),
            "class": f"{type(flow).__module__}.{type(flow).__name__}",
            "last": list(flow.messages[-1].get_state()) if flow.messages else None,
            "last_class": type(flow.messages[-1]).__module__ if flow.messages else None,
            "error": str(flow.error) if flow.error else None,
        }
        if hook in ("tcp_end", "tcp_error"):
            state = flow.get_state()
            del state["messages"]
            entry["state"] = state
        calls.append(entry)


    def load(loader):
        calls.append({"hook": "load"})


    def configure(updated):
        calls.append({"hook": "configure"})


    def running():
        calls.append({"hook": "running"})


    def tcp_start(flow):
        _flow("tcp_start", flow)


    def tcp_message(flow):
        _flow("tcp_message", flow)


    def tcp_end(flow):
        _flow("tcp_end", flow)


    def tcp_error(flow):
        _flow("tcp_error", flow)


    def done():
        calls.append({"hook": "done"})
        OUT.write_text(json.dumps(calls, default=_bytes))
    """
)


def _jsonish(value: Any) -> Any:
    """``value`` as the recorder's JSON gives it back (tuples as lists, bytes as hex)."""

    def _bytes(o: object) -> object:
        return {"hex": o.hex()} if isinstance(o, bytes) else repr(o)

    return json.loads(json.dumps(value, default=_bytes))


def own_captures() -> list[Path]:
    return [p for p in sorted(CAPTURES.iterdir()) if p.name.endswith((".pcap", ".pcapng", ".gz"))]


def capture_params() -> list[object]:
    own: list[object] = [pytest.param(p, id=p.name) for p in own_captures()]
    corpus = [
        pytest.param(CORPUS / name if have_corpus() else None, marks=pytest.mark.corpus, id=name)
        for name in CORPUS_FEW
    ]
    return own + corpus


def frame_times(path: Path) -> list[float]:
    """The capture time of every frame, in file order (index 0 is frame 1)."""
    reader = CaptureReader(path, pcapflows.ReadStats())
    try:
        return [p.timestamp for p in reader]
    finally:
        reader.close()


def record(path: Path, tmp_path: Path, **options: Any) -> tuple[list[dict[str, Any]], Any]:
    """Replay ``path`` in process with the recorder script; its calls and the result."""
    script = tmp_path / "recorder.py"
    script.write_text(RECORDER)
    result = pcapflows.replay(path, scripts=[script], warn=False, **options)
    calls: list[dict[str, Any]] = json.loads(script.with_suffix(".json").read_text())
    return calls, result


def expected_messages(path: Path, flows: dict[str, TCPFlow]) -> dict[str, list[Any]]:
    """The messages each flow's hooks must show: read()'s, hook by hook.

    Except where events() documents that it cannot give read()'s messages (bytes that
    reassembly delivers late, past a hole: see pcapflows.model.live): there the hooks
    show events()' messages, which must still carry as many bytes each way as read()'s.
    The sample captures have no such flow (asserted by the callers).
    """
    want = {fid: [m.get_state() for m in f.messages] for fid, f in flows.items()}
    for e in pcapflows.events(path, warn=False):
        if e.kind in ("end", "error") and e.flow.id in want:
            got = [m.get_state() for m in e.flow.messages]
            if got != want[e.flow.id]:
                for side in (True, False):
                    size = [
                        sum(len(m[1]) for m in ms if m[0] == side) for ms in (got, want[e.flow.id])
                    ]
                    assert size[0] == size[1]
                want[e.flow.id] = got
                LATE.add((path.name, e.flow.id))
    return want


#: (capture, flow id) of the flows whose messages events() gives differently from read().
LATE: set[tuple[str, str]] = set()


def check_calls(calls: list[dict[str, Any]], path: Path) -> None:
    """What the recorder saw is what read() and the capture say, hook by hook."""
    flows = {f.id: f for f in pcapflows.read(path, warn=False)}
    messages = expected_messages(path, flows)
    if path.parent == CAPTURES:
        assert not any(name == path.name for name, _ in LATE)
    names = [c["hook"] for c in calls]
    # load and configure when the script is loaded, running before any flow, done last.
    assert names[:3] == ["load", "configure", "running"]
    assert names[-1] == "done"
    tcp = calls[3:-1]
    assert all(c["hook"].startswith("tcp_") for c in tcp)

    seen: dict[str, int] = {}
    ended: list[str] = []
    for c in tcp:
        fid = c["id"]
        assert fid in flows, f"a hook for a flow read() does not give: {c}"
        flow = flows[fid]
        assert c["class"] == "mitmproxy.tcp.TCPFlow"
        if c["hook"] == "tcp_start":
            assert fid not in seen, "two tcp_start for one flow"
            seen[fid] = 0
            assert c["n"] == 0
            continue
        assert fid in seen and fid not in ended, f"{c['hook']} outside start..end"
        if c["hook"] == "tcp_message":
            seen[fid] += 1
            k = seen[fid]
            assert c["n"] == k  # grew by one, as in a live proxy
            assert c["last_class"] == "mitmproxy.tcp"
            assert c["last"] == _jsonish(messages[fid][k - 1])
        else:
            ended.append(fid)
            assert c["hook"] == ("tcp_error" if flow.error else "tcp_end")
            assert c["error"] == (str(flow.error) if flow.error else None)
            assert seen[fid] == len(messages[fid]) == c["n"]
            assert c["state"] == _jsonish(Flow.get_state(flow))
    assert sorted(ended) == sorted(flows), "every flow ends exactly once"
    assert len(ended) == len(set(ended))
    check_order(tcp, flows, path)


def check_order(tcp: list[dict[str, Any]], flows: dict[str, TCPFlow], path: Path) -> None:
    """The hooks of all flows come in capture order, by what the capture itself says.

    Starts come in the order of the connections' first frames; a flow whose last hook
    came before another's start had its last frame before that one's first frame;
    and (when the capture's clock never goes back) a message handed over before a
    flow's start had its first byte captured no later than that start.
    """
    meta = {fid: f.metadata["pcapflows"] for fid, f in flows.items()}
    starts = [meta[c["id"]]["first_frame"] for c in tcp if c["hook"] == "tcp_start"]
    assert starts == sorted(starts)
    times = frame_times(path)
    monotonic = all(a <= b for a, b in itertools.pairwise(times))
    ended_last: list[int] = []  # last frames of the flows ended so far
    latest_message = float("-inf")
    for c in tcp:
        m = meta[c["id"]]
        if c["hook"] == "tcp_start":
            if ended_last:
                assert max(ended_last) < m["first_frame"]
            if monotonic:
                assert latest_message <= times[m["first_frame"] - 1]
        elif c["hook"] == "tcp_message":
            latest_message = max(latest_message, c["last"][2])
        else:
            ended_last.append(m["last_frame"])


@pytest.mark.parametrize("path", capture_params())
def test_recorder_script_sees_the_flows_of_read_in_capture_order(
    path: Path, tmp_path: Path
) -> None:
    calls, result = record(path, tmp_path)
    check_calls(calls, path)
    flows = list(pcapflows.read(path, warn=False))
    assert result.flows == len(flows) == result.stats.flows
    assert result.messages == sum(
        len(m) for m in expected_messages(path, {f.id: f for f in flows}).values()
    )
    assert result.errors_logged == 0


@pytest.mark.parametrize("path", capture_params())
def test_hooks_are_the_events_one_for_one(path: Path, tmp_path: Path) -> None:
    # The recorder's tcp hooks are exactly events(): kind for kind, flow for flow,
    # message for message (the new message is the hook's flow.messages[-1]).
    calls, _ = record(path, tmp_path)
    hooks = [
        (c["hook"], c["id"], c["last"] if c["hook"] == "tcp_message" else None)
        for c in calls
        if c["hook"].startswith("tcp_")
    ]
    want = [
        (
            f"tcp_{e.kind}",
            e.flow.id,
            _jsonish(e.message.get_state()) if e.message is not None else None,
        )
        for e in pcapflows.events(path, warn=False)
    ]
    assert hooks == want


def test_capture_order_is_checked_on_interleaved_connections(tmp_path: Path) -> None:
    # The order checks above mean something only where connections overlap: demo.pcapng
    # has four at once, so a replay flow by flow would fail check_order.
    calls, _ = record(CAPTURES / "demo.pcapng", tmp_path)
    tcp = [c for c in calls if c["hook"].startswith("tcp_")]
    by_flow = [c["id"] for c in tcp]
    grouped = sorted(by_flow, key=by_flow.index)
    assert by_flow != grouped
    with pytest.raises(AssertionError):
        check_order(
            sorted(tcp, key=lambda c: by_flow.index(c["id"])),
            {f.id: f for f in pcapflows.read(CAPTURES / "demo.pcapng")},
            CAPTURES / "demo.pcapng",
        )


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pcapflows", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


CLI_CAPTURES = [
    "demo.pcapng",
    "rule_rst_midway.pcap",
    "rule_port_reuse.pcap",
    "tunnel_vxlan.pcap",
    "pcap_nanosecond.pcap",
]


@pytest.mark.parametrize(
    "path",
    [pytest.param(CAPTURES / n, id=n) for n in CLI_CAPTURES]
    + [
        pytest.param(
            CORPUS / "sessions/pcapplusplus__three_http_streams.pcap" if have_corpus() else None,
            marks=pytest.mark.corpus,
            id="three_http_streams",
        )
    ],
)
def test_cli_s_runs_the_recorder_script(path: Path, tmp_path: Path) -> None:
    script = tmp_path / "recorder.py"
    script.write_text(RECORDER)
    done = run_cli(path, "-s", script)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # no listing: the output is the addons'
    assert "Traceback" not in done.stderr
    check_calls(json.loads(script.with_suffix(".json").read_text()), path)


def test_addon_objects_and_async_hooks_in_process() -> None:
    # Addon objects get load, configure, running, every flow hook and done; an async
    # hook is awaited, as mitmproxy awaits it.
    class Counting:
        def __init__(self) -> None:
            self.calls: Counter[str] = Counter()
            self.order: list[str] = []

        def load(self, loader: object) -> None:
            self.order.append("load")

        def configure(self, updated: set[str]) -> None:
            self.order.append("configure")
            assert "termlog_verbosity" not in updated  # no log asked: no terminal log

        def running(self) -> None:
            self.order.append("running")

        async def tcp_message(self, flow: Any) -> None:
            self.calls["message"] += 1
            self.calls["bytes"] += len(flow.messages[-1].content)

        def tcp_end(self, flow: Any) -> None:
            self.calls["end"] += 1

        def tcp_error(self, flow: Any) -> None:
            self.calls["error"] += 1

        def done(self) -> None:
            self.order.append("done")

    path = CAPTURES / "demo.pcapng"
    flows = list(pcapflows.read(path))
    addon = Counting()
    result = pcapflows.replay(path, [addon])
    assert addon.order == ["load", "configure", "running", "done"]
    assert addon.calls["message"] == sum(len(f.messages) for f in flows) == result.messages
    assert addon.calls["bytes"] == sum(len(m.content) for f in flows for m in f.messages)
    assert addon.calls["error"] == sum(1 for f in flows if f.error) == 1
    assert addon.calls["end"] == len(flows) - 1


def test_keep_messages_false_keeps_only_the_newest(tmp_path: Path) -> None:
    path = CAPTURES / "demo.pcapng"
    calls, _ = record(path, tmp_path, keep_messages=False)
    flows = {f.id: f for f in pcapflows.read(path)}
    k: Counter[str] = Counter()
    for c in calls:
        if c["hook"] == "tcp_message":
            k[c["id"]] += 1
            assert c["n"] == 1
            assert c["last"] == _jsonish(flows[c["id"]].messages[k[c["id"]] - 1].get_state())
    assert sum(k.values()) == sum(len(f.messages) for f in flows.values())


def test_replay_takes_events_the_caller_already_has(tmp_path: Path) -> None:
    # An events() reader (its stats come back) or a plain list of its events.
    path = CAPTURES / "demo.pcapng"
    script = tmp_path / "recorder.py"
    script.write_text(RECORDER)
    reader = pcapflows.events(path)
    result = pcapflows.replay(reader, scripts=[script])
    assert result.stats is reader.stats and result.stats.flows == 4
    check_calls(json.loads(script.with_suffix(".json").read_text()), path)
    listed = list(pcapflows.events(path))
    pcapflows.replay(listed, scripts=[script])
    check_calls(json.loads(script.with_suffix(".json").read_text()), path)


def test_addon_changes_to_the_flow_stay_until_its_end() -> None:
    seen: list[tuple[object, object]] = []

    class Marks:
        def tcp_start(self, flow: Any) -> None:
            flow.metadata["mine"] = flow.id
            flow.comment = "seen"

        def tcp_end(self, flow: Any) -> None:
            seen.append((flow.metadata.get("mine"), flow.comment))

        tcp_error = tcp_end

    pcapflows.replay(CAPTURES / "demo.pcapng", [Marks()])
    assert len(seen) == 4
    assert all(mine is not None and comment == "seen" for mine, comment in seen)


# -- errors, as mitmproxy reports them ---------------------------------------------------

BROKEN = "import logging\n\n\ndef tcp_start(flow):\n    pass\n\n\nx = undefined_name\n"
RAISING = textwrap.dedent(
    """
    def tcp_message(flow):
        if len(flow.messages) == 1:
            raise RuntimeError("boom")


    def done():
        print("done ran")
    """
)


def test_a_broken_script_is_reported_as_mitmproxy_reports_it(tmp_path: Path) -> None:
    script = tmp_path / "broken.py"
    script.write_text(BROKEN)
    done = run_cli(CAPTURES / "demo.pcapng", "-s", script)
    assert done.returncode == 5
    err = done.stderr.splitlines()
    # mitmproxy's log: the error and the script's own traceback, cut to the script.
    assert any(line.endswith(f"error in script {script}") for line in err)
    assert f'File "{script}", line 8, in <module>' in done.stderr
    assert "pcapflows/" not in done.stderr  # not a pcapflows traceback
    assert err[-1] == (
        f"pcapflows: error: error in script {script}: "
        "NameError: name 'undefined_name' is not defined"
    )
    assert done.stdout == ""
    with pytest.raises(AddonError, match=r"error in script .*NameError"):
        pcapflows.replay(CAPTURES / "demo.pcapng", scripts=[script])


def test_a_missing_or_duplicate_script(tmp_path: Path) -> None:
    done = run_cli(CAPTURES / "demo.pcapng", "-s", tmp_path / "nope.py")
    assert done.returncode == 5
    assert done.stderr == f"pcapflows: error: No such script: {tmp_path / 'nope.py'}\n"
    script = tmp_path / "ok.py"
    script.write_text("")
    done = run_cli(CAPTURES / "demo.pcapng", "-s", script, "-s", script)
    assert done.returncode == 5
    assert done.stderr == f"pcapflows: error: Duplicate script: {script}\n"


def test_an_exception_in_a_hook_is_logged_and_the_replay_goes_on(tmp_path: Path) -> None:
    script = tmp_path / "raising.py"
    script.write_text(RAISING)
    done = run_cli(CAPTURES / "demo.pcapng", "-s", script)
    assert done.returncode == 0  # as mitmdump: logged, not fatal
    assert done.stdout == "done ran\n"
    assert done.stderr.count("Addon error: boom") == 4  # every flow's first message
    assert done.stderr.splitlines()[-1] == (
        "pcapflows: warning: 4 error(s) logged while the addons ran"
    )
    result = pcapflows.replay(CAPTURES / "demo.pcapng", scripts=[script], log=io.StringIO())
    assert result.errors_logged == 4
    assert "RuntimeError: boom" in result.errors[0]


def test_cli_s_without_mitmproxy_says_what_to_install(tmp_path: Path) -> None:
    script = tmp_path / "ok.py"
    script.write_text("")
    code = HIDE_MITMPROXY + textwrap.dedent(
        f"""
        from pcapflows.cli import main
        raise SystemExit(main([{str(CAPTURES / "demo.pcapng")!r}, "-s", {str(script)!r}]))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1
    assert re.fullmatch(
        r"pcapflows: error: -s: mitmproxy is not installed \(.*\): "
        r"pip install 'pcapflows\[mitmproxy\]'",
        lines[0],
    )


def test_s_with_a_bad_capture_or_with_follow() -> None:
    done = run_cli(ROOT / "README.md", "-s", EXAMPLE)
    assert done.returncode == 1
    assert done.stderr.startswith("pcapflows: error: ") and "Traceback" not in done.stderr
    assert "Loading script" not in done.stderr  # the capture is checked first
    done = run_cli(CAPTURES / "demo.pcapng", "-s", EXAMPLE, "--follow", "0")
    assert done.returncode == 2


# -- the example addon of the README ---------------------------------------------------

_STAMP = re.compile(r"^\[\d\d:\d\d:\d\d\.\d\d\d\] ")


def example_expected(path: Path) -> tuple[dict[str, list[str]], str]:
    """What examples/tcp_log.py must log for ``path``: per flow its lines in order, and
    the summary; computed from read()."""
    per_flow: dict[str, list[str]] = {}
    total = messages = size = resets = 0
    for f in pcapflows.read(path, warn=False):
        fid = f.id[:8]
        lines = [f"{fid} start"]
        for m in f.messages:
            arrow = "->" if m.from_client else "<-"
            lines.append(f"{fid} {arrow} {len(m.content)} bytes {m.content[:16]!r}")
        n, b = len(f.messages), sum(len(m.content) for m in f.messages)
        how = f"error ({f.error})" if f.error else "end"
        lines.append(f"{fid} {how}: {n} messages, {b} bytes")
        per_flow[fid] = lines
        total += 1
        messages += n
        size += b
        resets += bool(f.error)
    summary = f"summary: {total} connections, {messages} messages, {size} bytes, {resets} reset"
    return per_flow, summary


def check_example_log(text: str, path: Path) -> None:
    lines = [_STAMP.sub("", line) for line in text.splitlines()]
    assert lines[0] == f"Loading script {EXAMPLE}"
    per_flow, summary = example_expected(path)
    assert lines[-1] == summary
    got: dict[str, list[str]] = {}
    for line in lines[1:-1]:
        fid = line.split(" ", 1)[0]
        if line.split(" ")[1] == "start":
            line = f"{fid} start"  # the addresses: checked by the start count here
        got.setdefault(fid, []).append(line)
    assert got == per_flow


@pytest.mark.parametrize("name", ["demo.pcapng", "rule_rst_midway.pcap", "link_sll2.pcap"])
def test_example_addon_via_cli_and_replay(name: str) -> None:
    path = CAPTURES / name
    done = run_cli(path, "-s", EXAMPLE)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    check_example_log(done.stderr, path)
    log = io.StringIO()
    pcapflows.replay(path, scripts=[EXAMPLE], log=log)
    check_example_log(log.getvalue(), path)


def test_refusals_become_addon_errors_and_logging_is_left_as_found(tmp_path: Path) -> None:
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level

    class Same:
        name = "same"

    with pytest.raises(AddonError, match="An addon called 'same' already exists"):
        pcapflows.replay(CAPTURES / "demo.pcapng", [Same(), Same()], log=io.StringIO())

    class Failing:
        def load(self, loader: object) -> None:
            raise KeyError("their own bug")

    with pytest.raises(KeyError, match="their own bug"):  # a bug of theirs stays theirs
        pcapflows.replay(CAPTURES / "demo.pcapng", [Failing()], log=io.StringIO())
    script = tmp_path / "broken.py"
    script.write_text(BROKEN)
    with pytest.raises(AddonError):
        pcapflows.replay(CAPTURES / "demo.pcapng", scripts=[script])
    pcapflows.replay(CAPTURES / "demo.pcapng", scripts=[EXAMPLE], log=io.StringIO())
    assert (list(root.handlers), root.level) == (handlers, level)


def test_without_log_errors_still_reach_stderr_when_nothing_is_configured(
    tmp_path: Path,
) -> None:
    # mitmproxy's Master puts a handler on the root logger, which would silence
    # Python's last-resort output: an application that configured no logging must
    # still see an addon's errors (and no info lines).
    script = tmp_path / "raising.py"
    script.write_text(RAISING)
    code = (
        "import pcapflows\n"
        f"r = pcapflows.replay({str(CAPTURES / 'demo.pcapng')!r}, scripts=[{str(script)!r}])\n"
        "print(r.errors_logged)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "done ran\n4\n"
    assert done.stderr.count("Addon error: boom") == 4
    assert "Loading script" not in done.stderr


def test_roles_turned_round_at_the_end_reach_the_addon() -> None:
    """events() turns a flow's roles round at its end when later packets showed them
    the other way (pcapflows.model.live); the mitmproxy flow an addon holds follows."""
    from pcapflows.model.live import FlowEvent, LiveFlows
    from pcapflows.reassembly.events import Closed, Data, Opened
    from pcapflows.reassembly.summary import ConnectionSummary

    a, b = ("10.0.0.1", 80), ("10.0.0.2", 40000)
    summary = ConnectionSummary(
        conn=0, stream=0, endpoints=(a, b), client=1, handshake_seen=False,
        first_timestamp=1.0, last_timestamp=2.0, setup_timestamp=None, first_frame=1,
        last_frame=2, packets=[1, 1], bytes=[6, 6], history="^dD", closed_by="end",
        open_at_end=True, rst_from=None, rst_timestamp=None, opened_timestamp=1.0,
    )  # fmt: skip
    steps = [
        ([Opened(0, 0, (a, b), 0, 1.0, 1)], 1.0),
        ([Data(0, 0, 0, b"from a", 1.0, 1)], 1.0),
        ([Data(0, 1, 0, b"from b", 2.0, 2)], 2.0),
        ([Closed(0, summary)], 3.0),
    ]
    live = LiveFlows()

    def handed_over() -> Any:
        """As events() hands them over: each packet's events before the next packet."""
        for assembler_events, now in steps:
            out: list[FlowEvent] = []
            live.add(assembler_events, now, out)  # type: ignore[arg-type]
            for e in out:
                live.deliver(e)
                yield e

    seen: dict[str, Any] = {}

    class AtEnd:
        def tcp_start(self, flow: Any) -> None:
            seen["start"] = flow.client_conn.peername

        def tcp_end(self, flow: Any) -> None:
            seen["end"] = flow.client_conn.peername
            seen["messages"] = [(m.from_client, m.content) for m in flow.messages]

    pcapflows.replay(handed_over(), [AtEnd()])
    assert seen["start"] == a and seen["end"] == b
    assert seen["messages"] == [(False, b"from a"), (True, b"from b")]
