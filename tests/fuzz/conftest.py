"""The fuzz run's figures in pytest's summary."""

from __future__ import annotations

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from tests.fuzz.test_openapi import BUDGET, EXAMPLES, tally

    if tally.started:
        terminalreporter.write_line(
            f"fuzz run: {tally.cases} cases over {tally.operations} operations "
            f"(max_examples {EXAMPLES}, derandomized), {tally.skipped} operations skipped "
            f"after the {BUDGET:.0f} s budget"
        )
