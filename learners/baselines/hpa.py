"""Kubernetes Horizontal Pod Autoscaler, re-implemented from kube-controller-manager.

Upstream (kubernetes/kubernetes), read for the algorithm, not copied:

- ``pkg/controller/podautoscaler/replica_calculator.go``: ``calcPlainMetricReplicas`` /
  ``GetResourceReplicas`` (ratio, tolerance, missing and unready pods, the direction-flip checks) and
  ``groupPods``;
- ``pkg/controller/podautoscaler/horizontal.go``: ``reconcileAutoscaler``,
  ``stabilizeRecommendationWithBehaviors``, ``convertDesiredReplicasWithBehaviorRate``,
  ``calculateScaleUpLimitWithScalingRules``, ``calculateScaleDownLimitWithBehaviors``;
- ``pkg/apis/autoscaling/v2/defaults.go``: the default ``behavior``.

The file reads top to bottom like one sync of the controller: group the pods, compute the replica count
from the metric, stabilise it against recent recommendations, then limit the rate of change. Each step is
a plain function so upstream's table tests can be ported one to one (see tests/unit/baselines/test_hpa.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from learners.base import RuleBased, register
from learners.objective import Objective
from learners.space import ConfigSpace
from learners.types import Action, Observation, ReplicaSample

PODS, PERCENT = "Pods", "Percent"  # autoscalingv2.PodsScalingPolicy / PercentScalingPolicy
MAX, MIN, DISABLED = "Max", "Min", "Disabled"  # autoscalingv2.{Max,Min}ChangePolicySelect / Disabled
_INT32_MAX = 2**31 - 1  # the limit functions start from math.MaxInt32 / math.MinInt32


# --------------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScalingPolicy:
    """One ``HPAScalingPolicy``: change by ``value`` pods (or percent) per ``period_s``."""

    type: str
    value: float
    period_s: float

    def __post_init__(self) -> None:
        if self.type not in (PODS, PERCENT):
            raise ValueError(f"HPA scaling policy type must be {PODS!r} or {PERCENT!r}, got {self.type!r}")
        if self.value <= 0 or self.period_s <= 0:
            raise ValueError(f"HPA scaling policy needs a positive value and period, got {self}")

    @classmethod
    def parse(cls, raw: Any) -> ScalingPolicy:
        """Accept a policy, a ``(type, value, period_s)`` sequence or the Kubernetes mapping form."""
        if isinstance(raw, ScalingPolicy):
            return raw
        if isinstance(raw, Mapping):
            period = raw.get("periodSeconds", raw.get("period_s"))
            return cls(str(raw["type"]), float(raw["value"]), float(period))
        kind, value, period = raw
        return cls(str(kind), float(value), float(period))


def _policies(raw: Sequence[Any]) -> tuple[ScalingPolicy, ...]:
    return tuple(ScalingPolicy.parse(p) for p in raw)


@dataclass(frozen=True)
class ScalingRules:
    """One direction of ``HorizontalPodAutoscalerBehavior`` (``HPAScalingRules``)."""

    stabilization_window_s: float
    select_policy: str = MAX
    policies: tuple[ScalingPolicy, ...] = ()


@dataclass(frozen=True)
class HPASettings:
    """Defaults are kube-controller-manager's and the autoscaling/v2 API's; each cites its source."""

    metric: str = "gpu_utilization"
    """Per-pod metric to scale on: ``ReplicaSample.value`` (or ``obs.metrics[metric]`` when the
    observation has no per-pod samples)."""

    target: float = 0.8
    """Target per-pod average of ``metric``. 0.8 is upstream's own default target,
    ``DefaultCPUUtilization = 80`` (pkg/apis/autoscaling), applied by ``SetDefaults_HorizontalPodAutoscaler``
    when an HPA names no metric; users sweep it."""

    metric_type: str = "pods"
    """``"pods"``: a per-pod custom metric (``calcPlainMetricReplicas``): a missing pod counts as exactly
    the target on scale-down. GPU utilization reaches a real HPA this way (DCGM exporter through a metrics
    adapter). ``"resource"``: utilization of the request (``GetResourceReplicas``): a missing pod counts as
    ``max(100%, target)`` of its request on scale-down."""

    scale_up_tolerance: float = 0.1
    """``--horizontal-pod-autoscaler-tolerance`` (0.1); per direction since the configurable tolerance
    of autoscaling/v2 ``HPAScalingRules.tolerance`` (``Tolerances.isWithin``)."""

    scale_down_tolerance: float = 0.1
    """As ``scale_up_tolerance``: no scale-down while usage/target >= 1 - this."""

    ignore_unready: bool = True
    """Treat a pod with ``ready=False`` as upstream treats Pending pods (and unready pods for CPU):
    left out, and counted at 0 on a scale-up. False gives upstream's custom-metric behaviour for a
    Running but unready pod: its sample counts like a ready pod's (missing if it has none)."""

    sync_period_s: float = 15.0
    """``--horizontal-pod-autoscaler-sync-period`` (15 s): how often ``decide`` is called."""

    scale_up_stabilization_s: float = 0.0
    """autoscaling/v2 defaults.go ``scaleUpStabilizationSeconds`` (0)."""

    scale_down_stabilization_s: float = 300.0
    """``--horizontal-pod-autoscaler-downscale-stabilization`` (5 min), which fills the scale-down
    ``stabilizationWindowSeconds`` that defaults.go leaves nil."""

    scale_up_select_policy: str = MAX
    """defaults.go ``maxPolicy`` for scale-up."""

    scale_down_select_policy: str = MAX
    """defaults.go ``maxPolicy`` for scale-down."""

    scale_up_policies: tuple[Any, ...] = ((PODS, 4, 15.0), (PERCENT, 100, 15.0))
    """defaults.go ``scaleUpLimitMinimumPods = 4`` and ``scaleUpLimitPercent = 100`` per
    ``scaleUpPeriod = 15`` s: at most double, or add 4 pods, every 15 s, whichever is more."""

    scale_down_policies: tuple[Any, ...] = ((PERCENT, 100, 15.0),)
    """defaults.go ``scaleDownLimitPercent = 100`` per ``scaleDownPeriod = 15`` s (no rate limit)."""

    def __post_init__(self) -> None:
        if not self.target > 0 or not math.isfinite(self.target):
            raise ValueError(f"HPA target must be a positive number, got {self.target}")
        if self.metric_type not in ("pods", "resource"):
            raise ValueError(f"HPA metric_type must be 'pods' or 'resource', got {self.metric_type!r}")
        if self.scale_up_tolerance < 0 or self.scale_down_tolerance < 0:
            raise ValueError("HPA tolerances must not be negative")
        if self.sync_period_s <= 0:
            raise ValueError(f"HPA sync_period_s must be positive, got {self.sync_period_s}")
        if self.scale_up_stabilization_s < 0 or self.scale_down_stabilization_s < 0:
            raise ValueError("HPA stabilization windows must not be negative")
        for select in (self.scale_up_select_policy, self.scale_down_select_policy):
            if select not in (MAX, MIN, DISABLED):
                raise ValueError(f"HPA select policy must be one of Max, Min, Disabled, got {select!r}")
        object.__setattr__(self, "scale_up_policies", _policies(self.scale_up_policies))
        object.__setattr__(self, "scale_down_policies", _policies(self.scale_down_policies))

    @property
    def scale_up(self) -> ScalingRules:
        return ScalingRules(self.scale_up_stabilization_s, self.scale_up_select_policy,
                            self.scale_up_policies)

    @property
    def scale_down(self) -> ScalingRules:
        return ScalingRules(self.scale_down_stabilization_s, self.scale_down_select_policy,
                            self.scale_down_policies)


