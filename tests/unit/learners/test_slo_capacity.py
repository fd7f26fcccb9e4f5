"""slo-rl's capacity posterior forgets: it converges on a stationary service and re-adapts after the
service's capacity shifts, where the posterior without forgetting stays stuck (issue 11, defect B)."""

from __future__ import annotations

import math

import numpy as np

from learners.slo_capacity import CapacityModel, CapacitySettings

SEEDS = range(10)
TRAIN = 1800  # 7.5 compressed days of one-minute intervals: where the old posterior grew overconfident
READAPT = 180  # intervals (3 compressed hours) after the shift within which the boundary must have moved


def _feed(model: CapacityModel, rng: np.random.Generator, boundary: float, n: int) -> None:
    """``n`` intervals, one update each (slo-rl's default), of a service whose tail meets the target
    exactly at log load per GPU ``boundary``."""
    for _ in range(n):
        u = rng.uniform(-1.5, 1.0)
        tail = 5.0 * math.exp(0.8 * (u - boundary) + rng.normal(0, 0.1))
        model.update(np.array([[u]]), np.array([model.label(tail, 5.0)]))


def _boundary(model: CapacityModel) -> float:
    """Log load per GPU where the posterior mean puts the tail on the target (logit 0)."""
    return float(-model.mean[0] / model.mean[1])


def test_converges_on_a_stationary_service_on_9_of_10_seeds():
    ok = 0
    for s in SEEDS:
        model = CapacityModel(1)
        _feed(model, np.random.default_rng(s), 0.0, TRAIN)
        p = model.predict(np.array([[-1.0], [0.8]]))
        ok += abs(_boundary(model)) < 0.1 and p[0] < 0.1 and p[1] > 0.8
    assert ok >= 9


def test_readapts_after_a_capacity_shift_on_9_of_10_seeds_where_no_forgetting_stays_stuck():
    readapted = stuck = 0
    for s in SEEDS:
        for half_life in (CapacitySettings().half_life, math.inf):
            rng = np.random.default_rng(s)
            model = CapacityModel(1, CapacitySettings(half_life=half_life))
            _feed(model, rng, 0.0, TRAIN)
            _feed(model, rng, -0.7, READAPT)  # the service got slower: the boundary moves down
            if math.isfinite(half_life):
                readapted += abs(_boundary(model) + 0.7) < 0.15
            else:
                stuck += abs(_boundary(model) + 0.7) >= 0.15
    assert readapted >= 9
    assert stuck >= 9  # the defect the forgetting fixes, measured with the same data


def test_precision_never_falls_below_the_prior():
    model = CapacityModel(2)
    prior = model.prior_precision.copy()
    forgotten = model.forgotten(10_000)
    assert np.all(np.linalg.eigvalsh(forgotten - prior) >= -1e-12)
    assert np.allclose(forgotten, prior)
