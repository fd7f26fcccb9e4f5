"""Knative Serving's pod autoscaler (KPA), re-implemented from knative/serving.

Upstream (knative/serving), read for the algorithm, not copied:

- ``pkg/autoscaler/scaling/autoscaler.go``: ``Scale`` (stable and panic pod counts, rate limits, panic
  mode, scale-down delay) and ``newAutoscaler`` (a new autoscaler starts in panic mode above one pod);
- ``pkg/autoscaler/metrics/collector.go``: ``collection.record`` feeds the same concurrency samples to
  a stable-window and a panic-window average;
- ``pkg/autoscaler/aggregation/bucketing.go``: ``TimedFloat64Buckets.Record`` / ``WindowAverage``;
- ``pkg/autoscaler/aggregation/max/timewindow.go``: the scale-down delay window (max over a window);
- ``pkg/autoscaler/scaling/multiscaler.go``: ``tickInterval = 2 * time.Second``;
- ``pkg/autoscaler/config/config.go`` ``defaultConfig`` and ``config/core/configmaps/autoscaler.yaml``:
  the defaults; ``pkg/reconciler/autoscaling/resources`` (``ResolveMetricTarget``, ``MakeMetric``): the
  target value (container concurrency x target utilization) and the panic window (a percentage of the
  stable window).

Top to bottom: the window average, the delay window, the decider (``Scale``), and the learner that
feeds the decider once per tick.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from learners.base import RuleBased, register
from learners.objective import Objective
from learners.space import ConfigSpace
from learners.types import Action, Observation

TARGET_MIN = 0.01  # autoscaling.TargetMin: the smallest per-pod target Knative accepts
WINDOW_MIN_S, WINDOW_MAX_S = 6.0, 3600.0  # autoscaling.WindowMin / WindowMax for the stable window


@dataclass(frozen=True)
class KPASettings:
    """Knative's ``config-autoscaler`` defaults; each cites its key."""

    container_concurrency_target: float = 100.0
    """``container-concurrency-target-default`` (100): requests in flight one pod should take.
    Users sweep it (it is the knob ``autoscaling.knative.dev/target`` overrides)."""

    target_utilization: float = 0.7
    """``container-concurrency-target-percentage`` (70%): the fraction of the target the autoscaler
    aims for, leaving headroom for bursts. Values above 1 are read as percent, as upstream does."""

    stable_window_s: float = 60.0
    """``stable-window`` (60 s): the window of the stable-mode average and the time panic mode holds."""

    panic_window_percentage: float = 10.0
    """``panic-window-percentage`` (10%): panic window = 10% of the stable window = 6 s."""

    panic_threshold_percentage: float = 200.0
    """``panic-threshold-percentage`` (200%): panic when the panic-window load needs twice the ready pods."""

    max_scale_up_rate: float = 1000.0
    """``max-scale-up-rate`` (1000): at most ready pods x 1000 per decision."""

    max_scale_down_rate: float = 2.0
    """``max-scale-down-rate`` (2): at most halve the ready pods per decision."""

    scale_down_delay_s: float = 0.0
    """``scale-down-delay`` (0 s): hold the highest count of this long a window before scaling down."""

    tick_interval_s: float = 2.0
    """``tickInterval`` in multiscaler.go (2 s): how often ``decide`` is called, and our bucket size."""

    reachable: bool = True
    """Whether a route sends traffic to the revision; unreachable revisions skip the scale-down limit."""

    metric: str = "concurrency_per_replica"
    """Requests in flight per ready pod; times the ready pods gives the revision's total concurrency."""

    def __post_init__(self) -> None:
        if self.target_utilization > 1.0:  # config.go: legacy percentages are turned into fractions
            object.__setattr__(self, "target_utilization", self.target_utilization / 100.0)
        if not 0.0 < self.target_utilization <= 1.0:
            raise ValueError(f"KPA target_utilization must be in (0, 1], got {self.target_utilization}")
        if self.container_concurrency_target * self.target_utilization < TARGET_MIN:
            raise ValueError(f"KPA target concurrency must be at least {TARGET_MIN}")
        if self.max_scale_up_rate <= 1.0 or self.max_scale_down_rate <= 1.0:
            raise ValueError("KPA max_scale_up_rate and max_scale_down_rate must be greater than 1")
        if not WINDOW_MIN_S <= self.stable_window_s <= WINDOW_MAX_S:
            raise ValueError(f"KPA stable_window_s must be in [{WINDOW_MIN_S}, {WINDOW_MAX_S}] s")
        if not 1.0 <= self.panic_window_percentage <= 100.0:
            raise ValueError("KPA panic_window_percentage must be in [1, 100]")
        if self.panic_threshold_percentage <= 0 or self.scale_down_delay_s < 0 or self.tick_interval_s <= 0:
            raise ValueError("KPA panic threshold and tick must be positive, scale-down delay not negative")

    @property
    def target_value(self) -> float:
        """``ResolveMetricTarget``: per-pod concurrency to aim for (100 x 0.7 = 70 by default)."""
        return max(TARGET_MIN, self.container_concurrency_target * self.target_utilization)

    @property
    def panic_window_s(self) -> float:
        """``MakeMetric``: the panic window, never shorter than one bucket."""
        return max(self.tick_interval_s, self.stable_window_s * self.panic_window_percentage / 100.0)


