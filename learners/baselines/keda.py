"""KEDA's Prometheus scaler on vLLM's queue depth, with the Kubernetes HPA underneath.

This is what most vLLM deployments on Kubernetes run: a ``ScaledObject`` whose ``prometheus`` trigger
queries ``sum(vllm:num_requests_waiting{...})`` (or running + waiting). KEDA splits the work in two,
and so does this module:

- **activation** (KEDA's own loop, every ``pollingInterval``): the trigger is active while the query's
  value exceeds ``activationThreshold``; with ``minReplicaCount: 0`` KEDA scales an idle workload to
  zero once it has been inactive for ``cooldownPeriod``, and from zero to ``max(minReplicaCount, 1)``
  when it becomes active again;
- **1..N** (the HPA KEDA creates, every HPA sync): an ``External`` metric whose target is the trigger's
  ``threshold``, as ``AverageValue`` (KEDA's default ``metricType``) or ``Value``. The HPA arithmetic,
  stabilisation windows and rate limits are those of :mod:`learners.baselines.hpa`, reused, not copied.

Upstream, read for the behaviour and cited, not copied:

- kedacore/keda ``pkg/scalers/prometheus_scaler.go``: ``threshold`` and ``activationThreshold`` metadata,
  ``GetMetricSpecForScaling`` (an External metric with ``GetMetricTargetMili(metricType, threshold)``),
  ``ExecutePromQuery`` (an empty or non-finite result reads as 0 with ``ignoreNullValues``, the default),
  ``GetMetricsAndActivity`` (active when ``value > activationThreshold``);
- kedacore/keda ``pkg/scaling/executor/scale_scaledobjects.go``: ``RequestScale``, ``scaleToZero``
  (only when ``minReplicaCount`` is 0 or unset, and only after ``lastActiveTime + cooldownPeriod``),
  ``scaleFromZero`` (to ``minReplicaCount`` if positive, else 1);
- keda.sh/docs/latest/reference/scaledobject-spec: ``pollingInterval: 30`` and ``cooldownPeriod: 300``
  defaults; ``advanced.horizontalPodAutoscalerConfig.behavior`` is passed to the HPA unchanged, so the
  behaviour defaults are the HPA's;
- kubernetes ``pkg/controller/podautoscaler/replica_calculator.go``: ``GetExternalPerPodMetricReplicas``
  (``AverageValue``: ratio = value / (target x current replicas), ceil(value / target) outside the
  tolerance) and ``GetExternalMetricReplicas`` (``Value``: ratio = value / target, ceil(ratio x ready pods)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from learners.base import register
from learners.baselines.hpa import HPA, HPASettings, ReplicaCount, _milli
from learners.objective import Objective
from learners.space import ConfigSpace
from learners.types import Action, Observation

QUERIES: dict[str, tuple[str, ...]] = {
    "waiting": ("queue_length",),
    "running+waiting": ("queue_length", "requests_running"),
    "rate": ("request_rate_per_second",),
}
"""What the trigger's PromQL sums, in Observation metric names: ``queue_length`` is
``sum(vllm:num_requests_waiting)``, ``requests_running`` is ``sum(vllm:num_requests_running)``,
``request_rate_per_second`` is ``sum(rate(vllm:request_success_total[window]))``
(controller/prometheus.py DEFAULT_QUERIES)."""

AVERAGE_VALUE, VALUE = "AverageValue", "Value"
_HPA = HPASettings()  # the HPA's own defaults, which KEDA passes through unchanged


@dataclass(frozen=True)
class KEDASettings:
    """A ``ScaledObject`` with one ``prometheus`` trigger; every default is KEDA's or the HPA's."""

    query: str = "waiting"
    """``"waiting"``: ``sum(vllm:num_requests_waiting)``; ``"running+waiting"``: that plus
    ``sum(vllm:num_requests_running)``, the in-flight form some vLLM guides use; ``"rate"``: the request
    rate, ``sum(rate(vllm:request_success_total[window]))`` (requests/s per replica with ``AverageValue``),
    the scale-on-throughput form: in the operator it counts completions, in the simulator arrivals."""

    threshold: float = 5.0
    """Trigger metadata ``threshold`` (required upstream: no default). 5 waiting requests per replica is
    our starting point only; scenarios sweep it."""

    activation_threshold: float = 0.0
    """Trigger metadata ``activationThreshold`` (optional, 0): active while the value is above this."""

    metric_type: str = AVERAGE_VALUE
    """Trigger ``metricType``: ``AverageValue`` (KEDA's default, ``GetMetricTargetType``) divides the value
    by the replica count; ``Value`` compares the value itself to the threshold."""

    polling_interval_s: float = 30.0
    """``pollingInterval`` (30 s, scaledobject-spec): how often KEDA checks activation."""

    cooldown_period_s: float = 300.0
    """``cooldownPeriod`` (300 s, scaledobject-spec): inactivity before scaling to zero (only with
    ``min_replica_count`` 0)."""

    min_replica_count: int | None = None
    """``minReplicaCount`` (KEDA's default 0). None: the replica knob's lower bound, so a scenario whose
    knob starts at 1 never scales to zero; 0 (with a knob that allows 0) turns scale-to-zero on."""

    sync_period_s: float = _HPA.sync_period_s
    """The HPA's ``--horizontal-pod-autoscaler-sync-period`` (15 s): how often the metric is read."""

    scale_up_tolerance: float = _HPA.scale_up_tolerance
    """As HPASettings (0.1)."""

    scale_down_tolerance: float = _HPA.scale_down_tolerance
    """As HPASettings (0.1)."""

    scale_up_stabilization_s: float = _HPA.scale_up_stabilization_s
    """As HPASettings (0 s)."""

    scale_down_stabilization_s: float = _HPA.scale_down_stabilization_s
    """As HPASettings (300 s)."""

    scale_up_policies: tuple[Any, ...] = _HPA.scale_up_policies
    """As HPASettings (4 pods or 100% per 15 s, the larger)."""

    scale_down_policies: tuple[Any, ...] = _HPA.scale_down_policies
    """As HPASettings (100% per 15 s)."""

    def __post_init__(self) -> None:
        if self.query not in QUERIES:
            raise ValueError(f"KEDA query must be one of {sorted(QUERIES)}, got {self.query!r}")
        if not self.threshold > 0 or not math.isfinite(self.threshold):
            raise ValueError(f"KEDA threshold must be a positive number, got {self.threshold}")
        if self.activation_threshold < 0:
            raise ValueError(f"KEDA activation_threshold must not be negative, got {self.activation_threshold}")
        if self.metric_type not in (AVERAGE_VALUE, VALUE):
            raise ValueError(f"KEDA metric_type must be {AVERAGE_VALUE!r} or {VALUE!r}, got {self.metric_type!r}")
        if self.polling_interval_s <= 0 or self.cooldown_period_s < 0:
            raise ValueError("KEDA polling_interval_s must be positive and cooldown_period_s not negative")
        if self.min_replica_count is not None and self.min_replica_count < 0:
            raise ValueError(f"KEDA min_replica_count must not be negative, got {self.min_replica_count}")

    def hpa(self) -> HPASettings:
        """The HPA that KEDA creates for this ScaledObject."""
        return HPASettings(metric="+".join(QUERIES[self.query]), target=self.threshold,
                           scale_up_tolerance=self.scale_up_tolerance,
                           scale_down_tolerance=self.scale_down_tolerance, sync_period_s=self.sync_period_s,
                           scale_up_stabilization_s=self.scale_up_stabilization_s,
                           scale_down_stabilization_s=self.scale_down_stabilization_s,
                           scale_up_policies=self.scale_up_policies, scale_down_policies=self.scale_down_policies)


def query_value(obs: Observation, query: str) -> float:
    """The trigger's PromQL result; empty or non-finite reads as 0 (``ignoreNullValues: true``)."""
    total = 0.0
    for name in QUERIES[query]:
        v = obs.metrics.get(name)
        if v is not None and math.isfinite(v):
            total += float(v)
    return total


def external_replicas(current: int, ready: int, value: float, target: float, metric_type: str,
                      up_tolerance: float = 0.1, down_tolerance: float = 0.1) -> ReplicaCount:
    """The HPA's replica count for one External metric, in the metrics API's milli-units.

    ``AverageValue`` (``GetExternalPerPodMetricReplicas``): ratio = value / (target x current);
    outside the tolerance, ceil(value / target). ``Value`` (``GetExternalMetricReplicas``): ratio =
    value / target; outside the tolerance, ceil(ratio x ready pods).
    """
    usage, goal = _milli(value), max(1, _milli(target))
    if metric_type == AVERAGE_VALUE:
        ratio = usage / (goal * current) if current > 0 else math.inf
        average = value / current if current > 0 else value
        raw = math.ceil(usage / goal)
    else:
        ratio, average = usage / goal, value
        raw = math.ceil(ratio * ready)
    if 1.0 - down_tolerance <= ratio <= 1.0 + up_tolerance:
        return ReplicaCount(current, ratio, average, ready, 0, 0, "within tolerance")
    why = "ceil(value / threshold)" if metric_type == AVERAGE_VALUE else "ratio times ready pods"
    return ReplicaCount(raw, ratio, average, ready, 0, 0, why)


class KEDA(HPA):
    """One ScaledObject: KEDA's activation loop on top of the HPA's sync, both stepped by ``decide``."""

    name = "keda"

    def __init__(self, space: ConfigSpace, settings: KEDASettings) -> None:
        super().__init__(space, settings.hpa())
        self.keda = settings
        knob_min = math.ceil(self.knob.lower)
        self.min_replica_count = knob_min if settings.min_replica_count is None \
            else max(settings.min_replica_count, knob_min)
        # The HPA KEDA creates has minReplicas = max(minReplicaCount, 1): zero is KEDA's business.
        self.min_replicas = max(self.min_replica_count, 1)
        self.last_active_s: float | None = None
        self.last_poll_s: float | None = None
        self.active = False
        self.last_value = math.nan

    def _ready(self, obs: Observation, current: int) -> int:
        return sum(1 for p in obs.replicas if p.ready) if obs.replicas else current

    def _count(self, obs: Observation, current: int) -> ReplicaCount | None:
        s = self.keda
        return external_replicas(current, self._ready(obs, current), self.last_value, s.threshold,
                                 s.metric_type, s.scale_up_tolerance, s.scale_down_tolerance)

    def _metric_words(self, count: ReplicaCount) -> str:
        s = self.keda
        per = " per replica" if s.metric_type == AVERAGE_VALUE else ""
        return (f"The trigger's query ({s.query} requests) reads {self.last_value:.3g}, {count.average:.3g}{per} "
                f"against a threshold of {s.threshold:.3g} ({s.metric_type}; ratio {count.usage_ratio:.2f}, "
                f"tolerance -{s.scale_down_tolerance:.0%}/+{s.scale_up_tolerance:.0%}), which calls for "
                f"{count.replicas} replicas ({count.why})")

    def decide(self, obs: Observation) -> Action:
        now = float(obs.time_s)
        current = round(obs.config.get("replicas", self.knob.initial()))
        self.last_value = query_value(obs, self.keda.query)
        if self.last_poll_s is None or now - self.last_poll_s >= self.keda.polling_interval_s - 1e-9:
            self.last_poll_s = now
            self.active = self.last_value > self.keda.activation_threshold
            if self.active:
                self.last_active_s = now  # updateLastActiveTime
        zero = self._activation(now, current)
        if zero is not None:
            self._record_own_scale(current, now)
            desired, reason = zero
            self.state.last_time_s, self.state.last_current, self.state.last_desired = now, current, desired
            return Action({"replicas": float(desired)}, reason)
        return super().decide(obs)

    def _activation(self, now: float, current: int) -> tuple[int, str] | None:
        """``RequestScale``'s branches that KEDA handles itself (None: leave it to the HPA)."""
        s = self.keda
        if current == 0 and self.active:
            target = max(self.min_replica_count, 1)
            return target, (f"Trigger active ({self.last_value:.3g} > activation threshold "
                            f"{s.activation_threshold:.3g}): scaling from zero to {target}.")
        if not self.active and current < self.min_replica_count:
            return self.min_replica_count, (f"{current} replicas is below minReplicaCount "
                                            f"{self.min_replica_count}: scaling up to it.")
        if current == 0:
            return 0, (f"Trigger inactive ({self.last_value:.3g} <= {s.activation_threshold:.3g}): "
                       "staying at zero.")
        if not self.active and self.min_replica_count == 0 and (
                self.last_active_s is None or now > self.last_active_s + s.cooldown_period_s):
            return 0, (f"Trigger inactive for more than the {s.cooldown_period_s:.0f} s cooldown period: "
                       "scaling to zero.")
        return None  # active, or cooling down: the HPA keeps 1..N as usual


@register("keda", KEDASettings, "KEDA Prometheus scaler on vLLM queue depth (HPA External metric underneath)",
          kinds=("inference",))
def _make(space: ConfigSpace, objective: Objective, settings: KEDASettings) -> KEDA:
    return KEDA(space, settings)
