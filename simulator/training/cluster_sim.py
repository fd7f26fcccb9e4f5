"""The SimPy training cluster: jobs arrive, a scheduler is consulted every round, jobs progress at goodput.

One process runs the scheduling rounds (every 60 s, the artifact's ``--interval`` default in
``simulator.py``). At each round it (1) advances every placed job through the elapsed time
(:meth:`TrainingJob.advance`, progress = throughput x statistical efficiency), (2) releases the GPUs
of jobs that completed during the round, (3) shows the scheduler the jobs that have arrived, as
:class:`JobView` s, and the GPUs training may use per node, (4) realises its answer through
:class:`~simulator.cluster.GpuPool`, charging the restart delay to every job whose placement or
batch size changed, and (5) samples metrics. This is the artifact's ``Cluster.step`` order: a job
is first seen at the first round at or after its arrival, and a finished job holds its GPUs until
the end of the round it finished in.

The pool may be shared with inference services: the scheduler only ever sees the GPUs that are
free in the pool plus those its own jobs hold, so it cannot take a GPU from anyone else, and every
grant goes through the pool, which refuses oversubscription.

Disturbances (:mod:`simulator.faults`), both off by default: :meth:`TrainingCluster.node_failed`
takes the GPUs of every job on a failed node away at once (the job keeps its progress up to that
instant, as if it checkpointed continuously, and pays the restart delay again when the next round
re-places it); ``interference_slowdown`` stretches a job's steps by the other tenants sharing its
nodes, counted after each round's placement and held for the round.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import simpy

from simulator.cluster import Allocation, GpuPool
from simulator.faults import FailureListener, slowdown_factor
from simulator.metrics import Recorder
from simulator.training.artifact_pool import grant_on_nodes
from simulator.training.job import JobSpec, TrainingJob
from simulator.training.profiles import ApplicationProfile, load_profiles
from simulator.training.workloads import load_workload


@dataclass(frozen=True)
class TrainingSettings:
    """Constants of the cluster model, each from the Pollux artifact (``simulator/simulator.py``)."""

    round_s: float = 60.0
    """Scheduling interval: ``--interval`` default 60 in ``simulator.py``'s argument parser."""
    restart_delay_s: float = 30.0
    """Checkpoint-restart cost on every re-allocation: ``Job.reallocate`` sets ``rescale_time = 30``."""
    metrics_interval_s: float = 60.0
    """Scrape interval of the recorded metrics (Prometheus' common 1-minute default; = one round)."""
    namespace: str = "training"
    check_pool: bool = True
    """Re-derive the pool's books after every round (cheap: one pass over the grants)."""
    gpu_util_metrics: bool = True
    """Also record ``DCGM_FI_DEV_GPU_UTIL`` per allocated GPU when a recorder is given."""
    interference_slowdown: float = 0.0
    """Step time x (1 + this x neighbours) (:func:`simulator.faults.slowdown_factor`); 0 turns it off."""


@dataclass(frozen=True)
class JobView:
    """What a cluster scheduler may know about a job (the artifact's ``JobInfo`` plus its placement)."""

    name: str
    application: str
    arrival_s: float
    age_s: float
    attained_service_gpu_s: float
    requested_replicas: int
    batch_size: int | None
    placement: tuple[int, ...]
    allocation: tuple[tuple[str, int], ...]
    """Node name -> GPUs this job holds now (empty when it is not running)."""
    num_restarts: int
    epoch: int
    progress_ratio: float


@dataclass(frozen=True)
class Decision:
    """A scheduler's answer for one job when it also sets the batch size (None: keep the job's)."""

    placement: tuple[int, ...]
    batch_size: int | None = None
    nodes: tuple[tuple[str, int], ...] | None = None
    """Exact GPUs per node (a scheduler that places, like Pollux); None lets the pool choose the nodes for
    ``placement``. With ``nodes``, any change of node or count restarts the job (the artifact's rule)."""


