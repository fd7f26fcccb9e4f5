"""The training-scheduler interface: observations of every job in a GPU pool in, allocations for all of them out.

A scheduler sees the jobs the way the operator can see real ones (what each ran, how fast, its gradient
statistics, how often it was restarted) and answers, for all jobs at once, how many GPUs on which nodes and
which batch size. Any scheduler registered here (``pollux`` below; a learned one later) plugs into both the
operator's training pool and the simulator through the same two types, so the policy the simulator
evaluates can be the object the operator runs. No I/O here: the operator fills :class:`JobObservation`
from Prometheus, the simulator from its jobs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from learners.pollux import (
    BatchLimits,
    GoodputModel,
    PerfParams,
    SearchJob,
    SearchProblem,
    SearchSettings,
    carry_states,
    fair_share_goodput,
    fit_perf_params,
    goodput_table,
    search,
)
from learners.shared_throughput import ClassThroughput, SharedThroughput


@dataclass(frozen=True)
class StepSample:
    """One configuration a job ran and its measured times (what ``autocm_train_step_seconds`` gives)."""

    num_nodes: int
    replicas: int
    atomic_bsz: int
    step_s: float
    accum_step_s: float | None = None
    """Time of one micro-batch without the gradient sync; None: not measured, taken as ``step_s``."""
    clean: bool = True
    """Measured over a whole rate window of this configuration. False: a configuration's first sample, taken
    at once so the job's own model can use it next round, whose window may still hold steps from before the
    restart into it (the operator replaces it by a clean one a window later)."""


@dataclass(frozen=True)
class JobObservation:
    """One job as a scheduler sees it."""

    name: str
    limits: BatchLimits
    allocation: tuple[tuple[str, int], ...] = ()
    """Current (node, GPUs) pairs; empty when the job holds nothing."""
    samples: tuple[StepSample, ...] = ()
    grad_sqr: float | None = None
    grad_var: float | None = None
    restarts: int = 0
    age_s: float = 0.0
    attained_gpu_s: float = 0.0
    max_gpus: int | None = None
    """Hard cap from the job's spec (e.g. ``elasticPolicy.maxReplicas``); None: no cap beyond the pool."""
    min_gpus: int = 1
    job_class: str | None = None
    """Jobs of one class (same model on the same hardware) share a throughput curve; a scheduler may pool
    what they report (``shared-goodput``). None: the job is a class of its own."""

    @property
    def gpus(self) -> int:
        return sum(c for _, c in self.allocation)


@dataclass(frozen=True)
class Allocation:
    """A scheduler's answer for one job: (node, GPUs) pairs (empty: suspended) and the global batch size."""

    placement: tuple[tuple[str, int], ...]
    batch_size: int | None = None

    @property
    def gpus(self) -> int:
        return sum(c for _, c in self.placement)


class TrainingScheduler(Protocol):
    """Decides allocations for all jobs of a pool each round."""

    name: str

    def allocate(self, jobs: Sequence[JobObservation], nodes: Mapping[str, int], now: float) -> dict[str, Allocation]:
        ...


_REGISTRY: dict[str, Callable[..., TrainingScheduler]] = {}


def register(name: str, factory: Callable[..., TrainingScheduler]) -> None:
    """Make ``name`` available to the operator's training pool and the simulator."""
    if name in _REGISTRY:
        raise ValueError(f"training scheduler {name!r} is already registered")
    _REGISTRY[name] = factory


