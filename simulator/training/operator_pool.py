"""The operator's training-pool schedulers run inside the training cluster simulator.

The operator runs :mod:`learners.training_scheduler` objects (``PolluxPool``, ``SharedGoodputPool``), which
see each job only as a :class:`~learners.training_scheduler.JobObservation`: the step time it reported for
each configuration it ran (``autocm_train_step_seconds``), its gradient statistics, restarts, age and attained
service. The simulator's own ``pollux`` (:mod:`simulator.training.pollux`) wires the same math the way the
Pollux artifact does: an agent inside every job, which re-picks the batch size after every epoch without a
restart (AdaptDL). The two are different objects, so the paper's workloads measured the simulator's, not
the operator's.

:class:`OperatorPoolScheduler` runs the operator's object itself over the simulated cluster, so that the
paper's workloads measure exactly what the operator runs (``pollux-pool``, ``shared-goodput-pool`` in
scenarios and ``autocm sim``):

- every job carries a :class:`Reporter`, the simulated ``autocm_train_*`` exporter: it records the step time
  of each configuration the job runs and its latest gradient statistics, and keeps the batch size the last
  decision set (the operator changes the batch only when it restarts a job, through ``AUTOCM_BATCH_SIZE``);
- every round the cluster's job views become observations, the scheduler allocates all jobs at once, and the
  answer is applied by the operator pool's rules (``controller/pool_runner.py``): a job is touched only when its
  GPU count changes; Kubernetes, not the pool, places a recreated job's pods, and the pool asks it to keep them
  together (``controller.kube.keep_pods_together``), so they land as :func:`pack` says, wherever GPUs are free
  and not where the search put them; the search is shown its own placement book, not the physical nodes.

What the cluster adds is what the operator's real pool cannot see either: progress from the profiles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from learners import training_scheduler as ts
from learners.batch_advisor import BatchAdvisor
from learners.pollux import BatchLimits
from learners.pool_consolidation import SETTLE_ROUNDS, consolidation
from simulator.training.cluster_sim import Decision, JobView
from simulator.training.job import BatchConfig, TrainingJob, batch_config
from simulator.training.pollux import PINNED
from simulator.training.pool_replay import covered_config
from simulator.training.profiles import StepTime

OPERATOR_SCHEDULERS = {"pollux-pool": ("pollux", False), "shared-goodput-pool": ("shared-goodput", False),
                       "pollux-pool-advised": ("pollux", True), "shared-goodput-pool-advised": ("shared-goodput", True)}
"""Simulator name -> (the operator's registered name, whether every job runs the in-job
:class:`~learners.batch_advisor.BatchAdvisor`, as a training loop with ``TrainingMetrics(limits=...)`` does)."""


class Reporter:
    """Inside one simulated job, what the operator's metrics give: step times per configuration run, the
    latest gradient statistics. Without an advisor it picks no batch: the job runs the batch of its last
    restart. With one, the job re-picks its batch after every stretch it runs, as its training loop would
    between epochs, without a restart."""

    def __init__(self, advisor: BatchAdvisor | None = None) -> None:
        self.samples: dict[tuple[int, int, int], ts.StepSample] = {}
        self.grad: tuple[float, float] | None = None
        self.advisor = advisor

    def observe(self, job: TrainingJob, step: StepTime, grad_sqr: float, grad_var: float) -> None:
        self.grad = (grad_sqr, grad_var)
        assert job.config is not None
        key = (len(job.placement), sum(job.placement), job.config.atomic_bsz)
        self.samples.setdefault(key, ts.StepSample(*key, step.step_s, step.compute_s))
        if self.advisor is not None:
            self.advisor.observe_step(*key, step.step_s, step.compute_s)
            self.advisor.observe_gradient(grad_sqr, grad_var)

    def batch_config(self, job: TrainingJob, placement: tuple[int, ...]) -> BatchConfig:
        advice = self.advisor.advise(len(placement), sum(placement)) if self.advisor is not None else None
        config = BatchConfig(advice.atomic_bsz, advice.accum_steps, advice.num_replicas) if advice is not None else \
            batch_config(job.profile, sum(placement), job.batch_size_target)
        return covered_config(job.profile, placement, config)


class OperatorPoolScheduler:
    """A :class:`learners.training_scheduler.TrainingScheduler` (the operator's interface) as a cluster
    scheduler of the simulator."""

    def __init__(self, name: str, seed: int = 0, pods: str = "together", consolidate: bool = True,
                 **kwargs: object) -> None:
        """``pods``: how Kubernetes places a recreated job's pods: ``together`` as the pool asks it to
        (:func:`pack`), or ``spread``, each on the freest node, as it would without the pool's preference
        (:func:`spread`; for comparison). ``consolidate``: the pool moves a job whose pods are split over
        nodes onto one node with room for all of them, at most one job a round
        (:func:`learners.pool_consolidation.consolidation`, as the operator's pool does)."""
        if name not in OPERATOR_SCHEDULERS:
            raise ValueError(f"no operator pool scheduler {name!r}; known: {sorted(OPERATOR_SCHEDULERS)}")
        if pods not in PLACERS:
            raise ValueError(f"pods={pods!r}: one of {sorted(PLACERS)}")
        self.name = name
        self.place = PLACERS[pods]
        self.consolidate = consolidate
        self.changed_s: dict[str, float] = {}
        self.check_after_s = 0.0
        """As the pool's ``cluster_read_after``: after a look for room that found none, the next is ``SETTLE_S``
        later."""
        """When the pool last recreated each job (the consolidation waits ``SETTLE_S`` after it)."""
        inner, self.advised = OPERATOR_SCHEDULERS[name]
        self.inner = ts.make(inner, seed=seed, **kwargs)
        self.rng = getattr(self.inner, "rng", None)
        """The operator's scheduler's own generator (its genetic search): the run depends on the seed."""
        self.jobs: dict[str, TrainingJob] = {}
        self.placements: dict[str, tuple[tuple[str, int], ...]] = {}
        """The scheduler's own (node, GPUs) book per job, kept as the operator's pool keeps it
        (``controller.pool_runner.PoolRunner.placements``): the search's last answer, which the job's pods
        need not follow (Kubernetes places them), shown back to the search while the GPU count matches."""

    def attach(self, job: TrainingJob) -> None:
        p = job.profile
        advisor = None
        if self.advised and p.name not in PINNED:  # a pinned job's batch is fixed by its spec
            advisor = BatchAdvisor(p.batch_limits)
        job.agent = Reporter(advisor)
        self.jobs[job.name] = job

    def observation(self, view: JobView) -> ts.JobObservation:
        job = self.jobs[view.name]
        p = job.profile
        reporter = job.agent
        assert isinstance(reporter, Reporter)
        limits = p.batch_limits
        max_gpus = None
        if p.name in PINNED:  # the artifact pins NCF's batch and GPUs; a pool job says so in its spec
            batch, max_gpus = PINNED[p.name]
            limits = BatchLimits(batch, batch, p.min_local_bsz, p.max_local_bsz)
        grad = reporter.grad or (None, None)
        booked = self.placements.get(view.name, ()) if view.allocation else ()
        if sum(c for _, c in booked) != sum(c for _, c in view.allocation):
            booked = ()
        return ts.JobObservation(view.name, limits, booked, tuple(reporter.samples.values()), grad[0],
                                 grad[1], restarts=max(view.num_restarts, 0), age_s=view.age_s,
                                 attained_gpu_s=view.attained_service_gpu_s, max_gpus=max_gpus,
                                 job_class=view.application)

    def optimize(self, jobs: Sequence[JobView], nodes: Mapping[str, int], now: float) -> dict[str, Decision]:
        answer = self.inner.allocate([self.observation(v) for v in jobs], nodes, now)
        out: dict[str, Decision] = {}
        free = dict(nodes)
        moved: list[tuple[JobView, int, int | None]] = []
        for view in jobs:
            alloc = answer.get(view.name, ts.Allocation(()))
            share = tuple((n, int(c)) for n, c in alloc.placement if c)
            self.placements[view.name] = share
            if sum(c for _, c in share) == sum(c for _, c in view.allocation):
                # The operator acts on a job only when its GPU count changes (controller.training_pool.plan):
                # same count, the job keeps its pods, and the batch waits for the next restart.
                share = view.allocation
                for node, c in share:
                    free[node] -= c
                out[view.name] = Decision(tuple(c for _, c in share), None, share) if share else Decision(())
            elif share:
                moved.append((view, sum(c for _, c in share), alloc.batch_size))
            else:
                out[view.name] = Decision(())
        for view, gpus, batch in moved:
            # Kubernetes places the recreated job's pods; the operator asks it to keep them together (a
            # preferred pod affinity on the node among the job's own pods), so the first pod lands on the
            # node with most free GPUs and the rest follow it while it has room.
            share = self.place(free, gpus)
            out[view.name] = Decision(tuple(c for _, c in share), batch, share) if share else Decision(())
            self.changed_s[view.name] = now
        if self.consolidate and now >= self.check_after_s:
            recreated = {m.name for m, _, _ in moved}
            settled = {v.name: v.allocation for v in jobs if v.name not in recreated
                       and now - self.changed_s.get(v.name, -SETTLE_S) >= SETTLE_S}
            move = consolidation(settled, free)
            if move is None and any(len(a) > 1 for a in settled.values()):
                self.check_after_s = now + SETTLE_S  # as the pool: no room found, the cluster is read again later
            if move is not None:
                name, node = move
                gpus = sum(c for _, c in settled[name])
                batch = answer[name].batch_size if name in answer else None
                out[name] = Decision((gpus,), batch, ((node, gpus),))
                self.changed_s[name] = now
        return out


SETTLE_S = SETTLE_ROUNDS * 60.0
"""The pool's settling time in the simulator's 60 s rounds."""


def pack(free: dict[str, int], gpus: int) -> tuple[tuple[str, int], ...]:
    """Where Kubernetes puts a recreated job's ``gpus`` one-GPU pods that prefer each other's node: the first on
    the node with most free GPUs (the default scores favour the least allocated node; ties to the first), the
    rest after it while it has room, then the next freest; ``()`` if they do not fit. Takes them out of
    ``free``. Without the preference each pod would go to the freest node, spreading the job."""
    if sum(free.values()) < gpus:
        return ()
    share = []
    left = gpus
    while left:
        node = max(free, key=lambda n: free[n])
        take = min(free[node], left)
        share.append((node, take))
        free[node] -= take
        left -= take
    return tuple(share)


def spread(free: dict[str, int], gpus: int) -> tuple[tuple[str, int], ...]:
    """Where Kubernetes' default scores put ``gpus`` one-GPU pods with no preference for each other: each on the
    node with most free GPUs at its turn (ties to the first), so a job spreads; ``()`` if they do not fit.
    Takes them out of ``free``."""
    if sum(free.values()) < gpus:
        return ()
    share: dict[str, int] = {}
    for _ in range(gpus):
        node = max(free, key=lambda n: free[n])
        free[node] -= 1
        share[node] = share.get(node, 0) + 1
    return tuple(share.items())


PLACERS = {"together": pack, "spread": spread}
