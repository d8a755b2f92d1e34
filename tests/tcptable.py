"""Shared test helpers: a tiny language for TCP conversations as tables of segments."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pcapflows.decode.segment import ACK, FIN, PSH, RST, SYN, Segment

CLIENT = ("10.0.0.1", 40000)
SERVER = ("10.0.0.2", 80)


def _corpus_location() -> Path:
    """The one place that says where the corpus is: ``$PCAPFLOWS_CORPUS`` if set (relative
    to the current directory), else ``../shared/corpus`` beside the repository. The corpus
    is third-party captures that cannot live in this repository, so it is a setting."""
    setting = os.environ.get("PCAPFLOWS_CORPUS")
    if setting:
        return Path(setting).expanduser().resolve()
    return Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


#: The shared corpus of real captures (a directory with a MANIFEST.tsv listing them).
CORPUS = _corpus_location()
#: The one reason every corpus test gives when it skips (one line in pytest's summary).
NO_CORPUS = f"no corpus at {CORPUS}: set PCAPFLOWS_CORPUS (see README)"
#: The project's own sample captures.
CAPTURES = Path(__file__).resolve().parents[1] / "captures"

_FLAGS = {"S": SYN, "A": ACK, "F": FIN, "R": RST, "P": PSH}


def flags(text: str) -> int:
    """``"SA"`` -> SYN|ACK, and so on."""
    value = 0
    for ch in text:
        value |= _FLAGS[ch]
    return value


def seg(
    t: float,
    sender: str,
    seq: int,
    ack: int = 0,
    fl: str = "A",
    data: bytes = b"",
    *,
    missing: int = 0,
    window: int = 65535,
    client: tuple[str, int] = CLIENT,
    server: tuple[str, int] = SERVER,
) -> Segment:
    """One segment sent by ``"c"`` (the client) or ``"s"`` (the server)."""
    src, dst = (client, server) if sender == "c" else (server, client)
    return Segment(
        float(t),
        src[0],
        src[1],
        dst[0],
        dst[1],
        seq & 0xFFFFFFFF,
        ack & 0xFFFFFFFF,
        flags(fl),
        data,
        window,
        missing,
        0,
    )


def have_corpus() -> bool:
    """Whether the corpus is there: its MANIFEST.tsv says what it holds."""
    return (CORPUS / "MANIFEST.tsv").is_file()


def corpus_params() -> list[object]:
    """One pytest parameter (marked ``corpus``) per file the corpus's MANIFEST lists, or a
    single placeholder when the corpus is absent (conftest.py then skips it, or fails
    the run under CI)."""
    if not have_corpus():
        return [pytest.param(None, marks=pytest.mark.corpus, id="<no corpus>")]
    names = (CORPUS / "MANIFEST.tsv").read_text().splitlines()[1:]
    return [
        pytest.param(CORPUS / n.split("\t")[0], marks=pytest.mark.corpus, id=n.split("\t")[0])
        for n in names
        if n.strip()
    ]


def require_corpus() -> Path:
    """The corpus's path, or skip the test. Every corpus test skips from this one line, so
    a run without the corpus reports a single reason; under CI, conftest.py has already
    stopped the run (a CI that silently skips the corpus would prove nothing)."""
    if not have_corpus():
        pytest.skip(NO_CORPUS)
    return CORPUS


def require_tshark() -> str:
    """tshark's path; a missing tshark is a broken test environment, not a skip."""
    path = shutil.which("tshark")
    if path is None:
        pytest.fail("tshark is required by the tests (.ci/run installs it with apt-get)")
    return path