# --------------------------------------------------------------------------------------------------
# Step 1: replica count from the metric (replica_calculator.go)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tolerances:
    """``Tolerances``: a usage ratio in [1 - scale_down, 1 + scale_up] changes nothing."""

    scale_down: float = 0.1
    scale_up: float = 0.1

    def within(self, usage_ratio: float) -> bool:
        return 1.0 - self.scale_down <= usage_ratio <= 1.0 + self.scale_up


@dataclass(frozen=True)
class PodGroups:
    """``groupPods``: values of pods that count, and which pods are unready or missing a sample."""

    metrics: dict[int, float]
    unready: frozenset[int]
    missing: frozenset[int]

    @property
    def ready_count(self) -> int:
        return len(self.metrics)


def group_pods(samples: Sequence[ReplicaSample], ignore_unready: bool = True) -> PodGroups:
    """Sort pods as upstream's ``groupPods`` does (pending/unready first, then missing metrics)."""
    metrics: dict[int, float] = {}
    unready, missing = set(), set()
    for i, pod in enumerate(samples):
        if not pod.ready and ignore_unready:
            unready.add(i)
        elif pod.value is None or not math.isfinite(pod.value):
            missing.add(i)
        else:
            metrics[i] = float(pod.value)
    return PodGroups(metrics, frozenset(unready), frozenset(missing))


