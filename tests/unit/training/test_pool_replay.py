"""A pool of 6 training jobs on 16 GPUs driven by the registered schedulers: Pollux beats a fixed allocation."""

from __future__ import annotations

import numpy as np

from learners import training_scheduler as ts
from learners.pollux import SearchSettings
from simulator.training.job import JobSpec
from simulator.training.pool_replay import run_pool
from simulator.training.profiles import load_profiles

NODES = {f"gpu-{i}": 4 for i in range(4)}  # the Pollux artifact's 4-GPU nodes
FAST = SearchSettings(population=40, generations=40)


def _specs(seed: int) -> list[JobSpec]:
    rng = np.random.default_rng(seed)
    apps = ["bert", "cifar10", "deepspeech2"]
    return [JobSpec(f"j{i}", str(rng.choice(apps)), float(i * rng.uniform(300, 900)), 4, None) for i in range(6)]


def test_pollux_finishes_sooner_than_fixed_and_never_oversubscribes_across_seeds() -> None:
    better = 0
    for seed in range(10):
        specs = _specs(seed)
        pollux = run_pool(ts.make("pollux", settings=FAST, seed=seed), specs, load_profiles(), NODES)
        fixed = run_pool(ts.make("fixed", gpus=4), specs, load_profiles(), NODES)
        assert len(pollux.completion_s) == len(fixed.completion_s) == 6
        assert pollux.max_gpus_used <= 16 and fixed.max_gpus_used <= 16
        assert fixed.restarts == 0
        better += pollux.mean_jct_s < 0.9 * fixed.mean_jct_s and pollux.restarts > 0
    assert better >= 9