class TrainingScheduler(Protocol):
    """A pure cluster-scheduling policy: called once per round, answers a placement per job.

    ``nodes`` maps each node to the GPUs training may use there (free in the pool plus those its
    jobs hold); ``now`` is seconds since the cluster started. A job missing from the answer, or
    given ``()``, holds no GPUs after the round. A job whose answer equals its current placement
    keeps its GPUs and pays no restart.
    """

    def optimize(self, jobs: Sequence[JobView], nodes: Mapping[str, int],
                 now: float) -> Mapping[str, tuple[int, ...] | Decision]: ...


def _attach(scheduler: TrainingScheduler, job: TrainingJob) -> None:
    """Give an adaptive scheduler its hook inside a newly arrived job (``attach(job)``, optional): how
    AdaptDL's in-job agent reports step times and gradient statistics and picks the batch size."""
    attach = getattr(scheduler, "attach", None)
    if attach is not None:
        attach(job)


@dataclass
class TrainingResult:
    """Outcome of a run: JCT = completion - arrival for each finished job."""

    jcts_s: dict[str, float]
    unfinished: list[str]
    avg_jct_s: float
    makespan_s: float
    """From the first arrival to the last completion."""
    gpu_hours: float
    """GPU time held by training jobs (restarts and the tail of a finishing round included)."""
    utilisation: list[tuple[float, float]]
    """(time since start, share of the pool's GPUs held by training) at every round."""
    num_restarts: dict[str, int]
    reshaped_grants: int = 0
    """Grants whose exact shape the pool could not place and that got the same GPU count packed."""
    failed_grants: int = 0
    """Grants the pool could not make at all (the job waited a round)."""
    failures: int = 0
    """Times a job lost its GPUs to a node failure (each one restarts when re-placed)."""
    seed: int = 0


def _shape(placement: Iterable[int]) -> tuple[int, ...]:
    return tuple(sorted((int(p) for p in placement if p), reverse=True))


@dataclass
class _Slot:
    """A job inside the cluster and the grant it holds."""

    job: TrainingJob
    alloc: Allocation | None = None
    released: bool = False
    slowdown: float = 1.0
    """Step-time multiplier from co-located tenants, fixed at the last placement."""