@dataclass(frozen=True)
class ReplicaCount:
    """What the replica calculator concluded, with the numbers a status or report shows."""

    replicas: int
    usage_ratio: float
    """Observed average over counted pods divided by the target (before any assumption)."""
    average: float
    """Observed average of the metric over pods that reported it (upstream's ``utilization``)."""
    pods_counted: int
    unready: int
    missing: int
    why: str


def _milli(value: float) -> int:
    """A sample as the metrics APIs deliver it: an integer number of milli-units."""
    return round(value * 1000)


class _Usage:
    """Upstream's integer usage arithmetic, so ratios at exact boundaries (2.0, not 2.0000000000000004)
    round up to the same replica count as in Kubernetes.

    ``pods`` (``GetMetricUsageRatio``): average = sum of milli-values // pods; ratio = average / target
    in milli-units. ``resource`` (``GetResourceUtilizationRatio``): each sample is a fraction of its
    pod's request, requests are taken as equal (one unit each), utilization = sum * 100 // requests as
    an integer percent; ratio = utilization / target percent.
    """

    def __init__(self, target: float, metric_type: str) -> None:
        self.resource = metric_type == "resource"
        self.target = max(1, round(target * 100)) if self.resource else max(1, _milli(target))
        # Missing pods on a scale-down: the target (pods), or max(100%, target) of the request.
        self.missing_fallback = 1000 * max(100, self.target) // 100 if self.resource else self.target

    def ratio(self, metrics: Mapping[int, int]) -> tuple[float, float]:
        """(usage ratio, observed average in the metric's unit)."""
        total = sum(metrics.values())
        if self.resource:
            utilization = total * 100 // (1000 * len(metrics))
            return utilization / self.target, utilization / 100
        average = total // len(metrics)
        return average / self.target, average / 1000


def calculate_replicas(current: int, samples: Sequence[ReplicaSample], target: float,
                       tolerances: Tolerances = Tolerances(), ignore_unready: bool = True,
                       metric_type: str = "pods") -> ReplicaCount | None:
    """``calcPlainMetricReplicas`` (``metric_type="pods"``) or ``GetResourceReplicas`` ("resource").

    Returns None when no pod that counts reported a value (upstream: "did not receive metrics for
    targeted pods"), which leaves the replica count alone.
    """
    groups = group_pods(samples, ignore_unready)
    if not groups.metrics:
        return None
    usage = _Usage(target, metric_type)
    metrics = {i: _milli(v) for i, v in groups.metrics.items()}
    usage_ratio, average = usage.ratio(metrics)

    def result(replicas: int, why: str) -> ReplicaCount:
        return ReplicaCount(replicas, usage_ratio, average, groups.ready_count, len(groups.unready),
                            len(groups.missing), why)

    scale_up_with_unready = bool(groups.unready) and usage_ratio > 1.0
    if not scale_up_with_unready and not groups.missing:
        if tolerances.within(usage_ratio):
            return result(current, "within tolerance")
        return result(math.ceil(usage_ratio * groups.ready_count), "ratio times ready pods")

    if groups.missing:
        if usage_ratio < 1.0:  # on a scale-down, missing pods are assumed at the target
            metrics.update(dict.fromkeys(groups.missing, usage.missing_fallback))
        elif usage_ratio > 1.0:  # on a scale-up, missing pods are assumed idle
            metrics.update(dict.fromkeys(groups.missing, 0))
    if scale_up_with_unready:  # on a scale-up, unready pods are assumed idle
        metrics.update(dict.fromkeys(groups.unready, 0))

    new_ratio, _ = usage.ratio(metrics)
    if tolerances.within(new_ratio):
        return result(current, "within tolerance once missing/unready pods are accounted for")
    if (usage_ratio < 1.0 < new_ratio) or (new_ratio < 1.0 < usage_ratio):
        return result(current, "missing/unready pods would reverse the scale direction")
    new_replicas = math.ceil(new_ratio * len(metrics))
    if (new_ratio < 1.0 and new_replicas > current) or (new_ratio > 1.0 and new_replicas < current):
        return result(current, "counting missing/unready pods would reverse the scale direction")
    return result(new_replicas, "ratio with missing/unready pods accounted for")


