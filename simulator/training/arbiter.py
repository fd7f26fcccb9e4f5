"""Per-job agents that bid for GPUs from their measured goodput, and the cluster arbiter that grants them.

Registered as the training scheduler ``goodput-waterfill`` (``simulator/workloads.py``). Every round each
job's :class:`JobAgent` computes its value curve: for every GPU count g, the best goodput it can get
(over batch sizes its profile covers, with a consolidated placement of g GPUs), relative to its
goodput on one GPU. That is Pollux's goodput, throughput x statistical efficiency at the job's
current epoch, read from the same measured profiles the jobs run at (Pollux's scheduler fits a
model of them online instead: our agents know their curve exactly, which flatters them; see
docs/parallel-rl.md). :func:`learners.arbiter.arbitrate` turns the bids into GPU counts under the
pool's capacity, and the agents' next bids start from what they were granted (a running job is
only resized when that is worth a restart).

Placement: a job that keeps its count keeps its GPUs; a new count asks for whole nodes first and
the rest on one node, which is what the step-time measurements reward (fewer nodes, less all-reduce
over the network); the pool packs the shape, or the same count, where it fits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from learners.arbiter import ArbiterSettings, GpuBid, arbitrate
from simulator.training.cluster_sim import Decision, JobView
from simulator.training.job import batch_config
from simulator.training.profiles import ApplicationProfile


def consolidated(gpus: int, per_node: int) -> tuple[int, ...]:
    """``gpus`` as whole nodes plus one partial node, largest first."""
    full, rest = divmod(gpus, per_node)
    return (per_node,) * full + ((rest,) if rest else ())


@dataclass(frozen=True)
class Offer:
    """The best a job can do on ``gpus`` GPUs: its goodput (progress/s in initial-batch samples) and batch."""

    gpus: int
    goodput: float
    batch_size: int


class JobAgent:
    """One job's agent: its value curve from the profile at its current epoch (cached per epoch)."""

    max_accumulation = 4
    """Largest batch considered: 4 micro-batches per GPU (gradient accumulation beyond that rarely pays)."""

    def __init__(self, profile: ApplicationProfile, per_node: int, max_gpus: int, batch_grid: int = 16) -> None:
        self.profile, self.per_node, self.max_gpus, self.batch_grid = profile, per_node, max_gpus, batch_grid
        self._curves: dict[int, tuple[Offer | None, ...]] = {}
        self._steps: dict[int, list[tuple[int, int, float]]] = {}

    def _batches(self, gpus: int) -> list[int]:
        p = self.profile
        lo = max(p.init_batch_size, p.min_local_bsz * gpus)
        if lo > p.max_batch_size:
            return []
        hi = max(lo, min(p.max_batch_size, p.max_local_bsz * gpus * self.max_accumulation))
        n = self.batch_grid
        grid = {round(lo * (hi / lo) ** (i / (n - 1))) for i in range(n)} if hi > lo else {lo}
        return sorted(grid)

    def _configs(self, gpus: int) -> list[tuple[int, int, float]]:
        """(requested batch, effective batch, iteration seconds) for every covered batch: epoch-independent."""
        cached = self._steps.get(gpus)
        if cached is None:
            shape = consolidated(gpus, self.per_node)
            configs = [(batch, batch_config(self.profile, gpus, batch)) for batch in self._batches(gpus)]
            steps = self.profile.step_times(shape, [cfg.atomic_bsz for _, cfg in configs])
            cached = [(batch, cfg.batch_size, st.step_s + st.compute_s * cfg.accum_steps)
                      for (batch, cfg), st in zip(configs, steps, strict=True) if st is not None]
            self._steps[gpus] = cached
        return cached

    def _gains(self, batch_sizes: np.ndarray, epoch: int) -> np.ndarray:
        """:meth:`ApplicationProfile.gain` for many batches at once (nan outside the validated range):
        the same linear interpolation of the gradient statistics between validated batch sizes."""
        p = self.profile
        sizes = np.asarray(p.validated_batch_sizes, dtype=float)
        sqr = np.interp(batch_sizes, sizes, [v.grad_sqr[epoch] for v in p.validations])
        var = np.interp(batch_sizes, sizes, [v.grad_var[epoch] for v in p.validations])
        scale = batch_sizes / p.init_batch_size
        denom = var / scale + sqr
        gain = np.where(denom > 0, (var + sqr) / np.where(denom > 0, denom, 1.0), 1.0)
        inside = (batch_sizes >= sizes[0]) & (batch_sizes <= sizes[-1])
        return np.where(inside, gain, np.nan)

    def offer(self, gpus: int, epoch: int) -> Offer | None:
        """Best goodput on ``gpus`` GPUs in ``epoch``, or None when nothing measured covers it."""
        configs = self._configs(gpus)
        if not configs:
            return None
        requested, effective, iteration_s = (np.array(c, dtype=float) for c in zip(*configs, strict=True))
        goodput = self._gains(effective, epoch) * self.profile.init_batch_size / iteration_s
        if not np.isfinite(goodput).any():
            return None
        best = int(np.nanargmax(goodput))
        return Offer(gpus, float(goodput[best]), int(requested[best]))

    def curve(self, epoch: int) -> tuple[Offer | None, ...]:
        cached = self._curves.get(epoch)
        if cached is None:
            cached = tuple(self.offer(g, epoch) for g in range(1, self.max_gpus + 1))
            self._curves[epoch] = cached
        return cached

    def bid(self, job: JobView) -> GpuBid:
        offers = self.curve(min(job.epoch, self.profile.max_epochs - 1))
        base = next((o.goodput for o in offers if o is not None), math.nan)
        speedup = tuple(o.goodput / base if o is not None else math.nan for o in offers)
        return GpuBid(job.name, speedup, sum(job.placement), job.attained_service_gpu_s)


