"""One training-pool SizingPolicy in the operator: list the pool's jobs, read their metrics, ask the scheduler
for all of them at once, apply the changed allocations.

Each round (every ``spec.intervalSeconds``):

1. list the Jobs and PyTorchJobs that match ``spec.trainingPool.selector`` in the policy's own namespace
   (never another: the namespace is the policy's, every object read back is checked to be in it);
2. read each running job's ``autocm_train_*`` series through the Prometheus client, with
   :func:`controller.training_pool.queries` (scoped to the namespace and the job's name);
3. fold them into :class:`~learners.training_scheduler.JobObservation` s and call the registered scheduler
   once for all jobs (:func:`~controller.training_pool.run_round`);
4. :func:`~controller.training_pool.plan` refuses an answer over the quota or oversubscribing a slot;
5. in apply mode, the changed jobs are actuated, the shrinking ones first (so that GPUs held never exceed
   the quota in between): an elastic PyTorchJob inside its ``elasticPolicy`` is resized in place
   (:func:`controller.pytorchjob.replicas_patch`), anything else goes through the checkpoint-aware recreation
   of :mod:`controller.kube` (:func:`~controller.kube.delete_and_wait`, then the object applied again with
   ``AUTOCM_GPUS`` / ``AUTOCM_BATCH_SIZE``); a job given no GPUs is recreated suspended;
6. a finished job's GPUs go back to the pool when its status says it finished. Its pods are then looked up
   until none is left on a node (:meth:`PoolRunner.lingering`): a worker that hangs on exit still holds its
   GPU, so the next job's pod waits Pending; the status row says so (``podsHoldingGpus``, ``gpusHeld``) and
   a ``FinishedJobHoldsGpus`` Warning names the pods. The pool does not wait for them (docs/training-operator.md).

What a pool job declares (annotations on the Job / PyTorchJob; all optional, bounded):
``autocm.io/init-batch-size`` (default: the container's ``AUTOCM_BATCH_SIZE``), ``autocm.io/max-batch-size``
(default: the initial batch), ``autocm.io/min-local-batch-size`` (default 1), ``autocm.io/max-local-batch-size``
(default: the max batch), ``autocm.io/max-gpus``. GPUs per pod are the managed container's ``nvidia.com/gpu``
limit (default 1). A PyTorchJob in a pool has one replica type (Worker or Master), so every pod is a worker.
Jobs should be created suspended (``spec.suspend`` / ``spec.runPolicy.suspend``): the pool starts them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubernetes.client import ApiException

from controller import pytorchjob
from controller import training_pool as tp
from controller.kube import (
    FIELD_MANAGER,
    GPU,
    RESTARTS_ANNOTATION,
    Kube,
    UnsafeTarget,
    container_of,
    delete_and_wait,
    free_gpus_by_node,
    involved_ref,
    job_pods_by_node,
    keep_pods_together,
    one_line,
    parse_quantity,
    path_segment,
    pod_gpus,
    pods_selector,
    post_event,
    prefer_node,
    recreated_job_body,
    workload_path,
)
from controller.loop import Mode
from controller.policy import TargetRef
from controller.prometheus import PrometheusClient, PrometheusError, format_window
from learners import training_scheduler as ts
from learners.pollux import BatchLimits
from learners.pool_consolidation import SETTLE_ROUNDS, consolidation
from learners.shared_throughput import SharedThroughput

MAX_BATCH = 1 << 20
LINGER_CHECKS_PER_ROUND = 16
"""Finished jobs whose pods are looked up per round: after an operator restart every old finished job is
checked once, a few per round, not all in one round."""
ANNOTATION_PREFIX = "autocm.io/"


class JobSpecError(ValueError):
    """A pool job whose annotations or shape the pool cannot use; it is left alone and reported."""


@dataclass(frozen=True)
class PoolJob:
    """One Job or PyTorchJob of the pool as read this round."""

    obj: Mapping[str, Any]
    target: TargetRef
    limits: BatchLimits
    gpus_per_worker: int
    workers: int
    suspended: bool
    finished: bool
    elastic: tuple[int, float] | None
    max_gpus: int | None
    restarts: int
    job_class: str | None = None
    """``autocm.io/job-class``: jobs of one class share a learned throughput model (``shared-goodput``)."""

    @property
    def name(self) -> str:
        return self.target.name

    @property
    def gpus(self) -> int:
        """GPUs the job holds now (0 while suspended or finished)."""
        return 0 if self.suspended or self.finished else self.workers * self.gpus_per_worker


def _annotation_int(meta: Mapping[str, Any], key: str, default: int | None, low: int = 1,
                    high: int = MAX_BATCH) -> int | None:
    raw = (meta.get("annotations") or {}).get(ANNOTATION_PREFIX + key)
    if raw is None:
        return default
    try:
        value = int(str(raw))
    except ValueError:
        raise JobSpecError(f"annotation {ANNOTATION_PREFIX}{key}: not an integer: {raw!r}") from None
    if not low <= value <= high:
        raise JobSpecError(f"annotation {ANNOTATION_PREFIX}{key}: must be in {low}..{high}, got {value}")
    return value


def _finished(obj: Mapping[str, Any]) -> bool:
    done = {"Complete", "Failed", "Succeeded"}
    return any(c.get("type") in done and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


def read_job(obj: Mapping[str, Any], namespace: str) -> PoolJob:
    """A listed object as a pool job; raises :class:`JobSpecError` (or UnsafeTarget) when it cannot be one."""
    meta = obj.get("metadata") or {}
    kind = obj.get("kind")
    if meta.get("namespace") != namespace:
        raise UnsafeTarget(f"refusing {kind} {meta.get('namespace')}/{meta.get('name')}: not in the pool's "
                           f"namespace {namespace}")
    name = meta.get("name")
    path_segment("job name", name)
    if kind == pytorchjob.KIND:
        specs = pytorchjob.replica_specs(obj)
        if len(specs) != 1:
            raise JobSpecError("a pool PyTorchJob has exactly one replica type (Worker or Master), got "
                               f"{sorted(specs)}")
        target = TargetRef(kind, name, namespace, pytorchjob.API_VERSION)
        workers = pytorchjob.replicas(obj)
        suspended = bool(((obj.get("spec") or {}).get("runPolicy") or {}).get("suspend", False))
        elastic = pytorchjob.elastic_bounds(obj)
    else:
        target = TargetRef("Job", name, namespace, "batch/v1")
        spec = obj.get("spec") or {}
        workers = int(spec.get("parallelism", 1))
        suspended = bool(spec.get("suspend", False))
        elastic = None
    try:
        container = container_of(obj, None)
    except (ValueError, KeyError) as exc:
        raise JobSpecError(str(exc)) from None
    res = container.get("resources") or {}
    raw_gpus = (res.get("limits") or {}).get(GPU, (res.get("requests") or {}).get(GPU, 1))
    try:
        per = int(parse_quantity(raw_gpus))
    except ValueError:
        raise JobSpecError(f"container {container.get('name')}: {GPU} {raw_gpus!r} is not a quantity") from None
    if not 1 <= per <= tp.MAX_GPUS_PER_NODE:
        raise JobSpecError(f"container {container.get('name')}: {GPU} must be 1..{tp.MAX_GPUS_PER_NODE} per pod")
    env = {e.get("name"): e.get("value") for e in container.get("env") or [] if "value" in e}
    try:
        env_batch = int(str(env.get("AUTOCM_BATCH_SIZE"))) if env.get("AUTOCM_BATCH_SIZE") else None
    except ValueError:
        env_batch = None
    init = _annotation_int(meta, "init-batch-size", env_batch if env_batch and env_batch >= 1 else None)
    if init is None:
        raise JobSpecError("no initial batch size: set annotation autocm.io/init-batch-size or AUTOCM_BATCH_SIZE")
    most = _annotation_int(meta, "max-batch-size", init)
    low = _annotation_int(meta, "min-local-batch-size", 1)
    high = _annotation_int(meta, "max-local-batch-size", most)
    assert most is not None and low is not None and high is not None
    if not (init <= most and low <= high):
        raise JobSpecError(f"batch limits: need init {init} <= max {most} and min local {low} <= max local {high}")
    max_gpus = _annotation_int(meta, "max-gpus", None, 1, tp.MAX_QUOTA)
    if elastic is not None and math.isfinite(elastic[1]):
        cap = int(elastic[1]) * per
        max_gpus = min(max_gpus, cap) if max_gpus else cap
    restarts = _annotation_int(meta, "restarts", 0, 0, 1 << 30) or 0
    job_class = (meta.get("annotations") or {}).get(ANNOTATION_PREFIX + "job-class")
    if job_class is not None and (not isinstance(job_class, str) or not job_class
                                  or not tp.LABEL_VALUE.fullmatch(job_class) or len(job_class) > 63):
        raise JobSpecError(f"annotation {ANNOTATION_PREFIX}job-class: must be a label value (1-63 letters, "
                           f"digits, '-', '_', '.'), got {job_class!r}")
    return PoolJob(obj, target, BatchLimits(init, most, low, high), per, workers, suspended, _finished(obj),
                   elastic, max_gpus, restarts, job_class)


@dataclass
class PoolStep:
    """What a round did, for the engine to write: outcome, conditions (type, status, reason, message),
    status fields and events (type, reason, message)."""

    outcome: str
    conditions: list[tuple[str, str, str, str]]
    status: dict[str, Any]
    events: list[tuple[str, str, str]] = field(default_factory=list)


class PoolRunner:
    """One pool policy: the scheduler, what the pool remembers of each job, and one round per interval."""

    def __init__(self, policy: tp.PoolPolicy, body: Mapping[str, Any], kube: Kube, prometheus: PrometheusClient,
                 clock: Callable[[], float] = time.time) -> None:
        self.policy = policy
        self.generation = int((body.get("metadata") or {}).get("generation", 0))
        self.kube = kube
        self.prometheus = prometheus
        self.clock = clock
        self.scheduler = ts.make(policy.pool.scheduler, **policy.pool.scheduler_kwargs())
        self.records: dict[str, tp.JobRecord] = {}
        self.placements: dict[str, tuple[tuple[str, int], ...]] = {}
        self.batch: dict[str, int] = {}
        self.last_round_s: float | None = None
        self.pods_gone: set[str] = set()
        """Finished jobs seen with no pod left on a node: not looked up again."""
        self.changed_at: dict[str, float] = {}
        """When the pool last recreated each running job, or first saw it: the consolidation waits
        ``SETTLE_ROUNDS`` rounds after that."""
        self.cluster_read_after = 0.0
        """The consolidation reads the cluster's nodes and pods no sooner than this: after a read that moved
        nothing, it waits ``SETTLE_ROUNDS`` rounds, so a pool whose jobs stay split does not list every pod of
        a large cluster every round."""
        self._held_by_finished: dict[str, list[tuple[str, str, float]]] = {}
        self._restore(body)

    def _restore(self, body: Mapping[str, Any]) -> None:
        """Placements from the last status, so that a restarted operator does not reshuffle running jobs."""
        jobs = (((body.get("status") or {}).get("trainingPool") or {}).get("jobs")) or {}
        slots = self.policy.pool.nodes()
        for name, row in jobs.items():
            if not isinstance(row, Mapping) or not isinstance(row.get("placement"), str) or not row["placement"]:
                continue
            try:
                pairs = tuple((n, int(c)) for n, c in (p.split(":") for p in row["placement"].split(",")))
            except ValueError:
                continue
            if all(n in slots for n, _ in pairs):
                self.placements[name] = pairs

    # reading ----------------------------------------------------------------------------------------
    def _list_jobs(self) -> list[Mapping[str, Any]]:
        ns = path_segment("namespace", self.policy.namespace)
        sel = self.policy.pool.label_selector()
        items = [{"apiVersion": "batch/v1", "kind": "Job", **o} for o in
                 self.kube.get(f"/apis/batch/v1/namespaces/{ns}/jobs", labelSelector=sel).get("items", [])]
        try:
            items += [{"apiVersion": pytorchjob.API_VERSION, "kind": pytorchjob.KIND, **o} for o in self.kube.get(
                f"/apis/kubeflow.org/v1/namespaces/{ns}/pytorchjobs",  # pytorchjob.API_VERSION, PLURAL
                labelSelector=sel).get("items", [])]
        except ApiException as exc:
            if exc.status != 404:  # 404: the PyTorchJob CRD is not installed; a pool of Jobs is fine
                raise
        return items[: tp.MAX_JOBS * 2]

    def _metrics(self, job: str) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for key, promql in tp.queries(self.policy.namespace, job, format_window(self.policy.window_s)).items():
            samples = self.prometheus.query(promql)
            out[key] = samples[0].value if samples else None
        return out

    # one round --------------------------------------------------------------------------------------
    def step(self, now: float, paused_by: str | None) -> PoolStep:
        pool = self.policy.pool
        events: list[tuple[str, str, str]] = []
        jobs: dict[str, PoolJob] = {}
        for obj in self._list_jobs():
            name = (obj.get("metadata") or {}).get("name")
            try:
                jobs[str(name)] = read_job(obj, pool.namespace)
            except (JobSpecError, UnsafeTarget) as exc:
                events.append(("Warning", "PoolJobRefused", f"{obj.get('kind')} {name}: {exc}"))
        dt = 0.0 if self.last_round_s is None else max(0.0, now - self.last_round_s)
        self.last_round_s = now
        active = {n: j for n, j in jobs.items() if not j.finished}
        self._held_by_finished = self.lingering(jobs)  # read again by _status for the jobs' rows
        for name, pods in sorted(self._held_by_finished.items()):
            gpus = sum(g for _, _, g in pods)
            shown = ", ".join(f"{pod} on {node}" for pod, node, _ in pods[:3]) + (" and more" if len(pods) > 3
                                                                                 else "")
            events.append(("Warning", "FinishedJobHoldsGpus",
                           f"{jobs[name].target.kind} {name} finished, but {len(pods)} of its pods still hold "
                           f"{gpus:g} GPUs ({one_line(shown, 300)}); the pool has given them to other jobs, whose "
                           "pods wait until these exit (a PyTorchJob's runPolicy.cleanPodPolicy: Running "
                           "deletes them)"))
        for name in list(self.records):
            if name not in active:
                self.records.pop(name)
                self.placements.pop(name, None)
                self.changed_at.pop(name, None)
        for name in active:
            self.changed_at.setdefault(name, now)
        try:
            metrics = {n: self._metrics(n) for n in active}
        except PrometheusError as exc:
            msg = f"no allocation this round: {exc}"
            return PoolStep("frozen", [("Ready", "True", "Managing", self._managing(active)),
                                       ("MetricsAvailable", "False", "PrometheusUnavailable", str(exc)),
                                       ("Applied", "False", "Frozen", msg)],
                            self._status(jobs, {}, now, msg), events)
        observations = []
        for name, job in active.items():
            rec = self.records.get(name)
            if rec is None:
                rec = self.records[name] = tp.JobRecord(name, job.limits, now, {})
            rec.limits, rec.max_gpus, rec.restarts = job.limits, job.max_gpus, job.restarts
            rec.job_class = job.job_class
            rec.attained_gpu_s += job.gpus * dt
            placement = self.placements.get(name, ()) if job.gpus else ()
            if sum(c for _, c in placement) != job.gpus:
                placement = ()  # what it holds is not what we placed (created running, or changed by hand)
            observations.append(tp.observe(rec, metrics[name], placement, now, self.policy.window_s))
        current = {n: j.gpus for n, j in active.items()}
        try:
            answer = tp.run_round(self.scheduler, observations, pool, now) if observations else {}
            # A scheduler that keeps the batch (fixed) answers None: the job keeps its initial batch.
            answer = {n: ts.Allocation(a.placement, a.batch_size or (active[n].limits.init_batch_size
                                                                     if a.gpus else None))
                      for n, a in answer.items() if n in active}
            actions = tp.plan(answer, current, pool, {n: j.elastic for n, j in active.items()},
                              {n: j.gpus_per_worker for n, j in active.items()})
        except ValueError as exc:
            msg = f"scheduler {pool.scheduler} answer refused: {exc}"
            return PoolStep("refused", [("Ready", "True", "Managing", self._managing(active)),
                                        ("MetricsAvailable", "True", "MetricsRead", "metrics read"),
                                        ("Applied", "False", "OverQuota", msg)],
                            self._status(jobs, {}, now, msg), [*events, ("Warning", "PoolAnswerRefused", msg)])
        applied = self.policy.mode is Mode.APPLY and paused_by is None
        words = [f"{a.name}: {current.get(a.name, 0)} -> {a.gpus} GPUs"
                 + (f", batch {a.batch_size}" if a.gpus and a.batch_size else "")
                 + (" (elastic resize)" if a.elastic_replicas else " (recreated)" if a.gpus else " (suspended)")
                 for a in actions]
        done: list[str] = []
        if applied:
            # Shrink first: GPUs a job gives up are gone (pods deleted) before another job is given them.
            for action in sorted(actions, key=lambda a: a.gpus - current.get(a.name, 0)):
                self._apply(active[action.name], action)
                done.append(action.name)
                if not action.elastic_replicas:
                    self.records[action.name].restarts += 1
                    self.changed_at[action.name] = now
                if action.batch_size:  # what the job runs with from now on (it reads it on restart)
                    self.batch[action.name] = action.batch_size
                text = f"{action.name}: {current.get(action.name, 0)} -> {action.gpus} GPUs" + (
                    f", batch size {action.batch_size}" if action.gpus and action.batch_size else "")
                events.append(("Normal", "AutocmPoolAllocated", f"{text} ({pool.scheduler})"))
        if applied and pool.consolidate:
            moved = self._consolidate(active, {a.name for a in actions}, answer, now)
            if moved is not None:
                name, node, nodes = moved
                done.append(name)
                words.append(f"{name}: {active[name].gpus} GPUs over {nodes} nodes onto node {node} (recreated)")
                events.append(("Normal", "AutocmPoolConsolidated",
                               f"{name}: {active[name].gpus} GPUs over {nodes} nodes -> node {node} "
                               f"({pool.scheduler})"))
        for name, alloc in answer.items():
            if applied or not actions:
                self.placements[name] = alloc.placement
        held = {n: (self.placements.get(n, ()) if applied else ()) for n in active}
        if applied:
            verb = "applied" if done else "unchanged"
            msg = f"{pool.scheduler}: " + ("; ".join(words) if words else "keep every allocation")
            applied_cond = ("Applied", "True", "Applied" if done else "UpToDate", msg)
        else:
            verb = "paused" if paused_by else ("recommended" if actions else "unchanged")
            msg = (paused_by + "; " if paused_by else "") + f"{pool.scheduler} would: " + (
                "; ".join(words) if words else "keep every allocation") + " (not applied)"
            applied_cond = ("Applied", "False", "Paused" if paused_by else "RecommendOnly", msg)
        status = self._status(jobs, held, now, msg, answer if not applied else None)
        return PoolStep(verb, [("Ready", "True", "Paused" if paused_by else "Managing", self._managing(active)),
                               ("MetricsAvailable", "True", "MetricsRead",
                                f"autocm_train_* read for {len(active)} job(s)"),
                               applied_cond], status, events)

    def lingering(self, jobs: Mapping[str, PoolJob]) -> dict[str, list[tuple[str, str, float]]]:
        """Finished jobs whose pods still hold GPUs: job -> [(pod, node, GPUs)], for pods bound to a node,
        not Succeeded or Failed, asking for GPUs (a Terminating one counts: its GPU is not free until it is
        gone). A job found with none is not looked up again; at most ``LINGER_CHECKS_PER_ROUND`` per round.
        Best effort: a failed lookup is tried next round."""
        finished = sorted(n for n, j in jobs.items() if j.finished)
        self.pods_gone &= set(finished)
        out: dict[str, list[tuple[str, str, float]]] = {}
        ns = path_segment("namespace", self.policy.namespace)
        for name in [n for n in finished if n not in self.pods_gone][:LINGER_CHECKS_PER_ROUND]:
            # A Job's own selector (its controller-uid) is exact on every Kubernetes version.
            selector = pods_selector(jobs[name].obj, jobs[name].target.kind, name)
            if selector is None:
                self.pods_gone.add(name)  # not a selector we can write safely: nothing to look up
                continue
            try:
                items = self.kube.get(f"/api/v1/namespaces/{ns}/pods", labelSelector=selector).get("items", [])
            except (ApiException, OSError, TimeoutError):
                continue
            pods = []
            for p in items:
                if not (p.get("spec") or {}).get("nodeName") or not (p.get("metadata") or {}).get("name") or \
                        (p.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                    continue
                try:
                    gpus = pod_gpus(p)
                except (ValueError, TypeError, AttributeError):
                    continue  # a quantity we cannot read: not counted, never a failed round
                if gpus > 0:
                    pods.append((str(p["metadata"]["name"]), str(p["spec"]["nodeName"]), gpus))
            if pods:
                out[name] = pods
            else:
                self.pods_gone.add(name)
        return out

    def _managing(self, active: Mapping[str, PoolJob]) -> str:
        pool = self.policy.pool
        return (f"training pool of {len(active)} running job(s) matching {pool.label_selector()}, "
                f"{pool.gpu_quota} GPUs, scheduler {pool.scheduler}")

    def _consolidate(self, active: Mapping[str, PoolJob], acted: set[str], answer: Mapping[str, ts.Allocation],
                     now: float) -> tuple[str, str, int] | None:
        """Recreate at most one running job whose pods are split over nodes onto one node that has room for all
        of them (:func:`learners.pool_consolidation.consolidation`), with its GPUs and the scheduler's batch, and
        a preference for that node. Only jobs not changed this round and settled for ``SETTLE_ROUNDS`` rounds;
        the cluster's nodes and pods are read only when some job is split. Best effort: a failed read skips the
        round. Returns (job, node, nodes it was over) when it moved one."""
        settle_s = SETTLE_ROUNDS * self.policy.interval_s
        kind_of = {n: j.target.kind for n, j in active.items()
                   if n not in acted and j.gpus > 1 and now - self.changed_at.get(n, now) >= settle_s}
        if not kind_of or now < self.cluster_read_after:
            return None
        ns = path_segment("namespace", self.policy.namespace)
        try:
            mine = job_pods_by_node(self.kube.get(f"/api/v1/namespaces/{ns}/pods").get("items", []), kind_of)
            split = {n: tuple(sorted(per.items())) for n, per in mine.items()
                     if len(per) > 1 and sum(per.values()) == active[n].gpus}
            if not split:
                return None
            free = free_gpus_by_node(self.kube.get("/api/v1/nodes").get("items", []),
                                     self.kube.get("/api/v1/pods").get("items", []))
        except (ApiException, OSError, TimeoutError):
            return None
        move = consolidation({n: share for n, share in split.items() if all(node in free for node, _ in share)},
                             {n: f for n, (f, _) in free.items()})
        if move is None:
            self.cluster_read_after = now + settle_s
            return None
        name, node = move
        job = active[name]
        batch = answer[name].batch_size if name in answer else self.batch.get(name)
        action = tp.JobAction(name, job.gpus, batch, None, (("AUTOCM_GPUS", str(job.gpus)),
                                                           ("AUTOCM_BATCH_SIZE", str(batch or 0))))
        self._apply(job, action, node_hostname=free[node][1])
        self.records[name].restarts += 1
        self.changed_at[name] = now
        if batch:
            self.batch[name] = batch
        return name, node, len(split[name])

    def _apply(self, job: PoolJob, action: tp.JobAction, node_hostname: str | None = None) -> None:
        """An elastic resize in place, or the checkpoint-aware recreation with the new AUTOCM_* values (and,
        given ``node_hostname``, a preference for that node)."""
        t = job.target
        path = workload_path(t)
        obj = job.obj
        if action.elastic_replicas:
            self.kube.merge_patch(path, pytorchjob.replicas_patch(obj, action.elastic_replicas),
                                  field_manager=FIELD_MANAGER)
            post_event(self.kube, involved_ref(obj), "Normal", "AutocmResized",
                       f"workers {job.workers} -> {action.elastic_replicas} (training pool {self.policy.name})")
            return
        workers = action.gpus // job.gpus_per_worker
        container = container_of(obj, None)
        mine = {"name": container["name"], "env": [{"name": k, "value": v} for k, v in action.env]}
        restarts = delete_and_wait(self.kube, obj, t, self.clock)
        if t.kind == pytorchjob.KIND:
            spec = pytorchjob.recreated_spec(obj, container["name"], mine, workers or None)
            spec.setdefault("runPolicy", {})["suspend"] = workers == 0
            meta = obj["metadata"]
            annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                           if not k.startswith("kubectl.kubernetes.io/")}
            annotations[RESTARTS_ANNOTATION] = str(restarts)
            annotations["autocm.io/recreated-from-uid"] = meta.get("uid", "")
            body = {"apiVersion": pytorchjob.API_VERSION, "kind": pytorchjob.KIND,
                    "metadata": {"name": t.name, "namespace": t.namespace, "labels": meta.get("labels", {}),
                                 "annotations": annotations}, "spec": spec}
        else:
            body = recreated_job_body(obj, t, container["name"], mine, workers or None, restarts,
                                      suspend=workers == 0)
            if workers and "completions" in body["spec"]:
                body["spec"]["completions"] = workers
        keep_pods_together(body, t.kind, t.name)
        prefer_node(body, t.kind, node_hostname)  # also takes out the node an earlier move preferred
        self.kube.apply(path, body)
        post_event(self.kube, involved_ref(obj), "Normal", "AutocmRecreated",
                   f"{job.gpus} -> {action.gpus} GPUs, batch size {action.batch_size} "
                   f"(training pool {self.policy.name}; restart {restarts})")

    def _status(self, jobs: Mapping[str, PoolJob], held: Mapping[str, tuple[tuple[str, int], ...]], now: float,
                message: str, recommended: Mapping[str, ts.Allocation] | None = None) -> dict[str, Any]:
        rows: dict[str, Any] = {}
        for name, job in sorted(jobs.items())[: tp.MAX_JOBS]:
            if job.finished:
                rows[name] = {"gpus": 0, "finished": True, "restarts": job.restarts}
                pods = self._held_by_finished.get(name)
                if pods:
                    rows[name]["podsHoldingGpus"] = len(pods)
                    rows[name]["gpusHeld"] = math.ceil(sum(g for _, _, g in pods))
                continue
            placement = held.get(name) or ()
            gpus = sum(c for _, c in placement) if placement else job.gpus
            if recommended is not None and name in recommended:
                placement, gpus = recommended[name].placement, recommended[name].gpus
            row: dict[str, Any] = {"gpus": int(gpus), "restarts": int(self.records[name].restarts
                                                                      if name in self.records else job.restarts)}
            if placement:
                row["placement"] = ",".join(f"{n}:{c}" for n, c in placement)
            batch = recommended[name].batch_size if recommended is not None and name in recommended \
                else self.batch.get(name)
            if batch and gpus:
                row["batchSize"] = int(batch)
            rows[name] = row
        pool = self.policy.pool
        status: dict[str, Any] = {"scheduler": pool.scheduler, "gpuQuota": pool.gpu_quota,
                                  "gpusAllocated": int(sum(r["gpus"] for r in rows.values())), "jobs": rows}
        classes = self._class_models(jobs)
        if classes:
            status["classes"] = classes
        return {"trainingPool": status,
                "lastDecision": {"time": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                                 "message": message[:4096]}}

    def _class_models(self, jobs: Mapping[str, PoolJob]) -> dict[str, Any]:
        """Per job class of the pool's current jobs, what its shared throughput model has learned (only a
        scheduler that keeps class models, ``shared-goodput``): configurations measured, whether its
        out-of-sample convergence check passed, and its median out-of-sample error."""
        estimates = getattr(self.scheduler, "estimates", None)
        if not isinstance(estimates, SharedThroughput):
            return {}
        out: dict[str, Any] = {}
        for name in sorted({j.job_class for j in jobs.values() if j.job_class})[: tp.MAX_JOBS]:
            model = estimates.classes.get(name)
            if model is None:
                continue
            row: dict[str, Any] = {"configs": len(model.observations), "converged": model.converged}
            if model.median_error is not None:
                row["medianError"] = round(model.median_error, 4)
            out[name] = row
        return out
