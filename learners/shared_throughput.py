"""One throughput model per job class, learned from what every job of the class reports, shared by all of them.

Pollux fits a throughput model per job, from the step times that job alone has run. Every new job starts
blind: with no model it is treated as linear in GPUs, and it may grow only to twice the most GPUs it has
run on, so a job that could use 16 GPUs spends three or four 60 s rounds (and as many 30 s restarts)
climbing 1 -> 2 -> 4 -> 8 -> 16. Yet jobs of one class (the same model on the same hardware) share their
step-time curve: what the first BERT job measured on 8 GPUs is what the tenth will measure. Here the jobs
of a class are parallel learners of one model (the mission's asynchronous parallel RL, applied to the
throughput model):

* **Shared estimates with bounded staleness.** Every job *publishes* the configurations it ran (nodes,
  GPUs, micro-batch) and their step times; readers get the class's fitted :class:`~learners.pollux.PerfParams`.
  Refitting after every publication is wasteful when many jobs report at once, so a fit may lag the
  newest observations by at most ``max_staleness`` of them; a read past that bound refits first.
* **A convergence check from sampled data.** Before a new configuration joins the fit, the current fit
  predicts its step time; the relative error of that out-of-sample prediction is recorded. The class
  model has *converged* when its last ``window`` out-of-sample errors are all within ``tolerance``. Nothing
  here reads the true step-time curve; the check uses only what jobs reported.
* **Early-training gradient statistics.** A job's statistical efficiency needs its gradient noise,
  which a job reports only once it runs. Until then it borrows the first statistics its class reported
  (those of an earlier job at the same early stage of training).

No I/O: the simulator's agents and the operator both feed it plain numbers.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

import numpy as np

from learners.pollux import PerfParams, fit_perf_params, predict_step_time

ConfigKey = tuple[int, int, int]
"""(nodes, GPUs, micro-batch per GPU)."""


def _fit(observations: dict[ConfigKey, tuple[float, float]]) -> PerfParams:
    """Pollux's throughput fit over (nodes, GPUs, micro-batch) -> (step, sync) seconds."""
    keys = np.array(list(observations), dtype=float)
    vals = np.array(list(observations.values()), dtype=float)
    return fit_perf_params(keys[:, 0], keys[:, 1], keys[:, 2], vals[:, 0] - vals[:, 1], vals[:, 0])


