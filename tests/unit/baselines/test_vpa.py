"""The VPA baseline against upstream's own tests.

Ported from kubernetes/autoscaler vertical-pod-autoscaler/pkg/recommender: util/histogram_options_test.go,
util/histogram_test.go, util/decaying_histogram_test.go, logic/estimator_test.go and
model/container_test.go (whose mock histograms become the recording fake below). Upstream test names
are in the docstrings.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from learners.base import create
from learners.baselines.vpa import (
    MAX_RESOURCE_AMOUNT,
    MIB,
    VPA,
    ConfidenceMultiplier,
    ConstEstimator,
    ContainerHistory,
    DecayingHistogram,
    ExponentialHistogramOptions,
    Histogram,
    LinearHistogramOptions,
    MarginEstimator,
    MinResourcesEstimator,
    PercentileEstimator,
    Resources,
    VPASettings,
)
from learners.objective import Objective
from learners.space import ConfigSpace, Knob
from learners.types import Observation, ReplicaSample

WEIGHT_EPS = 1e-15
TEST_OPTIONS = LinearHistogramOptions(10.0, 1.0, WEIGHT_EPS)  # histogram_test.go testHistogramOptions
HOUR = 3600.0
START = 1234567890.0  # decaying_histogram_test.go startTime


# ---------------------------------------------------------------------------------------------------
# histogram_options_test.go
# ---------------------------------------------------------------------------------------------------


def test_linear_histogram_options():
    """TestLinearHistogramOptions."""
    o = LinearHistogramOptions(5.0, 0.3, 0.001)
    assert o.num_buckets == 18
    assert o.bucket_start(0) == 0.0 and o.bucket_start(17) == 5.1
    assert [o.find_bucket(v) for v in (-1.0, 0.0, 1.3, 100.0)] == [0, 0, 4, 17]


def test_exponential_histogram_options():
    """TestExponentialHistogramOptions."""
    o = ExponentialHistogramOptions(500.0, 40.0, 1.5, 0.001)
    assert o.num_buckets == 6
    assert [o.bucket_start(b) for b in range(6)] == [0.0, 40.0, 100.0, 190.0, 325.0, 527.5]
    assert [o.find_bucket(v) for v in (-1.0, 39.99, 40.0, 100.0, 900.0)] == [0, 0, 1, 2, 5]


def test_default_bucketing_scheme():
    """aggregations_config.go: 0.01-core and 10 MB first buckets, 5% growth, up to 1000 cores / 1 TB."""
    h = ContainerHistory(VPASettings())
    cpu, mem = h.cpu.options, h.memory_peaks.options
    assert cpu.num_buckets == mem.num_buckets == 176
    assert cpu.bucket_start(1) == pytest.approx(0.01) and cpu.bucket_start(2) == pytest.approx(0.0205)
    assert mem.bucket_start(1) == pytest.approx(1e7)
    assert cpu.bucket_start(cpu.num_buckets - 1) >= 1000.0 > cpu.bucket_start(cpu.num_buckets - 2)


# ---------------------------------------------------------------------------------------------------
# histogram_test.go
# ---------------------------------------------------------------------------------------------------


def test_percentiles_empty_histogram():
    """TestPercentilesEmptyHistogram."""
    h = Histogram(TEST_OPTIONS)
    assert [h.percentile(p) for p in (-0.5, 0.0, 0.5, 1.0, 1.5)] == [0.0] * 5


def test_percentiles():
    """TestPercentiles: {1: 1, 2: 2, 3: 3, 4: 4}; each percentile is the end of its bucket."""
    h = Histogram(TEST_OPTIONS)
    for i in range(1, 5):
        h.add_sample(i, i)
    expected = {0.0: 2, 0.1: 2, 0.2: 3, 0.3: 3, 0.4: 4, 0.5: 4, 0.6: 4, 0.7: 5, 0.8: 5, 0.9: 5, 1.0: 5}
    assert {p: h.percentile(p) for p in expected} == pytest.approx(expected, rel=1e-15)


def test_percentile_out_of_bounds():
    """TestPercentileOutOfBounds."""
    h = Histogram(LinearHistogramOptions(1.0, 0.1, WEIGHT_EPS))
    h.add_sample(0.1, 0.1)
    h.add_sample(0.2, 0.2)
    assert h.percentile(-0.1) == pytest.approx(0.2) and h.percentile(1.1) == pytest.approx(0.3)
    h.add_sample(0.0, 0.1)  # fill the boundary buckets
    h.add_sample(1.0, 0.2)
    assert h.percentile(-0.1) == pytest.approx(0.1) and h.percentile(1.1) == pytest.approx(1.0)


def test_empty_histogram():
    """TestEmptyHistogram: a bucket lighter than epsilon is empty."""
    h = Histogram(LinearHistogramOptions(1.0, 0.1, WEIGHT_EPS))
    assert h.is_empty()
    h.add_sample(0.1, WEIGHT_EPS * 2.5)
    assert not h.is_empty()
    h.subtract_sample(0.1, WEIGHT_EPS)
    assert not h.is_empty()
    h.subtract_sample(0.1, WEIGHT_EPS)
    assert h.is_empty()


def test_non_empty_on_epsilon_addition():
    """TestNonEmptyOnEpsilonAddition."""
    h = Histogram(LinearHistogramOptions(1.0, 0.1, WEIGHT_EPS))
    h.add_sample(9.9, WEIGHT_EPS * 3)
    assert not h.is_empty()
    h.add_sample(0.1, WEIGHT_EPS * 0.3)
    assert not h.is_empty()
    h.add_sample(999.9, WEIGHT_EPS * 0.3)
    assert not h.is_empty()


def test_histogram_merge():
    """TestHistogramMerge."""
    h1, h2, expected = Histogram(TEST_OPTIONS), Histogram(TEST_OPTIONS), Histogram(TEST_OPTIONS)
    for v in (1, 2):
        h1.add_sample(v, 1)
    for v in (2, 3):
        h2.add_sample(v, 1)
    for v in (1, 2, 2, 3):
        expected.add_sample(v, 1)
    h1.merge(h2)
    assert h1.weights == expected.weights and h1.total_weight == expected.total_weight
    assert (h1.min_bucket, h1.max_bucket) == (expected.min_bucket, expected.max_bucket)


# ---------------------------------------------------------------------------------------------------
# decaying_histogram_test.go
# ---------------------------------------------------------------------------------------------------


def test_percentiles_empty_decaying_histogram():
    """TestPercentilesEmptyDecayingHistogram."""
    h = DecayingHistogram(TEST_OPTIONS, HOUR)
    assert [h.percentile(p) for p in (-0.5, 0.0, 0.5, 1.0, 1.5)] == [0.0] * 5


def test_simple_decay():
    """TestSimpleDecay: 20 half-lives later a 1000x heavier sample weighs a little under 0.1%."""
    h = DecayingHistogram(TEST_OPTIONS, HOUR)
    h.add_sample_at(2, 1000, START)
    h.add_sample_at(1, 1, START + 20 * HOUR)
    assert h.percentile(0.999) == pytest.approx(2) and h.percentile(1.0) == pytest.approx(3)


def test_longterm_decay():
    """TestLongtermDecay: past 2^maxDecayExponent the old sample decays away entirely."""
    h = DecayingHistogram(TEST_OPTIONS, HOUR)
    h.add_sample_at(2, 1, START)
    h.add_sample_at(1, 1, START + 101 * HOUR)
    assert h.percentile(1.0) == pytest.approx(2)


def test_decaying_histogram_percentiles():
    """TestDecayingHistogramPercentiles: weights 1/8, 2/4, 3/2, 4 one half-life apart."""
    h = DecayingHistogram(TEST_OPTIONS, HOUR)
    for i in range(1, 5):
        h.add_sample_at(i, i, START + (i - 1) * HOUR)
    expected = {0.0: 2, 0.02: 2, 0.03: 3, 0.10: 3, 0.11: 4, 0.34: 4, 0.35: 5, 1.0: 5}
    assert {p: h.percentile(p) for p in expected} == pytest.approx(expected, rel=1e-15)


def test_no_decay():
    """TestNoDecay: at one instant a decaying histogram is a plain one."""
    h = DecayingHistogram(TEST_OPTIONS, HOUR)
    for i in range(1, 5):
        h.add_sample_at(i, i, START)
    expected = {0.0: 2, 0.1: 2, 0.2: 3, 0.3: 3, 0.4: 4, 0.5: 4, 0.6: 4, 0.7: 5, 0.8: 5, 0.9: 5, 1.0: 5}
    assert {p: h.percentile(p) for p in expected} == pytest.approx(expected, rel=1e-15)


# ---------------------------------------------------------------------------------------------------
# estimator_test.go
# ---------------------------------------------------------------------------------------------------

CONST = ConstEstimator(Resources(3140, int(3.14e9)))  # 3.14 cores, 3.14e9 bytes


def test_percentile_estimator():
    """TestPercentileEstimator: within 5% (histogram rounding) of the exact percentile."""
    history = ContainerHistory(VPASettings())
    cpu, mem = Histogram(history.cpu.options), Histogram(history.memory_peaks.options)
    for v in (1.0, 2.0, 3.0):
        cpu.add_sample(v, 1.0)
        mem.add_sample(v * 1e9, 1.0)
    got = PercentileEstimator(0.2, 0.5).estimate(SimpleNamespace(cpu=cpu, memory_peaks=mem))
    assert got.cpu_cores == pytest.approx(1.0, rel=0.05)
    assert got.memory_bytes == pytest.approx(2e9, rel=0.05)


def test_confidence_multiplier():
    """TestConfidenceMultiplier: 9 samples 2 min apart -> confidence 9 / 1440 = 0.00625 days;
    3.14 x (1 + 0.1 / 0.00625)^2 = 907.46 cores."""
    history = ContainerHistory(VPASettings())
    for i in range(9):
        assert history.add_cpu_sample(i * 120.0, 1.0, 3.14)
    assert history.confidence_days() == pytest.approx(0.00625)
    assert ConfidenceMultiplier(0.1, 2.0, CONST).estimate(history).cpu_cores == 907.46


def test_confidence_multiplier_no_history():
    """TestConfidenceMultiplierNoHistory: +INF is capped at MaxResourceAmount, the inverse is 0."""
    history = ContainerHistory(VPASettings())
    assert ConfidenceMultiplier(1.0, 1.0, CONST).estimate(history).cpu_millicores == MAX_RESOURCE_AMOUNT
    assert ConfidenceMultiplier(1.0, -1.0, CONST).estimate(history).cpu_millicores == 0


def test_margin_estimator():
    """TestMarginEstimator: 10% on top."""
    got = MarginEstimator(0.1, CONST).estimate(ContainerHistory(VPASettings()))
    assert got.cpu_cores == pytest.approx(3.14 * 1.1) and got.memory_bytes == pytest.approx(3.14e9 * 1.1)


def test_min_resources_estimator():
    """TestMinResourcesEstimator."""
    base = ConstEstimator(Resources(3140, int(2e7)))
    got = MinResourcesEstimator(Resources(200, int(4e8)), base).estimate(ContainerHistory(VPASettings()))
    assert (got.cpu_cores, got.memory_bytes) == (3.14, 4e8)


# ---------------------------------------------------------------------------------------------------
# container_test.go: the memory peak of each interval and OOM samples
# ---------------------------------------------------------------------------------------------------

DAY = 24 * HOUR
T0 = 1492536905.0  # 2017-04-18 17:35:05 UTC, container_test.go testTimestamp
MB = MIB


class RecordingHistogram:
    """Stands in for upstream's MockHistogram: records what the container adds and subtracts."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float, float, float]] = []

    def add_sample_at(self, value, weight, t):
        self.calls.append(("add", value, weight, t))

    def subtract_sample_at(self, value, weight, t):
        self.calls.append(("subtract", value, weight, t))


