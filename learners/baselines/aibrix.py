"""AIBrix's PodAutoscaler on vLLM engine metrics: its KPA variant and its APA.

AIBrix (vllm-project/aibrix) scrapes each pod's engine metrics itself (no Prometheus in the path), every
reconcile, averages them over the pods, and keeps a stable and a panic time window of those samples.
Both strategies share that pipeline and AIBrix's own cooldown; they differ in the arithmetic:

- **KPA** (``algorithm/kpa.go``, after Knative): desired = ceil(window value / target) for the stable
  and the panic window, each only outside the up/down tolerance band; in panic mode (panic window more
  than ``panic_threshold`` x the stable window) the larger of the two; both bounded by the scale rates.
- **APA** (``algorithm/apa.go``, after Huo et al., J. Phys. Conf. Ser. 2451, 2023): per-pod use over
  the target; above ``1 + up tolerance`` scale to ceil(current x ratio) but at most x ``max_scale_up_rate``,
  below ``1 - down tolerance`` to ceil(current x ratio) but not below current / ``max_scale_down_rate``.

Read for the behaviour at vllm-project/aibrix e3e10f9 (2026-08-22), cited, not copied:
``pkg/controller/podautoscaler/context/context.go`` ``NewBaseScalingContext`` (rates, tolerances,
cooldowns, panic threshold), ``metrics/client.go`` (``DefaultStableWindowDuration`` 180 s,
``DefaultPanicWindowDuration`` 60 s, ``UpdateMetrics`` averaging the pods' values),
``types/metrics.go`` ``TimeWindow`` (one value per 1 s bucket, mean of the buckets in the window),
``autoscaler.go`` (``NewMetricsClient(time.Second)``), ``podautoscaler_controller.go``
(``DefaultResyncInterval`` 10 s, ``stabilizeRecommendation``), the docs page
``docs/source/features/autoscaling/metric-based-autoscaling.rst`` and ``samples/autoscaling/{kpa,apa}.yaml``
(``gpu_cache_usage_perc`` with ``targetValue: 0.5``; APA ``down-fluctuation-tolerance: 0.2``).

Two upstream quirks are kept, and said here so nobody is surprised:

- ``stabilizeRecommendation`` keeps, on a scale-down, the *smallest* recommendation of the last
  ``scale_down_cooldown_s`` (and on a scale-up the largest of the last ``scale_up_cooldown_s``): unlike
  the HPA, AIBrix's cooldown does not hold replicas up; it only filters direction flips.
- At e3e10f9 the scaling context is rebuilt every reconcile, so KPA's "max panic pods" memory is always
  0: panic mode takes the larger of the stable and panic counts but does not hold a panic peak.

And one documented choice: upstream's KPA divides the window value by the per-pod target without
multiplying by the pod count, and its own table tests (``algorithm/kpa_test.go``: "20/10 = 2 pods needed")
read the value as the workload's total, which is what AIBrix's earlier collector recorded
(``KPAMetricsClient.UpdatePodListMetric``: the sum over pods). ``kpa_aggregate: "sum"`` (default) records
that total; ``"mean"`` records e3e10f9's pod average, under which the replica count no longer depends on
how many pods share the load.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from learners.base import RuleBased, register
from learners.objective import Objective
from learners.space import ConfigSpace
from learners.types import Action, Observation

ENGINE_METRICS = ("gpu_cache_usage_perc", "num_requests_waiting", "num_requests_running")
"""The per-pod vLLM metrics a PodAutoscaler can name (``targetMetric``), as AIBrix scrapes them."""


def per_pod_value(obs: Observation, metric: str, ready: int) -> float | None:
    """The pod average of one vLLM engine metric, from the Observation's names.

    ``gpu_cache_usage_perc`` is ``kv_cache_usage`` (already a mean over ready pods); the request counts
    are workload sums (``queue_length``, ``requests_running``) divided by the ready pods. None when the
    metric is missing or no pod is ready (AIBrix: no snapshot, no recommendation).
    """
    if ready <= 0:
        return None
    if metric == "gpu_cache_usage_perc":
        v = obs.metrics.get("kv_cache_usage")
        return float(v) if v is not None and math.isfinite(v) else None
    name = "queue_length" if metric == "num_requests_waiting" else "requests_running"
    v = obs.metrics.get(name)
    return float(v) / ready if v is not None and math.isfinite(v) else None


@dataclass(frozen=True)
class AIBrixSettings:
    """A ``PodAutoscaler``; defaults are AIBrix's at e3e10f9, each with its source."""

    metric: str = "gpu_cache_usage_perc"
    """``targetMetric``: one of :data:`ENGINE_METRICS`. KV-cache usage is the metric of AIBrix's samples."""

    target: float = 0.5
    """``targetValue`` (required upstream; 0.5 in samples/autoscaling/kpa.yaml and apa.yaml)."""

    max_scale_up_rate: float = 2.0
    """``autoscaling.aibrix.ai/max-scale-up-rate`` (``MaxScaleUpRate: 2``, context.go)."""

    max_scale_down_rate: float = 2.0
    """``autoscaling.aibrix.ai/max-scale-down-rate`` (``MaxScaleDownRate: 2``, context.go)."""

    up_tolerance: float = 0.1
    """``autoscaling.aibrix.ai/scale-up-tolerance`` (``UpFluctuationTolerance: 0.1``, context.go)."""

    down_tolerance: float = 0.1
    """``autoscaling.aibrix.ai/scale-down-tolerance`` (``DownFluctuationTolerance: 0.1``, context.go;
    the APA sample sets 0.2)."""

    scale_up_cooldown_s: float = 0.0
    """``autoscaling.aibrix.ai/scale-up-cooldown-window`` (``ScaleUpCooldownWindow: 0s``, context.go)."""

    scale_down_cooldown_s: float = 300.0
    """``autoscaling.aibrix.ai/scale-down-cooldown-window`` (``ScaleDownCooldownWindow: 300s``)."""

    panic_threshold: float = 2.0
    """``autoscaling.aibrix.ai/panic-threshold`` (``PanicThreshold: 2.0``, context.go). KPA only."""

    stable_window_s: float = 180.0
    """``spec.observeWindowSeconds`` (``DefaultStableWindowDuration`` 180 s, metrics/client.go)."""

    panic_window_s: float = 60.0
    """``spec.panicWindowSeconds`` (``DefaultPanicWindowDuration`` 60 s, metrics/client.go). KPA only."""

    window_granularity_s: float = 1.0
    """``NewMetricsClient(time.Second)`` (autoscaler.go): one value per second in the windows."""

    resync_s: float = 10.0
    """``DefaultResyncInterval`` (10 s, podautoscaler_controller.go): how often ``decide`` is called."""

    kpa_aggregate: str = "sum"
    """KPA only: ``"sum"`` records the pods' total (upstream's tests and earlier collector); ``"mean"``
    their average (e3e10f9's ``UpdateMetrics``). See the module docstring."""

    def __post_init__(self) -> None:
        if self.metric not in ENGINE_METRICS:
            raise ValueError(f"AIBrix metric must be one of {ENGINE_METRICS}, got {self.metric!r}")
        if not self.target > 0 or not math.isfinite(self.target):
            raise ValueError(f"AIBrix target must be a positive number, got {self.target}")
        if self.max_scale_up_rate < 1 or self.max_scale_down_rate < 1:
            raise ValueError("AIBrix max_scale_up_rate and max_scale_down_rate must be at least 1")
        if self.up_tolerance < 0 or self.down_tolerance < 0 or self.down_tolerance >= 1:
            raise ValueError("AIBrix tolerances must be non-negative, the down tolerance below 1")
        if self.scale_up_cooldown_s < 0 or self.scale_down_cooldown_s < 0:
            raise ValueError("AIBrix cooldown windows must not be negative")
        if not 0 < self.panic_window_s <= self.stable_window_s <= 3600:
            raise ValueError("AIBrix windows need 0 < panic_window_s <= stable_window_s <= 3600 "
                             "(the PodAutoscaler validation)")
        if self.window_granularity_s <= 0 or self.resync_s <= 0 or self.panic_threshold <= 0:
            raise ValueError("AIBrix window_granularity_s, resync_s and panic_threshold must be positive")
        if self.kpa_aggregate not in ("sum", "mean"):
            raise ValueError(f"AIBrix kpa_aggregate must be 'sum' or 'mean', got {self.kpa_aggregate!r}")