def make(name: str, **kwargs) -> TrainingScheduler:
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown training scheduler {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None
    return factory(**kwargs)


def names() -> list[str]:
    return sorted(_REGISTRY)


def check_allocations(answer: Mapping[str, Allocation], nodes: Mapping[str, int]) -> None:
    """Refuse an answer that uses an unknown node or puts more GPUs on a node than it has."""
    used: dict[str, int] = {}
    for alloc in answer.values():
        for node, count in alloc.placement:
            if node not in nodes or count < 0:
                raise ValueError(f"allocation on unknown node {node!r} or negative count {count}")
            used[node] = used.get(node, 0) + count
    for node, count in used.items():
        if count > nodes[node]:
            raise ValueError(f"node {node!r} oversubscribed: {count} > {nodes[node]}")


class FixedScheduler:
    """The static baseline: each job, in arrival order, gets ``gpus`` (its fixed request) if they fit, and
    keeps them until it finishes; its batch size never changes. What a cluster without autocm does."""

    name = "fixed"

    def __init__(self, gpus: int = 4) -> None:
        self.gpus = int(gpus)

    def allocate(self, jobs: Sequence[JobObservation], nodes: Mapping[str, int], now: float) -> dict[str, Allocation]:
        free = dict(nodes)
        answer: dict[str, Allocation] = {}
        for job in jobs:  # keep what runs
            if job.allocation:
                answer[job.name] = Allocation(job.allocation)
                for node, c in job.allocation:
                    free[node] = free.get(node, 0) - c
        for job in sorted(jobs, key=lambda j: -j.age_s):
            if job.name in answer:
                continue
            want = min(self.gpus, job.max_gpus or self.gpus)
            placement = _pack(free, want)
            answer[job.name] = Allocation(placement)
        return answer


def _pack(free: dict[str, int], want: int) -> tuple[tuple[str, int], ...]:
    """``want`` GPUs on as few nodes as possible, or nothing if the pool has fewer free."""
    if want <= 0 or sum(max(v, 0) for v in free.values()) < want:
        return ()
    out = []
    for node in sorted(free, key=lambda n: -free[n]):
        take = min(free[node], want)
        if take > 0:
            out.append((node, take))
            free[node] -= take
            want -= take
        if want == 0:
            break
    return tuple(out)


@dataclass
class _JobModel:
    key: tuple = ()
    perf: PerfParams | None = None


class PolluxPool:
    """Pollux (Qiao et al., OSDI'21) over observed jobs: fit each job's throughput model to the step times it
    reported, combine with its gradient statistics into a goodput model, and run the same genetic search
    over job x node allocations (:mod:`learners.pollux`) that the simulator's ``pollux`` runs.

    Each job may grow to twice the most GPUs it has run on (at least 1), capped by its spec; the batch size
    for each placement is the one its goodput model prefers.
    """

    name = "pollux"

    def __init__(self, settings: SearchSettings | None = None, seed: int = 0) -> None:
        self.settings = settings or SearchSettings()
        self.rng = np.random.default_rng(seed)
        self._models: dict[str, _JobModel] = {}
        self._prev: tuple[np.ndarray, list[str], list[str]] | None = None

    def _model(self, job: JobObservation) -> GoodputModel | None:
        if not job.samples or job.grad_sqr is None or job.grad_var is None:
            return None
        key = tuple(job.samples)
        cached = self._models.setdefault(job.name, _JobModel())
        if cached.key != key:
            s = job.samples
            perf = fit_perf_params([x.num_nodes for x in s], [x.replicas for x in s], [x.atomic_bsz for x in s],
                                   [x.accum_step_s if x.accum_step_s is not None else x.step_s for x in s],
                                   [x.step_s for x in s])
            cached.key, cached.perf = key, perf
        assert cached.perf is not None
        return GoodputModel(cached.perf, job.grad_sqr, job.grad_var, job.limits)

    def _profiled(self, job: JobObservation) -> int:
        """The most GPUs the job's model has measured (growth is limited to twice that)."""
        return max((s.replicas for s in job.samples), default=0)

    def _limit(self, job: JobObservation) -> int:
        lim = job.limits
        profiled = self._profiled(job)
        grow = max(1, min(max(2 * profiled, 1), 64, lim.max_batch_size // lim.min_local_bsz))
        return min(grow, job.max_gpus) if job.max_gpus else grow

    def allocate(self, jobs: Sequence[JobObservation], nodes: Mapping[str, int], now: float) -> dict[str, Allocation]:
        node_names = list(nodes)
        capacity = np.array([nodes[n] for n in node_names], dtype=np.int64)
        if not jobs or capacity.sum() == 0:
            return {j.name: Allocation(()) for j in jobs}
        order = sorted(jobs, key=lambda j: (j.attained_gpu_s, -j.age_s))
        names_ = [j.name for j in order]
        total = int(capacity.sum())
        max_nodes = min(len(node_names), self.settings.max_nodes_per_job)
        models: dict[str, GoodputModel | None] = {}
        search_jobs = []
        for job in order:
            model = self._model(job)
            models[job.name] = model
            limit = self._limit(job)
            speedup = None
            if model is not None:
                table = goodput_table(model, limit, max_nodes)
                base = fair_share_goodput(model, total, len(node_names), len(order))
                speedup = table / base if base > 0 else table
            search_jobs.append(SearchJob(job.name, speedup, limit, job.restarts, job.age_s))
        index = {n: i for i, n in enumerate(node_names)}
        base_state = np.zeros((len(order), len(node_names)), dtype=np.int64)
        for j, job in enumerate(order):
            for node, count in job.allocation:
                if node in index:
                    base_state[j, index[node]] += count
        problem = SearchProblem(search_jobs, capacity, base_state, self.settings)
        best, keep = search(problem, carry_states(self._prev, names_, node_names), self.rng)
        self._prev = (keep, names_, node_names)
        for name in list(self._models):
            if name not in names_:
                del self._models[name]
        answer: dict[str, Allocation] = {}
        for j, job in enumerate(order):
            placement = tuple((node_names[i], int(c)) for i, c in enumerate(best[j]) if c)
            answer[job.name] = Allocation(placement, self._batch(job, models[job.name], placement))
        check_allocations(answer, nodes)
        return answer

    @staticmethod
    def _batch(job: JobObservation, model: GoodputModel | None, placement: tuple[tuple[str, int], ...]) -> int | None:
        """The global batch the job's goodput model prefers on this placement (before a model: ``max(M0,
        min_local x GPUs)``)."""
        if not placement:
            return None
        lim = job.limits
        replicas = sum(c for _, c in placement)
        if model is None:
            return int(max(lim.init_batch_size, lim.min_local_bsz * replicas))
        _, atomic, accum = model.optimize(len(placement), replicas)
        return int(min(atomic[0] * (accum[0] + 1) * replicas, lim.max_batch_size))



class SharedGoodputPool(PolluxPool):
    """``shared-goodput`` over observed jobs: :class:`PolluxPool` whose jobs of one ``job_class`` learn one
    throughput model together (:class:`~learners.shared_throughput.ClassThroughput`): every job publishes
    the configurations it ran, a new job starts from its class's fit and early gradient statistics, and it may
    grow to twice the most GPUs any job of its class ran on. The simulator's ``shared-goodput``
    (``simulator/training/shared_goodput.py``) is the same rule over simulated jobs. A job without a class is
    scheduled exactly as by :class:`PolluxPool`. The pool belongs to one policy, so classes never mix
    namespaces."""

    name = "shared-goodput"

    def __init__(self, settings: SearchSettings | None = None, seed: int = 0, max_staleness: int = 0) -> None:
        super().__init__(settings, seed)
        self.estimates = SharedThroughput(max_staleness)

    def _publish(self, job: JobObservation) -> None:
        """Add what the job reported to its class model (a known configuration changes nothing)."""
        if job.job_class is None:
            return
        shared = self.estimates.of(job.job_class)
        for s in job.samples:
            accum = s.accum_step_s if s.accum_step_s is not None else s.step_s
            try:
                # A first sample (not clean) joins the class model at once, so newcomers get a model; a
                # whole window's measurement replaces it and is what the convergence check scores.
                shared.publish((s.num_nodes, s.replicas, s.atomic_bsz), s.step_s, max(s.step_s - accum, 0.0),
                               replace=True, clean=s.clean)
            except ValueError:
                continue  # a sample no step-time model can hold is not believed
        if job.grad_sqr is not None and job.grad_var is not None:
            shared.publish_grad(job.grad_sqr, job.grad_var)

    def _class(self, job: JobObservation) -> ClassThroughput | None:
        return None if job.job_class is None else self.estimates.of(job.job_class)

    def allocate(self, jobs: Sequence[JobObservation], nodes: Mapping[str, int], now: float) -> dict[str, Allocation]:
        # Every job publishes before any is sized, so a newcomer sees this round's reports of its class.
        for job in jobs:
            self._publish(job)
        return super().allocate(jobs, nodes, now)

    def _model(self, job: JobObservation) -> GoodputModel | None:
        shared = self._class(job)
        if shared is None:
            return super()._model(job)
        perf = shared.model()
        grad = (job.grad_sqr, job.grad_var) if job.grad_sqr is not None and job.grad_var is not None \
            else shared.early_grad
        if perf is None or grad is None:
            return None
        return GoodputModel(perf, grad[0], grad[1], job.limits)

    def _profiled(self, job: JobObservation) -> int:
        if job.job_class is None:
            return super()._profiled(job)
        shared = self._class(job)
        assert shared is not None
        return max(shared.max_profiled_replicas, super()._profiled(job))


register("pollux", PolluxPool)
register("shared-goodput", SharedGoodputPool)
register("fixed", FixedScheduler)