def recorded_history() -> tuple[ContainerHistory, RecordingHistogram, RecordingHistogram]:
    history = ContainerHistory(VPASettings())
    history.cpu, history.memory_peaks = RecordingHistogram(), RecordingHistogram()
    return history, history.cpu, history.memory_peaks


def test_aggregate_container_usage_samples():
    """TestAggregateContainerUsageSamples: CPU weighted by the request; one memory peak per interval."""
    history, cpu, mem = recorded_history()
    step = DAY / 2
    assert history.add_cpu_sample(T0, 3.14, 2.3) and history.add_memory_sample(T0, 5)
    assert history.add_cpu_sample(T0 + step, 6.28, 2.3) and history.add_memory_sample(T0 + step, 10)
    assert history.add_cpu_sample(T0 + 2 * step, 1.57, 2.3) and history.add_memory_sample(T0 + 2 * step, 2)
    assert not history.add_cpu_sample(T0 + 2 * step, 1.0, 2.3)  # out of order
    assert not history.add_cpu_sample(T0 + 4 * step, -1.0, 2.3)  # negative
    assert not history.add_memory_sample(T0 + 4 * step, -1000)
    assert cpu.calls == [("add", 3.14, 2.3, T0), ("add", 6.28, 2.3, T0 + step),
                         ("add", 1.57, 2.3, T0 + 2 * step)]
    assert mem.calls == [("add", 5, 1.0, T0 + DAY), ("subtract", 5, 1.0, T0 + DAY),
                         ("add", 10, 1.0, T0 + DAY), ("add", 2, 1.0, T0 + 2 * DAY)]


