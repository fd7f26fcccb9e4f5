"""``shared-goodput-srpt``: shared-goodput, with jobs ranked by the remaining work their class has taught.

Pollux's objective, the p = -1 power mean of speedups, minimises the sum over jobs of 1 / speedup: it is
fair, not fast. Mean JCT falls when the jobs closest to done go first (shortest remaining processing time,
SRPT). The scheduler is not told remaining work; it learns it: every job of a class that finishes adds its
total GPU time to the class's service distribution (:class:`learners.class_length.ClassLength`), and a
running job's remaining work is that distribution's mean residual past the GPU time the job has used. Each
job's speedup is multiplied by

    weight = (remaining_gpu_s / scale_gpu_s) ** exponent

(under p = -1 a larger weight counts less, so at a positive exponent the job closest to done counts most; a
negative exponent favours the jobs with the most work left). With ``weigh_idle`` the
weight also decides which jobs wait when jobs outnumber GPUs, and the search's repair order is by learned
remaining work. Until some job has finished there is no estimate and the scheduler is shared-goodput.

What learns: the class throughput models (as in shared-goodput) and the class service distributions, both
from what jobs reported and when they finished. Nothing reads job lengths, profiles or future arrivals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from learners.class_length import ClassLength
from learners.pollux import SearchSettings
from simulator.training.cluster_sim import Decision, JobView
from simulator.training.shared_goodput import SharedGoodputScheduler, SharedSettings


@dataclass(frozen=True)
class SrptSettings:
    """Settings of the learned-remaining-work weight (docs/learned-scheduler.md says how they were chosen)."""

    exponent: float = 1.0
    """0: shared-goodput's objective; 1: the sum of projected completion times."""
    scale_gpu_s: float = 3600.0
    """Remaining work at which the weight is 1 (only ratios matter, up to the search's floor)."""
    floor_gpu_s: float = 60.0
    """Smallest remaining work a weight is computed from (a job about to finish does not take everything)."""
    weigh_idle: bool = True
    """The weight also ranks jobs that wait (:attr:`SearchSettings.weigh_idle`) and orders repair."""


class SharedGoodputSrptScheduler(SharedGoodputScheduler):
    """shared-goodput's agents and search; each job weighted by its learned expected remaining work."""

    name = "shared-goodput-srpt"

    def __init__(self, srpt: SrptSettings | None = None, shared: SharedSettings | None = None,
                 settings: SearchSettings | None = None, seed: int = 0) -> None:
        self.srpt = srpt or SrptSettings()
        settings = replace(settings or SearchSettings(), weigh_idle=self.srpt.weigh_idle)
        super().__init__(shared, settings, seed)
        self.lengths = ClassLength()
        self._seen: dict[str, tuple[str, float, int, float]] = {}
        """name -> (class, attained GPU-s, GPUs given, when) at the last round the job was in."""

    def remaining(self, view: JobView) -> float | None:
        return self.lengths.remaining(view.application, view.attained_service_gpu_s)

    def weight(self, view: JobView) -> float:
        rem = self.remaining(view)
        if rem is None:
            return super().weight(view)
        s = self.srpt
        return (max(rem, s.floor_gpu_s) / s.scale_gpu_s) ** s.exponent * super().weight(view)

    def priority(self, view: JobView) -> tuple[float, float]:
        rem = self.remaining(view) if self.srpt.weigh_idle else None
        return super().priority(view) if rem is None else (rem, view.arrival_s)

    def optimize(self, jobs: Sequence[JobView], nodes: Mapping[str, int], now: float) -> dict[str, Decision]:
        self._learn_finished(jobs, now)
        answer = super().optimize(jobs, nodes, now)
        self._seen = {j.name: (j.application, j.attained_service_gpu_s, sum(answer[j.name].placement), now)
                      for j in jobs}
        return answer

    def _learn_finished(self, jobs: Sequence[JobView], now: float) -> None:
        """A job in last round's answer and gone now has finished (jobs leave the simulated pool only then):
        its total is its attained service then plus half a round of the GPUs it was given (it finished
        within the round)."""
        current = {j.name for j in jobs}
        for name, (job_class, attained, gpus, when) in self._seen.items():
            if name not in current:
                self.lengths.finished(job_class, attained + 0.5 * gpus * max(now - when, 0.0))
