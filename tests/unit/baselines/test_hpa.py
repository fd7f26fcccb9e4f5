"""The HPA baseline against upstream's own test tables.

Cases are ported from kubernetes/kubernetes pkg/controller/podautoscaler/replica_calculator_test.go and
horizontal_test.go; each names the upstream test it comes from. Upstream feeds milli-values (custom
metrics) or millicores against 1-core requests (resource metrics); the algorithm is unit-free, so the
ports use the same numbers, with resource levels written as percent of request.
"""

from __future__ import annotations

import math

import pytest

from learners.base import create
from learners.baselines.hpa import (
    HPA,
    PERCENT,
    PODS,
    HPASettings,
    ScaleEvent,
    ScalingPolicy,
    ScalingRules,
    TimedRecommendation,
    Tolerances,
    calculate_replicas,
    group_pods,
    limit_rate,
    scale_down_limit,
    scale_up_limit,
    stabilize_recommendation,
)
from learners.objective import Objective
from learners.space import ConfigSpace, Knob
from learners.types import Observation, ReplicaSample

READY, UNREADY = True, False


def pods(values, ready=None):
    ready = ready or [READY] * len(values)
    return tuple(ReplicaSample(r, v) for v, r in zip(values, ready, strict=True))


# ---------------------------------------------------------------------------------------------------
# replica_calculator_test.go
# ---------------------------------------------------------------------------------------------------

# (upstream test, current, per-pod values, readiness or None, target, metric type, ignore_unready, expected)
REPLICA_CALC_CASES = [
    ("TestReplicaCalcScaleUp", 3, [30, 50, 70], None, 30, "resource", True, 5),
    ("TestReplicaCalcScaleUpUnreadyLessScale", 3, [30, 50, 70], [UNREADY, READY, READY], 30, "resource",
     True, 4),
    ("TestReplicaCalcScaleUpUnreadyNoScale", 3, [40, 50, 70], [READY, UNREADY, UNREADY], 30, "resource",
     True, 3),
    ("TestReplicaCalcScaleUpCM", 3, [20000, 10000, 30000], None, 15000, "pods", True, 4),
    # Custom metrics count a Running-but-unready pod's sample (groupPods ignores unready pods for CPU only).
    ("TestReplicaCalcScaleUpCMUnreadyHotCpuNoLessScale", 3, [50000, 10000, 30000],
     [READY, READY, UNREADY], 15000, "pods", False, 6),
    ("TestReplicaCalcScaleUpCMUnreadyHotCpuScaleWouldScaleDown", 3, [50000, 15000, 30000],
     [UNREADY, READY, UNREADY], 15000, "pods", False, 7),
    ("TestReplicaCalcScaleDown", 5, [10, 30, 50, 25, 25], None, 50, "resource", True, 3),
    ("TestReplicaCalcScaleDownCM", 5, [12000] * 5, None, 20000, "pods", True, 3),
    ("TestReplicaCalcScaleDownIncludeUnreadyPods", 5, [10, 30, 50, 25, 25],
     [READY, READY, READY, UNREADY, UNREADY], 50, "resource", True, 2),
    ("TestReplicaCalcScaleDownExcludeUnscheduledPods", 5, [10, None, None, None, None],
     [READY, UNREADY, UNREADY, UNREADY, UNREADY], 50, "resource", True, 1),
    # Upstream's requests are 0.9, 1.0 and 1.1 cores with usage 1010m, 1030m, 1020m: per-pod utilization.
    ("TestReplicaCalcTolerance", 3, [1010 / 9, 1030 / 10, 1020 / 11], None, 100, "resource", True, 3),
    ("TestReplicaCalcToleranceCM", 3, [20000, 21000, 21000], None, 20000, "pods", True, 3),
    ("TestReplicaCalcMissingMetrics", 4, [40, 9.5, None, None], None, 100, "resource", True, 3),
    ("TestReplicaCalcMissingMetricsNoChangeEq", 2, [100, None], None, 100, "resource", True, 2),
    ("TestReplicaCalcMissingMetricsNoChangeGt", 2, [190, None], None, 100, "resource", True, 2),
    ("TestReplicaCalcMissingMetricsNoChangeLt", 2, [60, None], None, 100, "resource", True, 2),
    ("TestReplicaCalcMissingMetricsUnreadyChange", 3, [10, 45, None], [UNREADY, READY, READY], 50,
     "resource", True, 3),
    ("TestReplicaCalcMissingMetricsUnreadyScaleUp", 3, [10, 200, None], [UNREADY, READY, READY], 50,
     "resource", True, 4),
    ("TestReplicaCalcMissingMetricsUnreadyScaleDown", 4, [10, 10, 10, None],
     [UNREADY, READY, READY, READY], 50, "resource", True, 3),
]


