"""A training scheduler run on a short paper stream while recording the worst over-subscription of any node."""

from __future__ import annotations

from simulator.cluster import GpuPool
from simulator.datasets import data_path
from simulator.training import TrainingResult, load_profiles, load_workload, simulate_training, workload_path

POLLUX = data_path("pollux")


def checked(base: type) -> type:
    """``base`` (a simulator training scheduler) whose ``optimize`` records ``worst``: the most GPUs any node
    was asked for beyond its capacity, over every answer (0 or less: never over-subscribed)."""

    class Checked(base):
        worst = 0

        def optimize(self, jobs, nodes, now):
            answer = super().optimize(jobs, nodes, now)
            used: dict[str, int] = {}
            for d in answer.values():
                for node, count in d.nodes or ():
                    used[node] = used.get(node, 0) + count
            self.worst = max(self.worst, *(used.get(n, 0) - c for n, c in nodes.items()))
            return answer

    return Checked


def run_checked_stream(base: type, jobs: int = 12, seed: int = 2):
    """The first ``jobs`` jobs of workload 1 at 1.0x on 4 x 4 GPUs under ``checked(base)``; asserts they all
    finish, no grant failed, no node was over-subscribed and utilisation never exceeded 1. Returns the
    scheduler and the result for further checks."""
    stream = load_workload(workload_path(POLLUX, 1.0, 1))[:jobs]
    sched = checked(base)(seed=seed)
    result: TrainingResult = simulate_training(stream, sched, pool=GpuPool.uniform(4, 4),
                                               profiles=load_profiles(POLLUX / "profiles"))
    assert not result.unfinished and len(result.jcts_s) == jobs
    assert result.failed_grants == 0 and sched.worst <= 0
    assert max(u for _, u in result.utilisation) <= 1.0
    return sched, result
