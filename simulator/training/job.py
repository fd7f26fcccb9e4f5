"""One training job: its batch configuration, and how far it gets in a stretch of wall-clock time.

Pure arithmetic, no SimPy: the cluster advances every job once per scheduling round, and inside a
round a job's placement is fixed, so its progress is a sum over the epochs it crosses (the gradient
statistics, hence the efficiency, change per epoch). This follows ``simulator.py`` ``Job.step`` and
``Job.update_local_bsz`` of the Pollux artifact, including two of its details that matter for
fidelity: the restart delay is charged (and counted as attained service) before any progress, and
the time at which an epoch boundary is crossed is rounded to whole seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from simulator.training.profiles import ApplicationProfile, StepTime

_EPS = 1e-8  # the artifact's tolerance for ceil() on batch arithmetic (update_local_bsz)


@dataclass(frozen=True)
class JobSpec:
    """One row of ``workload-<n>.csv``: what the user submitted."""

    name: str
    application: str
    arrival_s: float
    num_replicas: int
    batch_size: int | None


@dataclass(frozen=True)
class BatchConfig:
    """How a total batch is split: per-GPU micro-batch ``atomic_bsz`` run ``accum_steps + 1`` times."""

    atomic_bsz: int
    accum_steps: int
    num_replicas: int

    @property
    def batch_size(self) -> int:
        return self.num_replicas * self.atomic_bsz * (self.accum_steps + 1)


def batch_config(profile: ApplicationProfile, num_replicas: int, batch_size: int | None) -> BatchConfig:
    """Split ``batch_size`` over ``num_replicas`` GPUs as the artifact does for a fixed batch size.

    ``Job.update_local_bsz``: ceil the local batch; accumulate gradients when it exceeds the largest
    micro-batch that fits; force one accumulation step on a single GPU above the initial batch
    (``goodput.py`` explains: the gradient statistics need two micro-batches); cap the micro-batch so
    the total never exceeds the largest validated batch. ``batch_size=None`` is the artifact's choice
    for a job nobody sized: ``max(init_batch_size, min_local_bsz * replicas)``.
    """
    if num_replicas <= 0:
        raise ValueError("a batch configuration needs at least one GPU")
    if batch_size is None:
        batch_size = max(profile.init_batch_size, profile.min_local_bsz * num_replicas)
    local_bsz = math.ceil(batch_size / num_replicas - _EPS)
    accum_steps = math.ceil(local_bsz / profile.max_local_bsz - _EPS) - 1
    if num_replicas == 1 and batch_size > profile.init_batch_size:
        accum_steps = max(1, accum_steps)
    atomic_bsz = math.ceil(local_bsz / (accum_steps + 1) - _EPS)
    atomic_bsz = min(atomic_bsz, int(profile.max_batch_size / (num_replicas * (accum_steps + 1))))
    return BatchConfig(atomic_bsz, accum_steps, num_replicas)


class JobAgent(Protocol):
    """What runs inside an adaptive job (AdaptDL's in-job agent): it sees what the job measures and picks
    the job's batch configuration for a placement. Without one the job keeps its submitted batch size."""

    def observe(self, job: TrainingJob, step: StepTime, grad_sqr: float, grad_var: float) -> None:
        """The step time of the configuration the job runs now and its current gradient statistics."""

    def batch_config(self, job: TrainingJob, placement: tuple[int, ...]) -> BatchConfig:
        """The batch split to run on ``placement`` (GPUs per node)."""


class TrainingJob:
    """A job's state: where it runs, how far it got, and what it has cost."""

    def __init__(self, spec: JobSpec, profile: ApplicationProfile, restart_delay_s: float) -> None:
        if spec.application != profile.name:
            raise ValueError(f"job {spec.name} is {spec.application}, profile is {profile.name}")
        self.spec = spec
        self.profile = profile
        self.restart_delay_s = restart_delay_s
        self.placement: tuple[int, ...] = ()
        self.config: BatchConfig | None = None
        self.batch_size_target = spec.batch_size
        self.progress = 0.0
        self.epoch = 0
        self.restart_left_s = 0.0
        self.attained_service_gpu_s = 0.0
        self.num_restarts = -1  # the first allocation is a start, not a restart (artifact: None -> 0)
        self.completion_s: float | None = None
        self.agent: JobAgent | None = None
        """Set by an adaptive scheduler (:mod:`simulator.training.pollux`) when the job arrives."""

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def done(self) -> bool:
        return self.completion_s is not None

    @property
    def gpus(self) -> int:
        return sum(self.placement)

    @property
    def progress_ratio(self) -> float:
        return min(1.0, self.progress / self.profile.target_progress)

    def reallocate(self, placement: tuple[int, ...], batch_size: int | None = None, keep_order: bool = False) -> None:
        """Move to ``placement`` (``()`` to stop); any non-empty move costs the restart delay.

        ``keep_order``: the parts are GPUs on nodes in the pool's node order (the artifact's placement, whose
        rotation picks the measured row); otherwise they are sorted largest first.
        """
        if batch_size is not None:
            self.batch_size_target = batch_size
        if not placement:
            self.placement, self.config, self.restart_left_s = (), None, 0.0
            return
        parts = [int(p) for p in placement if p]
        self.placement = tuple(parts) if keep_order else tuple(sorted(parts, reverse=True))
        if self.agent is not None:
            self.config = self.agent.batch_config(self, self.placement)
        else:
            self.config = batch_config(self.profile, sum(self.placement), self.batch_size_target)
        self.restart_left_s = self.restart_delay_s
        self.num_restarts += 1

    def step_time(self) -> StepTime:
        assert self.config is not None
        return self.profile.step_time(self.placement, self.config.atomic_bsz)

    def iteration_time_s(self) -> float:
        """Wall time of one optimizer step including gradient-accumulation micro-steps."""
        assert self.config is not None
        st = self.step_time()
        return st.step_s + st.compute_s * self.config.accum_steps

    def throughput_samples_per_s(self) -> float:
        if self.config is None or self.done:
            return 0.0
        return self.config.batch_size / self.iteration_time_s()

    def goodput_samples_per_s(self) -> float:
        """Throughput times statistical efficiency: samples/s of the initial batch's worth of progress."""
        if self.config is None or self.done:
            return 0.0
        gain = self.profile.gain(self.config.batch_size, self.epoch)
        return gain * self.profile.init_batch_size / self.iteration_time_s()

    def advance(self, start_s: float, seconds: float) -> None:
        """Run from ``start_s`` for ``seconds`` with the current placement; sets ``completion_s``."""
        if not self.placement or self.done or seconds <= 0:
            return
        now = start_s
        delay = min(self.restart_left_s, seconds)
        self.restart_left_s -= delay
        self.attained_service_gpu_s += delay * self.gpus
        now += delay
        seconds -= delay
        assert self.config is not None
        batch = self.config.batch_size
        iteration_s = self.iteration_time_s()
        while seconds > 0 and not self.done:
            if self.agent is not None:  # the job reports what it measures (simulator.py Job.update_params)
                self.agent.observe(self, self.step_time(), *self.profile.grad_stats(batch, self.epoch))
            rate = self.profile.gain(batch, self.epoch) / iteration_s  # progress per second
            boundary = self.profile.progress_at_epoch(self.epoch + 1)
            if self.progress + rate * seconds < boundary:
                self.progress += rate * seconds
                self.attained_service_gpu_s += seconds * self.gpus
                self._rescale()
                return
            # The epoch ends inside this stretch; the artifact rounds that instant to whole seconds.
            delta = min(float(round((boundary - self.progress) / rate)), seconds)
            self.epoch += 1
            self.progress = boundary
            now += delta
            self.attained_service_gpu_s += delta * self.gpus
            seconds -= delta
            if self.epoch >= self.profile.max_epochs:
                self.completion_s = now
            else:
                self._rescale()
                batch = self.config.batch_size
                iteration_s = self.iteration_time_s()

    def _rescale(self) -> None:
        """Let the agent re-pick the batch after each stretch (the artifact's ``Job.step`` calls
        ``update_local_bsz`` after every epoch boundary and at the end of every step): no restart."""
        if self.agent is not None and self.placement and not self.done:
            self.config = self.agent.batch_config(self, self.placement)
