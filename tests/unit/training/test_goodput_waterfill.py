"""goodput-waterfill (formerly rl-arbiter): the agents' curves agree with the job model; the arbiter fills the pool."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from learners.baselines.tiresias import Tiresias
from simulator.cluster import GpuPool
from simulator.datasets import data_path
from simulator.training import JobSpec, TrainingJob, load_profiles, load_workload, simulate_training, workload_path
from simulator.training.arbiter import GoodputWaterfillScheduler, JobAgent, consolidated

POLLUX = data_path("pollux")


@pytest.fixture(scope="module")
def profiles():
    return load_profiles(POLLUX / "profiles")


def test_consolidated_shapes():
    assert consolidated(9, 4) == (4, 4, 1) and consolidated(4, 4) == (4,) and consolidated(3, 4) == (3,)


@pytest.mark.parametrize(("application", "gpus", "epoch"), [("cifar10", 1, 0), ("cifar10", 6, 30), ("imagenet", 8, 10),
                                                              ("bert", 2, 1), ("yolov3", 4, 20)])
def test_an_offer_is_what_the_job_model_runs_at(profiles, application, gpus, epoch):
    """The goodput an agent bids with equals the goodput the simulated job gets on that grant."""
    agent = JobAgent(profiles[application], per_node=4, max_gpus=16)
    offer = agent.offer(gpus, epoch)
    assert offer is not None
    job = TrainingJob(JobSpec("j", application, 0.0, gpus, None), profiles[application], restart_delay_s=30.0)
    job.epoch = epoch
    job.reallocate(consolidated(gpus, 4), offer.batch_size)
    assert job.goodput_samples_per_s() == pytest.approx(offer.goodput, rel=1e-9)
    # and it is the best over the batches the agent scans
    for batch in agent._batches(gpus)[::3]:
        job.reallocate(consolidated(gpus, 4), batch)
        with contextlib.suppress(ValueError):  # a batch the profile does not cover: the agent skipped it too
            assert job.goodput_samples_per_s() <= offer.goodput * (1 + 1e-9)


def test_vectorised_gains_match_the_profile(profiles):
    p = profiles["imagenet"]
    agent = JobAgent(p, 4, 8)
    batches = np.array([200.0, 333.0, 1600.0, 12800.0, 20000.0])
    gains = agent._gains(batches, epoch=40)
    assert np.allclose(gains[:4], [p.gain(b, 40) for b in batches[:4]]) and np.isnan(gains[4])


def test_more_gpus_never_lower_the_best_goodput_on_one_node(profiles):
    curve = JobAgent(profiles["cifar10"], 4, 4).curve(0)
    goodputs = [o.goodput for o in curve]
    assert goodputs[0] > 0 and goodputs[3] > goodputs[0]


def test_a_lone_job_gets_the_idle_gpus_tiresias_leaves_unused(profiles):
    """Tiresias runs the job on the 1 GPU it asked for; the arbiter gives it what pays, and it ends sooner."""
    spec = [JobSpec("cifar10-0", "cifar10", 0.0, 1, 128)]
    elastic = simulate_training(spec, GoodputWaterfillScheduler(profiles), pool=GpuPool.uniform(4, 4),
                                profiles=profiles)
    fixed = simulate_training(spec, Tiresias(), pool=GpuPool.uniform(4, 4), profiles=profiles)
    assert elastic.jcts_s["cifar10-0"] < 0.5 * fixed.jcts_s["cifar10-0"]
    assert elastic.gpu_hours > fixed.gpu_hours  # it held more GPUs to get there


def test_a_stream_of_jobs_runs_to_completion_within_the_pool(profiles):
    stream = load_workload(workload_path(POLLUX, 1.0, 1))[:25]
    pool = GpuPool.uniform(4, 4)
    result = simulate_training(stream, GoodputWaterfillScheduler(profiles), pool=pool, profiles=profiles)
    assert not result.unfinished and len(result.jcts_s) == 25
    assert result.failed_grants == 0
    assert max(u for _, u in result.utilisation) <= 1.0
    # most rounds the pool is busy: the arbiter hands out idle GPUs while jobs are waiting or can use them
    busy = [u for _, u in result.utilisation]
    assert np.mean(busy) > 0.5
