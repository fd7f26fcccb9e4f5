"""A SizingPolicy's GPU pool of training jobs: the hostile ``spec.trainingPool`` checked, the jobs' metrics
turned into scheduler observations, and the scheduler's answer turned into per-job actions.

Pure functions (no Kubernetes or Prometheus calls) between three things the operator already has:
the policy object, Prometheus query results for the ``autocm_train_*`` contract
(:mod:`controller.train_metrics`), and the actuation paths of :mod:`controller.kube` (elastic PyTorchJob
resize within ``elasticPolicy``; checkpoint-aware recreation with ``AUTOCM_GPUS`` / ``AUTOCM_BATCH_SIZE``
for Jobs and non-elastic PyTorchJobs). The scheduler is any name in :mod:`learners.training_scheduler`.

``spec.trainingPool`` (every field is user input, so it is validated and capped here):

    trainingPool:
      scheduler: pollux            # a registered training scheduler
      gpuQuota: 16                 # GPUs all jobs together may hold, 1..MAX_QUOTA
      gpusPerNode: 4               # how the quota is cut into nodes for placement, 1..64
      selector: {team: vision}     # matchLabels choosing the jobs, in the policy's own namespace only
      restartSeconds: 30           # what one restart costs (Pollux's restart penalty), 0..3600
      fixedGpusPerJob: 4           # GPUs per job under the fixed scheduler, 1..64
      consolidate: true            # move a job split over nodes onto one node with room (default true)
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controller import train_metrics as tm
from controller.loop import Mode
from controller.policy import LIMITS, PolicyError
from learners import training_scheduler as ts
from learners.pollux import BatchLimits, SearchSettings

MAX_QUOTA = 1024
MAX_GPUS_PER_NODE = 64
MAX_JOBS = 256
_LABEL_KEY = re.compile(r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                        r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
_DNS1123 = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


class PoolSpecError(PolicyError):
    """``spec.trainingPool`` is unusable; the message names the field (a :class:`PolicyError`, so the
    operator reports it like any invalid spec)."""


@dataclass(frozen=True)
class PoolSpec:
    namespace: str
    scheduler: str
    gpu_quota: int
    gpus_per_node: int
    selector: tuple[tuple[str, str], ...]
    restart_s: float = 30.0
    """What one restart of a job costs (checkpoint, rescheduling, restore): Pollux's restart penalty."""
    fixed_gpus: int = 4
    """GPUs per job under the ``fixed`` scheduler."""
    consolidate: bool = True
    """Recreate a job whose pods are split over nodes onto one node with room for all of them
    (:mod:`learners.pool_consolidation`), at most one job a round."""

    def scheduler_kwargs(self) -> dict[str, Any]:
        """The registered scheduler's constructor arguments that the pool spec sets."""
        if self.scheduler in ("pollux", "shared-goodput"):
            return {"settings": SearchSettings(restart_delay_s=self.restart_s)}
        if self.scheduler == "fixed":
            return {"gpus": self.fixed_gpus}
        return {}

    def nodes(self) -> dict[str, int]:
        """The quota cut into placement slots of ``gpusPerNode`` (the last one may be smaller)."""
        full, rest = divmod(self.gpu_quota, self.gpus_per_node)
        out = {f"slot-{i}": self.gpus_per_node for i in range(full)}
        if rest:
            out[f"slot-{full}"] = rest
        return out

    def label_selector(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.selector)