class TimeWindow:
    """``types.TimeWindow``: one value per time bucket (a later value overwrites), buckets older than
    ``duration_s`` dropped, and the mean of the values kept."""

    def __init__(self, duration_s: float, granularity_s: float = 1.0) -> None:
        self.duration_s = duration_s
        self.granularity_s = granularity_s
        self.buckets: dict[int, float] = {}

    def record(self, t: float, value: float) -> None:
        bucket = math.floor(t / self.granularity_s + 1e-9)
        self.buckets[bucket] = value
        cutoff = math.floor((t - self.duration_s) / self.granularity_s + 1e-9)
        for b in [b for b in self.buckets if b < cutoff]:
            del self.buckets[b]

    def values(self) -> list[float]:
        """The kept values, oldest first (``Values``)."""
        return [self.buckets[b] for b in sorted(self.buckets)]

    def average(self) -> float:
        return sum(self.buckets.values()) / len(self.buckets) if self.buckets else 0.0


# --------------------------------------------------------------------------------------------------
# The two algorithms (pure functions, so upstream's table tests port one to one)
# --------------------------------------------------------------------------------------------------


def should_panic(stable: float, panic: float, panic_threshold: float) -> bool:
    """``shouldEnterPanicMode``: no stable load yet, or the panic window above threshold x the stable one."""
    return stable <= 0 or panic / stable > panic_threshold


