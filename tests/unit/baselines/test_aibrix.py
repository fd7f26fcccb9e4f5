"""AIBrix's KPA variant and APA against upstream's own tests (vllm-project/aibrix e3e10f9).

Ported: ``algorithm/apa_test.go`` ``TestAPAAlgorithm_ComputeTargetReplicas`` (all ten cases),
``algorithm/kpa_test.go`` ``TestKPAAlgorithm_ComputeTargetReplicas`` (all seven; its mock context leaves
the tolerances at 0) and ``types/metrics_test.go`` ``TestTimeWindow``. The policy-level tests check the
defaults of ``context.go`` / ``metrics/client.go`` and the behaviour of one reconcile after another.
"""

from __future__ import annotations

from collections import deque

import pytest

from learners.base import create
from learners.baselines.aibrix import (
    AIBrixAPA,
    AIBrixKPA,
    AIBrixSettings,
    TimeWindow,
    apa_replicas,
    kpa_replicas,
    per_pod_value,
    should_panic,
    stabilize,
)
from learners.objective import Objective
from learners.space import ConfigSpace, Knob
from learners.types import Observation, ReplicaSample


@pytest.mark.parametrize("name, current, per_pod, up_rate, down_rate, want", [
    ("basic_scale_up", 2, 45.0, 2, 2, 3),
    ("scale_up_upto_ceiling", 2, 35.0, 2, 2, 3),
    ("scale_up_upto_max_scale_up", 2, 90.0, 2, 2, 4),
    ("scale_up_upto_max_scale_up_ceiling", 2, 90.0, 2.5, 2, 5),
    ("basic_scale_down", 6, 20.0, 2, 2, 4),
    ("scale_down_upto_ceiling", 6, 18.0, 2, 2, 4),
    ("scale_down_upto_max_scale_down", 6, 10.0, 2, 2, 3),
    ("scale_down_upto_max_scale_down_floor", 6, 5.0, 2, 2.5, 2),
    ("no_scaling_as_within_up_tolerance", 2, 33.0, 2, 2, 2),
    ("no_scaling_as_within_down_tolerance", 2, 27.0, 2, 2, 2),
])
def test_apa_matches_upstream_table(name, current, per_pod, up_rate, down_rate, want):
    s = AIBrixSettings(target=30.0, up_tolerance=0.1, down_tolerance=0.1, max_scale_up_rate=up_rate,
                       max_scale_down_rate=down_rate)
    assert apa_replicas(current, per_pod, 30.0, s) == want, name


@pytest.mark.parametrize("name, current, stable, panic, in_panic, max_panic, activation, up_rate, want", [
    ("stable_mode_basic_scaling", 2, 20.0, 20.0, False, 0, 1, 2.0, 2),
    ("panic_mode_scaling_up", 2, 30.0, 40.0, True, 2, 1, 2.0, 4),
    ("panic_mode_no_scale_down", 5, 20.0, 20.0, True, 5, 1, 2.0, 5),
    ("scale_to_zero", 1, 0.0, 0.0, False, 0, 1, 2.0, 0),
    ("activation_scale_from_zero", 0, 15.0, 15.0, False, 0, 3, 2.0, 3),
    ("max_scale_up_rate_limit", 2, 100.0, 100.0, False, 0, 1, 1.5, 3),
    ("max_scale_down_rate_limit", 4, 5.0, 5.0, False, 0, 1, 2.0, 2),
])
def test_kpa_matches_upstream_table(name, current, stable, panic, in_panic, max_panic, activation, up_rate, want):
    s = AIBrixSettings(target=10.0, up_tolerance=0.0, down_tolerance=0.0, max_scale_up_rate=up_rate,
                       max_scale_down_rate=2.0)
    got = kpa_replicas(current, stable, panic, 10.0, s, in_panic, max_panic, activation)
    assert got == want, name


def test_kpa_tolerance_band_keeps_the_current_count():
    s = AIBrixSettings(target=10.0)  # 10% either way
    assert kpa_replicas(3, 10.5, 10.5, 10.0, s, False) == 3
    assert kpa_replicas(3, 11.5, 11.5, 10.0, s, False) == 2  # outside the band: ceil(11.5 / 10) = 2


def test_panic_mode_is_a_ratio_of_the_two_windows():
    assert should_panic(0.0, 0.0, 2.0)  # no stable load yet
    assert should_panic(10.0, 21.0, 2.0) and not should_panic(10.0, 20.0, 2.0)


def test_time_window_keeps_one_value_per_bucket_and_truncates():
    """TestTimeWindow: a 2 min window at 1 min granularity."""
    tw = TimeWindow(120, 60)
    steps = [(0, 10, [10]), (30, 20, [20]), (60, 30, [20, 30]), (90, 40, [20, 40]), (120, 50, [20, 40, 50]),
             (150, 60, [20, 40, 60]), (180, 70, [40, 60, 70]), (210, 80, [40, 60, 80])]
    for t, v, want in steps:
        tw.record(t, v)
        assert tw.values() == want, t
    tw = TimeWindow(120, 60)
    for t, v in ((0, 20), (60, 30), (120, 40)):
        tw.record(t, v)
    assert tw.values() == [20, 30, 40] and tw.average() == 30.0