def _int(field: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise PoolSpecError(f"spec.trainingPool.{field}: must be an integer in {low}..{high}, got {value!r}")
    return value


def parse_pool(policy: Mapping[str, Any]) -> PoolSpec | None:
    """The policy's pool, or None when it has none. The namespace is the policy's own, never the spec's."""
    meta = policy.get("metadata") or {}
    namespace = meta.get("namespace")
    if not isinstance(namespace, str) or not _DNS1123.fullmatch(namespace) or len(namespace) > 63:
        raise PoolSpecError(f"metadata.namespace: not a namespace name: {namespace!r}")
    raw = (policy.get("spec") or {}).get("trainingPool")
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise PoolSpecError("spec.trainingPool: must be an object")
    unknown = set(raw) - {"scheduler", "gpuQuota", "gpusPerNode", "selector", "restartSeconds", "fixedGpusPerJob",
                          "consolidate"}
    if unknown:
        raise PoolSpecError(f"spec.trainingPool: unknown fields {sorted(unknown)}")
    scheduler = raw.get("scheduler", "pollux")
    if scheduler not in ts.names():
        raise PoolSpecError(f"spec.trainingPool.scheduler: {scheduler!r} is not one of {ts.names()}")
    quota = _int("gpuQuota", raw.get("gpuQuota"), 1, MAX_QUOTA)
    per_node = _int("gpusPerNode", raw.get("gpusPerNode", min(quota, 8)), 1, MAX_GPUS_PER_NODE)
    sel = raw.get("selector")
    if not isinstance(sel, Mapping) or not sel or len(sel) > 16:
        raise PoolSpecError("spec.trainingPool.selector: must be 1..16 matchLabels (an empty selector would "
                            "take every job in the namespace)")
    pairs = []
    for k, v in sel.items():
        if not isinstance(k, str) or len(k) > 253 or not _LABEL_KEY.fullmatch(k):
            raise PoolSpecError(f"spec.trainingPool.selector: bad label key {k!r}")
        if not isinstance(v, str) or len(v) > 63 or not LABEL_VALUE.fullmatch(v):
            raise PoolSpecError(f"spec.trainingPool.selector: bad label value {v!r} for {k}")
        pairs.append((k, v))
    restart = raw.get("restartSeconds", 30)
    if isinstance(restart, bool) or not isinstance(restart, int | float) or not math.isfinite(restart) \
            or not 0 <= restart <= 3600:
        raise PoolSpecError(f"spec.trainingPool.restartSeconds: must be a number in 0..3600, got {restart!r}")
    fixed = _int("fixedGpusPerJob", raw.get("fixedGpusPerJob", 4), 1, MAX_GPUS_PER_NODE)
    consolidate = raw.get("consolidate", True)
    if not isinstance(consolidate, bool):
        raise PoolSpecError(f"spec.trainingPool.consolidate: must be true or false, got {consolidate!r}")
    return PoolSpec(namespace, scheduler, quota, per_node, tuple(sorted(pairs)), float(restart), fixed, consolidate)


@dataclass(frozen=True)
class PoolPolicy:
    """A SizingPolicy that runs a training pool: the pool and the few policy-wide fields that apply to it."""

    name: str
    pool: PoolSpec
    mode: Mode
    paused: bool
    interval_s: float
    window_s: float

    @property
    def namespace(self) -> str:
        return self.pool.namespace

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


POOL_POLICY_FIELDS = frozenset({"trainingPool", "mode", "paused", "intervalSeconds", "metrics",
                                "workload", "learner"})
"""What a pool policy may carry. ``workload`` and ``learner`` are accepted and ignored because the CRD
defaults them on every SizingPolicy; ``targetRef``, ``knobs``, ``objective`` and the rest are refused."""


def _seconds(field: str, value: Any, default: float) -> float:
    value = default if value is None else value
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or not 1 <= value <= LIMITS.interval_s:
        raise PoolSpecError(f"{field}: must be a number of seconds in 1..{LIMITS.interval_s:g}, got {value!r}")
    return float(value)


def parse_pool_policy(policy: Mapping[str, Any]) -> PoolPolicy | None:
    """The policy as a training pool, None when it has no ``spec.trainingPool`` (a targetRef policy).

    A policy either sizes one workload (``targetRef``) or runs a pool (``trainingPool``), never both:
    the pool decides GPUs and batch size itself, so knobs and an objective would mean nothing.
    """
    spec = policy.get("spec")
    if not isinstance(spec, Mapping) or "trainingPool" not in spec:
        return None
    pool = parse_pool(policy)
    assert pool is not None
    extra = sorted(set(spec) - POOL_POLICY_FIELDS)
    if extra:
        raise PoolSpecError(f"spec.trainingPool: a pool policy has no {extra} (a policy has either a "
                            "targetRef with knobs and an objective, or a trainingPool)")
    mode = spec.get("mode", "recommend")
    if mode not in ("recommend", "apply"):
        raise PoolSpecError(f"spec.mode: must be recommend or apply, got {mode!r}")
    paused = spec.get("paused", False)
    if not isinstance(paused, bool):
        raise PoolSpecError(f"spec.paused: expected true or false, got {paused!r}")
    interval = _seconds("spec.intervalSeconds", spec.get("intervalSeconds"), 60.0)
    metrics = spec.get("metrics") or {}
    if not isinstance(metrics, Mapping) or set(metrics) - {"windowSeconds"}:
        raise PoolSpecError("spec.metrics: a pool policy takes only windowSeconds (its queries are the "
                            "autocm_train_* contract)")
    window = _seconds("spec.metrics.windowSeconds", metrics.get("windowSeconds"), 120.0)
    name = (policy.get("metadata") or {}).get("name")
    if not isinstance(name, str) or not name:
        raise PoolSpecError(f"metadata.name: not a name: {name!r}")
    return PoolPolicy(name, pool, Mode(mode), paused, interval, window)


def queries(namespace: str, job: str, window: str = "2m") -> dict[str, str]:
    """PromQL for one job's observation under the metric contract, scoped to the policy's namespace.

    ``job`` must be a DNS-1123 name (it is a Kubernetes object name), so it cannot break out of the label
    matcher; it is checked again here because these strings go to Prometheus verbatim.
    """
    if not _DNS1123.fullmatch(job) or len(job) > 253 or not _DNS1123.fullmatch(namespace):
        raise PoolSpecError(f"refusing to query metrics for {namespace!r}/{job!r}: not DNS-1123 names")
    sel = f'namespace="{namespace}",job_name="{job}"'
    step = tm.STEP_SECONDS
    return {
        "step_s": f"sum(rate({step}_sum{{{sel}}}[{window}])) / sum(rate({step}_count{{{sel}}}[{window}]))",
        "batch_size": f"max({tm.BATCH_SIZE}{{{sel}}})",
        "local_batch_size": f"max({tm.LOCAL_BATCH_SIZE}{{{sel}}})",
        "gpus": f"max({tm.GPUS}{{{sel}}})",
        "grad_sqr": f"avg({tm.GRAD_SQR}{{{sel}}})",
        "grad_var": f"avg({tm.GRAD_VAR}{{{sel}}})",
        "progress": f"max({tm.PROGRESS}{{{sel}}})",
    }


@dataclass
class JobRecord:
    """What the operator remembers about one pool job between rounds (profiles are per configuration)."""

    name: str
    limits: BatchLimits
    first_seen_s: float
    samples: dict[tuple[int, int, int], ts.StepSample]
    restarts: int = 0
    attained_gpu_s: float = 0.0
    max_gpus: int | None = None
    job_class: str | None = None
    config: tuple[int, int, int] | None = None
    """The (nodes, GPUs, micro-batch) the job last reported, and since when (``config_since_s``)."""
    config_since_s: float = 0.0


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) and value >= 0 else None


