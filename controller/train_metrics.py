"""The metrics a training job exports for autocm's training scheduler, and a helper a training loop calls.

The operator's training scheduler needs, per job, what Pollux's agent sees inside the job: how long a
step takes at the GPUs and batch size the job runs with, and the gradient statistics behind the gradient
noise scale (``learners.pollux.efficiency``). A job exports them from every worker pod; the operator reads
them through Prometheus. The names below are the contract; :class:`TrainingMetrics` is the few lines a
PyTorch (or any) loop adds. It imports ``prometheus_client`` only, never torch (and the batch advisor's numpy
and scipy only when a job asks for advice), so the caller computes
``grad_sqr`` / ``grad_var`` however it likes (AdaptDL's ``GradientNoiseScale`` estimator, or
``|g|^2`` and the per-sample variance) and hands in plain floats.

Labels: every series carries ``job_name`` (the Job or PyTorchJob name; not ``job``, which Prometheus
sets to the scrape job) and ``replica`` (the worker index); the operator sums or averages over
``replica``. Prometheus adds ``namespace`` from the pod (the scrape config's relabeling), and the
operator only queries its own policy's namespace.
"""

from __future__ import annotations

import math
from statistics import median
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

if TYPE_CHECKING:  # the advisor (numpy, scipy) is imported only by a job that asks for advice
    from learners.batch_advisor import BatchAdvice, BatchAdvisor
    from learners.pollux import BatchLimits

STEP_SECONDS = "autocm_train_step_seconds"
"""Histogram: wall time of one optimizer step (all micro-batches and gradient accumulation included)."""
BATCH_SIZE = "autocm_train_batch_size"
"""Gauge: the global batch size the job trains with now (micro-batch x accumulation x replicas)."""
LOCAL_BATCH_SIZE = "autocm_train_local_batch_size"
"""Gauge: the per-GPU micro-batch size."""
GPUS = "autocm_train_gpus"
"""Gauge: GPUs the job runs on now (what it read from ``AUTOCM_GPUS`` at its last start)."""
GRAD_SQR = "autocm_train_grad_sqr"
"""Gauge: squared norm of the true gradient, estimated (Pollux's ``grad_sqr``)."""
GRAD_VAR = "autocm_train_grad_var"
"""Gauge: per-sample gradient variance, estimated (Pollux's ``grad_var``)."""
PROGRESS = "autocm_train_progress"
"""Gauge: fraction of the job's work done, 0..1 (epochs done / epochs, or samples seen / samples)."""
SAMPLES = "autocm_train_samples"
"""Counter (exported as ``autocm_train_samples_total``): training samples processed since the pod started."""

METRIC_NAMES = (STEP_SECONDS, BATCH_SIZE, LOCAL_BATCH_SIZE, GPUS, GRAD_SQR, GRAD_VAR, PROGRESS, SAMPLES)
LABELS = ("job_name", "replica")
STEP_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _finite(name: str, value: float, low: float = 0.0) -> float:
    """Refuse NaN, infinities and negatives: a bad statistic must fail in the job, not mislead the scheduler."""
    v = float(value)
    if not math.isfinite(v) or v < low:
        raise ValueError(f"{name} must be a finite number >= {low}, got {value!r}")
    return v


