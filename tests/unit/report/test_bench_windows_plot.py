"""benchmarks/bench_learned_autoscaler.py --windows --plot: the window arithmetic behind issue 11's online-convergence
target (request-weighted attainment per 10-interval window; the first interval from which every later window
holds) on hand-made runs with known answers, and the convergence figure written as a PNG."""

from __future__ import annotations

import pytest
from test_bench_learned_seeds import _bench


def _run(att: list[float], judged: list[float] | None = None, label: str = "toy", seed: int = 1):
    bench = _bench()
    n = len(att)
    return bench.WindowRun(label, seed, 0.99, 3, 60.0, att, judged or [10.0] * n, [8.0] * n, 0.995, 1.0)


def test_window_attainment_weights_each_interval_by_the_requests_it_judged():
    run = _run([1.0, 0.5, 1.0, 1.0], judged=[90.0, 10.0, 0.0, 100.0])
    assert run.window_attainment() == pytest.approx([(90 + 5) / 100, (5 + 0 + 100) / 110])


def test_a_window_that_judged_nothing_counts_as_met():
    assert _run([0.0, 0.0, 0.0], judged=[0.0, 0.0, 0.0]).window_attainment() == [1.0]


def test_first_holding_is_where_every_later_window_meets_the_target():
    # windows start at 0..5; the one starting at 2 contains the bad interval 4 and so do 3 and 4
    run = _run([1.0, 1.0, 1.0, 1.0, 0.5, 1.0, 1.0, 1.0])
    ok = [a >= 0.99 for a in run.window_attainment()]
    assert ok == [True, True, False, False, False, True]
    assert run.first_holding() == 5


def test_a_run_whose_last_window_fails_never_holds():
    assert _run([1.0, 1.0, 1.0, 0.0]).first_holding() is None
    assert _run([1.0] * 6).first_holding() == 0


def test_the_convergence_figure_is_written_with_one_column_per_label(tmp_path, capsys):
    bench = _bench()
    runs = [_run([1.0] * 12, label="a", seed=1), _run([1.0] * 5 + [0.5] + [1.0] * 6, label="a", seed=2),
            _run([1.0, 0.0] + [1.0] * 10, label="b", seed=1)]
    path = tmp_path / "convergence.png"
    bench.plot_windows(runs, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    assert str(path) in capsys.readouterr().out