def observe(record: JobRecord, values: Mapping[str, float | None], allocation: tuple[tuple[str, int], ...],
            now: float, window_s: float = 0.0) -> ts.JobObservation:
    """Fold this round's query results into the job's record and return its observation.

    A step time is kept as a profile sample only when the job reports the GPUs and micro-batch it ran with
    (its pods restarted into the allocation); garbage (NaN, negative, absurd) is dropped, not believed.
    The first sample of a configuration is taken at once, so a scheduler can learn from it in the next
    round; its rate window may still hold steps of the configuration before the restart, so it is marked
    not ``clean``, and once the job has run the configuration for a whole ``window_s`` it is replaced by the
    clean one (only clean samples join a shared class model).
    """
    step = _finite(values.get("step_s"))
    gpus = _finite(values.get("gpus"))
    local = _finite(values.get("local_batch_size"))
    if step and gpus and local and step < 3600 and 1 <= gpus <= MAX_QUOTA:
        replicas, atomic = int(gpus), int(local)
        nodes = max(1, len(allocation))
        key = (nodes, replicas, atomic)
        if key != record.config:
            record.config, record.config_since_s = key, now
        if now - record.config_since_s >= window_s > 0:
            record.samples[key] = ts.StepSample(nodes, replicas, atomic, step)  # a whole window ran it
        else:  # with no window given every sample counts as clean (and the first is kept)
            record.samples.setdefault(key, ts.StepSample(nodes, replicas, atomic, step, clean=window_s <= 0))
    return ts.JobObservation(record.name, record.limits, allocation, tuple(record.samples.values()),
                             _finite(values.get("grad_sqr")), _finite(values.get("grad_var")),
                             restarts=record.restarts, age_s=now - record.first_seen_s,
                             attained_gpu_s=record.attained_gpu_s, max_gpus=record.max_gpus,
                             job_class=record.job_class)


