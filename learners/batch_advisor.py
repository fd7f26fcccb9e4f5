"""The in-job half of Pollux: a job picks its own batch size between restarts, from what it measured.

Pollux (AdaptDL) runs an agent inside every job. The scheduler decides GPUs; the agent re-picks the batch
size after every epoch (``Job.update_local_bsz`` in the artifact), because the gradient noise scale grows
as training goes on, so the batch that maximises goodput on the same GPUs grows with it. The operator's
pool changes a job's batch only when it restarts the job (``AUTOCM_BATCH_SIZE``), so without this half a
job keeps the batch of its last restart however far its noise scale has moved. In the training cluster
simulator that cost the operator's ``pollux`` about a fifth of its mean JCT on the paper's workload 1 at 1.0x
(docs/training-operator.md, "The operator's scheduler in the paper's workloads").

:class:`BatchAdvisor` is that agent with no I/O: the training loop (through
``controller.train_metrics.TrainingMetrics``, or the simulator's job reporter) tells it each configuration's
step time and the latest gradient statistics; :meth:`BatchAdvisor.advise` answers the batch split for the
GPUs the job runs on. Its model is the job's own, fitted to the job's own step times, exactly as the
simulator's Pollux agent (``simulator.training.pollux.PolluxAgent``) fits it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from learners.pollux import BatchLimits, GoodputModel, PerfParams, fit_perf_params


@dataclass(frozen=True)
class BatchAdvice:
    """A batch split: ``atomic_bsz`` per GPU per micro-step, ``accum_steps`` extra micro-steps per optimizer
    step; the global batch is ``atomic_bsz * (accum_steps + 1) * replicas``."""

    atomic_bsz: int
    accum_steps: int
    num_replicas: int

    @property
    def batch_size(self) -> int:
        return self.atomic_bsz * (self.accum_steps + 1) * self.num_replicas


class BatchAdvisor:
    """One job's own goodput model, and the batch it prefers on the GPUs it has."""

    def __init__(self, limits: BatchLimits) -> None:
        if not (0 < limits.min_local_bsz <= limits.max_local_bsz and 0 < limits.init_batch_size
                <= limits.max_batch_size):
            raise ValueError(f"batch limits out of order: {limits}")
        self.limits = limits
        self.samples: dict[tuple[int, int, int], tuple[float, float]] = {}
        """(nodes, GPUs, micro-batch) -> (optimizer step seconds, one micro-step's seconds without the sync)."""
        self.grad: tuple[float, float] | None = None
        self.perf: PerfParams | None = None

    def observe_step(self, num_nodes: int, replicas: int, atomic_bsz: int, step_s: float,
                     accum_step_s: float | None = None) -> None:
        """The step time of a configuration the job ran; the first one of each configuration is kept (a
        configuration seen again adds nothing, as in the Pollux agent) and refits the model."""
        if min(num_nodes, replicas, atomic_bsz) < 1 or not (np.isfinite(step_s) and step_s > 0):
            raise ValueError(f"not a step: {num_nodes} nodes, {replicas} GPUs, micro-batch {atomic_bsz}, {step_s} s")
        key = (int(num_nodes), int(replicas), int(atomic_bsz))
        if key in self.samples:
            return
        accum = step_s if accum_step_s is None else accum_step_s
        self.samples[key] = (float(step_s), float(min(max(accum, 1e-9), step_s)))
        keys = np.array(list(self.samples), dtype=float)
        vals = np.array(list(self.samples.values()), dtype=float)
        self.perf = fit_perf_params(keys[:, 0], keys[:, 1], keys[:, 2], vals[:, 1], vals[:, 0])

    def observe_gradient(self, grad_sqr: float, grad_var: float) -> None:
        if not (np.isfinite(grad_sqr) and np.isfinite(grad_var) and grad_sqr >= 0 and grad_var >= 0):
            raise ValueError(f"gradient statistics must be finite and >= 0, got {grad_sqr!r}, {grad_var!r}")
        self.grad = (float(grad_sqr), float(grad_var))

    def model(self) -> GoodputModel | None:
        if self.perf is None or self.grad is None:
            return None
        return GoodputModel(self.perf, self.grad[0], self.grad[1], self.limits)

    def advise(self, num_nodes: int, replicas: int) -> BatchAdvice | None:
        """The split that maximises the job's goodput on ``replicas`` GPUs over ``num_nodes`` nodes, within its
        limits; None before the job has both a step time and gradient statistics (keep the batch it has)."""
        model = self.model()
        if model is None or replicas < 1 or num_nodes < 1:
            return None
        atomic, accum = best_split(model, num_nodes, replicas)
        return BatchAdvice(atomic, accum, int(replicas)) if atomic >= 1 else None


def best_split(model: GoodputModel, num_nodes: int, replicas: int) -> tuple[int, int]:
    """(micro-batch per GPU, extra accumulation steps) that maximise ``model``'s goodput on ``replicas`` GPUs
    over ``num_nodes`` nodes, the micro-batch cut so the global batch stays within the job's largest
    (``Job.update_local_bsz``)."""
    _, atomic, accum = model.optimize(num_nodes, replicas)
    atomic_i, accum_i = int(atomic[0]), int(accum[0])
    return min(atomic_i, int(model.limits.max_batch_size / (replicas * (accum_i + 1)))), accum_i