def test_record_oom_increased_by_bump_up():
    """TestRecordOOMIncreasedByBumpUp: 20% over the request."""
    history, _, mem = recorded_history()
    assert history.record_oom(T0, 1000 * MB)
    assert mem.calls == [("add", pytest.approx(1200 * MB, abs=1), 1.0, T0 + DAY)]


def test_record_oom_dont_run_away():
    """TestRecordOOMDontRunAway: smaller OOMs leave the peak, a larger one replaces it."""
    history, _, mem = recorded_history()
    history.record_oom(T0, 1000 * MB)
    history.record_oom(T0, 999 * MB)
    history.record_oom(T0, 999 * MB)
    history.record_oom(T0, 2000 * MB)
    assert [(c[0], round(c[1] / MB)) for c in mem.calls] == [("add", 1200), ("subtract", 1200),
                                                             ("add", 2400)]


def test_record_oom_increased_by_min():
    """TestRecordOOMIncreasedByMin: at least +100 MiB."""
    history, _, mem = recorded_history()
    history.record_oom(T0, 1 * MB)
    assert mem.calls == [("add", 101 * MB, 1.0, T0 + DAY)]


def test_record_oom_maxed_with_known_sample():
    """TestRecordOOMMaxedWithKnownSample: the interval's peak beats a smaller request."""
    history, _, mem = recorded_history()
    history.add_memory_sample(T0, 3000 * MB)
    history.record_oom(T0, 1000 * MB)
    assert [(c[0], round(c[1] / MB)) for c in mem.calls] == [("add", 3000), ("subtract", 3000),
                                                             ("add", 3600)]


