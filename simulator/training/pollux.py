"""Pollux in the training simulator: an agent inside every job, and the cluster scheduler (``pollux``).

The math lives in :mod:`learners.pollux`; this module wires it to the simulated jobs the way the Pollux
artifact (AdaptDL ``osdi21-artifact``, ``simulator/simulator.py``) wires it to its own:

* :class:`PolluxAgent` sits inside a job (``TrainingJob.agent``). Every stretch the job runs, it is shown
  the step time of the configuration the job actually ran and the job's current gradient statistics
  (``Job.update_params``); a (nodes, GPUs, micro-batch) it has not seen before is added to its profile and
  the throughput model is re-fitted. It picks the job's batch size for every placement, and again after
  every epoch and every round without a restart (``Job.update_local_bsz``). It never reads the
  application's measured step-time table: only what its own job ran.
* :class:`PolluxScheduler` gathers every job's speedup curve, how far each may grow (twice the most GPUs
  it has profiled, ``Cluster.get_pollux_job_info``), restarts and age, and runs the genetic search over
  job x node allocations each round; the answer names nodes, so interference avoidance (one distributed
  job per node) holds in the cluster, and any change of node or count restarts the job.

As in the artifact, Pollux jobs ignore the batch size and GPU count the trace submitted them with
(``Cluster.__init__``), except NCF, which the artifact pins to batch 32768 on one GPU.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from learners.batch_advisor import best_split
from learners.pollux import (
    BatchLimits,
    GoodputModel,
    PerfParams,
    SearchJob,
    SearchProblem,
    SearchSettings,
    carry_states,
    fair_share_goodput,
    fit_perf_params,
    goodput_table,
    search,
)
from simulator.training.cluster_sim import Decision, JobView
from simulator.training.job import BatchConfig, TrainingJob, batch_config
from simulator.training.profiles import StepTime

MAX_REPLICAS = 64
"""``Cluster.get_pollux_job_info``: "simulator can't handle more"."""
PINNED = {"ncf": (32768, 1)}
"""Application -> (batch size, max GPUs) the artifact fixes for Pollux (``Cluster.__init__``,
``get_pollux_job_info``): NCF does not scale."""


class PolluxAgent:
    """One job's model of itself: profiled step times, fitted throughput, latest gradient statistics."""

    def __init__(self, limits: BatchLimits, target_batch_size: int | None = None) -> None:
        self.limits = limits
        self.target_batch_size = target_batch_size
        self.profile: dict[tuple[int, int, int], tuple[float, float]] = {}
        self.perf: PerfParams | None = None
        self.grad: tuple[float, float] | None = None
        self.fits = 0

    @property
    def max_profiled_replicas(self) -> int:
        return max((k[1] for k in self.profile), default=0)

    def observe(self, job: TrainingJob, step: StepTime, grad_sqr: float, grad_var: float) -> None:
        self.grad = (grad_sqr, grad_var)
        assert job.config is not None
        key = (len(job.placement), sum(job.placement), job.config.atomic_bsz)
        if key in self.profile:
            return
        self.profile[key] = (step.step_s, step.sync_s)
        keys = np.array(list(self.profile), dtype=float)
        vals = np.array(list(self.profile.values()), dtype=float)
        self.perf = fit_perf_params(keys[:, 0], keys[:, 1], keys[:, 2], vals[:, 0] - vals[:, 1], vals[:, 0])
        self.fits += 1

    def model(self) -> GoodputModel | None:
        if self.perf is None or self.grad is None:
            return None
        return GoodputModel(self.perf, self.grad[0], self.grad[1], self.limits)

    def batch_config(self, job: TrainingJob, placement: tuple[int, ...]) -> BatchConfig:
        """``Job.update_local_bsz``: the best batch for this placement by the job's own goodput model; before
        it has one, ``max(M0, min_local x GPUs)``; a pinned batch is split as a fixed batch."""
        lim = self.limits
        replicas = sum(placement)
        model = self.model()
        if self.target_batch_size is not None or model is None:
            batch = self.target_batch_size or max(lim.init_batch_size, lim.min_local_bsz * replicas)
            return batch_config(job.profile, replicas, batch)
        atomic_i, accum_i = best_split(model, len(placement), replicas)
        return BatchConfig(atomic_i, accum_i, replicas)

    def max_replicas(self, application: str) -> int:
        """How far the job may grow: twice what it has profiled (at least 1), at most 64 and at most the
        GPUs that still hold the smallest micro-batch within the largest batch."""
        if application in PINNED:
            return PINNED[application][1]
        lim = self.limits
        return max(1, min(max(2 * self.max_profiled_replicas, 1), MAX_REPLICAS,
                          lim.max_batch_size // lim.min_local_bsz))


@dataclass
class _Cached:
    key: tuple
    goodput: np.ndarray


class PolluxScheduler:
    """The ``pollux`` training scheduler: per-job :class:`PolluxAgent` s and the genetic search each round."""

    name = "pollux"

    def __init__(self, settings: SearchSettings | None = None, seed: int = 0) -> None:
        self.settings = settings or SearchSettings()
        self.rng = np.random.default_rng(seed)
        self.agents: dict[str, PolluxAgent] = {}
        self._prev: tuple[np.ndarray, list[str], list[str]] | None = None
        self._tables: dict[str, _Cached] = {}
        self.rounds = 0

    def attach(self, job: TrainingJob) -> None:
        p = job.profile
        limits = p.batch_limits
        pinned = PINNED.get(p.name)
        agent = self._agent(p.name, limits, pinned[0] if pinned else None)
        job.agent = agent
        self.agents[job.name] = agent

    def _agent(self, application: str, limits: BatchLimits, target_batch_size: int | None) -> PolluxAgent:
        """The agent a new job of ``application`` gets (schedulers built on Pollux change only this)."""
        return PolluxAgent(limits, target_batch_size)

    def weight(self, view: JobView) -> float:
        """How much the objective scales this job's speedup (:attr:`SearchJob.weight`); 1 in Pollux."""
        return 1.0

    # --- one round ------------------------------------------------------------------------------------
    def _goodput_table(self, name: str, model: GoodputModel, max_replicas: int, max_nodes: int) -> np.ndarray:
        """:func:`goodput_table`, cached while the job's model and growth limit stay the same."""
        key = (model.perf, model.grad_sqr, model.grad_var, max_replicas, max_nodes)
        hit = self._tables.get(name)
        if hit is None or hit.key != key:
            hit = _Cached(key, goodput_table(model, max_replicas, max_nodes))
            self._tables[name] = hit
        return hit.goodput

    def optimize(self, jobs: Sequence[JobView], nodes: Mapping[str, int], now: float) -> dict[str, Decision]:
        self.rounds += 1
        node_names = list(nodes)
        capacity = np.array([nodes[n] for n in node_names], dtype=np.int64)
        if not jobs or capacity.sum() == 0:
            return {j.name: Decision(()) for j in jobs}
        order = sorted(jobs, key=lambda j: (j.attained_service_gpu_s, j.arrival_s))
        names = [j.name for j in order]
        total = int(capacity.sum())
        max_nodes = min(len(node_names), self.settings.max_nodes_per_job)
        search_jobs = []
        for view in order:
            agent = self.agents[view.name]
            limit = agent.max_replicas(view.application)
            model = agent.model()
            speedup = None
            if model is not None:
                table = self._goodput_table(view.name, model, limit, max_nodes)
                base = fair_share_goodput(model, total, len(node_names), len(order))
                speedup = table / base if base > 0 else table
            search_jobs.append(SearchJob(view.name, speedup, limit, view.num_restarts, view.age_s,
                                         self.weight(view)))
        base_state = np.zeros((len(order), len(node_names)), dtype=np.int64)
        index = {n: i for i, n in enumerate(node_names)}
        for j, view in enumerate(order):
            for node, count in view.allocation:
                if node in index:
                    base_state[j, index[node]] += count
        problem = SearchProblem(search_jobs, capacity, base_state, self.settings)
        best, keep = search(problem, carry_states(self._prev, names, node_names), self.rng)
        self._prev = (keep, names, node_names)
        answer: dict[str, Decision] = {}
        for j, name in enumerate(names):
            share = tuple((node_names[i], int(c)) for i, c in enumerate(best[j]) if c)
            answer[name] = Decision(tuple(c for _, c in share), None, share) if share else Decision(())
        return answer

