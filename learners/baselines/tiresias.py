"""Tiresias (Gu et al., NSDI'19) as the Pollux artifact configured it for its simulator study.

Discretised two-dimensional least-attained-service: a job's service is GPUs x time run, jobs sit
in priority queues split at service thresholds, a queue is served FIFO, higher queues first, and a
job that no longer fits is preempted. Tiresias is non-elastic: a job runs on exactly the GPUs it
asked for (``num_replicas``) with the batch size it asked for, or not at all.

Every constant and rule follows ``simulator/tiresias.py`` of the Pollux artifact (AdaptDL, branch
``osdi21-artifact``), ``TiresiasPolicy``:

- two queues, one threshold ``self._queue_threshold = 3600 * 16`` GPU-seconds (16 GPU-hours);
- service is ``executed_time * max_replicas``, where ``executed_time`` counts whole seconds the
  policy kept the job RUNNING between its calls (truncated with ``int`` as there);
- demotion from queue 0 to queue 1 once that service reaches the threshold;
- starvation promotion (back to queue 0, service reset) once a job that has run waited
  ``executed_time * solve_starvation`` seconds, with ``self._solve_starvation = 0``: disabled;
- admission walks queue 0 then queue 1 and admits every job whose GPU count still fits in the
  cluster's total, skipping (not blocking on) jobs that do not fit; non-admitted jobs lose their GPUs;
- placement of a newly admitted job: repeatedly take as many GPUs as it still needs from the node
  with the most free GPUs (``free_gpus.most_common(1)``; ties go to the first node). A running job
  keeps its GPUs.

This module is a pure policy over plain data: no I/O, no SimPy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

ARTIFACT_QUEUE_THRESHOLD_GPU_S = 3600 * 16
"""``TiresiasPolicy.__init__``: ``self._queue_threshold = 3600 * 16``."""


class ClusterJob(Protocol):
    """The fields of a job view this policy reads (``simulator.training.JobView`` has them)."""

    @property
    def name(self) -> str: ...
    @property
    def requested_replicas(self) -> int: ...
    @property
    def placement(self) -> tuple[int, ...]: ...
    @property
    def allocation(self) -> tuple[tuple[str, int], ...]: ...


@dataclass(frozen=True)
class TiresiasSettings:
    """Defaults are the Pollux artifact's ``TiresiasPolicy.__init__``."""

    queue_thresholds_gpu_s: tuple[float, ...] = (ARTIFACT_QUEUE_THRESHOLD_GPU_S,)
    """Service at which a job leaves queue i for queue i+1; one threshold = the artifact's 2 queues."""
    solve_starvation: float = 0.0
    """``self._solve_starvation = 0``: promotion disabled. With k > 0 a job that has run and then
    waited ``k`` x its executed time returns to queue 0 with its executed time reset (Tiresias'
    own ``--solve_starvation`` knob)."""

    def __post_init__(self) -> None:
        if any(b <= a for a, b in zip(self.queue_thresholds_gpu_s, self.queue_thresholds_gpu_s[1:],
                                      strict=False)):
            raise ValueError("queue thresholds must increase")
        if self.solve_starvation < 0:
            raise ValueError("solve_starvation must be >= 0")


@dataclass
class _State:
    queue: int = 0
    running: bool = False
    last_check: int = 0
    executed_s: int = 0  # decides the queue; reset by starvation promotion
    total_executed_s: int = 0
    pending_since_run_s: int = 0  # the artifact's _last_pending_time


class Tiresias:
    """Discretised 2D-LAS with the artifact's queues, thresholds and placement."""

    name = "tiresias"

    def __init__(self, settings: TiresiasSettings | None = None) -> None:
        self.settings = settings or TiresiasSettings()
        self._queues: list[list[str]] = [[] for _ in range(len(self.settings.queue_thresholds_gpu_s) + 1)]
        self._state: dict[str, _State] = {}

    def queue_of(self, name: str) -> int:
        """Which priority queue a job is in (0 = highest)."""
        return self._state[name].queue

    def service_gpu_s(self, name: str, replicas: int) -> int:
        """The attained service Tiresias ranks by: executed seconds x requested GPUs."""
        return self._state[name].executed_s * replicas

    def optimize(self, jobs: Sequence[ClusterJob], nodes: Mapping[str, int],
                 now: float) -> dict[str, tuple[int, ...]]:
        event_time = int(now)
        by_name = {j.name: j for j in jobs}
        # Forget finished jobs; enqueue new ones at the tail of queue 0 as PENDING.
        for q in self._queues:
            q[:] = [n for n in q if n in by_name]
        self._state = {n: s for n, s in self._state.items() if n in by_name}
        for job in jobs:
            if job.name not in self._state:
                self._state[job.name] = _State()
                self._queues[0].append(job.name)
        self._account(by_name, event_time)
        running = self._admit(by_name, sum(nodes.values()))
        return self._place(by_name, running, nodes)

    # --- queues ---------------------------------------------------------------------------------------
    def _account(self, jobs: Mapping[str, ClusterJob], event_time: int) -> None:
        thresholds = self.settings.queue_thresholds_gpu_s
        for name, job in jobs.items():
            st = self._state[name]
            elapsed = int(event_time - st.last_check)
            st.last_check = event_time
            if st.running:
                st.executed_s += elapsed
                st.total_executed_s += elapsed
                while st.queue < len(thresholds) and st.executed_s * job.requested_replicas >= \
                        thresholds[st.queue]:
                    self._move(name, st.queue + 1)
            else:
                if st.executed_s > 0:
                    st.pending_since_run_s += elapsed
                k = self.settings.solve_starvation
                if k > 0 and st.queue > 0 and st.total_executed_s > 0 and st.executed_s > 0 and \
                        st.pending_since_run_s >= int(st.executed_s * k):
                    st.executed_s = 0
                    st.pending_since_run_s = 0
                    self._move(name, 0)

    def _move(self, name: str, queue: int) -> None:
        st = self._state[name]
        self._queues[st.queue].remove(name)
        self._queues[queue].append(name)
        st.queue = queue

    def _admit(self, jobs: Mapping[str, ClusterJob], total_gpus: int) -> list[str]:
        """Highest queue first, FIFO within a queue; a job that does not fit is skipped, not waited on."""
        left = total_gpus
        running = []
        for q in self._queues:
            for name in q:
                want = jobs[name].requested_replicas
                st = self._state[name]
                if want <= left:
                    st.running = True
                    left -= want
                    running.append(name)
                else:
                    st.running = False
        return running

    # --- placement ------------------------------------------------------------------------------------
    def _place(self, jobs: Mapping[str, ClusterJob], running: list[str],
               nodes: Mapping[str, int]) -> dict[str, tuple[int, ...]]:
        free = dict(nodes)
        answer: dict[str, tuple[int, ...]] = {}
        keep = [n for n in running if jobs[n].allocation]
        for name in keep:
            for node, count in jobs[name].allocation:
                free[node] -= count
            answer[name] = tuple(jobs[name].placement)
        if any(v < 0 for v in free.values()):
            raise ValueError("running jobs hold more GPUs than the cluster offers")
        for name in running:
            if name in answer:
                continue
            need = jobs[name].requested_replicas
            shape = []
            while need > 0:
                node = max(free, key=lambda k: free[k])  # first node with the most free GPUs
                take = min(free[node], need)
                if take <= 0:
                    raise AssertionError("admission let in more GPUs than are free")
                free[node] -= take
                need -= take
                shape.append(take)
            answer[name] = tuple(shape)
        for name in jobs:
            answer.setdefault(name, ())
        return answer
