"""``pcapflows.info(flow)`` types what ``flow.metadata["pcapflows"]`` holds: the declared
keys and Literal vocabularies must be exactly what the flow builder writes, on every
capture we have (a key added without declaring it, or a new cause, fails here)."""

from __future__ import annotations

from pathlib import Path
from typing import get_args, get_type_hints

import pytest
from tcptable import CAPTURES, corpus_params

import pcapflows
from pcapflows import FlowInfo, info
from pcapflows.model.info import ConflictInfo, GapInfo, PerSide
from pcapflows.reassembly.events import ClosedBy, GapCause

OURS = sorted(p for p in CAPTURES.iterdir() if ".pcap" in p.name)
SIMPLE = {bool: bool, int: int, str: str, float: (int, float)}


def check_typed(value: object, td: type, where: str) -> None:
    """``value`` is a dict with exactly ``td``'s required keys (and only declared optional
    ones), each of the declared plain type."""
    assert isinstance(value, dict), where
    required: frozenset[str] = td.__required_keys__  # type: ignore[attr-defined]
    optional: frozenset[str] = td.__optional_keys__  # type: ignore[attr-defined]
    assert required <= value.keys(), (where, required - value.keys())
    assert value.keys() <= required | optional, (where, value.keys() - required - optional)
    for key, hint in get_type_hints(td).items():
        if key in value and hint in SIMPLE:
            assert isinstance(value[key], SIMPLE[hint]), (where, key, value[key])


def check_flow(flow: pcapflows.TCPFlow, where: str) -> None:
    meta = info(flow)
    assert meta is flow.metadata["pcapflows"]
    check_typed(meta, FlowInfo, where)
    assert meta["closed_by"] in get_args(ClosedBy), (where, meta["closed_by"])
    for side in ("packets", "bytes"):
        check_typed(meta[side], PerSide, where)
    for gap in meta["gaps"]:
        check_typed(gap, GapInfo, where)
        assert gap["cause"] in get_args(GapCause), (where, gap)
    for conflict in meta["conflicts"]:
        check_typed(conflict, ConflictInfo, where)
    if "rst_from" in meta:
        assert meta["rst_from"] in ("client", "server")
        assert meta["closed_by"] in ("rst", "reuse", "limit", "idle", "end")


@pytest.mark.parametrize("path", [*corpus_params(), *OURS], ids=str)
def test_metadata_is_what_flowinfo_declares(path: Path | None) -> None:
    assert path is not None
    try:
        flows = list(pcapflows.read(path, warn=False))
    except pcapflows.CaptureError:
        return  # refused whole (snoop, zstd): nothing to check
    for flow in flows:
        check_flow(flow, f"{path.name} stream {flow.metadata['pcapflows']['stream']}")
