"""The KPA baseline against upstream's own tests.

Decider cases are ported from knative/serving pkg/autoscaler/scaling/autoscaler_test.go, whose fake
metric client hands ``Scale`` the stable and panic averages directly, exactly as ``Decider.scale``
takes them. Window cases come from pkg/autoscaler/aggregation/bucketing_test.go and
max/timewindow_test.go. Upstream's test spec (``newTestAutoscaler``): panic threshold 2, scale-up and
scale-down rates 10, stable window 60 s, reachable.
"""

from __future__ import annotations

import pytest

from learners.base import create
from learners.baselines.kpa import KPA, Decider, DeciderSpec, KPASettings, MaxWindow, WindowAverager
from learners.objective import Objective
from learners.space import ConfigSpace, Knob
from learners.types import Observation, ReplicaSample


def test_spec(target, **overrides) -> DeciderSpec:
    """newTestAutoscalerWithScalingMetric's DeciderSpec."""
    fields = dict(target_value=target, max_scale_up_rate=10, max_scale_down_rate=10, panic_threshold=2,
                  stable_window_s=60, reachable=True)
    fields.update(overrides)
    return DeciderSpec(**fields)


test_spec.__test__ = False  # a helper, not a test


def decider(target, ready=1, now=0.0, **overrides) -> Decider:
    return Decider(test_spec(target, **overrides), ready, now)


# ---------------------------------------------------------------------------------------------------
# autoscaler_test.go
# ---------------------------------------------------------------------------------------------------


def test_scale_down_delay():
    """TestAutoscalerScaleDownDelay ('simple' then 'gradual'): the highest count of the delay window."""
    d = Decider(DeciderSpec(10, 10, 10, 100, 60, scale_down_delay_s=300, reachable=False), 0, 0.0)
    assert d.scale(2, 40, 40, 0).desired == 4
    assert d.scale(300, 0, 0, 0).desired == 4  # five minutes at reduced concurrency: not yet
    assert d.scale(302, 0, 0, 0).desired == 0
    assert d.scale(9 * 60, 40, 40, 0).desired == 4
    assert d.scale(10 * 60, 30, 30, 0).desired == 4  # 4 still dominates
    assert d.scale(11 * 60, 0, 0, 0).desired == 4
    assert d.scale(14 * 60, 0, 0, 0).desired == 3  # 4 scrolls out
    assert d.scale(15 * 60, 0, 0, 0).desired == 0  # everything scrolled out


def test_scale_down_delay_zero():
    """TestAutoscalerScaleDownDelayZero: no delay means an immediate scale-down."""
    d = Decider(DeciderSpec(10, 10, 10, 100, 60, reachable=False), 0, 0.0)
    assert d.scale(0, 40, 40, 0).desired == 4
    assert d.scale(0.5, 20, 20, 0).desired == 2


def test_stable_mode_increase():
    """TestAutoscalerStableModeIncreaseWithConcurrencyDefault."""
    d = decider(10)
    assert d.scale(0, 50, 10, 1).desired == 5
    assert d.scale(0, 100, 10, 1).desired == 10


def test_unpanic_after_slow_increase():
    """TestAutoscalerUnpanicAfterSlowIncrease."""
    d = decider(1)
    r = d.scale(0, 11, 25, 10)
    assert (r.desired, r.panicking, d.panic_time) == (25, True, 0)
    assert d.scale(30, 30, 41, 40).desired == 41
    assert d.panic_time == 0  # 41/40 is under the threshold: the panic time does not move
    r = d.scale(62, 50, 56, 55)  # a stable window and a tick later: panic ends
    assert (r.desired, r.panicking, d.panic_time) == (50, False, None)


def test_extend_panic_window():
    """TestAutoscalerExtendPanicWindow."""
    d = decider(1)
    assert d.scale(0, 11, 25, 10).desired == 25
    assert d.scale(30, 30, 80, 40).desired == 80
    assert d.panic_time == 30


def test_stable_mode_decrease():
    """TestAutoscalerStableModeDecrease."""
    d = decider(10, ready=8)
    d.panic_time = None  # upstream creates this autoscaler at one pod, so not in panic
    assert d.scale(0, 100, 100, 8).desired == 10
    assert d.scale(0, 50, 50, 8).desired == 5


def test_no_traffic_scales_to_zero_in_the_decider():
    """TestAutoscalerStableModeNoTrafficScaleToZero (the KPA learner then applies min replicas)."""
    d = decider(10)
    assert d.scale(0, 1, 0, 1).desired == 1
    assert d.scale(0, 0, 0, 1).desired == 0