@dataclass(frozen=True)
class JobAction:
    """What to do to one job: ``gpus`` 0 means suspend (scale to its minimum / recreate suspended)."""

    name: str
    gpus: int
    batch_size: int | None
    elastic_replicas: int | None
    """Set for an elastic PyTorchJob whose new size is within ``elasticPolicy``: resize in place."""
    env: tuple[tuple[str, str], ...]
    """``AUTOCM_*`` entries for a checkpoint-aware recreation (empty for an in-place elastic resize)."""


def plan(answer: Mapping[str, ts.Allocation], current: Mapping[str, int], pool: PoolSpec,
         elastic: Mapping[str, tuple[int, float] | None], gpus_per_worker: Mapping[str, int]) -> list[JobAction]:
    """The actions for jobs whose GPU count changed; refuses an answer over the quota as a whole.

    ``elastic`` is :func:`controller.pytorchjob.elastic_bounds` per job (None: not elastic); an elastic job
    is resized in place only while it holds GPUs (``current`` above 0).
    ``gpus_per_worker`` is each job's GPUs per pod (PyTorchJob worker or Job pod).
    """
    total = sum(a.gpus for a in answer.values())
    if total > pool.gpu_quota:
        raise ValueError(f"scheduler answer holds {total} GPUs, quota is {pool.gpu_quota}")
    ts.check_allocations(answer, pool.nodes())
    actions = []
    for name in sorted(answer):
        alloc = answer[name]
        if alloc.gpus == current.get(name, 0):
            continue
        per = max(1, int(gpus_per_worker.get(name, 1)))
        workers = alloc.gpus // per
        gpus = workers * per  # whole pods only; never more than answered
        bounds = elastic.get(name)
        # In place only while the job runs: a suspended (or not yet admitted) elastic job has no pods, and a
        # new Worker.replicas leaves runPolicy.suspend true, so the training operator would start nothing.
        # Admitting it is the recreation, which also writes the batch the scheduler chose.
        running = current.get(name, 0) > 0
        in_bounds = bounds is not None and running and workers >= 1 and bounds[0] <= workers <= bounds[1]
        env = () if in_bounds else (("AUTOCM_GPUS", str(gpus)),
                                    ("AUTOCM_BATCH_SIZE", str(alloc.batch_size or 0)))
        actions.append(JobAction(name, gpus, alloc.batch_size, workers if in_bounds else None, env))
    return actions


def run_round(scheduler: ts.TrainingScheduler, observations: Sequence[ts.JobObservation], pool: PoolSpec,
              now: float) -> dict[str, ts.Allocation]:
    """One decision for all jobs at once, capped at ``MAX_JOBS`` jobs (the rest wait: least attained first)."""
    jobs = sorted(observations, key=lambda o: o.attained_gpu_s)[:MAX_JOBS]
    answer = scheduler.allocate(jobs, pool.nodes(), now)
    ts.check_allocations(answer, pool.nodes())
    for o in observations:
        answer.setdefault(o.name, ts.Allocation(()))
    return answer