@pytest.mark.parametrize(
    "name,current,values,ready,target,metric_type,ignore_unready,expected",
    REPLICA_CALC_CASES, ids=[c[0] for c in REPLICA_CALC_CASES],
)
def test_replica_calculator_matches_upstream_table(name, current, values, ready, target, metric_type,
                                                   ignore_unready, expected):
    if metric_type == "resource":  # upstream's percent of request -> our fraction of request
        values = [None if v is None else v / 100 for v in values]
        target = target / 100
    count = calculate_replicas(current, pods(values, ready), target, Tolerances(0.1, 0.1),
                               ignore_unready, metric_type)
    assert count is not None
    assert count.replicas == expected, count.why


def test_computed_tolerance_alg_implementation():
    """TestReplicaCalcComputedToleranceAlgImplementation: a target just past the tolerance scales, one
    just inside it does not. Ten pods use 150m each against 300m requests: 50% utilization. (Upstream
    jitters the requests, which its sum-over-sum utilization averages away; our per-pod fractions
    assume equal requests, so the port uses the unjittered requests.)"""
    utilization = [0.5] * 10
    target = abs(1 / (2 * (1 - 0.1))) + 0.01
    expected = math.ceil(1500 / (3000 * target) * 10)  # upstream's finalPods: 9
    count = calculate_replicas(10, pods(utilization), int(target * 100) / 100, Tolerances(), True,
                               "resource")
    assert count is not None and count.replicas == expected == 9
    target = abs(1 / (2 * (1 - 0.1))) + 0.004
    count = calculate_replicas(10, pods(utilization), int(target * 100) / 100, Tolerances(), True,
                               "resource")
    assert count is not None and count.replicas == 10


def test_no_sample_from_any_counted_pod_gives_no_recommendation():
    """TestReplicaCalcEmptyMetrics: no metrics is an error upstream, so no scale."""
    assert calculate_replicas(3, pods([None, None, None]), 50) is None
    assert calculate_replicas(2, pods([70, 80], [UNREADY, UNREADY]), 50) is None


def test_group_pods_sorts_missing_and_pending():
    """TestGroupPods 'a missing pod', 'pending pods are ignored', 'several pods'."""
    g = group_pods(pods([1.0, None, 1.0], [READY, READY, UNREADY]))
    assert g.ready_count == 1 and g.missing == {1} and g.unready == {2}
    # Custom-metric semantics: an unready pod with a sample counts, one without is missing.
    g = group_pods(pods([1.0, None], [UNREADY, UNREADY]), ignore_unready=False)
    assert g.ready_count == 1 and g.missing == {1} and not g.unready


def test_integer_usage_arithmetic_avoids_float_noise():
    """0.9 / 0.3 is 3.0000000000000004 in floats; upstream's milli-unit integers give exactly 3."""
    assert calculate_replicas(2, pods([0.9, 0.9]), 0.3).replicas == 6
    assert calculate_replicas(3, pods([0.9, 0.9, 0.9]), 0.3, metric_type="resource").replicas == 9


def test_asymmetric_tolerance_is_respected():
    """Tolerances.isWithin: 1 - down <= ratio <= 1 + up."""
    tol = Tolerances(scale_down=0.05, scale_up=0.3)
    assert calculate_replicas(4, pods([12] * 4), 10, tol).replicas == 4   # +20% is inside +30%
    assert calculate_replicas(4, pods([9] * 4), 10, tol).replicas == 4    # -10%: ceil(3.6) = 4
    assert calculate_replicas(10, pods([9] * 10), 10, tol).replicas == 9  # -10% is outside -5%


# ---------------------------------------------------------------------------------------------------
# horizontal_test.go: stabilisation
# ---------------------------------------------------------------------------------------------------

NOW = 10_000.0


def recs(*pairs):
    """(replicas, minutes ago) pairs -> recommendations."""
    return [TimedRecommendation(NOW - minutes * 60, r) for r, minutes in pairs]


