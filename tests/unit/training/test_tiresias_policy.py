"""Tiresias on tiny hand-built clusters whose right answer is known."""

from dataclasses import dataclass

import pytest

from learners.baselines.tiresias import ARTIFACT_QUEUE_THRESHOLD_GPU_S, Tiresias, TiresiasSettings


@dataclass
class View:
    name: str
    requested_replicas: int
    placement: tuple[int, ...] = ()
    allocation: tuple[tuple[str, int], ...] = ()


class World:
    """Applies the policy's answers to per-node books, as the cluster would (most-free node choice)."""

    def __init__(self, nodes):
        self.nodes = dict(nodes)
        self.jobs: dict[str, View] = {}

    def add(self, name, gpus):
        self.jobs[name] = View(name, gpus)

    def round(self, policy, now):
        answer = policy.optimize(list(self.jobs.values()), self.nodes, now)
        free = dict(self.nodes)
        for v in self.jobs.values():
            if answer[v.name] == v.placement and v.allocation:
                for node, n in v.allocation:
                    free[node] -= n
            else:
                v.placement, v.allocation = (), ()
        for v in self.jobs.values():
            if answer[v.name] and not v.allocation:
                share = []
                for part in answer[v.name]:
                    node = max((k for k in free if k not in dict(share)), key=lambda k: free[k])
                    assert free[node] >= part, "policy asked for GPUs that are not free"
                    free[node] -= part
                    share.append((node, part))
                v.placement, v.allocation = answer[v.name], tuple(share)
        assert all(f >= 0 for f in free.values())
        return answer


def test_defaults_are_the_artifacts():
    s = TiresiasSettings()
    assert s.queue_thresholds_gpu_s == (3600 * 16,)  # tiresias.py: self._queue_threshold = 3600 * 16
    assert s.solve_starvation == 0  # tiresias.py: self._solve_starvation = 0
    with pytest.raises(ValueError):
        TiresiasSettings(queue_thresholds_gpu_s=(10.0, 5.0))


def test_demotion_exactly_at_the_threshold():
    world = World({f"n{i}": 4 for i in range(4)})
    policy = Tiresias()
    world.add("big", 16)
    world.round(policy, 0)
    assert world.jobs["big"].placement == (4, 4, 4, 4)
    seconds_to_threshold = ARTIFACT_QUEUE_THRESHOLD_GPU_S // 16  # 3600 s on 16 GPUs
    world.round(policy, seconds_to_threshold - 1)
    assert policy.queue_of("big") == 0
    world.round(policy, seconds_to_threshold)
    assert policy.queue_of("big") == 1
    assert policy.service_gpu_s("big", 16) == ARTIFACT_QUEUE_THRESHOLD_GPU_S


def test_a_new_job_preempts_a_demoted_one_and_a_small_one_is_not_blocked():
    world = World({"a": 4, "b": 4})
    policy = Tiresias(TiresiasSettings(queue_thresholds_gpu_s=(100.0,)))
    world.add("old", 8)
    world.round(policy, 0)
    world.round(policy, 60)  # 480 GPU-s >= 100: demoted
    assert policy.queue_of("old") == 1
    world.add("new", 6)
    world.add("tiny", 2)
    world.round(policy, 120)
    # new (queue 0) takes 6 GPUs; old (8) no longer fits; tiny (2), later in queue 0, still runs.
    assert world.jobs["old"].placement == ()
    assert sum(world.jobs["new"].placement) == 6
    assert world.jobs["tiny"].placement == (2,)


def test_starvation_promotion_after_waiting_k_times_the_run():
    world = World({"a": 4})
    policy = Tiresias(TiresiasSettings(queue_thresholds_gpu_s=(240.0,), solve_starvation=0.5))
    world.add("victim", 4)
    world.round(policy, 0)
    world.round(policy, 60)  # ran 60 s x 4 GPUs = 240 GPU-s: demoted to queue 1
    assert policy.queue_of("victim") == 1
    world.add("hog", 4)
    world.round(policy, 61)  # hog (queue 0) preempts victim, which ran 61 s in all
    assert world.jobs["victim"].placement == () and world.jobs["hog"].placement == (4,)
    # victim must wait int(0.5 x 61) = 30 s; hog's 4 x 30 = 120 GPU-s keep it in queue 0 meanwhile.
    world.round(policy, 61 + 29)
    assert policy.queue_of("victim") == 1
    world.round(policy, 61 + 30)
    assert policy.queue_of("victim") == 0  # promoted, executed time reset ...
    assert policy.service_gpu_s("victim", 4) == 0
    assert world.jobs["victim"].placement == ()  # ... but FIFO behind the hog, which keeps its GPUs
    assert world.jobs["hog"].placement == (4,)


def test_no_promotion_with_the_artifact_setting():
    world = World({"a": 4})
    policy = Tiresias(TiresiasSettings(queue_thresholds_gpu_s=(100.0,)))
    world.add("victim", 4)
    world.round(policy, 0)
    world.round(policy, 60)
    world.add("hog", 4)
    for t in range(61, 100_000, 3_000):
        world.round(policy, t)
        assert policy.queue_of("victim") == 1


def test_placement_takes_from_the_node_with_most_free_gpus():
    policy = Tiresias()
    jobs = [View("six", 6)]
    assert policy.optimize(jobs, {"a": 4, "b": 2, "c": 3}, 0) == {"six": (4, 2)}  # a (4), then c (3)
    policy = Tiresias()
    assert policy.optimize([View("two", 2)], {"a": 1, "b": 3, "c": 3}, 0) == {"two": (2,)}


def test_a_running_job_keeps_its_gpus():
    world = World({"a": 4, "b": 4})
    policy = Tiresias()
    world.add("x", 3)
    world.round(policy, 0)
    before = world.jobs["x"].allocation
    world.add("y", 5)
    world.round(policy, 60)
    assert world.jobs["x"].allocation == before
    assert sum(world.jobs["y"].placement) == 5