@dataclass
class ClassThroughput:
    """The shared throughput model of one job class: pooled observations, a fit, its out-of-sample errors."""

    max_staleness: int = 0
    """How many of the newest observations a read may still be missing (0: every read sees every one)."""
    tolerance: float = 0.15
    """Out-of-sample relative step-time error under which a prediction counts as right."""
    window: int = 3
    """How many consecutive right predictions make the model converged."""
    max_observations: int = 512
    """Configurations kept per class; reports of further ones are ignored (bounded memory and fit time when
    the reports come from tenants)."""
    observations: dict[ConfigKey, tuple[float, float]] = field(default_factory=dict)
    """Configuration -> (step seconds, of which synchronisation seconds): the first report, or the latest
    with ``publish(..., replace=True)``."""
    early_grad: tuple[float, float] | None = None
    """The class's first reported (grad_sqr, grad_var): a new job's stand-in until it reports its own."""
    perf: PerfParams | None = None
    fitted_on: int = 0
    """How many observations the current fit saw."""
    fits: int = 0
    errors: deque[float] = field(default_factory=lambda: deque(maxlen=64))
    """Relative errors of predictions made before the configuration was observed, oldest first."""
    unscored: set[ConfigKey] = field(default_factory=set)
    """Configurations known only from measurements published with ``clean=False``: scored at the first
    clean one."""

    def __post_init__(self) -> None:
        if self.max_staleness < 0:
            raise ValueError(f"max_staleness must be >= 0, got {self.max_staleness}")
        if not self.tolerance > 0:
            raise ValueError(f"tolerance must be > 0, got {self.tolerance}")
        if self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window}")

    # --- writers ---------------------------------------------------------------------------------------
    def publish(self, key: ConfigKey, step_s: float, sync_s: float, replace: bool = False,
                clean: bool = True) -> bool:
        """One job ran ``key`` at ``step_s`` seconds per step (``sync_s`` of it synchronisation). Returns
        whether the configuration was new to the class. A known configuration changes nothing (the first
        report is kept, as Pollux's agents keep theirs), unless ``replace``: then other times replace what
        was kept (the operator re-reports a configuration once a whole rate window ran it).

        ``clean=False`` marks a measurement that may be contaminated (the operator's first sample of a
        configuration, whose rate window can straddle the restart into it): it joins the fit at once, so
        newcomers of the class get a model, but it is not scored. The configuration is scored when its first
        clean measurement arrives, against a fit of the other configurations' clean measurements only, so
        the convergence check measures the model and not the restart."""
        if not (step_s > 0 and 0 <= sync_s < step_s):
            raise ValueError(f"step times must satisfy 0 <= sync < step, got step {step_s}, sync {sync_s}")
        value = (float(step_s), float(sync_s))
        known = self.observations.get(key)
        if known is not None:
            if clean and key in self.unscored:
                self.unscored.discard(key)
                self._score(key, step_s, self._fit_without(key))
            if replace and known != value:  # a cleaner measurement of it
                self.observations[key] = value
                self.perf = None  # the next read refits
            return False
        if len(self.observations) >= self.max_observations:
            return False
        if clean:  # scored by the class's fit, or by a fit of its clean data while it holds contaminated ones
            self._score(key, step_s, self._fit_without(key) if self.unscored else self.model())
        else:
            self.unscored.add(key)
        self.observations[key] = value
        return True

    def _score(self, key: ConfigKey, step_s: float, perf: PerfParams | None) -> None:
        """Record the relative error of ``perf``'s prediction of ``key`` (nothing without a fit)."""
        if perf is None:
            return
        nodes, replicas, bsz = key
        predicted = float(predict_step_time(perf, np.array([nodes]), np.array([replicas]),
                                            np.array([bsz]), np.array([0]))[0])
        self.errors.append(abs(predicted - step_s) / step_s)

    def _fit_without(self, key: ConfigKey) -> PerfParams | None:
        """A fit of the clean observations other than ``key``'s (None when there are none): what scores a
        configuration is a model of clean measurements, not one that still holds contaminated ones."""
        others = {k: v for k, v in self.observations.items() if k != key and k not in self.unscored}
        if not others:
            return None
        self.fits += 1
        return _fit(others)

    def publish_grad(self, grad_sqr: float, grad_var: float) -> None:
        """A job's gradient statistics; the class keeps the first as its early-training stand-in."""
        if self.early_grad is None:
            self.early_grad = (float(grad_sqr), float(grad_var))

    # --- readers ---------------------------------------------------------------------------------------
    def model(self) -> PerfParams | None:
        """The class's fit, refitted first if it misses more than ``max_staleness`` observations."""
        if not self.observations:
            return None
        if self.perf is None or len(self.observations) - self.fitted_on > self.max_staleness:
            self.perf = _fit(self.observations)
            self.fitted_on = len(self.observations)
            self.fits += 1
        return self.perf

    @property
    def max_profiled_replicas(self) -> int:
        """The most GPUs any job of the class has run on."""
        return max((k[1] for k in self.observations), default=0)

    @property
    def median_error(self) -> float | None:
        """The median out-of-sample relative error so far (None before the first prediction)."""
        return float(np.median(self.errors)) if self.errors else None

    @property
    def converged(self) -> bool:
        """The last ``window`` out-of-sample predictions were all within ``tolerance``."""
        if len(self.errors) < self.window:
            return False
        return all(e <= self.tolerance for e in list(self.errors)[-self.window:])


@dataclass
class SharedThroughput:
    """Every job class's :class:`ClassThroughput`, made on first use with the same settings."""

    max_staleness: int = 0
    tolerance: float = 0.15
    window: int = 3
    max_classes: int = 256
    """Classes kept; the least recently used one is forgotten first (a tenant naming a new class for every
    job costs the operator a bounded amount of memory)."""
    classes: OrderedDict[str, ClassThroughput] = field(default_factory=OrderedDict)

    def __post_init__(self) -> None:
        if self.max_classes < 1:
            raise ValueError(f"max_classes must be >= 1, got {self.max_classes}")

    def of(self, job_class: str) -> ClassThroughput:
        hit = self.classes.get(job_class)
        if hit is None:
            hit = ClassThroughput(self.max_staleness, self.tolerance, self.window)
            self.classes[job_class] = hit
            while len(self.classes) > self.max_classes:
                self.classes.popitem(last=False)
        else:
            self.classes.move_to_end(job_class)
        return hit

    def checks(self) -> list[bool]:
        """Per class that has made an out-of-sample prediction (a class pinned to one configuration never
        does): whether its convergence check passes now."""
        return [c.converged for c in self.classes.values() if c.median_error is not None]

    def report(self) -> dict[str, dict[str, float | int | bool]]:
        """Per class: configurations seen, fits, converged, median out-of-sample error (for logs and docs)."""
        return {name: {"configs": len(c.observations), "fits": c.fits, "converged": c.converged,
                       "median_error": float("nan") if c.median_error is None else c.median_error}
                for name, c in sorted(self.classes.items())}