class GoodputWaterfillScheduler:
    """The ``goodput-waterfill`` training scheduler: one agent per job application, one arbiter for the pool."""

    name = "goodput-waterfill"

    def __init__(self, profiles: Mapping[str, ApplicationProfile] | None = None,
                 settings: ArbiterSettings | None = None, max_gpus_per_job: int = 64) -> None:
        if profiles is None:
            from simulator.training.profiles import load_profiles

            profiles = load_profiles()
        self.profiles = profiles
        self.settings = settings or ArbiterSettings()
        self.max_gpus_per_job = max_gpus_per_job
        self._agents: dict[tuple[str, int], JobAgent] = {}

    def agent(self, application: str, per_node: int, capacity: int) -> JobAgent:
        """Jobs of one application share an agent's curves (they are the same curve) for one pool shape;
        ``capacity`` is the pool's nominal size (nodes x GPUs per node), stable while tenants come and go."""
        key = (application, per_node, capacity)
        if key not in self._agents:
            self._agents[key] = JobAgent(self.profiles[application], per_node, min(capacity, self.max_gpus_per_job))
        return self._agents[key]

    def optimize(self, jobs: Sequence[JobView], nodes: Mapping[str, int], now: float) -> dict[str, Decision]:
        per_node = max(nodes.values(), default=0)
        capacity = sum(nodes.values())
        if per_node == 0 or not jobs:
            return {j.name: Decision(()) for j in jobs}
        bids = [self.agent(j.application, per_node, per_node * len(nodes)).bid(j) for j in jobs]
        grant = arbitrate(bids, capacity, self.settings)
        answer: dict[str, Decision] = {}
        for job in jobs:
            g = grant[job.name]
            if g == 0:
                answer[job.name] = Decision(())
            elif g == sum(job.placement):
                answer[job.name] = Decision(tuple(job.placement))
            else:
                offer = self.agent(job.application, per_node, per_node * len(nodes)).curve(
                    min(job.epoch, self.profiles[job.application].max_epochs - 1))[g - 1]
                assert offer is not None  # the arbiter grants only runnable counts
                answer[job.name] = Decision(consolidated(g, per_node), offer.batch_size)
        return answer
