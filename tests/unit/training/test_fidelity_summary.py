"""scripts/fidelity.py's Pollux summary: rows of several runs combine, a seed printed twice must agree, and the
interval and the 10% verdict are those of the seeds' spread."""

from __future__ import annotations

import math

import pytest
from script_loader import load_script

from simulator.datasets import data_path
from simulator.training import load_paper_result

POLLUX = data_path("pollux")

_fidelity = load_script("fidelity")
interval, read_rows, summarise_pollux, within_band = (
    _fidelity.interval, _fidelity.read_rows, _fidelity.summarise_pollux, _fidelity.within_band)
HEADER = " load  workload  seed   ours_s  paper_s  ratio  wall_s\n"
SUMMARY = (" load  workload seeds   mean_s  +-95%  paper_s  ratio\n"
           "  0.5         6     1     1317    nan     1288  1.023\n")  # 7 fields too: must not be read as a run


def _write(path, rows):
    path.write_text("policy pollux\n" + HEADER + "".join(
        f"{load:>5.1f} {w:>9d} {seed:>5d} {avg:>8.0f} {1000:>8.0f} {1.0:>6.3f} {10:>7.0f}\n"
        for load, w, seed, avg in rows) + SUMMARY)


def test_rows_of_several_runs_are_combined_and_summary_rows_are_not_read_as_runs(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    _write(a, [(0.5, 6, 0, 1300), (1.0, 6, 0, 2500)])
    _write(b, [(0.5, 6, 1, 1310), (0.5, 6, 0, 1300)])
    assert read_rows([a, b]) == [(0.5, 6, 0, 1300.0), (0.5, 6, 1, 1310.0), (1.0, 6, 0, 2500.0)]


def test_a_seed_printed_twice_with_another_result_is_refused(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    _write(a, [(0.5, 6, 0, 1300)])
    _write(b, [(0.5, 6, 0, 1400)])
    with pytest.raises(ValueError, match="seed 0"):
        read_rows([a, b])


def test_the_interval_is_a_student_t_over_seeds_and_sets_the_verdict():
    m, h = interval([1000.0, 1100.0, 1200.0])
    assert m == pytest.approx(1100.0) and h == pytest.approx(4.303 * 100 / math.sqrt(3), rel=1e-3)
    assert math.isnan(interval([5.0])[1])
    assert within_band(1.02, 0.05) == "yes"
    assert within_band(1.02, 0.09) == "mean"
    assert within_band(1.02, math.nan) == "mean"
    assert within_band(1.12, 0.01) == "no"


def test_the_summary_compares_each_workload_with_the_papers_figure(capsys):
    rows = [(1.0, 6, s, v) for s, v in enumerate((2400.0, 2450.0, 2500.0))]
    worst = summarise_pollux(rows, POLLUX)
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.split()[:2] == ["1.0", "6"])
    assert line.split()[2:4] == ["3", "2450"]
    paper = load_paper_result(POLLUX, "pollux", 1.0).avg_jct_s["workload-6"]
    assert line.split()[5] == f"{paper:.0f}"
    assert worst == pytest.approx(abs(2450 / paper - 1))
