"""Kubernetes Vertical Pod Autoscaler: the recommender, and the updater's rule for acting on it.

Upstream (kubernetes/autoscaler, ``vertical-pod-autoscaler/``), read for the algorithm, not copied:

- ``pkg/recommender/util/histogram_options.go``, ``histogram.go``, ``decaying_histogram.go``: bucketed
  histograms whose samples lose half their weight every half-life;
- ``pkg/recommender/model/aggregations_config.go``: bucket sizes, growth, half-lives, epsilon;
- ``pkg/recommender/model/aggregate_container_state.go``: CPU samples weighted by the CPU request;
- ``pkg/recommender/model/container.go``: one memory peak per aggregation interval, the OOM bump;
- ``pkg/recommender/logic/estimator.go``: percentile, margin, confidence and minimum estimators;
- ``pkg/recommender/logic/recommender.go``: ``CreatePodResourceRecommender`` (which percentiles, the
  15% margin, the confidence multipliers, the 25m / 250Mi minimum);
- ``pkg/recommender/main.go``: ``--recommender-interval`` (1 min);
- ``pkg/updater/priority/update_priority_calculator.go``: update a pod when its request is outside
  [lower bound, upper bound], or when it has lived 12 h and is more than 10% off the target, or when it
  OOMed soon after starting.

Top to bottom: histograms, the aggregated history of the workload's container, the estimators (small
pieces composed like upstream's ``WithMargin(WithConfidence(Percentile))``), the recommender, and the
learner that feeds samples and applies the updater's rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

from learners.base import RuleBased, register
from learners.objective import Objective
from learners.space import Config, ConfigSpace, Knob
from learners.types import Action, Observation

MIN_SAMPLE_WEIGHT = 0.1  # aggregations_config.go minSampleWeight
EPSILON = 0.001 * MIN_SAMPLE_WEIGHT  # aggregations_config.go epsilon: smallest weight a bucket keeps
MAX_DECAY_EXPONENT = 100  # decaying_histogram.go maxDecayExponent
MAX_RESOURCE_AMOUNT = 10**14  # model/types.go MaxResourceAmount (millicores or bytes)
MIB = 1024 * 1024
DAY_S = 24 * 3600.0


# --------------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VPASettings:
    """The recommender's and updater's defaults; each cites its flag or constant."""

    recommender_interval_s: float = 60.0
    """``--recommender-interval`` (1 min): how often ``decide`` is called; one usage sample each time."""

    target_cpu_percentile: float = 0.9
    """recommender.go ``targetCPUPercentile`` (``--target-cpu-percentile``)."""
    lower_bound_cpu_percentile: float = 0.5
    """recommender.go ``lowerBoundCPUPercentile``."""
    upper_bound_cpu_percentile: float = 0.95
    """recommender.go ``upperBoundCPUPercentile``."""
    target_memory_percentile: float = 0.9
    """recommender.go ``targetMemoryPeaksPercentile`` (of the per-interval memory peaks)."""
    lower_bound_memory_percentile: float = 0.5
    """recommender.go ``lowerBoundMemoryPeaksPercentile``."""
    upper_bound_memory_percentile: float = 0.95
    """recommender.go ``upperBoundMemoryPeaksPercentile``."""

    safety_margin_fraction: float = 0.15
    """``--recommendation-margin-fraction`` (0.15), added to target and both bounds."""
    pod_min_cpu_millicores: float = 25.0
    """``--pod-recommendation-min-cpu-millicores`` (25)."""
    pod_min_memory_mb: float = 250.0
    """``--pod-recommendation-min-memory-mb`` (250, in MiB: upstream multiplies by 1024 * 1024)."""

    upper_bound_confidence_multiplier: float = 1.0
    """recommender.go ``WithConfidenceMultiplier(1.0, 1.0, upper)``: x (1 + 1/days)."""
    upper_bound_confidence_exponent: float = 1.0
    lower_bound_confidence_multiplier: float = 0.001
    """recommender.go ``WithConfidenceMultiplier(0.001, -2.0, lower)``: x (1 + 0.001/days)^-2."""
    lower_bound_confidence_exponent: float = -2.0

    cpu_histogram_decay_half_life_s: float = DAY_S
    """``--cpu-histogram-decay-half-life`` (24 h), aggregations_config.go DefaultCPUHistogramDecayHalfLife."""
    memory_histogram_decay_half_life_s: float = DAY_S
    """``--memory-histogram-decay-half-life`` (24 h)."""
    memory_aggregation_interval_s: float = DAY_S
    """``--memory-aggregation-interval`` (24 h): one memory peak per interval."""
    histogram_bucket_size_growth: float = 0.05
    """aggregations_config.go DefaultHistogramBucketSizeGrowth: each bucket 5% wider than the last."""
    cpu_first_bucket_cores: float = 0.01
    """aggregations_config.go cpuHistogramOptions: first bucket 0.01 cores, up to 1000 cores."""
    memory_first_bucket_bytes: float = 1e7
    """aggregations_config.go memoryHistogramOptions: first bucket 10 MB, up to 1 TB."""

    oom_bump_up_ratio: float = 1.2
    """container.go OOMBumpUpRatio (``--oom-bump-up-ratio``)."""
    oom_min_bump_up_bytes: float = 100 * MIB
    """container.go OOMMinBumpUp (``--oom-min-bump-up-bytes``, 100 MiB)."""

    pod_update_threshold: float = 0.1
    """Updater ``--pod-update-threshold`` (0.1): long-lived pods are updated when this far off target."""
    pod_lifetime_update_threshold_s: float = 12 * 3600.0
    """Updater ``--in-recommendation-bounds-eviction-lifetime-threshold`` (12 h)."""
    evict_after_oom_threshold_s: float = 600.0
    """Updater ``--evict-after-oom-threshold`` (10 min): an OOM this soon after start forces an update."""

    cpu_metric: str = "cpu_usage_cores"
    """Mean CPU usage of one replica over the interval, in cores."""
    memory_metric: str = "memory_bytes_peak"
    """Largest memory working set of one replica over the interval, in bytes."""

    def __post_init__(self) -> None:
        for name in ("target_cpu_percentile", "lower_bound_cpu_percentile", "upper_bound_cpu_percentile",
                     "target_memory_percentile", "lower_bound_memory_percentile",
                     "upper_bound_memory_percentile"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"VPA {name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("recommender_interval_s", "cpu_histogram_decay_half_life_s",
                     "memory_histogram_decay_half_life_s", "memory_aggregation_interval_s",
                     "histogram_bucket_size_growth", "cpu_first_bucket_cores", "memory_first_bucket_bytes"):
            if not getattr(self, name) > 0:
                raise ValueError(f"VPA {name} must be positive, got {getattr(self, name)}")
        if self.safety_margin_fraction < 0 or self.oom_bump_up_ratio < 1:
            raise ValueError("VPA safety margin must not be negative and the OOM bump ratio at least 1")


# --------------------------------------------------------------------------------------------------
# Histograms (util/histogram_options.go, histogram.go, decaying_histogram.go)
# --------------------------------------------------------------------------------------------------


class HistogramOptions(Protocol):
    num_buckets: int
    epsilon: float

    def find_bucket(self, value: float) -> int: ...

    def bucket_start(self, bucket: int) -> float: ...


@dataclass(frozen=True)
class LinearHistogramOptions:
    """Buckets of equal ``bucket_size`` from 0; the last one starts at or above ``max_value``."""

    max_value: float
    bucket_size: float
    epsilon: float = EPSILON

    @property
    def num_buckets(self) -> int:
        return math.ceil(self.max_value / self.bucket_size) + 1

    def find_bucket(self, value: float) -> int:
        return min(max(int(value / self.bucket_size), 0), self.num_buckets - 1)

    def bucket_start(self, bucket: int) -> float:
        return bucket * self.bucket_size


@dataclass(frozen=True)
class ExponentialHistogramOptions:
    """Bucket ``n`` has size ``first_bucket_size * ratio**n``, so it starts at
    ``first_bucket_size * (ratio**n - 1) / (ratio - 1)``; the last one starts at or above ``max_value``."""

    max_value: float
    first_bucket_size: float
    ratio: float
    epsilon: float = EPSILON

    @property
    def num_buckets(self) -> int:
        return math.ceil(math.log(self.max_value * (self.ratio - 1) / self.first_bucket_size + 1)
                         / math.log(self.ratio)) + 1

    def find_bucket(self, value: float) -> int:
        if value < self.first_bucket_size:
            return 0
        n = self.num_buckets
        bucket = min(int(math.log(value * (self.ratio - 1) / self.first_bucket_size + 1)
                         / math.log(self.ratio)), n - 1)
        # The inverse of bucket_start, guarded against a log landing a hair off a bucket edge.
        while bucket + 1 < n and self.bucket_start(bucket + 1) <= value:
            bucket += 1
        while bucket > 0 and self.bucket_start(bucket) > value:
            bucket -= 1
        return bucket

    def bucket_start(self, bucket: int) -> float:
        if bucket == 0:
            return 0.0
        return self.first_bucket_size * (self.ratio**bucket - 1) / (self.ratio - 1)


class Histogram:
    """Total sample weight per bucket; a bucket lighter than ``epsilon`` counts as empty."""

    def __init__(self, options: HistogramOptions) -> None:
        self.options = options
        n = options.num_buckets
        self.weights = [0.0] * n
        self.total_weight = 0.0
        self.min_bucket, self.max_bucket = n - 1, 0

    def add_sample(self, value: float, weight: float) -> None:
        if weight < 0:
            raise ValueError("sample weight must be non-negative")
        bucket = self.options.find_bucket(value)
        self.weights[bucket] += weight
        self.total_weight += weight
        if self.weights[bucket] >= self.options.epsilon:  # a lighter bucket still counts as empty
            self.min_bucket = min(self.min_bucket, bucket)
            self.max_bucket = max(self.max_bucket, bucket)

    def subtract_sample(self, value: float, weight: float) -> None:
        """Remove weight; what falls below epsilon becomes zero (``safeSubtract``)."""
        if weight < 0:
            raise ValueError("sample weight must be non-negative")
        bucket = self.options.find_bucket(value)
        eps = self.options.epsilon
        self.total_weight = _safe_subtract(self.total_weight, weight, eps)
        self.weights[bucket] = _safe_subtract(self.weights[bucket], weight, eps)
        self._update_min_max()

    def merge(self, other: Histogram) -> None:
        if other.options != self.options:
            raise ValueError("can't merge histograms with different options")
        for b in range(other.min_bucket, other.max_bucket + 1):
            self.weights[b] += other.weights[b]
        self.total_weight += other.total_weight
        self.min_bucket = min(self.min_bucket, other.min_bucket)
        self.max_bucket = max(self.max_bucket, other.max_bucket)

    def is_empty(self) -> bool:
        return self.weights[self.min_bucket] < self.options.epsilon

    def percentile(self, percentile: float) -> float:
        """The end of the first bucket where the cumulative weight reaches ``percentile`` of the total
        (the start of the last bucket, which has no end); 0 for an empty histogram."""
        if self.is_empty():
            return 0.0
        threshold = percentile * self.total_weight
        partial, bucket = 0.0, self.min_bucket
        while bucket < self.max_bucket:
            partial += self.weights[bucket]
            if partial >= threshold:
                break
            bucket += 1
        if bucket < self.options.num_buckets - 1:
            return self.options.bucket_start(bucket + 1)
        return self.options.bucket_start(bucket)

    def scale(self, factor: float) -> None:
        """Multiply every weight (percentiles do not change); buckets may fall below epsilon."""
        if factor < 0:
            raise ValueError("scale factor must be non-negative")
        for b in range(self.min_bucket, self.max_bucket + 1):
            self.weights[b] *= factor
        self.total_weight *= factor
        self._update_min_max()

    def _update_min_max(self) -> None:
        eps, last = self.options.epsilon, self.options.num_buckets - 1
        while self.weights[self.min_bucket] < eps and self.min_bucket < last:
            self.min_bucket += 1
        while self.weights[self.max_bucket] < eps and self.max_bucket > 0:
            self.max_bucket -= 1


def _safe_subtract(value: float, sub: float, epsilon: float) -> float:
    value -= sub
    return 0.0 if value < epsilon else value


class DecayingHistogram(Histogram):
    """A sample at time ``t`` weighs ``2**((t - reference) / half_life)`` times its weight, so every
    half-life halves the importance of the past. The reference moves forward (rescaling the weights)
    before the exponent exceeds ``MAX_DECAY_EXPONENT``."""

    def __init__(self, options: HistogramOptions, half_life_s: float) -> None:
        super().__init__(options)
        self.half_life_s = half_life_s
        self.reference_s = 0.0

    def add_sample_at(self, value: float, weight: float, t: float) -> None:
        self.add_sample(value, weight * self._decay_factor(t))

    def subtract_sample_at(self, value: float, weight: float, t: float) -> None:
        self.subtract_sample(value, weight * self._decay_factor(t))

    def _shift_reference(self, new_reference: float) -> None:
        new_reference = _round_half_up(new_reference / self.half_life_s) * self.half_life_s
        exponent = _round_half_up((self.reference_s - new_reference) / self.half_life_s)
        self.scale(math.ldexp(1.0, exponent))
        self.reference_s = new_reference

    def _decay_factor(self, t: float) -> float:
        if t > self.reference_s + self.half_life_s * MAX_DECAY_EXPONENT:
            self._shift_reference(t)
        return 2.0 ** ((t - self.reference_s) / self.half_life_s)


def _round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


# --------------------------------------------------------------------------------------------------
# The workload's usage history (model/aggregate_container_state.go + model/container.go)
# --------------------------------------------------------------------------------------------------


@dataclass
class ContainerHistory:
    """Everything the recommender knows about the workload's container: a CPU usage histogram, a
    histogram of per-interval memory peaks, and the sample count and span behind the confidence."""

    settings: VPASettings
    cpu: DecayingHistogram = field(init=False)
    memory_peaks: DecayingHistogram = field(init=False)
    first_sample_s: float | None = None
    last_sample_s: float | None = None
    total_samples: int = 0
    # container.go ContainerState: the memory peak of the current interval.
    memory_peak: float = 0.0
    oom_peak: float = 0.0
    window_end_s: float | None = None
    last_memory_sample_s: float | None = None

    def __post_init__(self) -> None:
        s = self.settings
        ratio = 1.0 + s.histogram_bucket_size_growth
        self.cpu = DecayingHistogram(
            ExponentialHistogramOptions(1000.0, s.cpu_first_bucket_cores, ratio, EPSILON),
            s.cpu_histogram_decay_half_life_s)
        self.memory_peaks = DecayingHistogram(
            ExponentialHistogramOptions(1e12, s.memory_first_bucket_bytes, ratio, EPSILON),
            s.memory_histogram_decay_half_life_s)

    def add_cpu_sample(self, t: float, usage_cores: float, request_cores: float) -> bool:
        """Weighted by the request: raising the request makes the past count less, which helps react
        quickly to CPU starvation (aggregate_container_state.go addCPUSample)."""
        if usage_cores < 0 or (self.last_sample_s is not None and t <= self.last_sample_s):
            return False  # invalid, duplicate or out of order
        self.cpu.add_sample_at(usage_cores, max(request_cores, MIN_SAMPLE_WEIGHT), t)
        self.first_sample_s = t if self.first_sample_s is None else min(self.first_sample_s, t)
        self.last_sample_s = t
        self.total_samples += 1
        return True

    def add_memory_sample(self, t: float, usage_bytes: float, is_oom: bool = False) -> bool:
        """Keep one peak per memory aggregation interval in the histogram (container.go addMemorySample)."""
        if usage_bytes < 0 or (not is_oom and self.last_memory_sample_s is not None
                               and t < self.last_memory_sample_s):
            return False
        self.last_memory_sample_s = t
        if self.window_end_s is None:
            self.window_end_s = t
        interval = self.settings.memory_aggregation_interval_s
        add_new_peak = False
        if t < self.window_end_s:
            old_peak = max(self.memory_peak, self.oom_peak)
            if old_peak != 0 and usage_bytes > old_peak:  # replace this interval's peak
                self.memory_peaks.subtract_sample_at(old_peak, 1.0, self.window_end_s)
                add_new_peak = True
        else:  # move on to the interval that contains t
            elapsed = t - self.window_end_s
            self.window_end_s += elapsed - math.fmod(elapsed, interval) + interval
            self.memory_peak = self.oom_peak = 0.0
            add_new_peak = True
        if add_new_peak:
            self.memory_peaks.add_sample_at(usage_bytes, 1.0, self.window_end_s)
            if is_oom:
                self.oom_peak = usage_bytes
            else:
                self.memory_peak = usage_bytes
        return True

    def record_oom(self, t: float, requested_memory_bytes: float) -> bool:
        """An OOM kill says the container needed more than it had: record max(used x 1.2, used + 100
        MiB) as a memory sample, where used = max(request, this interval's peak) (container.go RecordOOM)."""
        interval = self.settings.memory_aggregation_interval_s
        if self.window_end_s is not None and t < self.window_end_s - interval:
            return False  # too old
        used = max(requested_memory_bytes, self.memory_peak)
        needed = max(used + self.settings.oom_min_bump_up_bytes, used * self.settings.oom_bump_up_ratio)
        return self.add_memory_sample(t, float(int(needed)), is_oom=True)

    def confidence_days(self) -> float:
        """estimator.go getConfidence: min(history span in days, samples / (60 x 24)); for one sample
        a minute over N days, N."""
        if self.first_sample_s is None or self.last_sample_s is None:
            return 0.0
        lifespan = (self.last_sample_s - self.first_sample_s) / DAY_S
        return min(lifespan, self.total_samples / (60 * 24))


# --------------------------------------------------------------------------------------------------
# Estimators (logic/estimator.go): small pieces composed into target, lower and upper bound
# --------------------------------------------------------------------------------------------------


def _amount(x: float) -> int:
    """model/types.go resourceAmountFromFloat: an integer amount in [0, MaxResourceAmount]."""
    if math.isnan(x) or x < 0:
        return 0
    if x > MAX_RESOURCE_AMOUNT:
        return MAX_RESOURCE_AMOUNT
    return int(x)


@dataclass(frozen=True)
class Resources:
    """CPU in millicores and memory in bytes, integers as upstream's ``ResourceAmount``."""

    cpu_millicores: int
    memory_bytes: int

    @property
    def cpu_cores(self) -> float:
        return self.cpu_millicores / 1000.0

    def scaled(self, factor: float) -> Resources:
        """``ScaleResource`` on both resources."""
        return Resources(_amount(self.cpu_millicores * factor), _amount(self.memory_bytes * factor))


class Estimator(Protocol):
    def estimate(self, history: ContainerHistory) -> Resources: ...


@dataclass(frozen=True)
class ConstEstimator:
    resources: Resources

    def estimate(self, history: ContainerHistory) -> Resources:
        return self.resources


@dataclass(frozen=True)
class PercentileEstimator:
    """The given percentiles of the CPU usage and memory peak distributions."""

    cpu_percentile: float
    memory_percentile: float

    def estimate(self, history: ContainerHistory) -> Resources:
        return Resources(_amount(history.cpu.percentile(self.cpu_percentile) * 1000.0),
                         _amount(history.memory_peaks.percentile(self.memory_percentile)))


@dataclass(frozen=True)
class MarginEstimator:
    """Base plus ``fraction`` of itself."""

    fraction: float
    base: Estimator

    def estimate(self, history: ContainerHistory) -> Resources:
        r = self.base.estimate(history)
        margin = r.scaled(self.fraction)
        return Resources(r.cpu_millicores + margin.cpu_millicores, r.memory_bytes + margin.memory_bytes)


@dataclass(frozen=True)
class ConfidenceMultiplier:
    """Base times ``(1 + multiplier / confidence) ** exponent``: wide bounds on short histories."""

    multiplier: float
    exponent: float
    base: Estimator

    def estimate(self, history: ContainerHistory) -> Resources:
        confidence = history.confidence_days()
        term = self.multiplier / confidence if confidence > 0 else math.inf
        return self.base.estimate(history).scaled((1.0 + term) ** self.exponent)


@dataclass(frozen=True)
class MinResourcesEstimator:
    """Base, but at least ``minimum`` of each resource."""

    minimum: Resources
    base: Estimator

    def estimate(self, history: ContainerHistory) -> Resources:
        r = self.base.estimate(history)
        return Resources(max(r.cpu_millicores, self.minimum.cpu_millicores),
                         max(r.memory_bytes, self.minimum.memory_bytes))


@dataclass(frozen=True)
class PodResourceRecommender:
    """``CreatePodResourceRecommender`` for a pod with one container (the minimum is per pod, split
    across containers upstream; one container gets all of it)."""

    target: Estimator
    lower_bound: Estimator
    upper_bound: Estimator

    @classmethod
    def from_settings(cls, s: VPASettings) -> PodResourceRecommender:
        minimum = Resources(_amount(s.pod_min_cpu_millicores), _amount(s.pod_min_memory_mb * MIB))
        target = MarginEstimator(s.safety_margin_fraction,
                                 PercentileEstimator(s.target_cpu_percentile, s.target_memory_percentile))
        lower = MarginEstimator(s.safety_margin_fraction, PercentileEstimator(
            s.lower_bound_cpu_percentile, s.lower_bound_memory_percentile))
        upper = MarginEstimator(s.safety_margin_fraction, PercentileEstimator(
            s.upper_bound_cpu_percentile, s.upper_bound_memory_percentile))
        upper = ConfidenceMultiplier(s.upper_bound_confidence_multiplier, s.upper_bound_confidence_exponent,
                                     upper)
        lower = ConfidenceMultiplier(s.lower_bound_confidence_multiplier, s.lower_bound_confidence_exponent,
                                     lower)
        return cls(MinResourcesEstimator(minimum, target), MinResourcesEstimator(minimum, lower),
                   MinResourcesEstimator(minimum, upper))

    def recommend(self, history: ContainerHistory) -> tuple[Resources, Resources, Resources]:
        return (self.target.estimate(history), self.lower_bound.estimate(history),
                self.upper_bound.estimate(history))


# --------------------------------------------------------------------------------------------------
# The learner: recommender every interval, updater's rule for acting
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recommendation:
    """What a VPA status shows, in knob units (``cpu`` cores, ``memory`` bytes), capped to the knob
    bounds as upstream caps to the container policy's minAllowed / maxAllowed."""

    target: Config
    lower_bound: Config
    upper_bound: Config
    uncapped: tuple[Resources, Resources, Resources]
    confidence_days: float


def _round_up(knob: Knob, value: float) -> float:
    """The smallest admissible value at or above ``value`` (a request is never set below the target)."""
    if knob.choices is not None:
        return next((c for c in knob.choices if c >= value), knob.upper)
    if value <= knob.lower:
        return knob.lower
    steps = math.ceil((value - knob.lower) / knob.step - 1e-9)
    return min(knob.lower + steps * knob.step, knob.upper)


def _show(knob: str, value: float) -> str:
    if knob == "memory":
        return "unbounded" if value >= MAX_RESOURCE_AMOUNT else f"{value / 2**30:.2f} GiB"
    return "unbounded" if value >= MAX_RESOURCE_AMOUNT / 1000 else f"{value:.4g} cores"


class VPA(RuleBased):
    """The VPA recommender for the workload's container, with the updater's rule for applying it."""

    name = "vpa"

    def __init__(self, space: ConfigSpace, settings: VPASettings) -> None:
        self.knobs = tuple(k for k in ("cpu", "memory") if k in space)
        if not self.knobs:
            raise ValueError("the vpa baseline needs a 'cpu' or 'memory' knob in the configuration space")
        self.space = space
        self.settings = settings
        self.period_s: float = settings.recommender_interval_s
        self.history = ContainerHistory(settings)
        self.recommender = PodResourceRecommender.from_settings(settings)
        self.recommendation: Recommendation | None = None
        """The latest recommendation (target, lower and upper bound), for status and reports."""
        self._started_s: float | None = None
        self._last_change_s: float | None = None

    # -- recommender ---------------------------------------------------------------------------------

    def _ingest(self, obs: Observation, now: float) -> None:
        s = self.settings
        cpu = obs.metrics.get(s.cpu_metric)
        if cpu is not None and math.isfinite(cpu):
            self.history.add_cpu_sample(now, float(cpu), float(obs.config.get("cpu", 0.0)))
        memory = obs.metrics.get(s.memory_metric)
        if memory is not None and math.isfinite(memory):
            self.history.add_memory_sample(now, float(memory))
        if obs.events.get("oom_kills", 0) > 0:
            self.history.record_oom(now, float(obs.config.get("memory", 0.0)))

    def _recommend(self) -> Recommendation:
        target, lower, upper = self.recommender.recommend(self.history)

        def as_config(r: Resources) -> Config:
            values = {"cpu": r.cpu_cores, "memory": float(r.memory_bytes)}
            return {k: min(max(values[k], self.space[k].lower), self.space[k].upper) for k in self.knobs}

        return Recommendation(as_config(target), as_config(lower), as_config(upper), (target, lower, upper),
                              self.history.confidence_days())

    # -- updater ---------------------------------------------------------------------------------------

    def _pod_ages(self, obs: Observation, now: float) -> tuple[float, float]:
        """(oldest, youngest) pod age; without per-pod data, the time since our last change."""
        if obs.replicas:
            ages = [pod.age_s for pod in obs.replicas]
            return max(ages), min(ages)
        since = self._last_change_s if self._last_change_s is not None else self._started_s
        age = now - (since if since is not None else now)
        return age, age

    def _update_reason(self, rec: Recommendation, current: Config, obs: Observation,
                       now: float) -> str | None:
        """Why the updater would update the pods now, or None (update_priority_calculator.go AddPod)."""
        s = self.settings
        outside = [k for k in self.knobs
                   if not rec.lower_bound[k] <= current[k] <= rec.upper_bound[k]]
        if outside:
            return f"{' and '.join(outside)} request outside the recommended range"
        oldest, youngest = self._pod_ages(obs, now)
        if obs.events.get("oom_kills", 0) > 0 and youngest < s.evict_after_oom_threshold_s:
            return f"OOM kill within {s.evict_after_oom_threshold_s:.0f} s of start"
        diff = sum(abs(current[k] - rec.target[k]) / max(current[k], self._unit(k)) for k in self.knobs)
        if oldest >= s.pod_lifetime_update_threshold_s and diff >= s.pod_update_threshold:
            return (f"pods older than {s.pod_lifetime_update_threshold_s / 3600:.0f} h are {diff:.0%} off "
                    f"the target (threshold {s.pod_update_threshold:.0%})")
        return None

    @staticmethod
    def _unit(knob: str) -> float:
        """Upstream divides by max(request, 1) in millicores or bytes."""
        return 0.001 if knob == "cpu" else 1.0

    # -- decide ------------------------------------------------------------------------------------------

    def decide(self, obs: Observation) -> Action:
        now = float(obs.time_s)
        if self._started_s is None:
            self._started_s = now
        current = {k: float(obs.config.get(k, self.space[k].initial())) for k in self.knobs}
        self._ingest(obs, now)
        if self.history.total_samples == 0 and self.history.memory_peaks.is_empty():
            return Action(dict(current), "No CPU or memory usage samples yet: no VPA recommendation, "
                                         "requests unchanged.")
        rec = self._recommend()
        self.recommendation = rec
        summary = ", ".join(
            f"{k} target {_show(k, rec.target[k])} (range {_show(k, rec.lower_bound[k])} to "
            f"{_show(k, rec.upper_bound[k])}, current {_show(k, current[k])})" for k in self.knobs)
        head = (f"VPA recommendation from {self.history.total_samples} CPU samples "
                f"(confidence {rec.confidence_days:.3g} days): {summary}.")
        why = self._update_reason(rec, current, obs, now)
        if why is None:
            return Action(dict(current), f"{head} Requests are within the recommended range: unchanged.")
        target = {k: _round_up(self.space[k], rec.target[k]) for k in self.knobs}
        if target != current:
            self._last_change_s = now
        return Action(target, f"{head} Updating to the target: {why}.")


@register("vpa", VPASettings, "Kubernetes Vertical Pod Autoscaler recommender with the updater's rule")
def _make(space: ConfigSpace, objective: Objective, settings: VPASettings) -> VPA:
    return VPA(space, settings)