# --------------------------------------------------------------------------------------------------
# Step 2: stabilisation window (horizontal.go stabilizeRecommendationWithBehaviors)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimedRecommendation:
    time_s: float
    replicas: int


def stabilize_recommendation(
    recommendations: Sequence[TimedRecommendation], now: float, current: int, desired: int,
    up_window_s: float, down_window_s: float,
) -> tuple[int, list[TimedRecommendation]]:
    """Bring ``desired`` within [min of recent recommendations, max of recent recommendations].

    Returns the stabilised count and the recommendation log to keep (the new recommendation added,
    those older than both windows dropped: upstream reuses their slots, which is the same thing).
    """
    up_cutoff, down_cutoff = now - up_window_s, now - down_window_s
    up_rec = down_rec = desired
    for rec in recommendations:
        if rec.time_s > up_cutoff:
            up_rec = min(up_rec, rec.replicas)
        if rec.time_s > down_cutoff:
            down_rec = max(down_rec, rec.replicas)
    stabilized = min(max(current, up_rec), down_rec)
    kept = [r for r in recommendations if not (r.time_s < up_cutoff and r.time_s < down_cutoff)]
    kept.append(TimedRecommendation(now, desired))
    return stabilized, kept


# --------------------------------------------------------------------------------------------------
# Step 3: rate limits (horizontal.go convertDesiredReplicasWithBehaviorRate)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScaleEvent:
    """``timestampedScaleEvent``: ``change`` pods added (up events) or removed (down events)."""

    time_s: float
    change: int


def replicas_change_in_period(period_s: float, events: Sequence[ScaleEvent], now: float) -> int:
    """``getReplicasChangePerPeriod``: pods changed by events strictly after ``now - period_s``."""
    cutoff = now - period_s
    return sum(e.change for e in events if e.time_s > cutoff)


def scale_up_limit(current: int, up_events: Sequence[ScaleEvent], down_events: Sequence[ScaleEvent],
                   rules: ScalingRules, now: float) -> int:
    """``calculateScaleUpLimitWithScalingRules``: the most replicas the policies allow now."""
    if rules.select_policy == DISABLED:
        return current
    pick, result = (min, _INT32_MAX) if rules.select_policy == MIN else (max, -_INT32_MAX)
    for policy in rules.policies:
        start = (current - replicas_change_in_period(policy.period_s, up_events, now)
                 + replicas_change_in_period(policy.period_s, down_events, now))
        if policy.type == PODS:
            proposed = start + int(policy.value)
        else:  # rounded up, or a small percentage could never add a pod
            proposed = math.ceil(start * (1 + policy.value / 100))
        result = pick(result, proposed)
    return int(result)


def scale_down_limit(current: int, up_events: Sequence[ScaleEvent], down_events: Sequence[ScaleEvent],
                     rules: ScalingRules, now: float) -> int:
    """``calculateScaleDownLimitWithBehaviors``: the fewest replicas the policies allow now."""
    if rules.select_policy == DISABLED:
        return current
    pick, result = (max, -_INT32_MAX) if rules.select_policy == MIN else (min, _INT32_MAX)
    for policy in rules.policies:
        start = (current - replicas_change_in_period(policy.period_s, up_events, now)
                 + replicas_change_in_period(policy.period_s, down_events, now))
        # Go's int32() conversion of the percent proposal truncates toward zero, as int() does.
        proposed = start - int(policy.value) if policy.type == PODS else int(start * (1 - policy.value / 100))
        result = pick(result, proposed)
    return int(result)