def test_record_oom_discards_old_sample():
    """TestRecordOOMDiscardsOldSample."""
    history, _, mem = recorded_history()
    history.add_memory_sample(T0, 1000 * MB)
    assert not history.record_oom(T0 - 30 * HOUR, 1000 * MB)
    assert len(mem.calls) == 1


def test_record_oom_in_new_window():
    """TestRecordOOMInNewWindow: the OOM lands in its own interval, bumped from the last peak."""
    history, _, mem = recorded_history()
    history.add_memory_sample(T0, 2000 * MB)
    assert history.record_oom(T0 + 2 * DAY, 1000 * MB)
    assert mem.calls[-1] == ("add", pytest.approx(2400 * MB, abs=1), 1.0, T0 + 3 * DAY)


# ---------------------------------------------------------------------------------------------------
# The learner through decide()
# ---------------------------------------------------------------------------------------------------

GIB = 2**30


def vpa(**settings) -> VPA:
    space = ConfigSpace.of(Knob("replicas", 1, 4, 1), Knob("cpu", 0.25, 16, 0.25, default=4.0),
                           Knob("memory", 1 * GIB, 64 * GIB, 1 * GIB, default=16 * GIB))
    return VPA(space, VPASettings(**settings))


def observe(t, cpu_request, mem_request, cpu_used, mem_peak, ooms=0, age=math.inf):
    return Observation(t, {"replicas": 1.0, "cpu": cpu_request, "memory": mem_request},
                       {"cpu_usage_cores": cpu_used, "memory_bytes_peak": mem_peak}, interval_s=60.0,
                       replicas=(ReplicaSample(True, None, age),), events={"oom_kills": ooms})


def test_registered_with_recommender_defaults():
    space = ConfigSpace.of(Knob("cpu", 0.25, 16, 0.25), Knob("memory", GIB, 64 * GIB, GIB))
    v = create("vpa", space, Objective(), {})
    assert isinstance(v, VPA) and v.period_s == 60.0
    s = v.settings
    assert (s.target_cpu_percentile, s.lower_bound_cpu_percentile, s.upper_bound_cpu_percentile) == (
        0.9, 0.5, 0.95)
    assert (s.safety_margin_fraction, s.pod_min_cpu_millicores, s.pod_min_memory_mb) == (0.15, 25, 250)
    with pytest.raises(ValueError, match="cpu' or 'memory"):
        VPA(ConfigSpace.of(Knob("replicas", 1, 4, 1)), VPASettings())
    with pytest.raises(ValueError, match="percentile"):
        VPASettings(target_cpu_percentile=90)


