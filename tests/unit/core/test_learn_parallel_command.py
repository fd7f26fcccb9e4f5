"""``autocm learn-parallel``: the verdict and the error against the exact answer, from the command line."""

from __future__ import annotations

import re

from click.testing import CliRunner

from controller.cli import main


def test_threads_converge_and_report_the_error_against_the_exact_answer():
    result = CliRunner().invoke(main, ["learn-parallel", "--agents", "3", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "3 agents on threads" in result.output and "verdict converged" in result.output
    error = float(re.search(r"error vs the exact answer ([0-9.e+-]+)", result.output).group(1))
    assert error < 1e-3


def test_quantiles_converge_to_the_known_return_distribution():
    result = CliRunner().invoke(main, ["learn-parallel", "--quantiles", "10", "--agents", "2"])
    assert result.exit_code == 0, result.output
    assert re.search(r"^\s+\d+\s+\S+\s+\S+\s+converged$", result.output, re.M)  # the per-check table
    error = float(re.search(r"error vs the exact answer ([0-9.e+-]+)", result.output).group(1))
    assert error < 0.05


def test_a_budget_too_small_to_converge_exits_1_and_says_so():
    result = CliRunner().invoke(main, ["learn-parallel", "--max-updates", "300", "-q"])
    assert result.exit_code == 1
    accepted = int(re.search(r"(\d+) updates accepted", result.output).group(1))
    assert "verdict converged" not in result.output and 300 <= accepted < 300 + 4  # threads may overshoot by one each


def test_bad_input_is_a_usage_error():
    result = CliRunner().invoke(main, ["learn-parallel", "--agents", "0"])
    assert result.exit_code == 2 and "--agents" in result.output
