"""The fault suite's figures: each test states what it measured, and the run ends with a table.

Issue 11 asks for every fault test to show its figure in the output. A test takes the ``figure``
fixture and calls it with a name and the figure; the line is printed with the test's output and
collected, and the terminal summary prints every figure of the run in one table (``make soak``
also writes it to ``test-artifacts/figures.txt``). ``scaled(ci, soak)`` picks a loop's count:
the CI minimum, or the soak count when ``DATELINE_SOAK`` is set.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

SOAK = bool(os.environ.get("DATELINE_SOAK"))
"""Set by ``make soak``: loops run their long counts."""

ON_CLUSTER = bool(
    os.environ.get("DATELINE_TEST_CLUSTER") or os.environ.get("DATELINE_TEST_REDIS_CLUSTER_URL")
)
"""Whether this pass runs on a cluster (as ``tests/conftest.py`` says)."""

FIGURES: list[tuple[str, str]] = []
"""(name, figure) in the order the tests stated them."""


own_store = pytest.mark.skipif(
    bool(os.environ.get("DATELINE_TEST_REDIS_URL")) or ON_CLUSTER,
    reason="starts a valkey-server of its own, whatever the store under test: it runs once, in"
    " the embedded pass, not again in the pass against an external server",
)
"""For tests that kill, empty or damage a store they start themselves."""

store_agnostic = pytest.mark.skipif(
    bool(os.environ.get("DATELINE_TEST_REDIS_URL")) or ON_CLUSTER,
    reason="tests rules of Dateline's own (the gateway's, the sanitizer's, the OpenAPI document,"
    " roles, headers, logs), the same on any store: it runs once, in the embedded pass, which"
    " keeps .ci/run within its 15 minutes",
)
"""For long tests whose subject does not depend on which Redis-protocol server is under them."""


def scaled(ci: int, soak: int) -> int:
    """A loop's count: ``ci`` in the suite, ``soak`` under ``make soak``."""
    return soak if SOAK else ci


@pytest.fixture
def figure() -> Callable[[str, str], None]:
    """State one figure: ``figure("store killed", "lost 0 of 1,204 ...")``."""

    def state(name: str, text: str) -> None:
        FIGURES.append((name, text))
        print(f"\nFIGURE {name}: {text}")

    return state


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Every figure of the run, one line each, after the test results."""
    if not FIGURES:
        return
    terminalreporter.section("fault figures" + (" (soak)" if SOAK else ""))
    width = max(len(name) for name, _ in FIGURES)
    lines = [f"{name.ljust(width)}  {text}" for name, text in FIGURES]
    for line in lines:
        terminalreporter.write_line(line)
    out = os.environ.get("DATELINE_FIGURES_FILE")
    if out:
        with open(out, "w") as f:
            f.write("\n".join(lines) + "\n")
