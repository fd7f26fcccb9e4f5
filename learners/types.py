"""Plain records that flow through the control loop: what was seen, what was decided, how learning goes.

Metric names are the user's words with units in the name (``ttft_p99_seconds``,
``request_rate_per_second``); the simulator and the Prometheus adapter fill the same names, which is
what lets one policy run in both worlds. Well-known names are listed in :data:`METRICS`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from learners.space import Config

METRICS: dict[str, str] = {
    "request_rate_per_second": "requests arriving per second over the last interval",
    "request_rate_peak_per_second": "largest 10 s request rate within the last interval (the burst; slo-rl's "
                                    "burst feature is its log ratio to the interval's rate)",
    "ttft_p99_seconds": "99th percentile time to first token over the last interval",
    "tbt_p99_seconds": "99th percentile time between tokens over the last interval",
    "e2e_p99_seconds": "99th percentile end-to-end latency over the last interval",
    "slo_attainment": "fraction of requests finished in the interval that met the SLO (0..1)",
    "queue_length": "requests waiting for a batch slot, all replicas",
    "concurrency_per_replica": "requests in flight per ready replica (Knative's metric)",
    "gpu_utilization": "mean GPU busy fraction of ready replicas (DCGM_FI_DEV_GPU_UTIL / 100)",
    "kv_cache_usage": "mean KV-cache occupancy of ready replicas (0..1)",
    "requests_running": "requests in a batch slot now, all ready replicas (sum of vllm:num_requests_running)",
    "prompt_tokens_per_second": "prompt tokens of the requests arriving per second over the last interval "
                                "(rate of vllm:prompt_tokens_total)",
    "cpu_utilization": "mean CPU usage over CPU request of ready replicas (0..1)",
    "memory_bytes_peak": "largest per-replica memory working set in the interval",
    "throughput_samples_per_second": "training samples processed per second",
    "goodput_samples_per_second": "training throughput x statistical efficiency",
}


@dataclass(frozen=True)
class ReplicaSample:
    """One pod as an autoscaler sees it: HPA's unready/missing-pod rules need per-pod data.

    ``value`` is the pod's metric (for example CPU or GPU utilization as a fraction of request),
    or ``None`` when the metrics pipeline has no sample for it.

    ``placed`` says whether the pod has its node and GPUs (False: it waits for placement, as a Pending,
    unschedulable pod does; None: the source does not say), and ``boot_s`` the seconds since it got them
    (nan when not placed or not known). Why: a learner that reads a cold start off the age of unready pods
    took pods waiting for GPUs in a full cluster for pods booting, and learned 180 s where every pod booted
    in 60 s (slo-rl on the step scenario's training side, where the first plan asked for more GPUs than the
    pool holds).
    """

    ready: bool
    value: float | None
    age_s: float = math.inf
    placed: bool | None = None
    boot_s: float = math.nan


@dataclass(frozen=True)
class Observation:
    """What the control loop knows about one workload at ``time_s``."""

    time_s: float
    config: Config
    metrics: Mapping[str, float]
    interval_s: float = 60.0
    replicas: tuple[ReplicaSample, ...] = ()
    events: Mapping[str, float] = field(default_factory=dict)
    """Counters over the interval that are not rates: ``oom_kills``, ``restarts``, ``failures``."""

    def metric(self, name: str, default: float = math.nan) -> float:
        return float(self.metrics.get(name, default))

    def finite(self, names: tuple[str, ...] | None = None) -> bool:
        """True when every named metric (or every metric) is present and finite."""
        keys = names if names is not None else tuple(self.metrics)
        return all(name in self.metrics and math.isfinite(self.metrics[name]) for name in keys)


@dataclass(frozen=True)
class Action:
    """A decision: the configuration the learner wants, and in words why."""

    target: Config
    reason: str = ""

    def changes(self, current: Mapping[str, float]) -> dict[str, tuple[float, float]]:
        """Knobs whose value differs from ``current``: name -> (old, new)."""
        return {
            n: (current.get(n, math.nan), v)
            for n, v in self.target.items()
            if current.get(n) != v
        }


class Verdict(StrEnum):
    """A learner's own assessment of where it stands, which the control loop acts on."""

    EXPLORING = "exploring"
    CONVERGING = "converging"
    CONVERGED = "converged"
    DIVERGING = "diverging"
    NOT_LEARNING = "not-learning"  # rule-based baselines


@dataclass(frozen=True)
class Convergence:
    """Convergence evidence a learner reports continuously.

    ``residual`` is the recent Bellman/TD residual (max-norm or RMS, as the learner says);
    ``policy_stability`` the fraction of recent decisions that agree with the current greedy policy.
    """

    verdict: Verdict
    residual: float = math.nan
    policy_stability: float = math.nan
    samples: int = 0

    @classmethod
    def not_learning(cls) -> Convergence:
        return cls(Verdict.NOT_LEARNING)