def test_stabilize_keeps_upstream_direction_rule():
    """stabilizeRecommendation: scale-up takes the largest, scale-down the smallest recommendation in the
    direction's window; a 0 s window keeps only the new one."""
    h: deque = deque()
    assert stabilize(h, 0, 6, 4, 0, 300) == 6  # up window 0: the new recommendation
    assert stabilize(h, 10, 3, 6, 0, 300) == 3  # down: min(6, 3)
    assert stabilize(h, 20, 5, 6, 0, 300) == 3  # down: still the smallest of the last 300 s
    assert stabilize(h, 400, 5, 6, 0, 300) == 5  # the older ones scrolled out
    assert stabilize(h, 410, 6, 6, 0, 300) == 6  # no change


def space(lo=1, hi=16) -> ConfigSpace:
    return ConfigSpace.of(Knob("replicas", lo, hi, default=lo))


def make(name, lo=1, hi=16, **settings):
    return create(name, space(lo, hi), Objective("ttft_p99_seconds", 1.0), settings)


def obs(t, replicas, kv=0.0, waiting=0.0, running=0.0, ready=None) -> Observation:
    ready = replicas if ready is None else ready
    pods = tuple(ReplicaSample(i < ready, None) for i in range(replicas))
    return Observation(t, {"replicas": float(replicas)},
                       {"kv_cache_usage": kv, "queue_length": waiting, "requests_running": running}, replicas=pods)


def test_registered_with_aibrix_defaults():
    for name, cls in (("aibrix-kpa", AIBrixKPA), ("aibrix-apa", AIBrixAPA)):
        p = make(name)
        assert isinstance(p, cls) and p.uses_guard_rails is False
        s = p.settings
        assert (s.max_scale_up_rate, s.max_scale_down_rate, s.up_tolerance, s.down_tolerance) == (2, 2, 0.1, 0.1)
        assert (s.scale_up_cooldown_s, s.scale_down_cooldown_s, s.panic_threshold) == (0, 300, 2.0)
        assert (s.stable_window_s, s.panic_window_s, p.period_s) == (180, 60, 10)
        assert (s.metric, s.target) == ("gpu_cache_usage_perc", 0.5)


@pytest.mark.parametrize("bad", [{"metric": "gpu_utilization"}, {"target": 0}, {"panic_window_s": 200},
                                 {"max_scale_up_rate": 0.5}, {"kpa_aggregate": "max"}, {"down_tolerance": 1}])
def test_settings_reject_nonsense(bad):
    with pytest.raises(ValueError):
        AIBrixSettings(**bad)


def test_engine_metrics_map_to_observation_names():
    o = obs(0, 4, kv=0.3, waiting=8, running=20)
    assert per_pod_value(o, "gpu_cache_usage_perc", 4) == 0.3
    assert per_pod_value(o, "num_requests_waiting", 4) == 2.0
    assert per_pod_value(o, "num_requests_running", 4) == 5.0
    assert per_pod_value(o, "gpu_cache_usage_perc", 0) is None


@pytest.mark.parametrize("name", ["aibrix-apa", "aibrix-kpa"])
def test_scales_up_under_load_and_down_after_it(name):
    """KV usage at 0.9 per pod against 0.5: more replicas, at most x2 a reconcile; idle: back to 1."""
    p = make(name)
    n, t = 2, 0
    trace = []
    while t < 600:
        kv = min(0.95, 0.9 * 4 / n)  # a load that needs about 8 pods at 0.45-0.5 per pod
        a = p.decide(obs(t, n, kv=kv))
        new = round(a.target["replicas"])
        assert new <= 2 * n  # max-scale-up-rate 2
        trace.append(new)
        n, t = new, t + 10
    assert max(trace) >= 7
    peak = n
    while t < 2400:
        n = round(p.decide(obs(t, n, kv=0.0)).target["replicas"])
        t += 10
    # Down to the minimum. (The /2 scale-down rate bounds each raw recommendation only: upstream's cooldown
    # then takes the smallest recommendation of the last 300 s, which may be an early, small one.)
    assert peak > 1 and n == 1


def test_kpa_sum_reads_the_total_and_mean_reads_the_pod_average():
    """8 pods at 0.3 KV usage each against 0.5: the total 2.4 calls for ceil(2.4 / 0.5) = 5 pods; the pod
    average 0.3 (e3e10f9's aggregation) for ceil(0.3 / 0.5) = 1, bounded to 4 by the /2 scale-down rate."""
    assert make("aibrix-kpa").decide(obs(0, 8, kv=0.3)).target["replicas"] == 5
    assert make("aibrix-kpa", kpa_aggregate="mean").decide(obs(0, 8, kv=0.3)).target["replicas"] == 4


def test_no_ready_pod_holds():
    p = make("aibrix-apa")
    assert p.decide(obs(0, 3, kv=0.9, ready=0)).target["replicas"] == 3
