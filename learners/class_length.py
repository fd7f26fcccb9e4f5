"""How much work a job still needs, learned from the jobs of its class that have finished.

Mean JCT falls when the jobs closest to done run first (shortest remaining processing time, SRPT), but a
scheduler is not told job lengths. What it can see is history: every job of a class (the same model, data
and target) that finished used some GPU time. Recurring jobs of one class use similar amounts, so the
finished ones are samples of the class's *service distribution*. Given a running job's attained GPU time
``a``, the expected remaining work is the mean residual life of that distribution past ``a``:

    E[T - a | T > a]   over the class's finished totals T

This is the quantity behind the Gittins index for scheduling with known service distributions. With no
finished job of the class yet, every finished job of every class stands in (a pooled prior); with none at
all there is no estimate and the caller falls back to treating jobs alike. A job that has outlived every
finished job of its class is assumed to be near its end (its class's totals are tight in practice; a
heavy-tailed class would make this optimistic, which the caller's exponent tempers). A job of an unseen
class that has outlived every finished job of *every* class is the opposite case: the pooled totals mix
classes and are heavy-tailed, so its remaining work is taken to be what it has used so far (the
least-attained-service guess), not a small remainder: the first job of a long class must not look short.

No I/O; bounded memory for tenant input (classes LRU, totals per class in a ring).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

import numpy as np


@dataclass
class ClassLength:
    """The learned service distribution (GPU-seconds to finish) of job classes."""

    max_samples: int = 64
    """Finished totals kept per class (the newest)."""
    max_classes: int = 256
    """Classes kept; the least recently used one is forgotten first."""
    outlived_fraction: float = 0.1
    """Remaining work assumed for a job past every finished total of its class, as a share of their mean."""
    classes: OrderedDict[str, deque[float]] = field(default_factory=OrderedDict)
    pooled: deque[float] = field(default_factory=lambda: deque(maxlen=256))
    """Every class's totals, newest last: the prior for a class with none finished."""

    def __post_init__(self) -> None:
        if self.max_samples < 1 or self.max_classes < 1:
            raise ValueError("max_samples and max_classes must be >= 1")
        if not 0 < self.outlived_fraction <= 1:
            raise ValueError(f"outlived_fraction must be in (0, 1], got {self.outlived_fraction}")

    def finished(self, job_class: str, total_gpu_s: float) -> None:
        """A job of ``job_class`` finished after ``total_gpu_s`` GPU-seconds of service."""
        if not (total_gpu_s > 0 and np.isfinite(total_gpu_s)):
            return  # a job that never ran teaches nothing about length
        ring = self.classes.get(job_class)
        if ring is None:
            ring = self.classes[job_class] = deque(maxlen=self.max_samples)
            while len(self.classes) > self.max_classes:
                self.classes.popitem(last=False)
        else:
            self.classes.move_to_end(job_class)
        ring.append(float(total_gpu_s))
        self.pooled.append(float(total_gpu_s))

    def samples(self, job_class: str) -> int:
        ring = self.classes.get(job_class)
        return 0 if ring is None else len(ring)

    def remaining(self, job_class: str, attained_gpu_s: float) -> float | None:
        """Expected GPU-seconds a job of ``job_class`` still needs after ``attained_gpu_s``; None when no job
        of any class has finished yet."""
        ring = self.classes.get(job_class)
        totals = np.fromiter(ring if ring else self.pooled, dtype=float)
        if totals.size == 0:
            return None
        a = max(float(attained_gpu_s), 0.0)
        longer = totals[totals > a]
        if longer.size:
            return float(longer.mean() - a)
        if ring:
            return self.outlived_fraction * float(totals.mean())
        return max(a, float(totals.mean()))
