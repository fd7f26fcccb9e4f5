"""The cluster GPU arbiter: capacity, optimality on concave curves, admission order, restart hysteresis."""

from __future__ import annotations

import itertools
import math

import pytest

from learners.arbiter import ArbiterSettings, GpuBid, arbitrate

NO_HYSTERESIS = ArbiterSettings(resize_gain=0.0, priority_service=None)
ONE_STEP = ArbiterSettings(lookahead=1, resize_gain=0.0, priority_service=None)
FAIR = ArbiterSettings(resize_gain=0.0, power=-1.0, priority_service=None)


def concave(rate: float, gpus: int) -> tuple[float, ...]:
    """Speedup 1 - exp(-rate g) normalised to 1 GPU: concave, different per job."""
    base = 1 - math.exp(-rate)
    return tuple((1 - math.exp(-rate * g)) / base for g in range(1, gpus + 1))


def test_water_filling_is_optimal_for_concave_curves():
    bids = [GpuBid("a", concave(0.9, 8)), GpuBid("b", concave(0.3, 8)), GpuBid("c", concave(0.1, 8))]
    grant = arbitrate(bids, 9, ArbiterSettings(lookahead=1, resize_gain=0.0, priority_service=None))
    assert sum(grant.values()) == 9
    best = max((sum(b.value(g) for b, g in zip(bids, combo, strict=True)), combo)
               for combo in itertools.product(range(1, 9), repeat=3) if sum(combo) <= 9)
    total = sum(b.value(grant[b.name]) for b in bids)
    assert total == pytest.approx(best[0])


def test_lookahead_steps_over_a_kink():
    """A job that gains nothing from a 2nd GPU but a lot from the 4th (a whole node) still gets 4."""
    kinked = GpuBid("kinked", (1.0, 1.0, 1.0, 3.6))
    flat = GpuBid("flat", (1.0, 1.3, 1.4, 1.45))
    assert arbitrate([kinked, flat], 5, NO_HYSTERESIS) == {"kinked": 4, "flat": 1}
    assert arbitrate([kinked, flat], 5, ONE_STEP) == {"kinked": 1, "flat": 4}


def test_when_jobs_outnumber_gpus_least_attained_service_runs_first():
    bids = [GpuBid(f"j{i}", (1.0, 1.5), attained_service=s) for i, s in enumerate([50.0, 0.0, 10.0, 5.0])]
    grant = arbitrate(bids, 3, NO_HYSTERESIS)
    assert grant == {"j0": 0, "j1": 1, "j2": 1, "j3": 1}


def test_counts_a_job_cannot_run_on_are_never_granted():
    odd = GpuBid("odd", (math.nan, 2.0, math.nan, 3.9))  # runs on 2 or 4 GPUs only
    grant = arbitrate([odd], 3, NO_HYSTERESIS)
    assert grant == {"odd": 2}
    assert arbitrate([odd], 1, NO_HYSTERESIS) == {"odd": 0}


def test_a_running_job_is_resized_only_when_worth_a_restart():
    small_gain = GpuBid("run", (1.0, 1.9, 2.0, 2.05), current_gpus=2)  # 2 -> 4 gains 8%: not worth 30 s
    assert arbitrate([small_gain], 4, ArbiterSettings(resize_gain=0.1)) == {"run": 2}
    assert arbitrate([small_gain], 4, NO_HYSTERESIS) == {"run": 4}
    big_gain = GpuBid("run", (1.0, 1.5, 2.0, 2.4), current_gpus=2)  # +60%
    assert arbitrate([big_gain], 4, ArbiterSettings(resize_gain=0.1)) == {"run": 4}
    # a held job's GPUs stay out of the filling; a newcomer still gets what is left
    newcomer = GpuBid("new", concave(0.5, 4))
    assert arbitrate([small_gain, newcomer], 6, ArbiterSettings(resize_gain=0.1)) == {"run": 2, "new": 4}


def test_capacity_is_never_exceeded():
    bids = [GpuBid(f"j{i}", concave(0.1 * (i + 1), 16), current_gpus=i % 3) for i in range(10)]
    for capacity in (0, 1, 7, 30, 200):
        grant = arbitrate(bids, capacity, ArbiterSettings())
        assert sum(grant.values()) <= capacity and all(g >= 0 for g in grant.values())


@pytest.mark.parametrize(("kwargs", "message"), [({"lookahead": 0}, "lookahead"), ({"resize_gain": -1}, "resize")])
def test_settings_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ArbiterSettings(**kwargs)


def test_bad_input():
    with pytest.raises(ValueError, match="distinct"):
        arbitrate([GpuBid("a", (1.0,)), GpuBid("a", (1.0,))], 2)
    with pytest.raises(ValueError, match="capacity"):
        arbitrate([], -1)


def test_pollux_fairness_favours_the_job_with_less_speedup():
    """Sum of speedups gives the 4th GPU to the steeper job; -Σ 1/speedup (p = -1) to the flatter one."""
    steep = GpuBid("steep", (1.0, 1.9, 2.7))
    flat = GpuBid("flat", (1.0, 1.6, 2.1))
    assert arbitrate([steep, flat], 3, NO_HYSTERESIS) == {"steep": 2, "flat": 1}
    # p = -1: steep 1->2 gains 1 - 1/1.9 = 0.47 first; then steep 2->3 gains 0.156 < flat 1->2's 0.375
    assert arbitrate([steep, flat], 3, FAIR) == {"steep": 2, "flat": 1}
    assert arbitrate([steep, flat], 4, FAIR) == {"steep": 2, "flat": 2}
    assert arbitrate([steep, flat], 4, NO_HYSTERESIS) == {"steep": 3, "flat": 1}


def test_priority_class_is_filled_first():
    old = GpuBid("old", (1.0, 2.0, 3.0), attained_service=100.0)
    young = GpuBid("young", (1.0, 1.2, 1.3), attained_service=1.0)
    assert arbitrate([old, young], 4, NO_HYSTERESIS) == {"old": 3, "young": 1}
    assert arbitrate([old, young], 4, ArbiterSettings(resize_gain=0.0, priority_service=50.0)) == \
        {"old": 1, "young": 3}
