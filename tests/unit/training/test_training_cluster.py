"""The SimPy training cluster: the pool's invariant every round, sharing, metrics, partial runs."""

import itertools

import pytest
import simpy

from learners.baselines.tiresias import Tiresias
from simulator.cluster import GpuPool
from simulator.datasets import data_path
from simulator.metrics import Recorder
from simulator.training import (
    JobSpec,
    TrainingCluster,
    load_profiles,
    load_workload,
    simulate_training,
    workload_path,
)

POLLUX = data_path("pollux")


@pytest.fixture(scope="module")
def profiles():
    return load_profiles(POLLUX / "profiles")


@pytest.fixture(scope="module")
def small_stream():
    """The first 30 jobs of the paper's workload 1 at 1.0x load (all six applications appear)."""
    return load_workload(workload_path(POLLUX, 1.0, 1))[:30]


class CheckedPool(GpuPool):
    """Counts the invariant checks and re-checks the books on every grant and release."""

    checks = 0

    def check(self):
        type(self).checks += 1
        super().check()

    def release(self, alloc):
        super().release(alloc)
        super().check()


class Greedy:
    """Asks for every usable GPU for every job: the pool must refuse what does not fit."""

    def optimize(self, jobs, nodes, now):
        total = sum(nodes.values())
        return {j.name: (total,) if total <= 4 else (4,) * (total // 4) for j in jobs}


class Unknown:
    def optimize(self, jobs, nodes, now):
        return {"ghost": (1,)}


def test_no_gpu_is_given_twice_and_the_pool_is_checked_every_round(profiles, small_stream):
    CheckedPool.checks = 0
    pool = CheckedPool.uniform(16, 4)
    result = simulate_training(small_stream, Tiresias(), pool=pool, profiles=profiles)
    assert not result.unfinished
    assert CheckedPool.checks == len(result.utilisation)  # one check per round
    assert all(0.0 <= u <= 1.0 for _, u in result.utilisation)
    assert pool.used == 0  # every job's GPUs were returned


def test_a_shared_pool_keeps_inference_gpus_out_of_reach(profiles, small_stream):
    env = simpy.Environment()
    pool = CheckedPool.uniform(4, 4)
    inference = pool.allocate("serving/llm", 6)

    def serving():  # a second tenant that grows and shrinks during the run
        yield env.timeout(1_000)
        burst = pool.allocate("serving/burst", 4)  # may find nothing free: training holds the rest
        yield env.timeout(5_000)
        if burst is not None:
            pool.release(burst)

    env.process(serving())
    cluster = TrainingCluster(env, pool, Greedy(), profiles)
    for spec in small_stream[:8]:
        cluster.submit(spec)
    cluster.start()
    env.run(until=20_000)
    pool.check()
    assert inference in pool.grants()
    training_gpus = max(u for _, u in cluster.utilisation) * pool.capacity
    assert training_gpus <= pool.capacity - inference.gpus
    assert cluster.failed_grants > 0  # greedy asks were refused, not squeezed in


def test_unknown_jobs_in_an_answer_are_an_error(profiles):
    with pytest.raises(ValueError, match="ghost"):
        simulate_training([JobSpec("a", "cifar10", 0.0, 1, 128)], Unknown(), profiles=profiles)


def test_metrics_are_sampled_every_minute_with_job_labels(profiles, small_stream):
    rec = Recorder()
    specs = small_stream[:5]
    result = simulate_training(specs, Tiresias(), recorder=rec, profiles=profiles)
    name = specs[0].name
    progress = rec.series("autocm_training_progress_ratio", namespace="training", job=name)
    times = [t for t, _ in progress]
    assert all(b - a == 60.0 for a, b in itertools.pairwise(times))
    assert progress[-1][1] == 1.0 and all(b >= a for (_, a), (_, b) in itertools.pairwise(progress))
    gpus = rec.series("autocm_training_gpus", job=name)
    assert max(v for _, v in gpus) == specs[0].num_replicas
    for family in ("autocm_training_throughput_samples_per_second",
                   "autocm_training_goodput_samples_per_second",
                   "autocm_training_batch_size", "DCGM_FI_DEV_GPU_UTIL"):
        assert family in rec.families
    busy = [v for pts in rec.points("DCGM_FI_DEV_GPU_UTIL").values() for _, v in pts]
    assert all(0.0 <= v <= 100.0 for v in busy) and max(busy) > 0
    good = rec.series("autocm_training_goodput_samples_per_second", job=name)
    thr = rec.series("autocm_training_throughput_samples_per_second", job=name)
    assert all(g <= t + 1e-9 for (_, g), (_, t) in zip(good, thr, strict=True))  # efficiency <= 1
    assert set(result.jcts_s) == {s.name for s in specs}


def test_a_run_cut_short_reports_the_unfinished(profiles, small_stream):
    result = simulate_training(small_stream, Tiresias(), until=3_600.0, profiles=profiles)
    assert result.unfinished
    assert set(result.unfinished).isdisjoint(result.jcts_s)
    assert len(result.unfinished) + len(result.jcts_s) == len(small_stream)