# (upstream case name, recommendations, current, desired, expected, expected stored, up window, down window)
STABILIZE_CASES = [
    ("empty recommendations for scaling down", [], 100, 5, 5, [5], 0, 0),
    ("simple scale down stabilization", recs((4, 2), (5, 1)), 100, 3, 5, [4, 5, 3], 0, 180),
    ("simple scale up stabilization", recs((4, 2), (5, 1)), 1, 7, 4, [4, 5, 7], 300, 0),
    ("no scale down stabilization", recs((1, 2), (2, 1)), 100, 3, 3, [1, 2, 3], 300, 0),
    ("no scale up stabilization", recs((4, 2), (5, 1)), 1, 3, 3, [4, 5, 3], 0, 300),
    ("no scale down stabilization, reuse recommendation element", recs((10, 10), (9, 9)), 100, 3, 3,
     [3], 0, 0),
    ("scale down stabilization, reuse one of obsolete recommendation element",
     recs((10, 10), (4, 1), (5, 2), (9, 9)), 100, 3, 5, [4, 5, 3], 0, 180),
    ("scale up stabilization, reuse one of obsolete recommendation element",
     recs((10, 100), (6, 1), (5, 2), (9, 3)), 1, 100, 5, [6, 5, 9, 100], 300, 300),
]


@pytest.mark.parametrize("name,history,current,desired,expected,stored,up,down", STABILIZE_CASES,
                         ids=[c[0] for c in STABILIZE_CASES])
def test_stabilization_matches_normalize_desired_replicas_with_behavior(name, history, current, desired,
                                                                        expected, stored, up, down):
    """TestNormalizeDesiredReplicasWithBehavior. Upstream reuses the slot of one obsolete entry; we
    drop every obsolete entry, so only entries inside a window remain (same outcome, smaller log)."""
    got, kept = stabilize_recommendation(history, NOW, current, desired, up, down)
    assert got == expected
    assert sorted(r.replicas for r in kept) == sorted(stored)


# ---------------------------------------------------------------------------------------------------
# horizontal_test.go: rate limits
# ---------------------------------------------------------------------------------------------------


def rules(pods_value, pods_period, percent, percent_period, window=0.0, select="Max"):
    """generateScalingRules."""
    policies = []
    if pods_value:
        policies.append(ScalingPolicy(PODS, pods_value, pods_period))
    if percent:
        policies.append(ScalingPolicy(PERCENT, percent, percent_period))
    return ScalingRules(window, select, tuple(policies))


DEFAULT_UP = HPASettings().scale_up
DEFAULT_DOWN = HPASettings().scale_down


def uniform_events(changes, period_s):
    """generateEventsUniformDistribution: events in the middle of equal segments of the last period."""
    seg = period_s / len(changes)
    return [ScaleEvent(NOW - (period_s - seg * (i + 1) + seg / 2), c) for i, c in enumerate(changes)]


