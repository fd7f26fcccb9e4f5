"""``shared-goodput``: Pollux's search over goodput models that every job of a class learns together.

Our Pollux (:mod:`simulator.training.pollux`) gives each job an agent that fits its throughput model from
the step times that job ran. Here the agents of one class (application) publish what they ran to one
:class:`~learners.shared_throughput.ClassThroughput` and read the class's fit back, so a new job of a
known class starts with a model, may grow as far as its class has been measured (twice the most GPUs any
job of the class ran on, not twice its own), and borrows the class's early gradient statistics until it
reports its own. Everything is learned online from what jobs report: no application profiles, no job
lengths, no future arrivals. With ``converged_growth`` a job whose class model has passed its
out-of-sample convergence check may grow to any size its batch limits allow.

The search, its objective (p = -1 power mean of speedups, optionally weighted by attained service as in
``goodput-las``), restart penalty and node choice are Pollux's, unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from learners.pollux import BatchLimits, GoodputModel, SearchSettings
from learners.shared_throughput import ClassThroughput, SharedThroughput
from simulator.training.cluster_sim import JobView
from simulator.training.goodput_las import LasSettings, las_weight
from simulator.training.job import TrainingJob
from simulator.training.pollux import MAX_REPLICAS, PINNED, PolluxAgent, PolluxScheduler
from simulator.training.profiles import StepTime


@dataclass(frozen=True)
class SharedSettings:
    """The frozen settings (chosen on workloads 1-2 only, see docs/learned-scheduler.md)."""

    max_staleness: int = 0
    """Observations a class fit may lag (:class:`ClassThroughput`)."""
    share_grad: bool = True
    """A job with no gradient statistics of its own uses its class's first ones."""
    converged_growth: bool = False
    """Once its class model has converged, a job may grow past twice the class's most profiled GPUs."""
    las_exponent: float = 0.0
    """goodput-las' attained-service weight (0: Pollux's objective)."""
    las_scale_gpu_s: float = LasSettings.scale_gpu_s
    """goodput-las' frozen scale, when ``las_exponent`` is set."""


class SharedAgent(PolluxAgent):
    """A job's agent that learns its throughput model together with the other jobs of its class."""

    def __init__(self, limits: BatchLimits, target_batch_size: int | None, shared: ClassThroughput,
                 share_grad: bool, converged_growth: bool) -> None:
        super().__init__(limits, target_batch_size)
        self.shared = shared
        self.share_grad = share_grad
        self.converged_growth = converged_growth

    @property
    def max_profiled_replicas(self) -> int:
        return self.shared.max_profiled_replicas

    def observe(self, job: TrainingJob, step: StepTime, grad_sqr: float, grad_var: float) -> None:
        self.grad = (grad_sqr, grad_var)
        self.shared.publish_grad(grad_sqr, grad_var)
        assert job.config is not None
        key = (len(job.placement), sum(job.placement), job.config.atomic_bsz)
        self.profile.setdefault(key, (step.step_s, step.sync_s))
        if self.shared.publish(key, step.step_s, step.sync_s):
            self.fits += 1

    def model(self) -> GoodputModel | None:
        perf = self.shared.model()
        grad = self.grad if self.grad is not None else (self.shared.early_grad if self.share_grad else None)
        if perf is None or grad is None:
            return None
        return GoodputModel(perf, grad[0], grad[1], self.limits)

    def max_replicas(self, application: str) -> int:
        if self.converged_growth and application not in PINNED and self.shared.converged:
            lim = self.limits
            return max(1, min(MAX_REPLICAS, lim.max_batch_size // lim.min_local_bsz))
        return super().max_replicas(application)


class SharedGoodputScheduler(PolluxScheduler):
    """Pollux's search; agents share one learned throughput model per job class."""

    name = "shared-goodput"

    def __init__(self, shared: SharedSettings | None = None, settings: SearchSettings | None = None,
                 seed: int = 0) -> None:
        super().__init__(settings, seed)
        self.shared_settings = shared or SharedSettings()
        self.estimates = SharedThroughput(self.shared_settings.max_staleness)

    def _agent(self, application: str, limits: BatchLimits, target_batch_size: int | None) -> SharedAgent:
        s = self.shared_settings
        return SharedAgent(limits, target_batch_size, self.estimates.of(application), s.share_grad,
                           s.converged_growth)

    def weight(self, view: JobView) -> float:
        s = self.shared_settings
        return las_weight(view.attained_service_gpu_s, s.las_exponent, s.las_scale_gpu_s)