@dataclass
class TrainingCluster:
    """Training jobs on a :class:`GpuPool`, scheduled every round by ``scheduler`` inside ``env``.

    Job arrival times are seconds after :meth:`start`. Usable beside other SimPy processes that
    share the same pool (e.g. inference services).
    """

    env: simpy.Environment
    pool: GpuPool
    scheduler: TrainingScheduler
    profiles: Mapping[str, ApplicationProfile]
    settings: TrainingSettings = field(default_factory=TrainingSettings)
    recorder: Recorder | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        self._slots: dict[str, _Slot] = {}
        self._waiting: list[JobSpec] = []  # submitted, not arrived yet (sorted by arrival)
        self._t0: float | None = None
        self._last_round = 0.0
        self._last_scrape = -math.inf
        self._prev_scrape = -math.inf  # jobs finished before the previous scrape are not reported again
        self._gpu_s = 0.0
        self.utilisation: list[tuple[float, float]] = []
        self.reshaped_grants = 0
        self.failed_grants = 0
        self.failures = 0
        self.finished = self.env.event()

    # --- public ---------------------------------------------------------------------------------------
    def submit(self, spec: JobSpec) -> None:
        if spec.name in self._slots or any(s.name == spec.name for s in self._waiting):
            raise ValueError(f"job {spec.name} submitted twice")
        if spec.application not in self.profiles:
            raise KeyError(f"job {spec.name}: no profile for application {spec.application!r}")
        self._waiting.append(spec)
        self._waiting.sort(key=lambda s: s.arrival_s)  # stable: simultaneous arrivals keep submission order

    def start(self) -> simpy.Process:
        self._t0 = self.env.now
        self._last_round = self.env.now
        return self.env.process(self._rounds())

    @property
    def jobs(self) -> list[TrainingJob]:
        return [s.job for s in self._slots.values()]

    def result(self) -> TrainingResult:
        jcts = {s.job.name: s.job.completion_s - (self._t0 or 0.0) - s.job.spec.arrival_s
                for s in self._slots.values() if s.job.completion_s is not None}
        unfinished = [s.job.name for s in self._slots.values() if not s.job.done]
        unfinished += [spec.name for spec in self._waiting]
        arrivals = [s.job.spec.arrival_s for s in self._slots.values()]
        completions = [s.job.completion_s - (self._t0 or 0.0) for s in self._slots.values() if s.job.done]
        makespan = max(completions) - min(arrivals) if completions else 0.0
        return TrainingResult(
            jcts_s=jcts, unfinished=unfinished,
            avg_jct_s=sum(jcts.values()) / len(jcts) if jcts else math.nan,
            makespan_s=makespan, gpu_hours=self._gpu_s / 3600.0, utilisation=list(self.utilisation),
            num_restarts={s.job.name: max(0, s.job.num_restarts) for s in self._slots.values()},
            reshaped_grants=self.reshaped_grants, failed_grants=self.failed_grants, failures=self.failures,
            seed=self.seed)

    def node_failed(self, node: str, lost: list[Allocation]) -> None:
        """Jobs on the failed node stop now: progress up to now counts, their GPUs go back to the pool,
        and the next round sees them unplaced (a re-placement pays the restart delay)."""
        gone = {id(a) for a in lost}
        now = self.env.now
        for slot in self._slots.values():
            if slot.alloc is None or id(slot.alloc) not in gone:
                continue
            _advance(slot.job, self._last_round, now - self._last_round, slot.slowdown)
            self._gpu_s += slot.alloc.gpus * (now - self._last_round)
            self.pool.release(slot.alloc)
            slot.alloc = None
            if not slot.job.done:  # a job that finished before the failure lost nothing
                slot.job.reallocate(())
                self.failures += 1

    # --- the round ----------------------------------------------------------------------------------
    def _rounds(self):
        while True:
            yield self.env.timeout(self.settings.round_s)
            self._round()
            if not self._waiting and all(s.job.done for s in self._slots.values()):
                self.finished.succeed(self.result())
                return

    def _round(self) -> None:
        now = self.env.now
        assert self._t0 is not None
        rel = now - self._t0
        dt = now - self._last_round
        for slot in self._slots.values():
            if slot.alloc is not None:
                _advance(slot.job, self._last_round, dt, slot.slowdown)
                self._gpu_s += slot.alloc.gpus * dt
        self._last_round = now
        for slot in self._slots.values():
            if slot.job.done and slot.alloc is not None:
                self.pool.release(slot.alloc)
                slot.alloc = None
                slot.job.reallocate(())
        while self._waiting and self._waiting[0].arrival_s <= rel:
            spec = self._waiting.pop(0)
            job = TrainingJob(spec, self.profiles[spec.application], self.settings.restart_delay_s)
            _attach(self.scheduler, job)
            self._slots[spec.name] = _Slot(job)
        active = [s for s in self._slots.values() if not s.job.done]
        if active:
            self._schedule(active, rel)
        slow = self.settings.interference_slowdown
        if slow:
            for slot in self._slots.values():
                if slot.alloc is not None:
                    slot.slowdown = slowdown_factor(self.pool, slot.alloc, slow)
        if self.settings.check_pool:
            self.pool.check()
        held = sum(s.alloc.gpus for s in self._slots.values() if s.alloc is not None)
        self.utilisation.append((rel, held / self.pool.capacity if self.pool.capacity else 0.0))
        if self.recorder is not None and now - self._last_scrape >= self.settings.metrics_interval_s - 1e-9:
            self._last_scrape = now
            self._record(now)

    def _views(self, active: Sequence[_Slot], rel: float) -> list[JobView]:
        return [JobView(
            name=s.job.name, application=s.job.spec.application, arrival_s=s.job.spec.arrival_s,
            age_s=rel - s.job.spec.arrival_s, attained_service_gpu_s=s.job.attained_service_gpu_s,
            requested_replicas=s.job.spec.num_replicas, batch_size=s.job.batch_size_target,
            placement=s.job.placement, allocation=s.alloc.per_node if s.alloc else (),
            num_restarts=max(0, s.job.num_restarts), epoch=s.job.epoch,
            progress_ratio=s.job.progress_ratio) for s in active]

    def _usable_nodes(self) -> dict[str, int]:
        usable = {n.name: self.pool.free_on(n.name) for n in self.pool.nodes}
        for slot in self._slots.values():
            if slot.alloc is not None:
                for node, n in slot.alloc.per_node:
                    usable[node] += n
        return usable

    def _schedule(self, active: Sequence[_Slot], rel: float) -> None:
        answer = self.scheduler.optimize(self._views(active, rel), self._usable_nodes(), rel)
        by_name = {s.job.name: s for s in active}
        unknown = sorted(set(answer) - set(by_name))
        if unknown:
            raise ValueError(f"scheduler answered for unknown or finished job(s) {unknown}")
        decisions: dict[str, Decision] = {}
        for name in [*answer, *(n for n in by_name if n not in answer)]:
            value = answer.get(name, ())
            d = value if isinstance(value, Decision) else Decision(tuple(value))
            if d.nodes is not None:
                share = tuple((node, int(n)) for node, n in d.nodes if n)
                decisions[name] = Decision(_shape(n for _, n in share), d.batch_size, share)
            else:
                decisions[name] = Decision(_shape(d.placement), d.batch_size)
        to_grant: list[tuple[_Slot, Decision]] = []
        for name, d in decisions.items():
            slot = by_name[name]
            same_batch = d.batch_size is None or d.batch_size == slot.job.batch_size_target
            if d.nodes is not None:
                held = dict(slot.alloc.per_node) if slot.alloc is not None else {}
                if held == dict(d.nodes) and same_batch:
                    continue
            elif slot.alloc is not None and d.placement == _shape(slot.job.placement) and same_batch:
                continue
            if slot.alloc is not None:
                self.pool.release(slot.alloc)
                slot.alloc = None
            slot.job.reallocate(())
            if d.placement:
                to_grant.append((slot, d))
        order = [n.name for n in self.pool.nodes]
        for slot, d in to_grant:
            owner = f"{self.settings.namespace}/{slot.job.name}"
            if d.nodes is not None:
                exact = grant_on_nodes(self.pool, owner, d.nodes)
                if exact is None:
                    self.failed_grants += 1
                    continue
                slot.alloc = exact
                by_node = dict(exact.per_node)
                slot.job.reallocate(tuple(by_node[n] for n in order if n in by_node), d.batch_size, keep_order=True)
                continue
            alloc = self.pool.allocate_placement(owner, d.placement)
            if alloc is None:
                alloc = self.pool.allocate(owner, sum(d.placement))
                if alloc is not None:
                    self.reshaped_grants += 1
            if alloc is None:
                self.failed_grants += 1
                continue
            slot.alloc = alloc
            slot.job.reallocate(_shape(n for _, n in alloc.per_node), d.batch_size)

    # --- metrics --------------------------------------------------------------------------------------
    def _record(self, now: float) -> None:
        rec = self.recorder
        assert rec is not None
        ns = self.settings.namespace
        for slot in self._slots.values():
            job = slot.job
            if job.completion_s is not None and job.completion_s < self._prev_scrape:
                continue
            labels = {"namespace": ns, "job": job.name}
            restarting = job.restart_left_s > 0
            running = slot.alloc is not None and not restarting
            rec.gauge("autocm_training_throughput_samples_per_second", labels, now,
                      job.throughput_samples_per_s() if running else 0.0,
                      "samples processed per second (0 while not placed or restarting)")
            rec.gauge("autocm_training_goodput_samples_per_second", labels, now,
                      job.goodput_samples_per_s() if running else 0.0,
                      "throughput x statistical efficiency, in samples of the initial batch per second")
            rec.gauge("autocm_training_progress_ratio", labels, now, job.progress_ratio,
                      "training progress towards the job's target (0-1)")
            rec.gauge("autocm_training_gpus", labels, now, float(job.gpus), "GPUs the job holds")
            rec.gauge("autocm_training_batch_size", labels, now,
                      float(job.config.batch_size) if job.config else 0.0, "total batch size")
            if self.settings.gpu_util_metrics and slot.alloc is not None:
                util = 0.0
                if running:
                    st = job.step_time()
                    assert job.config is not None
                    busy = st.compute_s * (job.config.accum_steps + 1)
                    util = 100.0 * busy / job.iteration_time_s()
                worker = 0
                for node, n in slot.alloc.per_node:
                    for gpu in range(n):
                        rec.gauge("DCGM_FI_DEV_GPU_UTIL",
                                  {"gpu": str(gpu), "Hostname": node, "namespace": ns,
                                   "pod": f"{job.name}-worker-{worker}"}, now, util,
                                  "GPU utilisation (%): compute share of a training step")
                        worker += 1
        self._prev_scrape = now