def test_panic_mode_exponential_track_and_stabilize():
    """TestAutoscalerPanicModeExponentialTrackAndStabilize."""
    d = decider(1)
    assert d.scale(0, 6, 6, 1).desired == 6
    assert d.scale(1, 36, 36, 6).desired == 36 and d.panic_time == 1
    assert d.scale(2, 216, 216, 36).desired == 216 and d.panic_time == 2
    assert d.scale(2, 1296, 1296, 216).desired == 1296 and d.panic_time == 2
    assert d.scale(3, 1296, 1296, 1296).desired == 1296


# TestAutoscalerScale table: (label, target, stable, panic, ready, spec overrides, panic state, want)
SCALE_TABLE = [
    ("AutoscalerNoDataAtZeroNoAutoscale", 10, 0, 0, 1, {}, None, 0),
    ("AutoscalerStableModeUnlimitedTBC", 181, 21, 26, 1, {}, None, 1),
    ("Autoscaler0TBC", 10, 50, 49, 1, {}, None, 5),
    ("AutoscalerStableModeNoChange", 10, 50, 50, 1, {}, None, 5),
    ("AutoscalerPanicStableLargerThanPanic", 1, 50, 30, 5, {}, (-5.0, 5), 50),
    ("AutoscalerPanicStableLessThanPanic", 1, 20, 30, 5, {}, (-5.0, 5), 30),
    ("AutoscalerStableModeNoChangeAlreadyScaled", 10, 50, 50, 5, {}, None, 5),
    ("AutoscalerStableModeIncreaseWithSmallScaleUpRate", 1, 3, 3.1, 2, {"max_scale_up_rate": 1.1}, None, 3),
    ("AutoscalerStableModeDecreaseWithSmallScaleDownRate", 10, 1, 1, 100, {"max_scale_down_rate": 1.1},
     None, 90),
    ("AutoscalerStableModeDecreaseNonReachable", 10, 1, 1, 100,
     {"max_scale_down_rate": 1.1, "reachable": False}, None, 1),
    ("AutoscalerPanicModeDoublePodCount", 10, 50, 100, 1, {}, None, 10),
]


@pytest.mark.parametrize("label,target,stable,panic,ready,overrides,panic_state,want", SCALE_TABLE,
                         ids=[row[0] for row in SCALE_TABLE])
def test_autoscaler_scale_table(label, target, stable, panic, ready, overrides, panic_state, want):
    """TestAutoscalerScale: the autoscaler is created at one ready pod (no panic), then the pod count
    is set to ``baseScale`` and optionally a panic state is forced (prepFunc)."""
    d = decider(target, ready=1, **overrides)
    if panic_state is not None:
        d.panic_time, d.max_panic_pods = panic_state
    assert d.scale(0.0, stable, panic, ready).desired == want


def test_panic_then_unpanic_scale_down():
    """TestAutoscalerPanicThenUnPanicScaleDown."""
    d = decider(10)
    assert d.scale(0, 100, 100, 1).desired == 10
    assert d.scale(0, 100, 1000, 10).desired == 100
    assert d.scale(30, 1, 1, 10).desired == 100  # traffic dropped, still panicking
    assert d.scale(61, 1, 1, 10).desired == 1  # after the stable window


def test_rate_limits():
    """TestAutoscalerRateLimitScaleUp / TestAutoscalerRateLimitScaleDown."""
    up = decider(10)
    assert up.scale(0, 1000, 1001, 1).desired == 10
    assert up.scale(0, 1000, 1001, 10).desired == 100
    down = decider(10, ready=1)
    assert down.scale(0, 1, 1, 100).desired == 10
    assert down.scale(0, 1, 1, 10).desired == 1


def test_one_pod_minimum_when_no_ready_pods():
    """TestAutoscalerUseOnePodAsMinimumIfEndpointsNotFound."""
    assert decider(10).scale(0, 1000, 888, 0).desired == 10


def test_start_in_panic_mode():
    """TestStartInPanicMode."""
    for ready in (0, 1):
        d = decider(100, ready=ready)
        assert d.panic_time is None and d.max_panic_pods == ready
    d = decider(100, ready=2, now=5.0)
    assert d.panic_time == 5.0 and d.max_panic_pods == 2


# ---------------------------------------------------------------------------------------------------
# bucketing_test.go and max/timewindow_test.go
# ---------------------------------------------------------------------------------------------------


def test_window_average_follows_timed_float64_buckets():
    """TestTimedFloat64BucketsWindowAverage (5 s window, 1 s buckets)."""
    now = 1000.3
    b = WindowAverager(5, 1)
    b.record(now, 1)
    assert b.average(now) == 1.0  # averaged since the first write, not over the whole window
    for i in range(1, 5):
        b.record(now + i, i + 1)
    assert b.average(now + 4) == 15 / 5
    assert b.average(now + 3.6) == 15 / 5  # now lags behind
    assert b.average(now + 6) == (15 - 1 - 2) / (5 - 2)  # short hole
    assert b.average(now + 10) == 0.0  # long hole
    b.record(now + 6, 91)
    assert b.average(now + 6) == (15 - 1 - 2 + 91) / 5
    now += 60
    b.record(now, 1984)
    assert b.average(now) == 1984.0
    b.record(now - 3, 4)  # an earlier time
    assert b.average(now) == (4 + 1984) / 4
    now += 1
    b.record(now, 5)
    assert b.average(now) == (4 + 1984 + 5) / 5
    b.record(now - 3, 10)
    assert b.average(now) == (4 + 10 + 1984 + 5) / 5
    b.record(now - 6, 10)  # too early: ignored
    assert b.average(now) == (4 + 10 + 1984 + 5) / 5


