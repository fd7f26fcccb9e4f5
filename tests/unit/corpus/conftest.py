"""The bad-input corpus: every case ends in a clear one-line error or in a correct result, and is counted.

Each corpus test hands its CLI result to the ``judge`` fixture with what it expects. The judge sorts the
result into one of three outcomes and the session prints the tally at the end:

- ``clear error``: a non-zero exit with the expected status, exactly one error line (``error: ...`` from
  autocm, ``Error: ...`` from click's usage errors) that holds every expected fragment (the file, field
  or flag and what was expected), no traceback and no ``internal error``;
- ``correct result``: exit status 0 and the expected output;
- ``anything else``: the case fails; the issue's target for this count is zero.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

import pytest
from corpus_kit import Expect

OUTCOMES: Counter[str] = Counter()
"""Outcome -> number of corpus cases judged in this session."""
OTHERS: list[str] = []


_ERROR_LINE = re.compile(r"^(error|Error): ")


def classify(exit_code: int, output: str, exception: BaseException | None, expect: Expect) -> tuple[str, str]:
    """(outcome, why) for one CLI result."""
    if "Traceback" in output or "internal error" in output:
        return "anything else", "a traceback or an internal error"
    if exception is not None and not isinstance(exception, SystemExit):
        return "anything else", f"an uncaught {type(exception).__name__}: {exception}"
    if exit_code == 0:
        if expect.kind != "ok":
            return "anything else", "exit status 0 where an error was expected"
        missing = [f for f in expect.fragments if f not in output]
        return ("correct result", "") if not missing else ("anything else", f"output lacks {missing}")
    if expect.kind != "error":
        return "anything else", f"exit status {exit_code} where a result was expected"
    lines = [line for line in output.splitlines() if _ERROR_LINE.match(line)]
    if len(lines) != 1:
        return "anything else", f"{len(lines)} error lines, expected exactly one"
    missing = [f for f in expect.fragments if f not in lines[0]]
    if missing:
        return "anything else", f"the error line lacks {missing}"
    if exit_code != expect.exit_code:
        return "anything else", f"exit status {exit_code}, expected {expect.exit_code}"
    return "clear error", ""


@pytest.fixture
def judge(request: pytest.FixtureRequest) -> Callable[..., str]:
    """``judge(result, expect)``: count the outcome and fail the test unless it is the expected one."""

    def _judge(result, expect: Expect) -> str:
        outcome, why = classify(result.exit_code, result.output, result.exception, expect)
        OUTCOMES[outcome] += 1
        if outcome == "anything else":
            OTHERS.append(request.node.name)
        assert outcome != "anything else", f"{why}; exit {result.exit_code}; output:\n{result.output[-2000:]}"
        return outcome

    return _judge


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not OUTCOMES:
        return
    total = sum(OUTCOMES.values())
    terminalreporter.write_sep("-", "bad-input corpus")
    for outcome in ("clear error", "correct result", "anything else"):
        terminalreporter.write_line(f"{outcome:15s} {OUTCOMES[outcome]:4d}")
    terminalreporter.write_line(f"{'cases':15s} {total:4d}")
    for name in OTHERS:
        terminalreporter.write_line(f"  not judged clear or correct: {name}")
