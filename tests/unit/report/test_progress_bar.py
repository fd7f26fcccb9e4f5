"""autocm sim's progress bar over simulated seconds: a run that goes past its nominal length (a training
scenario drains its jobs after the scenario's duration) grows the bar instead of leaving an unknown total."""

from __future__ import annotations

from simulator.runner import _Progress


def test_the_bar_grows_past_its_total_and_stays_at_or_below_full(capsys):
    p = _Progress(100.0, enabled=True)
    p.advance(60.0)
    assert p.bar.total == 100 and p.bar.n == 60
    p.advance(80.0)  # 140 of a nominal 100
    assert p.bar.total == 140 and p.bar.n == 140
    p.close()
    err = capsys.readouterr().err
    assert "140/140" in err and "/?" not in err


def test_a_quiet_run_has_no_bar():
    p = _Progress(100.0, enabled=False)
    p.advance(500.0)
    p.close()
    assert p.bar is None