def kpa_replicas(current: float, stable: float, panic: float, target: float, s: AIBrixSettings,
                 in_panic: bool | None = None, max_panic_pods: int = 0, activation_scale: int = 1) -> int:
    """``KPAAlgorithm.computeTargetReplicas``. ``in_panic`` None: decided by :func:`should_panic`, as
    ``ComputeRecommendation`` does; ``max_panic_pods`` and ``activation_scale`` are what the base scaling
    context reports at e3e10f9 (0 and 1), settable for upstream's table tests."""
    if in_panic is None:
        in_panic = should_panic(stable, panic, s.panic_threshold)
    ready = max(0.0, current)
    max_up = max(1.0, math.ceil(s.max_scale_up_rate * ready))
    max_down = math.floor(ready / s.max_scale_down_rate)
    up_at, down_at = target * (1 + s.up_tolerance), target * (1 - s.down_tolerance)

    def pods(value: float) -> float:
        return math.ceil(value / target) if value > up_at or value < down_at else current

    desired_stable = int(min(max(pods(stable), max_down), max_up))
    desired_panic = int(min(max(pods(panic), max_down), max_up))
    if activation_scale > 1:  # only once activated (desired > 0)
        if 0 < desired_stable < activation_scale:
            desired_stable = activation_scale
        if 0 < desired_panic < activation_scale:
            desired_panic = activation_scale
    desired = desired_stable
    if in_panic:  # the larger of the two, never below the panic peak
        desired = max(desired, desired_panic, max_panic_pods)
    return desired


def apa_replicas(current: float, per_pod: float, target: float, s: AIBrixSettings) -> int:
    """``APAAlgorithm.computeTargetReplicas``."""
    ratio = per_pod / target
    if ratio > 1 + s.up_tolerance:
        return min(math.ceil(current * ratio), math.ceil(s.max_scale_up_rate * current))
    if ratio < 1 - s.down_tolerance:
        return max(math.ceil(current * ratio), math.floor(current / s.max_scale_down_rate))
    return int(current)


def stabilize(history: deque[tuple[float, int]], now: float, recommendation: int, current: int,
              up_window_s: float, down_window_s: float) -> int:
    """``stabilizeRecommendation``: the largest (scale-up) or smallest (scale-down) recommendation
    strictly inside the direction's window, the new one included; the new one if none is."""
    history.append((now, recommendation))
    horizon = now - max(up_window_s, down_window_s)
    while history and not history[0][0] > horizon:  # cleanOldRecommendations: keep timestamps after it
        history.popleft()
    if recommendation == current:
        return current
    window = up_window_s if recommendation > current else down_window_s
    inside = [r for t, r in history if t > now - window]
    if not inside:
        return recommendation
    return max(inside) if recommendation > current else min(inside)


# --------------------------------------------------------------------------------------------------
# The policies: one reconcile per decide()
# --------------------------------------------------------------------------------------------------