# --------------------------------------------------------------------------------------------------
# Window averages (aggregation/bucketing.go TimedFloat64Buckets)
# --------------------------------------------------------------------------------------------------


class WindowAverager:
    """Sum of samples per time bucket; the average over the buckets of the last window.

    As upstream: a window that started less than a window ago is averaged over the buckets since its
    first write; gaps shorter than the window count as zero; if nothing was written for the last
    ``d`` buckets the average covers the window minus those ``d`` buckets; samples older than a window
    are dropped.
    """

    def __init__(self, window_s: float, granularity_s: float) -> None:
        self.window_s = window_s
        self.granularity_s = granularity_s
        self.size = max(1, math.ceil(window_s / granularity_s - 1e-9))
        self.buckets: dict[int, float] = {}
        self.first: int | None = None
        self.last: int | None = None

    def _index(self, t: float) -> int:
        return math.floor(t / self.granularity_s + 1e-9)

    def record(self, t: float, value: float) -> None:
        b = self._index(t)
        if self.last is not None and self.first is not None and b < self.last:
            if b <= self.last - self.size:  # older than a window: ignored
                return
            self.buckets[b] = self.buckets.get(b, 0.0) + value
            self.first = min(self.first, b)
            return
        if self.last is None or b - self.last >= self.size:  # nothing for a whole window: start over
            self.buckets, self.first = {}, b
        self.last = b
        self.buckets[b] = self.buckets.get(b, 0.0) + value
        for old in [k for k in self.buckets if k <= b - self.size]:
            del self.buckets[old]

    def is_empty(self, now: float) -> bool:
        """No data for more than a window (``IsEmpty``)."""
        return self.last is None or (self._index(now) - self.last) * self.granularity_s > self.window_s

    def average(self, now: float) -> float:
        if self.last is None or self.first is None or self.is_empty(now):
            return 0.0
        b = self._index(now)
        lag = b - self.last
        span = self.last - self.first + 1
        if lag <= 0:
            total = sum(v for k, v in self.buckets.items() if k > self.last - self.size)
            return total / min(span, self.size)
        if lag < self.size:
            total = sum(v for k, v in self.buckets.items() if b - self.size < k <= self.last)
            return total / min(span, self.size - lag)
        return 0.0