def _advance(job: TrainingJob, start_s: float, seconds: float, slowdown: float) -> None:
    """:meth:`TrainingJob.advance`, with steps ``slowdown`` times longer (the restart delay is not).

    The job model knows nothing of neighbours, so the slowed run is computed in the job's own time
    (wall time / slowdown) and its wall-clock outputs (completion time, attained GPU-seconds) are
    stretched back.
    """
    if slowdown == 1.0:
        job.advance(start_s, seconds)
        return
    delay = min(job.restart_left_s, seconds)
    if delay > 0:
        job.advance(start_s, delay)
    if job.done or seconds <= delay:
        return
    t0, served0 = start_s + delay, job.attained_service_gpu_s
    job.advance(t0, (seconds - delay) / slowdown)
    job.attained_service_gpu_s = served0 + (job.attained_service_gpu_s - served0) * slowdown
    if job.completion_s is not None:
        job.completion_s = t0 + (job.completion_s - t0) * slowdown


def simulate_training(workload: Path | Sequence[JobSpec], scheduler: TrainingScheduler,
                      pool: GpuPool | None = None, env: simpy.Environment | None = None,
                      recorder: Recorder | None = None, seed: int = 0, until: float | None = None,
                      data_dir: Path | None = None,
                      profiles: Mapping[str, ApplicationProfile] | None = None,
                      settings: TrainingSettings | None = None,
                      failure_listeners: list[FailureListener] | None = None) -> TrainingResult:
    """Run a job stream to completion (or for ``until`` seconds) and return JCTs and costs.

    Defaults reproduce the Pollux simulator study: 16 nodes x 4 GPUs, 60 s rounds, 30 s restarts.
    The cluster model is deterministic; ``seed`` is recorded for the report but nothing here is drawn from
    it. A randomised scheduler (Pollux's search) was seeded when it was built, so the run as a whole may
    still depend on the seed (:data:`simulator.workloads.SEEDED_SCHEDULERS`).
    ``failure_listeners``: the cluster's :meth:`TrainingCluster.node_failed` is appended to it, so a
    :func:`simulator.faults.node_failures` process reading that list tells the cluster of failures.
    """
    specs = load_workload(Path(workload)) if isinstance(workload, (str, Path)) else list(workload)
    env = env or simpy.Environment()
    pool = pool or GpuPool.uniform(16, 4)
    profiles = profiles if profiles is not None else load_profiles(data_dir)
    cluster = TrainingCluster(env, pool, scheduler, profiles, settings or TrainingSettings(), recorder, seed)
    if failure_listeners is not None:
        failure_listeners.append(cluster.node_failed)
    for spec in specs:
        cluster.submit(spec)
    cluster.start()
    if until is None:
        env.run(until=cluster.finished)
    else:
        env.run(until=env.any_of([cluster.finished, env.timeout(until)]))
    return cluster.result()
