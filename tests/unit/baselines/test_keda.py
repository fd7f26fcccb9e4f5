"""KEDA's Prometheus scaler on vLLM queue depth, with the HPA underneath.

The External-metric replica counts are ported from kubernetes
pkg/controller/podautoscaler/replica_calculator_test.go (``TestReplicaCalcScaleUpCMExternalIgnoresUnreadyPods``,
``TestReplicaCalcScaleUpPerPodCMExternal``: levels and targets there are milli-units). The activation and
scale-to-zero cases follow the branches of kedacore/keda pkg/scaling/executor/scale_scaledobjects.go
``RequestScale``; the trigger's examples (``threshold``/``activationThreshold``) are the keda.sh prometheus
scaler page's.
"""

from __future__ import annotations

import math

import pytest

from learners.base import create
from learners.baselines.hpa import HPASettings
from learners.baselines.keda import KEDA, KEDASettings, external_replicas, query_value
from learners.objective import Objective
from learners.space import ConfigSpace, Knob
from learners.types import Observation, ReplicaSample


@pytest.mark.parametrize("name, current, ready, value, target, metric_type, want", [
    # TestReplicaCalcScaleUpCMExternalIgnoresUnreadyPods: Value type, 1 of 3 pods ready -> 2 (6 if unready counted)
    ("external value ignores unready pods", 3, 1, 8.6, 4.4, "Value", 2),
    # TestReplicaCalcScaleUpPerPodCMExternal: AverageValue 8600 over a 2150 per-pod target -> 4
    ("external per-pod scale up", 3, 3, 8.6, 2.15, "AverageValue", 4),
    # ours, from the same formulas: inside the 10% tolerance nothing changes
    ("per-pod within tolerance", 3, 3, 8.6, 2.9, "AverageValue", 3),
    ("value within tolerance", 3, 3, 8.6, 8.888, "Value", 3),
    ("per-pod scale down", 5, 5, 6.0, 2.0, "AverageValue", 3),
    ("queue of 23 at threshold 5", 2, 2, 23.0, 5.0, "AverageValue", 5),
])
def test_external_replicas_match_the_replica_calculator(name, current, ready, value, target, metric_type, want):
    assert external_replicas(current, ready, value, target, metric_type).replicas == want, name


def test_zero_queue_asks_for_zero_and_the_hpa_minimum_holds_one():
    """ceil(0 / threshold) = 0; the HPA KEDA creates has minReplicas >= 1, so it stops at 1."""
    assert external_replicas(4, 4, 0.0, 5.0, "AverageValue").replicas == 0
    k = keda(lo=1)
    a = None
    for t in range(0, 3600, 15):
        a = k.decide(obs(t, 4 if a is None else round(a.target["replicas"]), waiting=0.0))
    assert a.target["replicas"] == 1


def space(lo=1, hi=20) -> ConfigSpace:
    return ConfigSpace.of(Knob("replicas", lo, hi, default=max(lo, 1)))


def keda(lo=1, hi=20, **settings) -> KEDA:
    return create("keda", space(lo, hi), Objective("ttft_p99_seconds", 1.0), settings)


def obs(t, replicas, waiting=0.0, running=0.0, ready=None) -> Observation:
    ready = replicas if ready is None else ready
    pods = tuple(ReplicaSample(i < ready, None) for i in range(replicas))
    return Observation(t, {"replicas": float(replicas)},
                       {"queue_length": waiting, "requests_running": running}, replicas=pods)


def test_registered_with_keda_and_hpa_defaults():
    k = keda()
    s = k.keda
    assert (s.polling_interval_s, s.cooldown_period_s, s.activation_threshold) == (30.0, 300.0, 0.0)
    assert s.metric_type == "AverageValue" and s.query == "waiting"
    h = HPASettings()
    assert k.period_s == h.sync_period_s == 15.0
    assert k.settings.scale_down_stabilization_s == h.scale_down_stabilization_s == 300.0
    assert k.settings.scale_up_policies == h.scale_up_policies
    assert k.uses_guard_rails is False


@pytest.mark.parametrize("bad", [{"query": "running"}, {"threshold": 0}, {"metric_type": "Utilization"},
                                 {"activation_threshold": -1}, {"polling_interval_s": 0},
                                 {"min_replica_count": -1}])