# (upstream case, current, desired, min, max, up rules, down rules, up events, down events, expected, reason)
RATE_CASES = [
    ("prenormalized desired replicas within range", 5, 7, 3, 8, None, None, [], [], 7, "DesiredWithinRange"),
    ("prenormalized desired replicas < minReplicas", 3, 1, 2, 8, None, None, [], [], 2, "TooFewReplicas"),
    ("prenormalized desired replicas within range when minReplicas is 0", 1, 0, 0, 10, None, None, [], [],
     0, "DesiredWithinRange"),
    ("maxReplicas is the limit because maxReplicas < scaleUpLimit", 20, 1000, 1, 10, None, None, [], [],
     10, "TooManyReplicas"),
    ("scaleUpLimit is the limit because scaleUpLimit < maxReplicas with user policies", 3, 1000, 1, 2000,
     rules(0, 0, 1, 60), None, [], [], 4, "ScaleUpLimit"),
    ("scaleDownLimit is the limit because scaleDownLimit > minReplicas with user defined policies", 1000,
     3, 3, 2000, None, rules(20, 60, 0, 0), [], [], 980, "ScaleDownLimit"),
    ("scaleUp with default behavior", 10, 50, 1, 1000, None, None, [], [], 20, "ScaleUpLimit"),
    ("scaleUp with pods policy larger than percent policy", 10, 500, 1, 1000, rules(100, 60, 100, 60), None,
     [], [], 110, "ScaleUpLimit"),
    ("scaleUp with percent policy larger than pods policy", 10, 500, 1, 1000, rules(2, 60, 100, 60), None,
     [], [], 20, "ScaleUpLimit"),
    ("scaleUp with pod policy limitation", 10, 50, 1, 1000, rules(30, 60, 0, 0), None, [], [], 40,
     "ScaleUpLimit"),
    ("scaleUp with percent policy limitation", 10, 50, 1, 1000, rules(0, 0, 200, 60), None, [], [], 30,
     "ScaleUpLimit"),
    ("scaleDown with percent policy larger than pod policy", 100, 2, 1, 1000, None,
     rules(20, 60, 1, 60, 300), [], [], 80, "ScaleDownLimit"),
    ("scaleDown with pod policy larger than percent policy", 100, 2, 1, 1000, None,
     rules(2, 60, 1, 60, 300), [], [], 98, "ScaleDownLimit"),
    ("scaleDown with spec MinReplicas limitation with large percent policy", 10, 2, 5, 1000, None,
     rules(0, 0, 100, 60, 300), [], [], 5, "TooFewReplicas"),
    ("scaleDown with pod policy limitation", 10, 2, 1, 1000, None, rules(5, 60, 0, 0, 300), [], [], 5,
     "ScaleDownLimit"),
    ("scaleUp with currentReplicas limitation with rate.PeriodSeconds with a lot of recent scale up events",
     100, 500, 1, 1000, rules(5, 120, 0, 0), None, uniform_events([1, 5, 9], 120), [], 100, "ScaleUpLimit"),
    ("scaleUp with pod policy and previous scale up events", 100, 500, 1, 1000, rules(150, 120, 0, 0), None,
     uniform_events([1, 5, 9], 120), [], 235, "ScaleUpLimit"),
    ("scaleUp with percent policy and previous scale up events", 100, 500, 1, 1000, rules(0, 0, 200, 120),
     None, uniform_events([1, 5, 9], 120), [], 255, "ScaleUpLimit"),
    ("scaleDown with default policy and previous events", 10, 5, 1, 1000, None, None, [],
     uniform_events([1, 5, 9], 120), 5, "DesiredWithinRange"),
    ("scaleDown with pod policy limitation and previous events", 100, 2, 1, 1000, None,
     rules(5, 120, 0, 0, 300), [], uniform_events([1, 5, 9], 120), 100, "ScaleDownLimit"),
    ("scaleDown with percent policy limitation and previous events", 100, 0, 1, 1000, None,
     rules(0, 0, 50, 120, 300), [], uniform_events([2, 4, 6], 120), 56, "ScaleDownLimit"),
    ("scaleDown with previous events preventing further scale down", 100, 0, 1, 1000, None,
     rules(0, 0, 10, 120, 300), [], uniform_events([10, 10, 10], 120), 100, "ScaleDownLimit"),
    ("check that events were marked 'outdated' for two different policies in the behavior for up", 100, 200,
     1, 1000, rules(1000, 30, 100, 60), None, uniform_events([8, 12, 9, 11], 120), [], 200,
     "DesiredWithinRange"),
]


@pytest.mark.parametrize("name,current,desired,lo,hi,up,down,up_events,down_events,expected,reason",
                         RATE_CASES, ids=[c[0] for c in RATE_CASES])
def test_rate_limits_match_scaling_with_rules(name, current, desired, lo, hi, up, down, up_events,
                                              down_events, expected, reason):
    """TestScalingWithRules (convertDesiredReplicasWithBehaviorRate)."""
    got, why = limit_rate(current, desired, lo, hi, up or DEFAULT_UP, down or DEFAULT_DOWN, up_events,
                          down_events, NOW)
    assert (got, why) == (expected, reason)


def test_min_select_policies():
    """TestCalculateScaleUpLimitWithScalingRules / TestCalculateScaleDownLimitWithBehaviors."""
    assert scale_up_limit(1, [], [], rules(2, 60, 50, 60, 300, "Min"), NOW) == 2
    assert scale_down_limit(5, [], [], rules(2, 60, 50, 60, 300, "Min"), NOW) == 3
    assert scale_up_limit(7, [], [], rules(2, 60, 50, 60, 0, "Disabled"), NOW) == 7


# ---------------------------------------------------------------------------------------------------
# The controller through decide()
# ---------------------------------------------------------------------------------------------------


def hpa(lo=1, hi=20, **settings) -> HPA:
    return HPA(ConfigSpace.of(Knob("replicas", lo, hi, 1)), HPASettings(**settings))


def obs_at(t, replicas, values, ready=None, metric="gpu_utilization"):
    samples = pods(values, ready)
    return Observation(time_s=t, config={"replicas": float(replicas)}, metrics={}, interval_s=15.0,
                       replicas=samples)


