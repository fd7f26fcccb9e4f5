"""Fidelity smoke test: Tiresias on the paper's workload 1 at 1.0x load vs the paper's own results.

The full check (8 workloads x 3 loads) is ``scripts/fidelity.py``; see docs/training-model.md.
"""

import pytest

from learners.baselines.tiresias import Tiresias
from simulator.cluster import GpuPool
from simulator.datasets import data_path
from simulator.training import load_paper_result, load_profiles, simulate_training, workload_path
from simulator.training.artifact_pool import MostFreeFirstPool

POLLUX = data_path("pollux")
LOAD, WORKLOAD = 1.0, 1


@pytest.fixture(scope="module")
def paper():
    return load_paper_result(POLLUX, "tiresias", LOAD)


@pytest.fixture(scope="module")
def profiles():
    return load_profiles(POLLUX / "profiles")


def test_with_the_artifacts_node_choice_every_jct_is_the_papers(paper, profiles):
    result = simulate_training(workload_path(POLLUX, LOAD, WORKLOAD), Tiresias(),
                               pool=MostFreeFirstPool.uniform(16, 4), profiles=profiles)
    expected = paper.jcts_s[f"workload-{WORKLOAD}"]
    assert set(result.jcts_s) == set(expected)
    wrong = {n: (result.jcts_s[n], t) for n, t in expected.items() if abs(result.jcts_s[n] - t) > 1.0}
    assert not wrong


def test_with_the_projects_pool_the_average_is_within_ten_percent(paper, profiles):
    result = simulate_training(workload_path(POLLUX, LOAD, WORKLOAD), Tiresias(),
                               pool=GpuPool.uniform(16, 4), profiles=profiles)
    assert not result.unfinished
    assert result.avg_jct_s == pytest.approx(paper.avg_jct_s[f"workload-{WORKLOAD}"], rel=0.10)
