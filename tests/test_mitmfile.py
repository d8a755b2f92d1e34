"""mitmproxy flow files: our tnetstring codec, write_mitm and read_mitm, against the real
mitmproxy.

The reference is mitmproxy itself, run where it can be independent of us: its own
``tnetstring.dumps`` for the encoding, its ``io.FlowReader`` and ``mitmdump -nr`` in a
fresh subprocess for the files we write, its ``FlowWriter`` and test flows
(``mitmproxy.test.tflow``) for the files we read. pcapflows itself never imports
mitmproxy (one test hides it and writes the same bytes).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mitmproxy.io import tnetstring as mitm_tnetstring
from tcptable import CAPTURES, CORPUS, have_corpus

import pcapflows
from pcapflows import FlowFileError, read, read_mitm, tnetstring, write_mitm
from pcapflows.mitmfile import MitmWriter, checked_state
from pcapflows.model.tcp import TCPFlow, TCPMessage

REPO = Path(__file__).resolve().parents[1]

# --- tnetstring ------------------------------------------------------------------------

HAND_WRITTEN: list[tuple[Any, bytes]] = [
    (None, b"0:~"),
    (True, b"4:true!"),
    (False, b"5:false!"),
    (0, b"1:0#"),
    (-12345, b"6:-12345#"),
    (2**80, b"25:1208925819614629174706176#"),
    (1.5, b"3:1.5^"),
    (1e16, b"5:1e+16^"),
    (-0.0, b"4:-0.0^"),
    (b"", b"0:,"),
    (b"a:b,", b"4:a:b,,"),
    ("", b"0:;"),
    ("h\u00e9", b"3:h\xc3\xa9;"),
    ([], b"0:]"),
    ([1, [b"x"]], b"11:1:1#4:1:x,]]"),
    ({}, b"0:}"),
    # mitmproxy writes a dict's entries last first.
    ({"k": None, b"b": [True]}, b"21:1:b,7:4:true!]1:k;0:~}"),
]


@pytest.mark.parametrize(("value", "encoded"), HAND_WRITTEN)
def test_hand_written_values(value: Any, encoded: bytes) -> None:
    assert tnetstring.dumps(value) == encoded
    assert tnetstring.loads(encoded) == value
    assert mitm_tnetstring.dumps(value) == encoded  # the table itself is right


def test_tuples_are_written_as_lists() -> None:
    assert tnetstring.dumps((1, (b"a",))) == tnetstring.dumps([1, [b"a"]])
    assert tnetstring.loads(tnetstring.dumps((1, (b"a",)))) == [1, [b"a"]]


def test_nan_and_infinities_round_trip() -> None:
    for x in (math.inf, -math.inf):
        assert tnetstring.loads(tnetstring.dumps(x)) == x
    assert math.isnan(tnetstring.loads(tnetstring.dumps(math.nan)))  # type: ignore[arg-type]


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.binary(max_size=40)
    | st.text(max_size=20)
)
keys = st.text(max_size=8) | st.binary(max_size=8) | st.integers() | st.booleans() | st.none()
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.tuples(inner, inner)
        | st.dictionaries(keys, inner, max_size=5)
    ),
    max_leaves=30,
)


def _listed(v: Any) -> Any:
    """What a value reads back as: tuples become lists."""
    if isinstance(v, (list, tuple)):
        return [_listed(x) for x in v]
    if isinstance(v, dict):
        return {k: _listed(x) for k, x in v.items()}
    return v


def _same(a: Any, b: Any) -> bool:
    """Equal, NaN equal to NaN and dicts whatever the order of their entries."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@settings(max_examples=300, deadline=None)
@given(values)
def test_encoding_is_mitmproxys_byte_for_byte(value: Any) -> None:
    ours = tnetstring.dumps(value)
    assert ours == mitm_tnetstring.dumps(value)
    # mitmproxy's decoder reads ours as ours does (bar the order of dict entries,
    # which mitmproxy's leaves reversed), and ours reads it back to the same encoding.
    assert _same(mitm_tnetstring.loads(ours), tnetstring.loads(ours))
    assert tnetstring.dumps(tnetstring.loads(ours)) == ours