def test_settings_reject_nonsense(bad):
    with pytest.raises(ValueError):
        KEDASettings(**bad)


def test_query_forms_and_ignore_null_values():
    o = Observation(0, {"replicas": 1.0}, {"queue_length": 7.0, "requests_running": 12.0})
    assert query_value(o, "waiting") == 7.0
    assert query_value(o, "running+waiting") == 19.0
    assert query_value(Observation(0, {"replicas": 1.0}, {"request_rate_per_second": 6.5}), "rate") == 6.5
    empty = Observation(0, {"replicas": 1.0}, {"queue_length": math.nan})
    assert query_value(empty, "waiting") == 0.0  # ignoreNullValues: true


def test_scales_up_under_load_at_once_and_down_only_after_the_stabilization_window():
    k = keda(threshold=5)
    up = k.decide(obs(0, 2, waiting=40))  # 40 waiting / 5 = 8; the HPA's default policy: max(2 + 4, 2 x 2) = 6
    assert up.target["replicas"] == 6
    up = k.decide(obs(15, 6, waiting=40))  # the next period: 8
    assert up.target["replicas"] == 8
    # The queue drains: the recommendation is 1, but the 300 s down window holds 8 until it has passed.
    t, n = 30, 8
    held = []
    while t <= 30 + 330:
        n = round(k.decide(obs(t, n, waiting=0)).target["replicas"])
        held.append((t, n))
        t += 15
    assert all(n == 8 for t, n in held if t < 15 + 300)
    assert held[-1][1] == 1


def test_running_plus_waiting_form_counts_in_flight_requests():
    k = keda(query="running+waiting", threshold=16)
    assert k.decide(obs(0, 2, waiting=0, running=64)).target["replicas"] == 4


def test_rate_form_sizes_by_requests_per_second_per_replica():
    k = keda(query="rate", threshold=2.5)
    o = Observation(0, {"replicas": 2.0}, {"request_rate_per_second": 9.0})
    assert k.decide(o).target["replicas"] == 4  # ceil(9 / 2.5); 9 / (2.5 x 2) = 1.8 is past the 10% tolerance


def test_no_scale_to_zero_unless_min_replica_count_is_zero():
    k = keda(lo=0, threshold=5)  # knob allows 0 but minReplicaCount defaults to the knob's 0 -> scale-to-zero on
    assert k.min_replica_count == 0
    k1 = keda(lo=0, threshold=5, min_replica_count=1)
    n = 2
    for t in range(0, 1200, 15):
        n = round(k1.decide(obs(t, n, waiting=0)).target["replicas"])
    assert n == 1


def test_scale_to_zero_waits_for_the_cooldown_period_then_activation_brings_one_back():
    k = keda(lo=0, threshold=5, activation_threshold=0)
    n = 1
    n = round(k.decide(obs(0, n, waiting=3)).target["replicas"])  # active at t=0
    seen = []
    for t in range(15, 400, 15):
        n = round(k.decide(obs(t, n, waiting=0)).target["replicas"])
        seen.append((t, n))
    # inactive from the poll at t=30; zero only once lastActiveTime (0) + cooldownPeriod (300) has passed
    assert all(n >= 1 for t, n in seen if t <= 300)
    assert next(t for t, n in seen if n == 0) > 300
    # the next poll that sees waiting requests above the activation threshold scales from zero to 1
    t0 = seen[-1][0]
    back = [round(k.decide(obs(t0 + 15 * i, 0, waiting=2)).target["replicas"]) for i in range(1, 4)]
    assert 1 in back


def test_activation_threshold_keeps_a_small_queue_inactive():
    k = keda(lo=0, threshold=5, activation_threshold=2.5)
    n = 0
    for t in range(0, 600, 15):
        n = round(k.decide(obs(t, n, waiting=2)).target["replicas"])
    assert n == 0  # 2 waiting <= 2.5: never activated


def test_polling_interval_spaces_activation_checks():
    k = keda(lo=0, threshold=5)
    k.decide(obs(0, 0, waiting=0))
    a = k.decide(obs(15, 0, waiting=10))  # 15 s after the last poll: KEDA has not looked yet
    assert a.target["replicas"] == 0
    a = k.decide(obs(30, 0, waiting=10))
    assert a.target["replicas"] == 1
