"""The convergence monitor's verdicts on residual sequences whose behaviour is known by construction."""

from __future__ import annotations

import math

import numpy as np
import pytest

from learners.convergence import ConvergenceMonitor, ConvergenceSettings
from learners.lambda_pi import lambda_pi_model_based
from learners.types import Verdict

SETTINGS = ConvergenceSettings(tol=1e-3, window=5, divergence_growth=1.1)


def _feed(residuals, policies=None):
    mon = ConvergenceMonitor(SETTINGS)
    out = []
    for i, r in enumerate(residuals):
        out.append(mon.update(r, None if policies is None else policies[i], samples=10))
    return mon, out


@pytest.mark.parametrize(
    ("residuals", "policies", "expected"),
    [
        pytest.param([1.0] * 4, None, Verdict.EXPLORING, id="window-not-full"),
        pytest.param([1.0 * 0.5**i for i in range(8)], None, Verdict.CONVERGING, id="geometric-decay"),
        pytest.param([1e-4] * 5, [[0, 1]] * 5, Verdict.CONVERGED, id="small-and-stable"),
        pytest.param([1e-4] * 5, [[0, 1], [1, 1]] * 2 + [[0, 1]], Verdict.EXPLORING, id="small-but-flipping"),
        pytest.param([1e-2 * 1.5**i for i in range(6)], None, Verdict.DIVERGING, id="geometric-growth"),
        pytest.param([0.1, 0.1, math.nan], None, Verdict.DIVERGING, id="not-finite"),
        pytest.param([0.1, 0.2, 0.1, 0.2, 0.1], None, Verdict.EXPLORING, id="noisy-flat"),
        pytest.param([1e-12 * 2**i for i in range(6)], None, Verdict.CONVERGED, id="rounding-below-tol"),
    ],
)
def test_verdict_table(residuals, policies, expected):
    _, reports = _feed(residuals, policies)
    assert reports[-1].verdict is expected
    assert reports[-1].residual == pytest.approx(residuals[-1], nan_ok=True)
    assert reports[-1].samples == 10 * len(residuals)


def test_converged_needs_a_whole_window_below_tol():
    residuals = [1e-1, 1e-2, 5e-3, 9e-4, 8e-4, 7e-4, 6e-4, 5e-4]
    _, reports = _feed(residuals, [[1, 0]] * len(residuals))
    verdicts = [r.verdict for r in reports]
    # the window of 5 is entirely below 1e-3 only from the 8th report on
    assert Verdict.CONVERGED not in verdicts[:7]
    assert verdicts[7] is Verdict.CONVERGED


def test_policy_stability_is_the_share_agreeing_with_the_latest():
    mon, _ = _feed([1.0] * 5, [[0], [1], [1], [0], [1]])
    assert mon.policy_stability() == pytest.approx(3 / 5)
    mon.reset()
    assert math.isnan(mon.policy_stability()) and mon.verdict() is Verdict.EXPLORING


def test_monitor_on_lambda_pi_history():
    """λ-PI's per-iteration change of P decays geometrically: converging, then converged."""
    A = np.array([[1.05, 0.1], [0.0, 1.02]])
    B = np.array([[0.005], [0.1]])
    result = lambda_pi_model_based(A, B, np.eye(2), np.eye(1), np.zeros((1, 2)), lam=0.5, tol=1e-12)
    mon = ConvergenceMonitor(ConvergenceSettings(tol=1e-8, window=5))
    verdicts = [mon.update(r).verdict for r in result.history]
    assert Verdict.CONVERGING in verdicts
    assert verdicts[-1] is Verdict.CONVERGED
    assert Verdict.DIVERGING not in verdicts


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"window": 1}, "window"), ({"tol": 0.0}, "tol"), ({"divergence_growth": 1.0}, "divergence_growth")],
)
def test_settings_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ConvergenceSettings(**kwargs)
