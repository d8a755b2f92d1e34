"""Session-wide test settings: where the shared corpus is, and what its absence means.

Tests that read the shared corpus carry ``@pytest.mark.corpus`` (or call
``tcptable.require_corpus()``). Without the corpus they skip, all with the same reason;
under CI (``CI=true``) a missing corpus stops the run before any test, since a CI run
that skips the comparison with tshark on real captures would prove nothing.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Generator

import pytest
from tcptable import NO_CORPUS, have_corpus, require_corpus

#: Where every corpus skip is reported: the one function that decides it.
_SKIP_AT = (inspect.getsourcefile(require_corpus), inspect.getsourcelines(require_corpus)[1])


def _under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "corpus: reads the shared corpus (PCAPFLOWS_CORPUS); skipped without it"
    )
    if _under_ci() and not have_corpus():
        raise pytest.UsageError(f"CI=true and {NO_CORPUS}")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # Before any fixture: a corpus fixture (tshark over the whole corpus) must not run.
    if item.get_closest_marker("corpus") is not None:
        require_corpus()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None]:
    # A skip raised inside a fixture is reported at the test's own line, so that a run
    # without the corpus would list one summary line per test. Every corpus skip is
    # reported at require_corpus() instead: pytest -ra then shows one line with a count.
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if report.skipped and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2])
        if reason.endswith(NO_CORPUS):
            report.longrepr = (str(_SKIP_AT[0]), _SKIP_AT[1], reason)
