"""pcapflows: TCP conversations from pcap and pcapng captures, as mitmproxy-style flows.

Typical use::

    import pcapflows

    for flow in pcapflows.read("capture.pcapng"):
        print(flow.client_conn.peername, "->", flow.server_conn.address)
        for message in flow.messages:
            print(message.from_client, message.timestamp, message.content[:40])

See :func:`read` for the options and the README for the reassembly rules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# First: importing _accel decides, before any module a compiled build replaces is
# imported, whether this process runs the compiled build (see _accel).
from pcapflows import _accel
from pcapflows.api import EventReader, FlowReader, events, read, reassemble
from pcapflows.decode.segment import Segment
from pcapflows.errors import (
    AddonError,
    CaptureError,
    FlowFileError,
    MitmproxyMissing,
    PcapflowsError,
    PcapflowsWarning,
)
from pcapflows.limits import Limits
from pcapflows.mitmfile import MitmReader, MitmWriter, read_mitm, read_mitm_states, write_mitm
from pcapflows.model.connection import Client, Connection, Server
from pcapflows.model.flow import Error, Flow
from pcapflows.model.info import FlowInfo, info
from pcapflows.model.live import FlowEvent, FlowEventKind
from pcapflows.model.tcp import TCPFlow, TCPMessage
from pcapflows.pcapwrite import CaptureWriter, write_capture
from pcapflows.reassembly.assembler import Assembler
from pcapflows.reassembly.events import Closed, Conflict, Data, Gap, GapRetracted, Opened
from pcapflows.stats import ReadStats

if TYPE_CHECKING:
    from pcapflows.http.model import HTTPFlow
    from pcapflows.http.reader import HTTPReader, read_http
    from pcapflows.mitmproxy_bridge import ReplayResult, replay, to_mitmproxy

#: Names imported on first use, and their modules: the HTTP layer (``import
#: pcapflows`` stays as fast) and the mitmproxy bridge, which pulls in asyncio (about
#: 25 ms), and mitmproxy itself only when one of them is called.
_LAZY = {
    "HTTPFlow": "pcapflows.http.model",
    "HTTPReader": "pcapflows.http.reader",
    "read_http": "pcapflows.http.reader",
    "ReplayResult": "pcapflows.mitmproxy_bridge",
    "replay": "pcapflows.mitmproxy_bridge",
    "to_mitmproxy": "pcapflows.mitmproxy_bridge",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pcapflows' has no attribute {name!r}")


__version__ = "0.1.0"
#: Whether the reassembly core runs compiled (mypyc) in this process: worth quoting in
#: bug reports and benchmarks. ``pcapflows._accel.REASON`` says why when it does not.
__compiled__: bool = _accel.compiled_in_use()

__all__ = [
    "AddonError",
    "Assembler",
    "CaptureError",
    "CaptureWriter",
    "Client",
    "Closed",
    "Conflict",
    "Connection",
    "Data",
    "Error",
    "EventReader",
    "Flow",
    "FlowEvent",
    "FlowEventKind",
    "FlowFileError",
    "FlowInfo",
    "FlowReader",
    "Gap",
    "GapRetracted",
    "HTTPFlow",
    "HTTPReader",
    "Limits",
    "MitmReader",
    "MitmWriter",
    "MitmproxyMissing",
    "Opened",
    "PcapflowsError",
    "PcapflowsWarning",
    "ReadStats",
    "ReplayResult",
    "Segment",
    "Server",
    "TCPFlow",
    "TCPMessage",
    "__version__",
    "events",
    "info",
    "read",
    "read_http",
    "read_mitm",
    "read_mitm_states",
    "reassemble",
    "replay",
    "to_mitmproxy",
    "write_capture",
    "write_mitm",
]