class TrainingMetrics:
    """One worker's metrics under the autocm contract.

    ``TrainingMetrics(job, replica).serve(port)`` once at start, then ``step(seconds, batch_size)`` after
    every optimizer step, ``gradient(grad_sqr, grad_var)`` whenever the job has fresh estimates and
    ``progress(fraction)`` when it knows how far it is. A registry of its own keeps tests and several
    instances apart.

    **Batch advice** (``limits=``, optional): the job also keeps its own goodput model
    (:class:`~learners.batch_advisor.BatchAdvisor`, Pollux's in-job agent) from the steps and gradient
    statistics it reports, and :meth:`suggest_batch` answers the batch split it should run on its GPUs now.
    The pool changes a job's batch only when it restarts the job; a loop that applies the suggestion at each
    epoch boundary (its data loader's batch and accumulation, then :meth:`configure` again) follows its
    growing gradient noise scale without a restart, as Pollux's jobs do. In the training cluster simulator
    that is worth about a fifth of the operator's mean JCT (docs/training-operator.md).
    """

    WARMUP_STEPS = 5
    """Steps of a new configuration not measured (allocator warm-up, the first all-reduce)."""
    MEASURED_STEPS = 10
    """Steps of a configuration whose median the advisor learns (once per configuration)."""

    def __init__(self, job: str, replica: int = 0, registry: CollectorRegistry | None = None,
                 limits: BatchLimits | None = None) -> None:
        if not job:
            raise ValueError("job must be a non-empty name")
        self.advisor: BatchAdvisor | None = None
        if limits is not None:
            from learners.batch_advisor import BatchAdvisor

            self.advisor = BatchAdvisor(limits)
        self._config: tuple[int, int, int] | None = None
        """(nodes, GPUs, micro-batch) of the last :meth:`configure`, the key of the advisor's samples."""
        self._times: list[tuple[float, float | None]] = []
        self.registry = registry if registry is not None else CollectorRegistry()
        self._labels = {"job_name": job, "replica": str(int(replica))}
        r = self.registry
        self._step = Histogram(STEP_SECONDS, "Seconds per optimizer step", LABELS, buckets=STEP_BUCKETS, registry=r)
        self._bsz = Gauge(BATCH_SIZE, "Global batch size", LABELS, registry=r)
        self._local = Gauge(LOCAL_BATCH_SIZE, "Per-GPU micro-batch size", LABELS, registry=r)
        self._gpus = Gauge(GPUS, "GPUs the job runs on", LABELS, registry=r)
        self._sqr = Gauge(GRAD_SQR, "Estimated squared gradient norm", LABELS, registry=r)
        self._var = Gauge(GRAD_VAR, "Estimated per-sample gradient variance", LABELS, registry=r)
        self._progress = Gauge(PROGRESS, "Fraction of the job's work done", LABELS, registry=r)
        self._samples = Counter(SAMPLES, "Training samples processed", LABELS, registry=r)

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        """Expose ``/metrics`` on ``port`` for Prometheus to scrape (a background thread)."""
        start_http_server(port, addr=addr, registry=self.registry)

    def configure(self, gpus: int, local_batch_size: int, nodes: int = 1) -> None:
        """What the job runs with after a (re)start, e.g. from ``AUTOCM_GPUS`` / ``AUTOCM_BATCH_SIZE``, or after
        it applied a :meth:`suggest_batch`; ``nodes`` the job's pods span (for the advisor's model)."""
        g = _finite("gpus", gpus, 1)
        b = _finite("local_batch_size", local_batch_size, 1)
        n = _finite("nodes", nodes, 1)
        self._gpus.labels(**self._labels).set(g)
        self._local.labels(**self._labels).set(b)
        config = (int(n), int(g), int(b))
        if config != self._config:
            self._config, self._times = config, []

    def step(self, seconds: float, batch_size: int, compute_seconds: float | None = None) -> None:
        """One optimizer step of ``batch_size`` samples (global) took ``seconds``; ``compute_seconds``, if the loop
        measures it, is one micro-step's forward and backward without the gradient sync (the advisor's model
        separates the two; without it the whole step counts as compute)."""
        s = _finite("seconds", seconds)
        b = _finite("batch_size", batch_size, 1)
        c = None if compute_seconds is None else _finite("compute_seconds", compute_seconds)
        self._step.labels(**self._labels).observe(s)
        self._bsz.labels(**self._labels).set(b)
        self._samples.labels(**self._labels).inc(b)
        if self.advisor is not None and self._config is not None and \
                len(self._times) < self.WARMUP_STEPS + self.MEASURED_STEPS:
            self._times.append((s, c))
            kept = self._times[self.WARMUP_STEPS:]
            typical = median(t for t, _ in kept) if len(kept) == self.MEASURED_STEPS else 0.0
            if typical > 0:  # a configuration measured; a timer that reads 0 teaches nothing
                computes = [x for _, x in kept if x is not None]
                self.advisor.observe_step(*self._config, typical,
                                          median(computes) if len(computes) == len(kept) else None)

    def gradient(self, grad_sqr: float, grad_var: float) -> None:
        """Fresh gradient statistics (both >= 0); the operator derives the gradient noise scale from them."""
        self._sqr.labels(**self._labels).set(_finite("grad_sqr", grad_sqr))
        self._var.labels(**self._labels).set(_finite("grad_var", grad_var))
        if self.advisor is not None:
            self.advisor.observe_gradient(grad_sqr, grad_var)

    def suggest_batch(self) -> BatchAdvice | None:
        """The batch split (micro-batch per GPU, accumulation steps) the job's own goodput model prefers on the
        GPUs and nodes it runs on now; None without ``limits``, before :meth:`configure`, or before it has
        measured a configuration and seen gradient statistics (keep the batch you have)."""
        if self.advisor is None or self._config is None:
            return None
        return self.advisor.advise(self._config[0], self._config[1])

    def progress(self, fraction: float) -> None:
        """How much of the job is done, 0..1."""
        f = _finite("fraction", fraction)
        if f > 1.0:
            raise ValueError(f"fraction must be <= 1, got {fraction!r}")
        self._progress.labels(**self._labels).set(f)