def test_recommendation_tracks_usage_and_over_provisioning_is_cut_after_confidence_grows():
    """Steady 1 core and 3 GiB on requests of 4 cores and 4 GiB, pods younger than 12 h: the target is
    the P90 bucket end plus 15%; the upper bound (1 + 1/days) x 1.15 x P95 narrows as history grows,
    and the updater applies the target the first minute it falls below the request (about 10 h).
    (The memory request stays inside its range: 4 GiB is above 1.15 x the 3 GiB peak.)"""
    v = vpa()
    first = v.decide(observe(0, 4.0, 4 * GIB, 1.0, 3 * GIB, age=60.0))
    rec = v.recommendation
    assert rec is not None and rec.upper_bound["cpu"] == 16  # no history: upper bound unbounded, capped
    assert first.target == {"cpu": 4.0, "memory": 4 * GIB}  # inside [lower, upper]: unchanged
    cpu_bucket_end = v.history.cpu.options.bucket_start(v.history.cpu.options.find_bucket(1.0) + 1)
    assert rec.target["cpu"] == pytest.approx(math.floor(cpu_bucket_end * 1000 * 1.15) / 1000, abs=2e-3)
    previous_upper, acted = rec.upper_bound["cpu"], None
    for minute in range(1, 24 * 60):
        action = v.decide(observe(minute * 60.0, 4.0, 4 * GIB, 1.0, 3 * GIB, age=60.0))
        upper = v.recommendation.upper_bound["cpu"]
        assert upper <= previous_upper  # the bound only narrows on a steady load
        if action.target["cpu"] != 4.0:
            acted = (minute, action, previous_upper, upper)
            break
        previous_upper = upper
    assert acted is not None, "the VPA never acted on a 4x over-provisioned CPU request"
    minute, action, upper_before, upper_now = acted
    assert upper_before >= 4.0 > upper_now  # acted exactly when the request left the range
    days = v.history.confidence_days()
    assert (1 + 1 / days) * 1.15 * 1.0 < 4.0  # consistent with the confidence formula
    assert 8 * 60 <= minute <= 12 * 60
    rec = v.recommendation
    assert action.target["cpu"] == pytest.approx(math.ceil(rec.target["cpu"] / 0.25) * 0.25)
    assert action.target["cpu"] >= rec.target["cpu"]  # rounded up to the knob grid
    assert "cpu request outside the recommended range" in action.reason


def test_under_provisioned_request_is_raised_once_lower_bound_exceeds_it():
    v = vpa()
    actions = [v.decide(observe(m * 60.0, 0.5, 4 * GIB, 3.0, 3 * GIB, age=60.0)) for m in range(60)]
    raised = [a for a in actions if a.target["cpu"] > 0.5]
    assert raised, "the VPA never raised a starved CPU request"
    assert raised[0].target["cpu"] >= 3.0 and "cpu request outside" in raised[0].reason


def test_oom_raises_memory_recommendation():
    v = vpa()
    v.decide(observe(0, 2.0, 4 * GIB, 1.0, 3.9 * GIB, age=60.0))
    before = v.recommendation.target["memory"]
    action = v.decide(observe(60, 2.0, 4 * GIB, 1.0, 3.9 * GIB, ooms=1, age=120.0))
    # OOM sample: max(4 GiB x 1.2, 4 GiB + 100 MiB) = 4.8 GiB, in the same 24 h interval as the peak.
    assert v.recommendation.target["memory"] > before
    assert v.recommendation.target["memory"] >= 4.8 * GIB
    assert action.target["memory"] >= 5 * GIB  # quick OOM (pod 2 minutes old) forces the update
    assert "OOM" in action.reason or "outside" in action.reason


def test_long_lived_pods_are_updated_when_ten_percent_off():
    """Within [lower, upper] nothing changes for young pods; after 12 h a >10% gap is enough."""
    young, old = vpa(), vpa()
    for m in range(0, 600):
        a_young = young.decide(observe(m * 60.0, 4.0, 16 * GIB, 2.5, 8 * GIB, age=3600.0))
        a_old = old.decide(observe(m * 60.0, 4.0, 16 * GIB, 2.5, 8 * GIB, age=13 * 3600.0))
    assert young.recommendation.lower_bound["cpu"] <= 4.0 <= young.recommendation.upper_bound["cpu"]
    assert a_young.target["cpu"] == 4.0
    assert a_old.target["cpu"] < 4.0 and "older than 12 h" in a_old.reason


def test_no_samples_no_recommendation():
    v = vpa()
    action = v.decide(Observation(0, {"cpu": 4.0, "memory": 16.0 * GIB}, {}))
    assert v.recommendation is None and "No CPU or memory usage samples" in action.reason
    assert action.target == {"cpu": 4.0, "memory": 16.0 * GIB}