@settings(max_examples=200, deadline=None)
@given(values.filter(lambda v: "nan" not in repr(v)))
def test_round_trip(value: Any) -> None:
    assert tnetstring.loads(tnetstring.dumps(value)) == _listed(value)
    fp = io.BytesIO(tnetstring.dumps(value) + tnetstring.dumps([value]) + b"junk")
    first = tnetstring.load(fp)
    assert first is not None and first[0] == _listed(value)
    assert fp.tell() == first[1] == len(tnetstring.dumps(value))  # read no further
    second = tnetstring.load(fp)
    assert second is not None and second[0] == [_listed(value)]


def test_load_reads_a_value_at_a_time_and_none_at_the_end() -> None:
    fp = io.BytesIO(b"1:1#0:~")
    assert tnetstring.load(fp) == (1, 4)
    assert tnetstring.load(fp) == (None, 3)
    assert tnetstring.load(fp) is None
    assert list(tnetstring.iter_load(io.BytesIO(b"1:a,1:b;"))) == [b"a", "b"]


MALFORMED = [
    b"",
    b"x",
    b":",
    b"1",
    b"3:ab,",  # shorter than its length
    b"2:ab",  # no type character
    b"2:ab?",  # unknown type
    b"+1:a,",  # sign in the length
    b" 1:a,",
    b"1234567890123:a,",  # absurd length prefix
    b"2:+1#",  # int() would take these; a tnetstring writer never writes them
    b"3:1_0#",
    b"2: 1#",
    b"0:#",
    b"1:-#",
    b"3:1.x^",
    b"4:1_.0^",
    b"8:infinity^",
    b"4:True!",
    b"1:x~",
    b"2:\xff\xfe;",  # not UTF-8
    b"3:0:~}",  # key without value
    b"6:0:]0:~}",  # a list as a key
    b"4:0:~]}",
    b"5:1:a,]x",  # trailing byte after the top value
    b"4:1:a,]]",
    b"5:1:ab,]",  # item longer than its container
]


@pytest.mark.parametrize("data", MALFORMED)
def test_malformed_input_is_a_flow_file_error(data: bytes) -> None:
    with pytest.raises(FlowFileError):
        tnetstring.loads(data)


def _hostile_nesting(depth: int) -> bytes:
    v = b"0:]"
    for _ in range(depth):
        v = b"%d:%s]" % (len(v), v)
    return v


def test_hostile_nesting_is_refused_not_a_recursion_error() -> None:
    deep = _hostile_nesting(50_000)
    with pytest.raises(FlowFileError, match="nested too deep"):
        tnetstring.loads(deep)
    with pytest.raises(FlowFileError, match="nested too deep"):
        tnetstring.load(io.BytesIO(deep))
    # MAX_DEPTH containers, one inside the other, are read; one more is refused.
    assert tnetstring.loads(_hostile_nesting(tnetstring.MAX_DEPTH - 1)) is not None
    with pytest.raises(FlowFileError, match="nested too deep"):
        tnetstring.loads(_hostile_nesting(tnetstring.MAX_DEPTH))
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="too deep"):
        tnetstring.dumps(loop)


def test_a_false_huge_length_fails_on_the_files_end_not_on_memory() -> None:
    with pytest.raises(FlowFileError, match="ends inside"):
        tnetstring.load(io.BytesIO(b"999999999999:abc,"))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values, st.data())
def test_every_truncation_is_a_flow_file_error(value: Any, data: st.DataObject) -> None:
    encoded = tnetstring.dumps(value)
    cut = data.draw(st.integers(1, len(encoded) - 1))
    with pytest.raises(FlowFileError):
        tnetstring.load(io.BytesIO(encoded[:cut]))
    with pytest.raises(FlowFileError):
        tnetstring.loads(encoded[:cut])


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=60))
def test_random_bytes_give_a_value_or_a_flow_file_error(data: bytes) -> None:
    try:
        tnetstring.loads(data)
    except FlowFileError:
        pass


