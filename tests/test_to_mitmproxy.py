"""``pcapflows.to_mitmproxy`` against the real mitmproxy (the test extra installs it).

The flow it returns must be mitmproxy's own class with exactly our state, and behave
as any mitmproxy flow does (copy, repr, its file writer and reader); and without
mitmproxy, pcapflows must still import and say in one line what to install.
"""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tcptable import CAPTURES, CORPUS, have_corpus

import pcapflows
from pcapflows import Client, Error, Server, TCPFlow, TCPMessage, to_mitmproxy

try:
    from mitmproxy import io as m_io
    from mitmproxy import tcp as m_tcp
except ImportError:  # pragma: no cover - the test extra installs it
    pytest.fail("mitmproxy>=11,<12 is required: pip install -e '.[test]'", pytrace=False)

ROOT = Path(__file__).resolve().parents[1]

#: Corpus files that add what captures/ has less of: IPv6, nanosecond stamps, resets,
#: gaps, tunnels, many flows, reordered segments.
CORPUS_FEW = [
    "ip/arkime__v6-http.pcap",
    "formats/zeek__get-to-ssh-server.pcap",
    "linktypes/pcapplusplus__one_http_stream_rst.pcap",
    "formats/zeek__gap-data-missing.pcapng",
    "tunnels/zeek__vxlan-encapsulated-http.pcap",
    "many_flows/zeek__methods.pcap",
    "sessions/pcapplusplus__three_http_streams.pcap",
    "tcp_ooo_retrans/tcpflow__test5-lines-randomized.pcap",
]


def capture_params() -> list[object]:
    """Every capture of captures/, then the corpus files above (marked ``corpus``)."""
    own: list[object] = [
        pytest.param(p, id=p.name)
        for p in sorted(CAPTURES.iterdir())
        if p.name.endswith((".pcap", ".pcapng", ".gz"))
    ]
    corpus = [
        pytest.param(CORPUS / name if have_corpus() else None, marks=pytest.mark.corpus, id=name)
        for name in CORPUS_FEW
    ]
    return own + corpus


@pytest.mark.parametrize("path", capture_params())
def test_every_flow_becomes_a_mitmproxy_flow_with_our_state(path: Path) -> None:
    flows = list(pcapflows.read(path, warn=False))
    for flow in flows:
        m = to_mitmproxy(flow)
        assert type(m) is m_tcp.TCPFlow
        assert m.get_state() == flow.get_state()
        assert all(type(x) is m_tcp.TCPMessage for x in m.messages)
        assert [x.get_state() for x in m.messages] == [x.get_state() for x in flow.messages]
        assert repr(m) == repr(flow)
        # mitmproxy's own copy: a new id, everything else the same.
        c = m.copy()
        assert c.id != m.id
        state, copied = m.get_state(), c.get_state()
        state.pop("id")
        copied.pop("id")
        assert copied == state


def test_independent_of_the_original() -> None:
    flow = next(iter(pcapflows.read(CAPTURES / "demo.pcapng")))
    before = flow.get_state()
    m = to_mitmproxy(flow)
    m.metadata["pcapflows"]["stream"] = 99
    m.messages.clear()
    m.client_conn.timestamp_end = 1.0
    assert flow.get_state() == before


def test_timestamp_zero_survives_mitmproxys_constructor() -> None:
    # mitmproxy's TCPMessage turns 0.0 into "now"; a capture's 0.0 must stay.
    flow = TCPFlow(
        Client(peername=("10.0.0.1", 1), sockname=("10.0.0.2", 2), timestamp_start=0.0),
        Server(address=("10.0.0.2", 2), timestamp_start=0.0),
        timestamp_created=0.0,
    )
    flow.messages = [TCPMessage(True, b"x", 0.0), TCPMessage(False, b"", 0.0)]
    flow.error = Error("connection reset by server", 0.0)
    m = to_mitmproxy(flow)
    assert [x.timestamp for x in m.messages] == [0.0, 0.0]
    assert m.error is not None and m.error.timestamp == 0.0
    assert m.get_state() == flow.get_state()


def test_mitmproxys_file_writer_and_reader_take_it() -> None:
    flows = list(pcapflows.read(CAPTURES / "demo.pcapng"))
    buf = io.BytesIO()
    writer = m_io.FlowWriter(buf)
    for f in flows:
        writer.add(to_mitmproxy(f))
    buf.seek(0)
    back = list(m_io.FlowReader(buf).stream())
    assert [b.get_state() for b in back] == [f.get_state() for f in flows]


#: Run first in a subprocess: makes every import of mitmproxy fail, as if it were not
#: installed (a finder in front of all others that refuses the name).
HIDE_MITMPROXY = textwrap.dedent(
    """
    import sys

    class _NoMitmproxy:
        def find_spec(self, name, path=None, target=None):
            if name == "mitmproxy" or name.startswith("mitmproxy."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, _NoMitmproxy())
    """
)


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_without_mitmproxy_import_works_and_to_mitmproxy_says_what_to_install() -> None:
    code = HIDE_MITMPROXY + textwrap.dedent(
        f"""
        import pcapflows
        flow = next(iter(pcapflows.read({str(CAPTURES / "demo.pcapng")!r})))
        try:
            pcapflows.to_mitmproxy(flow)
        except pcapflows.MitmproxyMissing as exc:
            assert isinstance(exc, ImportError) and isinstance(exc, pcapflows.PcapflowsError)
            print("MISSING", exc)
        try:
            pcapflows.replay({str(CAPTURES / "demo.pcapng")!r}, [])
        except pcapflows.MitmproxyMissing as exc:
            print("MISSING", exc)
        """
    )
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2
    for line in lines:
        assert line.startswith("MISSING mitmproxy is not installed")
        assert line.endswith("pip install 'pcapflows[mitmproxy]'")


def test_plain_pcapflows_never_imports_mitmproxy() -> None:
    # Importing the package and running the command (--help, a listing) leave mitmproxy
    # out: it costs a noticeable part of a second to import.
    code = textwrap.dedent(
        f"""
        import contextlib, io, sys
        import pcapflows, pcapflows.cli
        with contextlib.redirect_stdout(io.StringIO()):
            pcapflows.cli.main([{str(CAPTURES / "demo.pcapng")!r}])
            try:
                pcapflows.cli.main(["--help"])
            except SystemExit:
                pass
        print(sorted(m for m in sys.modules if m.split(".")[0] == "mitmproxy"))
        """
    )
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    # ... while this same check does see it once a bridge function is called.
    done = run_python(
        code.replace(
            "print(sorted",
            "pcapflows.to_mitmproxy(next(iter(pcapflows.read("
            f"{str(CAPTURES / 'demo.pcapng')!r}))))\nprint(sorted",
        )
    )
    assert "'mitmproxy'" in done.stdout