def limit_rate(current: int, desired: int, min_replicas: int, max_replicas: int,
               up: ScalingRules, down: ScalingRules, up_events: Sequence[ScaleEvent],
               down_events: Sequence[ScaleEvent], now: float) -> tuple[int, str]:
    """``convertDesiredReplicasWithBehaviorRate``: clamp to the policies and to min/max replicas.

    Returns the count and upstream's ``ScalingLimited`` condition reason.
    """
    if desired > current:
        limit = max(scale_up_limit(current, up_events, down_events, up, now), current)
        if max_replicas > limit:
            allowed, reason = limit, "ScaleUpLimit"
        else:
            allowed, reason = max_replicas, "TooManyReplicas"
        if desired > allowed:
            return allowed, reason
    elif desired < current:
        limit = min(scale_down_limit(current, up_events, down_events, down, now), current)
        if min_replicas < limit:
            allowed, reason = limit, "ScaleDownLimit"
        else:
            allowed, reason = min_replicas, "TooFewReplicas"
        if desired < allowed:
            return allowed, reason
    return desired, "DesiredWithinRange"


# --------------------------------------------------------------------------------------------------
# The controller: one sync per decide()
# --------------------------------------------------------------------------------------------------

_LIMIT_WORDS = {
    "ScaleUpLimit": "the scale-up policy allows no more this period",
    "ScaleDownLimit": "the scale-down policy allows no fewer this period",
    "TooManyReplicas": "that is the maximum replica count",
    "TooFewReplicas": "that is the minimum replica count",
}


@dataclass
class HPAState:
    """What the controller remembers between syncs (upstream keeps it in maps keyed by HPA)."""

    recommendations: list[TimedRecommendation] = field(default_factory=list)
    up_events: list[ScaleEvent] = field(default_factory=list)
    down_events: list[ScaleEvent] = field(default_factory=list)
    last_time_s: float | None = None
    last_current: int | None = None
    last_desired: int | None = None