def test_window_average_descending_record():
    """TestDescendingRecord."""
    b = WindowAverager(5, 1)
    for i in range(8, -1, -1):
        b.record(100 + i, 5)
    assert b.average(105) == 5.0


def test_max_window_scrolls_values_out():
    """max/timewindow_test.go: the max of the window, values scrolling out after ``duration``."""
    w = MaxWindow(5, 1)
    w.record(0, 10)
    w.record(1, 3)
    assert w.current() == 10
    w.record(4, 2)
    assert w.current() == 10
    w.record(5, 1)  # the 10 of t=0 is out of the 5 s window
    assert w.current() == 3


# ---------------------------------------------------------------------------------------------------
# The learner through decide()
# ---------------------------------------------------------------------------------------------------


def kpa(lo=1, hi=50, **settings) -> KPA:
    return KPA(ConfigSpace.of(Knob("replicas", lo, hi, 1)), KPASettings(**settings))


def obs(t, replicas, per_pod, ready=None):
    ready = replicas if ready is None else ready
    pods = tuple(ReplicaSample(i < ready, None) for i in range(replicas))
    return Observation(t, {"replicas": float(replicas)}, {"concurrency_per_replica": per_pod},
                       interval_s=2.0, replicas=pods)


def test_registered_with_knative_defaults():
    k = create("kpa", ConfigSpace.of(Knob("replicas", 1, 10, 1)), Objective(), {})
    assert isinstance(k, KPA) and k.period_s == 2.0
    assert k.settings.target_value == pytest.approx(70.0)
    assert k.settings.panic_window_s == pytest.approx(6.0)
    assert (k.spec.max_scale_up_rate, k.spec.max_scale_down_rate, k.spec.panic_threshold) == (1000, 2, 2)
    assert KPASettings(target_utilization=70).target_utilization == pytest.approx(0.7)
    with pytest.raises(ValueError, match="max_scale_down_rate"):
        KPASettings(max_scale_down_rate=1.0)
    with pytest.raises(ValueError, match="stable_window_s"):
        KPASettings(stable_window_s=2)


def test_steady_load_settles_at_total_concurrency_over_target():
    """350 requests in flight across the revision at 70 per pod: 5 pods."""
    k = kpa()
    action = None
    for t in range(0, 120, 2):
        action = k.decide(obs(t, 5, 70.0))  # 5 pods x 70 = 350 in flight
    assert action.target == {"replicas": 5.0}
    assert "Keeping 5" in action.reason and "70" in action.reason


def test_burst_panics_and_panic_holds_for_a_stable_window():
    k = kpa(hi=100)
    for t in range(0, 60, 2):
        assert k.decide(obs(t, 1, 70.0)).target["replicas"] == 1  # 70 in flight: one pod at target
    assert not k.last_result.panicking
    burst = k.decide(obs(60, 1, 400.0))
    # Panic window: (70 + 70 + 400) / 3 = 180 in flight -> 3 pods, 3x the one ready pod >= 2x: panic.
    assert k.last_result.panicking and k.decider.panic_time == 60
    assert burst.target["replicas"] == 3
    assert "Panic mode" in burst.reason
    # Load vanishes, but panic mode never scales down until a stable window has passed since t=60.
    for t in range(62, 121, 2):
        assert k.decide(obs(t, 3, 0.0)).target["replicas"] == 3, t
    late = k.decide(obs(122, 3, 0.0))
    assert not k.last_result.panicking
    assert late.target["replicas"] == 1  # floor(3 / 2) allowed, 0 wanted, min replicas 1


def test_scale_down_rate_halves_ready_pods_and_min_replicas_bound():
    k = kpa(lo=2)
    k.decider = Decider(k.spec, 1, 0.0)  # not in panic
    for t in range(0, 70, 2):
        action = k.decide(obs(t, 8, 0.0))
    assert action.target["replicas"] == 4  # floor(8 / max-scale-down-rate 2), not the 0 the load wants
    assert kpa(lo=3).decide(obs(0, 1, 0.0)).target["replicas"] == 3


def test_no_data_holds():
    k = kpa()
    action = k.decide(Observation(0, {"replicas": 3.0}, {}))
    assert action.target == {"replicas": 3.0} and "No concurrency_per_replica data" in action.reason
