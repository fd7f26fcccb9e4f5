"""The operator's own ``/metrics`` (prometheus-client): what it decided, how well, how fast, what failed.

Every series is labelled by the policy's ``namespace`` and ``policy`` name so that a dashboard can
put the operator's view beside the workload's own metrics. A private registry keeps tests
independent and the output free of other libraries' collectors.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

PREFIX = "autocm_operator"

ERROR_STAGES = ("prometheus", "kubernetes", "workload", "learner", "status", "checkpoint")
"""Where a control step can fail; each stage's error counter exists from the start at 0, as Prometheus'
instrumentation guide advises, so that ``rate()`` sees the first error and dashboards show 0, not "No data"."""

LOOP_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""One control step takes milliseconds (queries are shared); the top buckets catch a slow apiserver."""


class Telemetry:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        pol = ("namespace", "policy")
        self.decisions = Counter(f"{PREFIX}_decisions", "Control steps by outcome "
                                 "(applied, recommended, unchanged, frozen, paused, refused, rolled_back).",
                                 [*pol, "outcome"], registry=r)
        self.reward = Gauge(f"{PREFIX}_reward", "Reward of the latest interval (higher is better).", pol,
                            registry=r)
        self.residual = Gauge(f"{PREFIX}_convergence_residual",
                              "The learner's convergence residual (TD/Bellman for the Q-learners; slo-rl: the "
                              "capacity model's prequential error).", pol, registry=r)
        self.converged = Gauge(f"{PREFIX}_converged", "1 when the learner reports convergence.", pol,
                               registry=r)
        self.recommended = Gauge(f"{PREFIX}_recommended_config", "Recommended value of each knob.",
                                 [*pol, "knob"], registry=r)
        self.applied = Gauge(f"{PREFIX}_applied_config", "Value of each knob on the workload now.",
                             [*pol, "knob"], registry=r)
        self.loop_latency = Histogram(f"{PREFIX}_loop_duration_seconds", "Wall time of one control step.",
                                      buckets=LOOP_BUCKETS_S, registry=r)
        self.errors = Counter(f"{PREFIX}_errors",
                              "Errors by stage (prometheus, kubernetes, workload, learner, status, checkpoint).",
                              ["stage"], registry=r)
        for stage in ERROR_STAGES:
            self.errors.labels(stage)
        self.queries = Counter(f"{PREFIX}_prometheus_queries", "PromQL queries sent, by metric and result.",
                               ["metric", "result"], registry=r)
        self.query_latency = Histogram(f"{PREFIX}_prometheus_query_duration_seconds",
                                       "Wall time of one PromQL query.", buckets=LOOP_BUCKETS_S, registry=r)
        self.managed = Gauge(f"{PREFIX}_policies", "SizingPolicies this operator runs.", registry=r)

    def record_query(self, metric: str, seconds: float, ok: bool) -> None:
        self.queries.labels(metric, "ok" if ok else "error").inc()
        self.query_latency.observe(seconds)

    def record_step(self, namespace: str, policy: str, outcome: str, reward: float | None,
                    residual: float, converged: bool, recommended: Mapping[str, float] | None,
                    applied: Mapping[str, float] | None) -> None:
        self.decisions.labels(namespace, policy, outcome).inc()
        if reward is not None and math.isfinite(reward):
            self.reward.labels(namespace, policy).set(reward)
        if math.isfinite(residual):
            self.residual.labels(namespace, policy).set(residual)
        self.converged.labels(namespace, policy).set(1.0 if converged else 0.0)
        for knob, v in (recommended or {}).items():
            self.recommended.labels(namespace, policy, knob).set(v)
        for knob, v in (applied or {}).items():
            self.applied.labels(namespace, policy, knob).set(v)

    def forget(self, namespace: str, policy: str) -> None:
        """Drop a deleted policy's series so dashboards do not show ghosts."""
        for metric in (self.reward, self.residual, self.converged):
            with contextlib.suppress(KeyError):
                metric.remove(namespace, policy)
        for metric in (self.recommended, self.applied, self.decisions):
            for labels in list(metric._metrics):  # prometheus-client has no prefix removal
                if labels[:2] == (namespace, policy):
                    metric.remove(*labels)

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        start_http_server(port, addr=addr, registry=self.registry)