class HPA(RuleBased):
    """The HPA's ``reconcileAutoscaler`` for one workload and one metric, called every ``period_s``."""

    name = "hpa"

    def __init__(self, space: ConfigSpace, settings: HPASettings) -> None:
        if "replicas" not in space:
            raise ValueError("the hpa baseline needs a 'replicas' knob in the configuration space")
        self.settings = settings
        self.knob = space["replicas"]
        self.min_replicas = math.ceil(self.knob.lower)
        self.max_replicas = math.floor(self.knob.upper)
        self.period_s: float = settings.sync_period_s
        self.tolerances = Tolerances(settings.scale_down_tolerance, settings.scale_up_tolerance)
        self.state = HPAState()
        self.last_count: ReplicaCount | None = None
        """The latest replica calculation, for status and reports."""

    # -- helpers -----------------------------------------------------------------------------------

    def _samples(self, obs: Observation, current: int) -> tuple[ReplicaSample, ...]:
        """Per-pod samples; without them every pod is taken to report the workload average."""
        if obs.replicas:
            return obs.replicas
        value = obs.metrics.get(self.settings.metric)
        if value is None or not math.isfinite(value):
            return ()
        return tuple(ReplicaSample(True, float(value)) for _ in range(current))

    def _record_own_scale(self, current: int, now: float) -> None:
        """``storeScaleEvent``: remember our change, dated when we made it, once the workload shows it.

        Upstream stores the event when its scale update succeeds; here the control loop applies the
        action, so the event is stored when the next observation shows the count we asked for (in
        recommend mode nothing changes and no event is stored, as no scale happened).
        """
        s = self.state
        if (s.last_current is not None and s.last_desired is not None and s.last_time_s is not None
                and current == s.last_desired != s.last_current):
            change = current - s.last_current
            events = s.up_events if change > 0 else s.down_events
            events.append(ScaleEvent(s.last_time_s, abs(change)))
        # markScaleEventsOutdated: events older than the longest policy period count for nothing.
        up_horizon = now - max((p.period_s for p in self.settings.scale_up_policies), default=0.0)
        down_horizon = now - max((p.period_s for p in self.settings.scale_down_policies), default=0.0)
        s.up_events[:] = [e for e in s.up_events if e.time_s > up_horizon]
        s.down_events[:] = [e for e in s.down_events if e.time_s > down_horizon]

    def _metric_words(self, count: ReplicaCount) -> str:
        m, t = self.settings.metric, self.settings.target
        pods = f"{count.pods_counted} pod{'s' if count.pods_counted != 1 else ''}"
        extra = []
        if count.unready:
            extra.append(f"{count.unready} unready")
        if count.missing:
            extra.append(f"{count.missing} without a sample")
        others = f" ({', '.join(extra)})" if extra else ""
        return (f"{m} averages {count.average:.3g} over {pods}{others} against a target of {t:.3g} "
                f"(ratio {count.usage_ratio:.2f}, tolerance -{self.tolerances.scale_down:.0%}/"
                f"+{self.tolerances.scale_up:.0%}), which calls for {count.replicas} replicas ({count.why})")

    def _count(self, obs: Observation, current: int) -> ReplicaCount | None:
        """Step 1 of the sync: the replica count the metric calls for (the one step KEDA's external
        metric changes; see learners/baselines/keda.py)."""
        return calculate_replicas(current, self._samples(obs, current), self.settings.target,
                                  self.tolerances, self.settings.ignore_unready, self.settings.metric_type)

    # -- the sync ------------------------------------------------------------------------------------

    def decide(self, obs: Observation) -> Action:
        now = float(obs.time_s)
        current = round(obs.config.get("replicas", self.knob.initial()))
        self._record_own_scale(current, now)
        desired, reason = self._sync(obs, now, current)
        self.state.last_time_s, self.state.last_current, self.state.last_desired = now, current, desired
        return Action({"replicas": float(desired)}, reason)

    def _sync(self, obs: Observation, now: float, current: int) -> tuple[int, str]:
        lo, hi = self.min_replicas, self.max_replicas
        if current == 0 and lo != 0:
            return 0, "Scaling is disabled since the replica count of the target is zero."
        if current > hi:
            return hi, f"{current} replicas is above the maximum of {hi}: scaling down to the maximum."
        if current < lo:
            return lo, f"{current} replicas is below the minimum of {lo}: scaling up to the minimum."

        count = self._count(obs, current)
        self.last_count = count
        if count is None:
            return current, (f"No {self.settings.metric} sample from any ready pod: keeping {current} "
                             "replicas (the HPA does not scale without metrics).")
        s = self.state
        stabilized, s.recommendations = stabilize_recommendation(
            s.recommendations, now, current, count.replicas,
            self.settings.scale_up_stabilization_s, self.settings.scale_down_stabilization_s)
        desired, limited = limit_rate(current, stabilized, lo, hi, self.settings.scale_up,
                                      self.settings.scale_down, s.up_events, s.down_events, now)

        words = [self._metric_words(count) + "."]
        if stabilized != count.replicas:
            direction = "lower" if count.replicas > current else "higher"
            window = (self.settings.scale_up_stabilization_s if count.replicas > current
                      else self.settings.scale_down_stabilization_s)
            words.append(f"Recommendations of the last {window:.0f} s were {direction}: stabilised "
                         f"at {stabilized}.")
        if desired != stabilized:
            words.append(f"Limited to {desired} because {_LIMIT_WORDS[limited]}.")
        if desired == current:
            words.append(f"Keeping {current} replicas.")
        else:
            words.append(f"Scaling from {current} to {desired} replicas.")
        return desired, " ".join(words)


@register("hpa", HPASettings, "Kubernetes Horizontal Pod Autoscaler (kube-controller-manager algorithm)",
          kinds=("inference",))
def _make(space: ConfigSpace, objective: Objective, settings: HPASettings) -> HPA:
    return HPA(space, settings)