class _AIBrix(RuleBased):
    strategy = ""

    def __init__(self, space: ConfigSpace, settings: AIBrixSettings) -> None:
        if "replicas" not in space:
            raise ValueError(f"the {self.name} baseline needs a 'replicas' knob in the configuration space")
        self.settings = settings
        self.knob = space["replicas"]
        self.min_replicas = math.ceil(self.knob.lower)
        self.max_replicas = math.floor(self.knob.upper)
        self.period_s: float = settings.resync_s
        self.stable = TimeWindow(settings.stable_window_s, settings.window_granularity_s)
        self.panic = TimeWindow(settings.panic_window_s, settings.window_granularity_s)
        self.history: deque[tuple[float, int]] = deque()

    def _ready(self, obs: Observation, current: int) -> int:
        return sum(1 for p in obs.replicas if p.ready) if obs.replicas else current

    def decide(self, obs: Observation) -> Action:
        now = float(obs.time_s)
        current = round(obs.config.get("replicas", self.knob.initial()))
        if current > self.max_replicas:
            return Action({"replicas": float(self.max_replicas)}, "current replicas above maximum")
        if current < self.min_replicas:
            return Action({"replicas": float(self.min_replicas)}, "current replicas below minimum")
        ready = self._ready(obs, current)
        value = per_pod_value(obs, self.settings.metric, ready)
        if value is None:
            return Action({"replicas": float(current)},
                          f"No {self.settings.metric} from any ready pod: keeping {current} replicas.")
        self._record(now, value, ready)
        raw, words = self._recommend(current)
        stabilized = stabilize(self.history, now, raw, current, self.settings.scale_up_cooldown_s,
                               self.settings.scale_down_cooldown_s)
        desired = min(max(stabilized, self.min_replicas), self.max_replicas)
        if stabilized != raw:
            words += f" Cooldown window recommendations give {stabilized}."
        if desired != stabilized:
            words += f" Bounded to {desired} by [{self.min_replicas}, {self.max_replicas}]."
        words += f" Keeping {current} replicas." if desired == current else \
            f" Scaling from {current} to {desired} replicas."
        return Action({"replicas": float(desired)}, words)

    def _record(self, now: float, per_pod: float, ready: int) -> None:
        self.stable.record(now, per_pod)

    def _recommend(self, current: int) -> tuple[int, str]:
        raise NotImplementedError


class AIBrixKPA(_AIBrix):
    """AIBrix's KPA strategy: stable/panic windows of the engine metric."""

    name = "aibrix-kpa"

    def _record(self, now: float, per_pod: float, ready: int) -> None:
        value = per_pod * ready if self.settings.kpa_aggregate == "sum" else per_pod
        self.stable.record(now, value)
        self.panic.record(now, value)

    def _recommend(self, current: int) -> tuple[int, str]:
        s = self.settings
        stable, panic = self.stable.average(), self.panic.average()
        in_panic = should_panic(stable, panic, s.panic_threshold)
        desired = kpa_replicas(current, stable, panic, s.target, s, in_panic)
        what = "total" if s.kpa_aggregate == "sum" else "pod average"
        words = (f"{s.metric} ({what}) averages {stable:.3g} over {s.stable_window_s:.0f} s and {panic:.3g} over "
                 f"{s.panic_window_s:.0f} s against {s.target:.3g} per pod "
                 f"(tolerance -{s.down_tolerance:.0%}/+{s.up_tolerance:.0%}); "
                 f"{'panic' if in_panic else 'stable'} mode calls for {desired}.")
        return desired, words


class AIBrixAPA(_AIBrix):
    """AIBrix's APA strategy: separate up/down tolerance bands and scale rates on the per-pod metric."""

    name = "aibrix-apa"

    def _recommend(self, current: int) -> tuple[int, str]:
        s = self.settings
        per_pod = self.stable.average()
        desired = apa_replicas(current, per_pod, s.target, s)
        words = (f"{s.metric} averages {per_pod:.3g} per pod over {s.stable_window_s:.0f} s against {s.target:.3g} "
                 f"(ratio {per_pod / s.target:.2f}, band {1 - s.down_tolerance:.2f}..{1 + s.up_tolerance:.2f}, "
                 f"rates x{s.max_scale_up_rate:g} up, /{s.max_scale_down_rate:g} down): {desired}.")
        return desired, words


@register("aibrix-kpa", AIBrixSettings, "AIBrix KPA (stable/panic windows on vLLM engine metrics)",
          kinds=("inference",))
def _make_kpa(space: ConfigSpace, objective: Objective, settings: AIBrixSettings) -> AIBrixKPA:
    return AIBrixKPA(space, settings)


@register("aibrix-apa", AIBrixSettings, "AIBrix APA (up/down tolerance bands and scale rates on engine metrics)",
          kinds=("inference",))
def _make_apa(space: ConfigSpace, objective: Objective, settings: AIBrixSettings) -> AIBrixAPA:
    return AIBrixAPA(space, settings)