def test_unencodable_values_are_refused() -> None:
    with pytest.raises(TypeError):
        tnetstring.dumps({1, 2})
    with pytest.raises(ValueError):
        tnetstring.dumps("\udc80")


# --- files written by pcapflows, loaded by mitmproxy --------------------------------------

#: A spread of the shared corpus, picked from its MANIFEST.tsv: IPv6, nanosecond pcap,
#: resets, gaps, tunnels, sequence wrap, conflicting retransmissions, many flows.
CORPUS_PICKS = [
    "ip/pcapplusplus__one_ipv6_http_stream.pcap",
    "formats/pcapplusplus__nanosecs_big_endian.pcap",
    "tcp_rst_fin/zeek__rst-inject-rae.pcap",
    "tcp_overlap_gap/zeek__http-large-gap.pcap",
    "formats/zeek__gap-data-missing.pcapng",
    "tunnels/arkime__arkime_synthetic.pcap",
    "sessions/zeek__bigtransfer.pcap",
    "tcp_overlap_gap/zeek__reassembly.pcap",
    "many_flows/httpreplay__2015-10-30-Nuclear-EK-traffic.pcap",
]

SAMPLES = sorted(p for p in CAPTURES.iterdir() if ".pcap" in p.name)


def _sources() -> list[Path]:
    picks = [CORPUS / name for name in CORPUS_PICKS] if have_corpus() else []
    return SAMPLES + picks


#: Run in a fresh interpreter: every flow of every file through mitmproxy's FlowReader,
#: described with mitmproxy's own attributes, its state encoded by its own tnetstring.
_LOAD_IN_MITMPROXY = textwrap.dedent(
    """
    import hashlib, json, sys
    from mitmproxy.io import FlowReader, tnetstring
    def canon(v):
        if isinstance(v, dict):
            return sorted((k, canon(x)) for k, x in v.items())
        if isinstance(v, (list, tuple)):
            return [canon(x) for x in v]
        return v
    def addr(a):
        return None if a is None else list(a)
    out = {}
    for path in sys.argv[1:]:
        flows = []
        with open(path, "rb") as fp:
            for f in FlowReader(fp).stream():
                c, s = f.client_conn, f.server_conn
                flows.append({
                    "type": f.type,
                    "id": f.id,
                    "messages": [
                        [m.from_client, m.content.hex(), m.timestamp] for m in f.messages
                    ],
                    "client": [addr(c.peername), addr(c.sockname), c.timestamp_start,
                               c.timestamp_end],
                    "server": [addr(s.address), addr(s.peername), addr(s.sockname),
                               s.timestamp_start, s.timestamp_end, s.timestamp_tcp_setup],
                    "created": f.timestamp_created,
                    "error": f.error and [f.error.msg, f.error.timestamp],
                    "metadata": f.metadata,
                    "state": hashlib.sha256(
                        tnetstring.dumps(canon(f.get_state()))
                    ).hexdigest(),
                })
        out[path] = flows
    json.dump(out, sys.stdout)
    """
)


