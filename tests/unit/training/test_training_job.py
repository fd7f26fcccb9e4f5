"""Batch split and job progress: the artifact's arithmetic, checked against hand computations."""

import math

import pytest

from simulator.cluster import GpuPool
from simulator.datasets import data_path
from simulator.training import JobSpec, TrainingJob, batch_config, load_profiles, simulate_training


class FixedPlacement:
    """Gives every job exactly the GPUs it asked for on one shape; a known-answer scheduler."""

    def __init__(self, shape):
        self.shape = shape

    def optimize(self, jobs, nodes, now):
        return {j.name: self.shape for j in jobs}


@pytest.fixture(scope="module")
def profiles():
    return load_profiles(data_path("pollux", "profiles"))


@pytest.mark.parametrize("model, replicas, batch, atomic, accum", [
    ("bert", 16, 384, 12, 1),         # local 24 > max local 12: one accumulation step
    ("cifar10", 6, 2048, 342, 0),     # ceil(2048 / 6) = 342, total 2052
    ("cifar10", 12, 4096, 341, 0),    # 342 x 12 > 4096 = largest validated batch: capped to 341
    ("ncf", 1, 32768, 16384, 1),      # one GPU above the initial batch: at least one accumulation step
    ("yolov3", 4, 64, 8, 1),          # yolov3's micro-batch is capped at 8 by the artifact
    ("imagenet", 32, 6400, 200, 0),
])
def test_batch_split_follows_the_artifact(profiles, model, replicas, batch, atomic, accum):
    cfg = batch_config(profiles[model], replicas, batch)
    assert (cfg.atomic_bsz, cfg.accum_steps) == (atomic, accum)
    assert cfg.batch_size <= profiles[model].max_batch_size


def _predicted_run_s(prof, shape, batch):
    """Seconds to train from zero: per epoch, progress to make / (gain per step / step time)."""
    cfg = batch_config(prof, sum(shape), batch)
    st = prof.step_time(shape, cfg.atomic_bsz)
    iteration = st.step_s + st.compute_s * cfg.accum_steps
    total = 0.0
    for e in range(prof.max_epochs):
        todo = prof.progress_at_epoch(e + 1) - prof.progress_at_epoch(e)
        total += round(todo / (prof.gain(cfg.batch_size, e) / iteration))  # the artifact rounds per epoch
    return total


@pytest.mark.parametrize("model, shape, batch, arrival", [
    ("bert", (4, 4), 384, 130.0),
    ("cifar10", (4, 2), 2048, 60.0),
    ("ncf", (1,), 32768, 1.0),
])
def test_a_job_alone_finishes_when_the_profile_says(profiles, model, shape, batch, arrival):
    prof = profiles[model]
    spec = JobSpec("j", model, arrival, sum(shape), batch)
    result = simulate_training([spec], FixedPlacement(shape), pool=GpuPool.uniform(16, 4), profiles=profiles)
    first_round = math.ceil(arrival / 60.0) * 60.0  # seen at the first round at or after arrival
    expected = first_round + 30.0 + _predicted_run_s(prof, shape, batch) - arrival  # + restart delay
    assert result.jcts_s["j"] == pytest.approx(expected, abs=1.0)
    assert result.num_restarts["j"] == 0
    # GPU time held: from the first round to the end of the round the job finished in.
    end = math.ceil((arrival + result.jcts_s["j"]) / 60.0) * 60.0
    assert result.gpu_hours == pytest.approx(sum(shape) * (end - first_round) / 3600.0)


def test_restart_delay_is_charged_before_progress(profiles):
    job = TrainingJob(JobSpec("j", "cifar10", 0.0, 4, 512), profiles["cifar10"], restart_delay_s=30.0)
    job.reallocate((4,))
    job.advance(0.0, 20.0)
    assert job.progress == 0.0 and job.restart_left_s == 10.0
    assert job.attained_service_gpu_s == 80.0  # the artifact counts restarting GPUs as service
    job.advance(20.0, 20.0)  # 10 s of restart left, then 10 s of training (inside epoch 0)
    rate = profiles["cifar10"].gain(512, 0) / job.iteration_time_s()
    assert job.progress == pytest.approx(10.0 * rate)
    assert job.epoch == 0
    job.reallocate((2, 2))  # a move costs another restart
    assert job.restart_left_s == 30.0 and job.num_restarts == 1


def test_efficiency_slows_progress_above_the_initial_batch(profiles):
    prof = profiles["cifar10"]
    small = TrainingJob(JobSpec("s", "cifar10", 0.0, 1, 128), prof, 0.0)
    large = TrainingJob(JobSpec("l", "cifar10", 0.0, 1, 1024), prof, 0.0)
    for j in (small, large):
        j.reallocate((1,))
    # Per sample processed, the larger batch makes less progress (efficiency < 1).
    per_sample_small = small.goodput_samples_per_s() / small.throughput_samples_per_s()
    per_sample_large = large.goodput_samples_per_s() / large.throughput_samples_per_s()
    assert per_sample_small == pytest.approx(1.0)
    assert per_sample_large == pytest.approx(prof.efficiency(1024, 0))
    assert per_sample_large < 1.0
