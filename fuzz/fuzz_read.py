"""Coverage-guided fuzzing of ``pcapflows.read`` with atheris (libFuzzer for Python).

The hypothesis tests in ``tests/test_fuzz.py`` mutate captures blindly; libFuzzer keeps
the inputs that reach new code, so a long run here finds what they may miss. Each input
is read exactly as those tests read it, with the same checks (``read_capture``): only
``pcapflows.read(...)`` itself may raise, and only ``CaptureError``; iterating the reader
and using its flows must not raise; the stats must be consistent and every anomaly
reported. A failed check is an uncaught exception, which libFuzzer saves as
``crash-<sha1>``.

atheris is optional and not a dependency of pcapflows::

    pip install atheris
    python fuzz/fuzz_read.py fuzz/corpus -max_total_time=600 -timeout=20 -rss_limit_mb=1024

The corpus directory is created and filled with the test seeds (the real captures of
``tests/test_fuzz.py``) when it is empty, so both fuzzers start from the same files.
Give ``PCAPFLOWS_FUZZ_MEASURE=1`` to also check peak allocation with tracemalloc on
every input (slower; a length field must never become an allocation). Reproduce a crash
with ``python fuzz/fuzz_read.py crash-<sha1>``. See fuzz/README.md.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import atheris  # type: ignore[import-untyped]  # optional, so no stubs

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

# Instrumented so that coverage of pcapflows guides the fuzzer.
with atheris.instrument_imports():
    pass

import test_fuzz  # noqa: E402  (the seeds and the checks, shared with the tests)

MEASURE = os.environ.get("PCAPFLOWS_FUZZ_MEASURE", "") not in ("", "0")


@contextlib.contextmanager
def no_time_limit(seconds: float) -> Iterator[None]:
    """libFuzzer enforces its own ``-timeout`` with SIGALRM; the tests' timer would
    replace its handler, so reads run without it here."""
    yield


test_fuzz.time_limit = no_time_limit


def write_seeds(corpus: Path) -> None:
    """Fill an empty corpus directory with the seeds, gzip ones compressed again."""
    corpus.mkdir(parents=True, exist_ok=True)
    if any(corpus.iterdir()):
        return
    for i, seed in enumerate(test_fuzz.SEEDS):
        data = gzip.compress(seed.content, mtime=0) if seed.gzipped else seed.content
        (corpus / f"seed-{i:02d}").write_bytes(data)


def test_one_input(data: bytes) -> None:
    """One input: the capture bytes as they are, read like a file (buffered)."""
    out = test_fuzz.read_capture(data, source="buffered", measure=MEASURE)
    if MEASURE:
        assert out.peak < test_fuzz.PEAK_LIMIT, f"peak {out.peak} for {len(data)} bytes"


def main() -> None:
    dirs = [Path(a) for a in sys.argv[1:] if not a.startswith("-")]
    if dirs and not dirs[0].is_file():
        write_seeds(dirs[0])
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
