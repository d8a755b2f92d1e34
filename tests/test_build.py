"""The flow builder's shortcuts give what the plain way gives: ids equal to the standard
library's uuid5, and ``messages=False`` flows equal to full flows minus their messages."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tcptable import CAPTURES

import pcapflows
from pcapflows.model.build import ID_NAMESPACE, stable_id

OURS = sorted(p for p in CAPTURES.iterdir() if ".pcap" in p.name)


@given(st.text())
def test_stable_id_is_uuid5(name: str) -> None:
    assert stable_id(name) == str(uuid.uuid5(ID_NAMESPACE, name))


@pytest.mark.parametrize("path", OURS, ids=lambda p: p.name)
@pytest.mark.parametrize("order", ["finish", "first_packet"])
def test_flows_without_messages_are_flows_minus_messages(path: Path, order: str) -> None:
    full = list(pcapflows.read(path, warn=False, order=order))  # type: ignore[arg-type]
    bare = list(
        pcapflows.read(path, warn=False, order=order, messages=False)  # type: ignore[arg-type]
    )
    assert len(bare) == len(full)
    for f, b in zip(full, bare, strict=True):
        assert b.messages == []
        want = f.get_state()
        want["messages"] = []
        assert b.get_state() == want