class MaxWindow:
    """``max.TimeWindow``: the largest value recorded in the last ``duration_s`` (bucketed)."""

    def __init__(self, duration_s: float, granularity_s: float) -> None:
        self.granularity_s = granularity_s
        self.size = max(1, math.ceil(duration_s / granularity_s - 1e-9))
        self.values: list[tuple[int, int]] = []

    def record(self, t: float, value: int) -> None:
        index = math.floor(t / self.granularity_s + 1e-9)
        self.values = [(i, v) for i, v in self.values if index - i < self.size and v > value]
        self.values.append((index, value))

    def current(self) -> int:
        return max(v for _, v in self.values)


# --------------------------------------------------------------------------------------------------
# The decider (scaling/autoscaler.go)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeciderSpec:
    """The fields of Knative's ``DeciderSpec`` that ``Scale`` reads."""

    target_value: float
    max_scale_up_rate: float
    max_scale_down_rate: float
    panic_threshold: float
    """A factor: 2.0 for 200%."""
    stable_window_s: float
    scale_down_delay_s: float = 0.0
    reachable: bool = True
    tick_interval_s: float = 2.0

    @classmethod
    def from_settings(cls, s: KPASettings) -> DeciderSpec:
        return cls(s.target_value, s.max_scale_up_rate, s.max_scale_down_rate,
                   s.panic_threshold_percentage / 100.0, s.stable_window_s, s.scale_down_delay_s,
                   s.reachable, s.tick_interval_s)


@dataclass(frozen=True)
class ScaleResult:
    """One ``Scale`` call: the count it wants and the numbers behind it."""

    desired: int
    stable_pods: int
    """ceil(stable average / target), before rate limits."""
    panic_pods: int
    """ceil(panic average / target), before rate limits."""
    max_scale_up: int
    max_scale_down: int
    panicking: bool
    delayed_from: int | None = None
    """The count before the scale-down delay raised it, when it did."""


class Decider:
    """``autoscaler``: the panic state carried between ``Scale`` calls, and the arithmetic."""

    def __init__(self, spec: DeciderSpec, ready_pods: int, now: float) -> None:
        self.spec = spec
        # newAutoscaler: start in panic above one pod, so a restart (lost history) does not scale down.
        self.panic_time: float | None = now if ready_pods > 1 else None
        self.max_panic_pods = ready_pods
        self.delay = (MaxWindow(spec.scale_down_delay_s, spec.tick_interval_s)
                      if spec.scale_down_delay_s > 0 else None)

    def scale(self, now: float, stable: float, panic: float, ready_pods: int) -> ScaleResult:
        spec = self.spec
        ready = max(1.0, float(ready_pods))  # "Use 1 if there are zero current pods."
        max_up = math.ceil(spec.max_scale_up_rate * ready)
        max_down = math.floor(ready / spec.max_scale_down_rate) if spec.reachable else 0
        dspc = math.ceil(stable / spec.target_value)
        dppc = math.ceil(panic / spec.target_value)
        desired_stable = int(min(max(dspc, max_down), max_up))
        desired_panic = int(min(max(dppc, max_down), max_up))

        over_threshold = dppc / ready >= spec.panic_threshold
        if over_threshold:  # begin panicking, or extend the panic
            self.panic_time = now
        elif self.panic_time is not None and self.panic_time + spec.stable_window_s < now:
            self.panic_time, self.max_panic_pods = None, 0  # the surge reached the stable window

        desired = desired_stable
        if self.panic_time is not None:  # never scale down while panicking
            desired = max(desired, desired_panic)
            self.max_panic_pods = max(self.max_panic_pods, desired)
            desired = self.max_panic_pods

        delayed_from = None
        if self.delay is not None:
            self.delay.record(now, desired)
            if self.delay.current() != desired:
                delayed_from, desired = desired, self.delay.current()
        return ScaleResult(desired, dspc, dppc, max_up, max_down, self.panic_time is not None,
                           delayed_from)


# --------------------------------------------------------------------------------------------------
# The learner: one tick per decide()
# --------------------------------------------------------------------------------------------------