def _canon(v: Any) -> Any:
    """A state with its dicts as sorted lists of entries (as in _LOAD_IN_MITMPROXY)."""
    if isinstance(v, dict):
        return sorted((k, _canon(x)) for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return [_canon(x) for x in v]
    return v


def _describe(f: TCPFlow) -> dict[str, Any]:
    """The same description of one of our flows, with our own attributes."""

    def addr(a: Any) -> Any:
        return None if a is None else list(a)

    c, s = f.client_conn, f.server_conn
    return {
        "type": "tcp",
        "id": f.id,
        "messages": [[m.from_client, m.content.hex(), m.timestamp] for m in f.messages],
        "client": [addr(c.peername), addr(c.sockname), c.timestamp_start, c.timestamp_end],
        "server": [
            addr(s.address),
            addr(s.peername),
            addr(s.sockname),
            s.timestamp_start,
            s.timestamp_end,
            s.timestamp_tcp_setup,
        ],
        "created": f.timestamp_created,
        "error": f.error and [f.error.msg, f.error.timestamp],
        "metadata": json.loads(json.dumps(f.metadata)),
        # The whole state, entries sorted, encoded by mitmproxy's encoder on both
        # sides: equal hashes, equal states.
        "state": hashlib.sha256(mitm_tnetstring.dumps(_canon(f.get_state()))).hexdigest(),
    }


class Written:
    """Every source written with pcapflows, and what mitmproxy made of the files."""

    def __init__(self, root: Path) -> None:
        self.files: dict[Path, Path] = {}
        self.expected: dict[Path, list[TCPFlow]] = {}
        for i, source in enumerate(_sources()):
            self.expected[source] = list(read(source, warn=False))
            out = root / f"{i:03d}-{source.name}.mitm"
            assert write_mitm(iter(self.expected[source]), out) == len(self.expected[source])
            self.files[source] = out
        p = subprocess.run(
            [sys.executable, "-c", _LOAD_IN_MITMPROXY, *map(str, self.files.values())],
            capture_output=True,
            timeout=300,
            check=False,
        )
        assert p.returncode == 0, p.stderr.decode(errors="replace")[-2000:]
        assert p.stderr == b""
        self.loaded: dict[str, list[dict[str, Any]]] = json.loads(p.stdout)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Written:
    return Written(tmp_path_factory.mktemp("mitm"))


def _check_loaded(written: Written, source: Path) -> None:
    theirs = written.loaded[str(written.files[source])]
    ours = [_describe(f) for f in written.expected[source]]
    assert len(theirs) == len(ours)
    for a, b in zip(theirs, ours, strict=True):
        assert a == b, a["id"]


@pytest.mark.parametrize("source", SAMPLES, ids=lambda p: p.name)
def test_sample_captures_load_in_mitmproxy(written: Written, source: Path) -> None:
    _check_loaded(written, source)


@pytest.mark.corpus
@pytest.mark.parametrize("name", CORPUS_PICKS)
def test_corpus_files_load_in_mitmproxy(written: Written, name: str) -> None:
    source = CORPUS / name
    assert written.expected[source], "pick a corpus file with TCP flows"
    _check_loaded(written, source)


def _format_address(a: Any) -> str:
    """How mitmdump prints an address (for the IPv4 and IPv6 hosts of a capture)."""
    host = a[0]
    if host.startswith("::ffff:") and "." in host:
        host = host[7:]
    return f"[{host}]:{a[1]}" if ":" in host else f"{host}:{a[1]}"


def _mitmdump_lines(flows: list[TCPFlow]) -> list[str]:
    """What ``mitmdump -nr`` prints for our flows: a line per message as mitmproxy's
    ``tcp_message`` hook sees it, and a line for each flow that ended with an error."""
    lines = []
    for f in flows:
        client = _format_address(f.client_conn.peername)
        server = _format_address(f.server_conn.address)
        for m in f.messages:
            arrow = "->" if m.from_client else "<-"
            lines.append(f"{client} {arrow} tcp {arrow} {server}")
        if f.error:
            lines.append(f"Error in TCP connection to {server}: {f.error.msg}")
    return lines


def _mitmdump() -> list[str]:
    return [sys.executable, "-c", "from mitmproxy.tools.main import mitmdump; mitmdump()"]


def test_mitmdump_prints_every_message_and_error_and_no_warning(
    written: Written, tmp_path: Path
) -> None:
    """One mitmdump over all the files: flow files are sequences of flows, so their
    concatenation is one too."""
    every = tmp_path / "every.mitm"
    with open(every, "wb") as out:
        for path in written.files.values():
            out.write(path.read_bytes())
    p = subprocess.run(
        [*_mitmdump(), "-n", "-r", str(every)], capture_output=True, timeout=300, check=False
    )
    assert p.returncode == 0
    assert p.stderr == b""
    expected = [line for flows in written.expected.values() for line in _mitmdump_lines(flows)]
    assert p.stdout.decode().splitlines() == expected


def test_a_file_read_back_is_written_byte_for_byte_the_same(written: Written) -> None:
    """write_mitm(read_mitm(f)) == f: the same states, metadata included."""
    for source, path in written.files.items():
        reader = read_mitm(path)
        again = io.BytesIO()
        assert write_mitm(reader, again) == len(written.expected[source])
        assert again.getvalue() == path.read_bytes(), source
        assert reader.skipped == Counter()


def test_flows_read_back_have_the_same_state(written: Written) -> None:
    for source, path in written.files.items():
        back = [f.get_state() for f in read_mitm(path)]
        assert back == [f.get_state() for f in written.expected[source]], source


# --- the writer without mitmproxy -----------------------------------------------------

_WITHOUT_MITMPROXY = textwrap.dedent(
    """
    import sys
    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name == "mitmproxy" or name.startswith("mitmproxy."):
                raise ImportError(f"{name} is hidden for this test")
            return None
    sys.meta_path.insert(0, Refuse())
    try:
        import mitmproxy
    except ImportError:
        pass
    else:
        raise SystemExit("mitmproxy was not hidden")
    import pcapflows
    n = 0
    with open(sys.argv[1], "wb") as out:
        for capture in sys.argv[2:]:
            n += pcapflows.write_mitm(pcapflows.read(capture, warn=False), out)
    assert not any(m.split(".")[0] == "mitmproxy" for m in sys.modules)
    print(n)
    """
)


def test_writer_needs_no_mitmproxy(tmp_path: Path) -> None:
    sources = [CAPTURES / "demo.pcapng", CAPTURES / "tunnel_nested.pcap"]
    sources += [CAPTURES / "rule_rst_midway.pcap", CAPTURES / "rule_gap_acked.pcap"]
    hidden = tmp_path / "hidden.mitm"
    p = subprocess.run(
        [sys.executable, "-c", _WITHOUT_MITMPROXY, str(hidden), *map(str, sources)],
        capture_output=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    here = io.BytesIO()
    n = sum(write_mitm(read(s, warn=False), here) for s in sources)
    assert int(p.stdout) == n > 0
    assert hidden.read_bytes() == here.getvalue()


def test_the_flow_file_modules_do_not_import_mitmproxy() -> None:
    for name in ("mitmfile.py", "tnetstring.py"):
        text = (REPO / "pcapflows" / name).read_text()
        assert "import mitmproxy" not in text and "from mitmproxy" not in text, name


# --- files written by mitmproxy, read by pcapflows -------------------------------------


def _mitmproxy_file(flows: list[Any]) -> bytes:
    from mitmproxy.io import FlowWriter

    out = io.BytesIO()
    writer = FlowWriter(out)
    for f in flows:
        writer.add(f)
    return out.getvalue()


def test_reading_a_file_mitmproxy_wrote() -> None:
    from mitmproxy.test import tflow

    tcp = [tflow.ttcpflow(), tflow.ttcpflow(err=True)]
    tcp[0].metadata["note"] = {"nested": [1, 2.5, "x", None, True]}
    tcp[0].marked = ":star:"
    tcp[0].comment = "a comment"
    others = [tflow.tflow(resp=True), tflow.tflow(err=True), tflow.tudpflow(), tflow.tdnsflow()]
    mixed = [others[0], tcp[0], others[1], others[2], tcp[1], others[3]]
    data = _mitmproxy_file(mixed)
    reader = read_mitm(io.BytesIO(data))
    got = list(reader)
    assert [f.get_state() for f in got] == [f.get_state() for f in tcp]
    assert all(isinstance(f, TCPFlow) for f in got)
    assert reader.skipped == Counter({"http": 2, "udp": 1, "dns": 1})
    assert reader.flows == 2
    # And back: what we write from it, mitmproxy reads as what it wrote.
    from mitmproxy.io import FlowReader

    again = io.BytesIO()
    write_mitm(got, again)
    again.seek(0)
    assert [f.get_state() for f in FlowReader(again).stream()] == [f.get_state() for f in tcp]


def test_reading_a_tls_flow_with_certificates_and_alpn() -> None:
    from mitmproxy import certs
    from mitmproxy.test import tflow

    f = tflow.ttcpflow()
    f.client_conn.alpn_offers = [b"h2", b"http/1.1"]
    f.server_conn.alpn = b"h2"
    _key, cert = certs.create_ca(organization="pcapflows", cn="test", key_size=2048)
    f.server_conn.certificate_list = [certs.Cert(cert)]
    f.client_conn.mitmcert = certs.Cert(cert)
    got = list(read_mitm(io.BytesIO(_mitmproxy_file([f]))))
    assert [g.get_state() for g in got] == [f.get_state()]
    assert got[0].server_conn.certificate_list[0].startswith(b"-----BEGIN CERTIFICATE")


def _state_at(version: int) -> dict[str, Any]:
    """One of our flows' state, dressed as a file of ``version`` would hold it."""
    f = next(iter(read(CAPTURES / "demo.pcapng")))
    state = f.get_state()
    state["version"] = version
    for conn in ("client_conn", "server_conn"):
        state[conn]["state"] = 0  # format 19 still had it
        state[conn]["tls_version"] = "QUIC"
    return state


@pytest.mark.parametrize("version", [19, 20])
def test_older_formats_are_migrated_as_mitmproxy_does(version: int) -> None:
    from mitmproxy.io import FlowReader

    state = _state_at(version)
    if version == 20:
        for conn in ("client_conn", "server_conn"):
            del state[conn]["state"]
    data = tnetstring.dumps(state)
    ours = [f.get_state() for f in read_mitm(io.BytesIO(data))]
    theirs = [f.get_state() for f in FlowReader(io.BytesIO(data)).stream()]
    assert ours == theirs
    assert ours[0]["client_conn"]["tls_version"] == "QUICv1"


@pytest.mark.parametrize(
    ("version", "says"),
    [(18, "older mitmproxy"), (7, "older mitmproxy"), (22, "newer than 12"), ("21", "older")],
)
def test_other_versions_are_a_clear_error(version: Any, says: str) -> None:
    state = _state_at(21)
    state["version"] = version
    for conn in ("client_conn", "server_conn"):
        del state[conn]["state"]
    with pytest.raises(FlowFileError) as err:
        list(read_mitm(io.BytesIO(tnetstring.dumps(state))))
    message = str(err.value)
    assert "\n" not in message
    assert f"version {version}" in message and "21" in message and says in message
    assert "mitmproxy 11 and 12" in message


def test_an_empty_file_has_no_flows(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mitm"
    empty.write_bytes(b"")
    reader = read_mitm(empty)
    assert list(reader) == [] and reader.skipped == Counter()


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ((CAPTURES / "demo.pcapng").read_bytes(), "looks like pcapng"),
        ((CAPTURES / "link_ethernet.pcap").read_bytes(), "looks like pcap"),
        ((CAPTURES / "gzip_pcap.pcap.gz").read_bytes(), "looks like gzip"),
        (b'{"log": {"entries": []}}', "looks like JSON"),
        (bytes(range(7, 250)), "is not a mitmproxy flow file"),
        (b"12:hello world", "is not a mitmproxy flow file"),
        (b"5:12345#", "it holds a int"),
        (b"0:~", "it holds a NoneType"),
        (b"8:1:a;1:b;}", "a dict without a flow format version"),
    ],
    ids=["pcapng", "pcap", "gzip", "har", "random", "no-type", "int", "null", "dict"],
)
def test_not_a_flow_file(tmp_path: Path, content: bytes, says: str) -> None:
    path = tmp_path / "not.mitm"
    path.write_bytes(content)
    with pytest.raises(FlowFileError) as err:
        list(read_mitm(path))
    message = str(err.value)
    assert message.startswith(f"{path} ") and says in message and "\n" not in message


def test_a_truncated_file_is_an_error_naming_the_flow(tmp_path: Path) -> None:
    flows = list(read(CAPTURES / "demo.pcapng"))
    whole = io.BytesIO()
    write_mitm(flows, whole)
    first = len(tnetstring.dumps(checked_state(flows[0])))
    data = whole.getvalue()
    path = tmp_path / "cut.mitm"
    for cut in (first + 1, first + 20, len(data) - 1):
        path.write_bytes(data[:cut])
        reader = read_mitm(path)
        assert next(reader).id == flows[0].id
        with pytest.raises(FlowFileError) as err:
            list(reader)
        assert str(err.value).startswith(f"{path}: flow 2 is damaged: the file ends inside") or (
            "flow" in str(err.value) and "ends inside" in str(err.value)
        )
    path.write_bytes(data[: first // 2])
    with pytest.raises(FlowFileError, match="is not a mitmproxy flow file"):
        list(read_mitm(path))


def test_a_damaged_flow_state_is_an_error() -> None:
    state = _state_at(21)
    for conn in ("client_conn", "server_conn"):
        del state[conn]["state"]
        state[conn]["tls_version"] = None
    state["messages"][0] = [True, "text, not bytes", 1.0]
    with pytest.raises(FlowFileError, match=r"flow 1 is damaged: .*messages\[0\]\.content"):
        list(read_mitm(io.BytesIO(tnetstring.dumps(state))))


def test_text_mode_file_objects_are_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "t.mitm"
    path.write_bytes(b"")
    with open(path) as text, pytest.raises(TypeError, match="text mode: open it with 'rb'"):
        read_mitm(text)
    with open(path, "w") as text, pytest.raises(TypeError, match="text mode: open it with 'wb'"):
        write_mitm([], text)  # type: ignore[arg-type]


def test_read_mitm_from_standard_input_and_a_file_object(tmp_path: Path) -> None:
    path = tmp_path / "demo.mitm"
    write_mitm(read(CAPTURES / "demo.pcapng"), path)
    code = "import pcapflows; print(len(list(pcapflows.read_mitm('-'))))"
    p = subprocess.run(
        [sys.executable, "-c", code],
        input=path.read_bytes(),
        capture_output=True,
        timeout=60,
        check=True,
        cwd=REPO,
    )
    assert p.stdout == b"4\n"
    with open(path, "rb") as fp, read_mitm(fp) as reader:
        assert len(list(reader)) == 4
        assert not fp.closed  # a file object given is left open


# --- what write_mitm checks -------------------------------------------------------------


def _flow(**changes: Any) -> TCPFlow:
    f = next(iter(read(CAPTURES / "demo.pcapng")))
    for name, value in changes.items():
        setattr(f, name, value)
    return f


def test_the_same_id_twice_is_refused_before_it_is_written() -> None:
    f = _flow()
    out = io.BytesIO()
    with pytest.raises(ValueError, match="written twice"):
        write_mitm([f, _flow()], out)
    assert out.getvalue() == tnetstring.dumps(f.get_state())


def test_integer_timestamps_are_written_as_floats() -> None:
    f = _flow(timestamp_created=1_700_000_000)
    f.messages = [TCPMessage(True, b"x", 1_700_000_001)]
    f.client_conn.timestamp_start = 1_700_000_000
    out = io.BytesIO()
    write_mitm([f], out)
    back = tnetstring.loads(out.getvalue())
    assert isinstance(back, dict)
    assert type(back["timestamp_created"]) is float
    assert back["messages"] == [[True, b"x", 1_700_000_001.0]]
    assert type(back["messages"][0][2]) is float
    assert type(back["client_conn"]["timestamp_start"]) is float


def _refused(f: TCPFlow, match: str) -> None:
    out = io.BytesIO()
    with pytest.raises(ValueError, match=match):
        write_mitm([f], out)
    assert out.getvalue() == b""


def test_what_mitmproxy_would_refuse_is_refused_with_the_key() -> None:
    f = _flow()
    f.messages = [TCPMessage(True, "text", 1.0)]  # type: ignore[arg-type]
    _refused(f, r"messages\[0\]\.content must be bytes")
    f = _flow()
    f.id = 7  # type: ignore[assignment]
    _refused(f, r"\.id must be text")
    f = _flow()
    f.client_conn.alpn = "h2"  # type: ignore[assignment]
    _refused(f, r"client_conn\.alpn must be bytes")
    f = _flow()
    f.client_conn.timestamp_start = None
    _refused(f, r"client_conn\.timestamp_start must be a timestamp")
    f = _flow()
    f.client_conn.proxy_mode = "bogus"
    _refused(f, r"proxy_mode must be a mitmproxy proxy mode")
    f = _flow()
    f.server_conn.address = ("10.0.0.1", "80")  # type: ignore[assignment]
    _refused(f, r"server_conn\.address\[1\] must be an int")
    f = _flow()
    f.marked = True  # type: ignore[assignment]
    _refused(f, r"\.marked must be text")


@pytest.mark.parametrize(
    ("metadata", "match"),
    [
        ({"t": (1, 2)}, r"metadata\['t'\] must be JSON-like"),
        ({"b": b"bytes"}, r"metadata\['b'\] must be JSON-like"),
        ({1: "x"}, r"key 1 must be text"),
        ({"s": {1, 2}}, "JSON-like"),
        ({"o": object()}, "JSON-like"),
    ],
)
def test_metadata_must_be_json_like(metadata: dict[Any, Any], match: str) -> None:
    f = _flow()
    f.metadata = {**f.metadata, **metadata}
    _refused(f, match)


PROXY_MODES = [
    "regular",
    "transparent",
    "socks5",
    "dns",
    "upstream:http://proxy:8080",
    "reverse:https://example.com",
    "reverse:tcp://10.0.0.1:22@2222",
    "regular@8080",
    "regular@127.0.0.1:8080",
    "wireguard",
    "wireguard:/tmp/wg.conf@51820",
    "local",
    "local:curl",
    "tun",
    "regular:data",
    "upstream",
    "reverse",
    "bogus",
    "regular@99999",
    "regular@port",
    "",
]


@pytest.mark.parametrize("mode", PROXY_MODES)
def test_proxy_modes_are_checked_as_mitmproxy_parses_them(mode: str) -> None:
    from mitmproxy.proxy.mode_specs import ProxyMode

    try:
        ProxyMode.parse(mode)
    except ValueError:
        mitmproxy_accepts = False
    else:
        mitmproxy_accepts = True
    f = _flow()
    f.client_conn.proxy_mode = mode
    try:
        checked_state(f)
    except ValueError:
        we_accept = False
    else:
        we_accept = True
    assert we_accept == mitmproxy_accepts


def test_write_to_a_path_like_and_to_standard_output(tmp_path: Path) -> None:
    flows = list(read(CAPTURES / "demo.pcapng"))
    path = tmp_path / "p.mitm"
    assert write_mitm(flows, path) == 4
    assert write_mitm(flows, str(path) + "2") == 4
    code = "import pcapflows; pcapflows.write_mitm(pcapflows.read('captures/demo.pcapng'), '-')"
    p = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, timeout=60, check=True, cwd=REPO
    )
    assert p.stdout == path.read_bytes() == Path(str(path) + "2").read_bytes()


def test_write_mitm_writes_each_flow_as_it_comes() -> None:
    """Each flow is in the file (flushed) before the next is asked for."""
    flows = list(read(CAPTURES / "demo.pcapng"))
    out = io.BufferedWriter(io.BytesIO())  # type: ignore[arg-type]
    raw = out.raw
    seen: list[int] = []

    def one_at_a_time() -> Any:
        for f in flows:
            yield f
            seen.append(len(raw.getvalue()))  # type: ignore[attr-defined]

    write_mitm(one_at_a_time(), out)
    sizes = [len(tnetstring.dumps(f.get_state())) for f in flows]
    assert seen == [sum(sizes[: i + 1]) for i in range(len(flows))]


def test_mitm_writer_adds_one_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "w.mitm"
    with MitmWriter(path) as writer:
        for f in read(CAPTURES / "demo.pcapng"):
            writer.add(f)
    assert writer.count == 4
    assert [f.id for f in read_mitm(path)] == [f.id for f in read(CAPTURES / "demo.pcapng")]


def test_public_names() -> None:
    for name in ("write_mitm", "read_mitm", "FlowFileError", "MitmReader", "MitmWriter"):
        assert name in pcapflows.__all__ and hasattr(pcapflows, name)
    assert issubclass(FlowFileError, pcapflows.PcapflowsError)