def test_registered_with_upstream_defaults():
    h = create("hpa", ConfigSpace.of(Knob("replicas", 1, 20, 1)), Objective(), {})
    assert isinstance(h, HPA)
    assert h.period_s == 15.0
    s = h.settings
    assert (s.target, s.scale_up_tolerance, s.scale_down_tolerance) == (0.8, 0.1, 0.1)
    assert (s.scale_up_stabilization_s, s.scale_down_stabilization_s) == (0.0, 300.0)
    assert s.scale_up_policies == (ScalingPolicy(PODS, 4, 15), ScalingPolicy(PERCENT, 100, 15))
    assert s.scale_down_policies == (ScalingPolicy(PERCENT, 100, 15),)
    assert h.uses_guard_rails is False


def test_settings_accept_kubernetes_policy_mappings_and_reject_nonsense():
    space = ConfigSpace.of(Knob("replicas", 1, 20, 1))
    h = create("hpa", space, Objective(), {"scale_up_policies": [{"type": "Pods", "value": 2,
                                                                   "periodSeconds": 60}]})
    assert h.settings.scale_up_policies == (ScalingPolicy(PODS, 2, 60),)
    with pytest.raises(ValueError, match="policy type"):
        HPASettings(scale_down_policies=[("Replicas", 1, 15)])
    with pytest.raises(ValueError, match="target"):
        HPASettings(target=0)
    with pytest.raises(ValueError, match="no setting"):
        create("hpa", space, Objective(), {"tolerance": 0.2})
    with pytest.raises(ValueError, match="replicas"):
        HPA(ConfigSpace.of(Knob("cpu", 1, 4, 1)), HPASettings())


def test_within_tolerance_keeps_replicas_and_says_why():
    action = hpa().decide(obs_at(0, 3, [0.85, 0.86, 0.84]))
    assert action.target == {"replicas": 3.0}
    assert "gpu_utilization" in action.reason and "0.8" in action.reason and "Keeping 3" in action.reason


def test_scale_up_is_rate_limited_within_one_period():
    """Default policy: max(+4 pods, +100%) per 15 s, counting scale events of the period."""
    h = hpa(lo=1, hi=100)
    first = h.decide(obs_at(0, 2, [4.0, 4.0]))  # wants ceil(5 * 2) = 10
    assert first.target["replicas"] == 6  # max(2 + 4, 2 * 2)
    assert "scale-up policy" in first.reason
    # 10 s later the +4 is still inside the 15 s period: the period started at 2 pods.
    second = h.decide(obs_at(10, 6, [4.0] * 6))
    assert second.target["replicas"] == 6
    # At 15 s the event is out of the period: from 6, at most 12.
    third = h.decide(obs_at(15, 6, [4.0] * 6))
    assert third.target["replicas"] == 12


def test_scale_down_waits_for_the_stabilization_window():
    h = hpa()
    assert h.decide(obs_at(0, 3, [0.8] * 3)).target["replicas"] == 3
    for t in range(15, 300, 15):  # load drops: the recommendation is 1, the 5-minute max is still 3
        action = h.decide(obs_at(t, 3, [0.2] * 3))
        assert action.target["replicas"] == 3, t
    assert "stabilised" in action.reason
    # At 300 s the recommendation of t=0 leaves the window (strictly newer than now - 300 s).
    assert h.decide(obs_at(300, 3, [0.2] * 3)).target["replicas"] == 1


def test_min_max_clamp_and_disabled_scaling():
    h = hpa(lo=2, hi=5)
    assert h.decide(obs_at(0, 8, [0.8] * 8)).target["replicas"] == 5
    assert h.decide(obs_at(15, 1, [0.8])).target["replicas"] == 2
    assert h.decide(obs_at(30, 4, [0.01] * 4)).target["replicas"] == 2  # TooFewReplicas
    zero = h.decide(Observation(45, {"replicas": 0.0}, {}))
    assert zero.target["replicas"] == 0 and "disabled" in zero.reason


def test_missing_metrics_hold_and_workload_average_fallback():
    h = hpa()
    held = h.decide(obs_at(0, 3, [None, None, None]))
    assert held.target["replicas"] == 3 and "No gpu_utilization sample" in held.reason
    # No per-pod samples at all: every pod is taken to report the workload average.
    avg = h.decide(Observation(15, {"replicas": 3.0}, {"gpu_utilization": 1.6}))
    assert avg.target["replicas"] == 6


def test_unready_pods_damp_scale_up_through_decide():
    """TestReplicaCalcScaleUpUnreadyLessScale through the controller, with utilization fractions."""
    action = hpa(target=0.3).decide(obs_at(0, 3, [0.3, 0.5, 0.7], [UNREADY, READY, READY]))
    assert action.target["replicas"] == 4
    assert "1 unready" in action.reason