class KPA(RuleBased):
    """Knative's autoscaler for one revision, fed ``concurrency_per_replica`` every ``period_s``."""

    name = "kpa"

    def __init__(self, space: ConfigSpace, settings: KPASettings) -> None:
        if "replicas" not in space:
            raise ValueError("the kpa baseline needs a 'replicas' knob in the configuration space")
        self.settings = settings
        self.knob = space["replicas"]
        self.period_s: float = settings.tick_interval_s
        self.spec = DeciderSpec.from_settings(settings)
        self.stable = WindowAverager(settings.stable_window_s, settings.tick_interval_s)
        self.panic = WindowAverager(settings.panic_window_s, settings.tick_interval_s)
        self.decider: Decider | None = None  # created at the first tick, when the ready count is known
        self.last_result: ScaleResult | None = None

    def _ready(self, obs: Observation, current: int) -> int:
        if obs.replicas:
            return sum(1 for pod in obs.replicas if pod.ready)
        return current

    def decide(self, obs: Observation) -> Action:
        now = float(obs.time_s)
        current = round(obs.config.get("replicas", self.knob.initial()))
        ready = self._ready(obs, current)
        per_pod = obs.metrics.get(self.settings.metric)
        if per_pod is not None and math.isfinite(per_pod):
            # The collector records the revision's total concurrency; a per-ready-pod figure times the
            # ready pods restores it (at least one pod, as Scale does, so load at zero ready pods counts).
            total = float(per_pod) * max(1, ready)
            self.stable.record(now, total)
            self.panic.record(now, total)
        if self.decider is None:
            self.decider = Decider(self.spec, ready, now)
        if self.stable.is_empty(now):  # ErrNoData: no scale result, nothing changes
            return Action({"replicas": float(current)},
                          f"No {self.settings.metric} data yet: keeping {current} replicas.")

        stable, panic = self.stable.average(now), self.panic.average(now)
        result = self.decider.scale(now, stable, panic, ready)
        self.last_result = result
        desired = min(max(result.desired, math.ceil(self.knob.lower)), math.floor(self.knob.upper))
        return Action({"replicas": float(desired)}, self._reason(result, stable, panic, ready, current,
                                                                 desired))

    def _reason(self, r: ScaleResult, stable: float, panic: float, ready: int, current: int,
                desired: int) -> str:
        s = self.settings
        words = [
            f"Concurrency averages {stable:.1f} over the {s.stable_window_s:.0f} s stable window and "
            f"{panic:.1f} over the {s.panic_window_s:.0f} s panic window, against "
            f"{self.spec.target_value:.3g} per pod "
            f"({s.container_concurrency_target:.3g} x {s.target_utilization:.0%}): "
            f"{r.stable_pods} pods for the stable load, {r.panic_pods} for the panic load, "
            f"{ready} ready."
        ]
        if r.panicking:
            words.append(f"Panic mode (panic load needs at least {self.spec.panic_threshold:.3g}x the "
                         f"ready pods, or did within the last {s.stable_window_s:.0f} s): never scaling "
                         "down while panicking.")
        if r.delayed_from is not None:
            words.append(f"Scale-down delay of {s.scale_down_delay_s:.0f} s holds {r.desired} instead "
                         f"of {r.delayed_from}.")
        if r.desired in (r.max_scale_up, r.max_scale_down) and r.desired not in (r.stable_pods,
                                                                                r.panic_pods):
            words.append(f"Rate limits allow {r.max_scale_down} to {r.max_scale_up} pods.")
        if desired != r.desired:
            words.append(f"Bounded to {desired} by the replica limits "
                         f"[{self.knob.lower:.0f}, {self.knob.upper:.0f}].")
        words.append(f"Keeping {current} replicas." if desired == current
                     else f"Scaling from {current} to {desired} replicas.")
        return " ".join(words)


@register("kpa", KPASettings, "Knative Pod Autoscaler (stable/panic windows on request concurrency)",
          kinds=("inference",))
def _make(space: ConfigSpace, objective: Objective, settings: KPASettings) -> KPA:
    return KPA(space, settings)
