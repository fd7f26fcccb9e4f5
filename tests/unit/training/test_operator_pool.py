"""The operator's pool schedulers inside the training cluster simulator (simulator/training/operator_pool.py).

What the operator runs (``PolluxPool`` over observations, the batch changed only at a restart) against the
simulator's faithful ``pollux`` (an agent inside every job that re-picks the batch between restarts), on a
small stream of 6 jobs over 2 nodes x 4 GPUs, 10 seeds:
- with the in-job batch advisor (``pollux-pool-advised``) the operator's object matches ``pollux``'s mean JCT
  within 6% on at least 9 of 10 seeds: the scheduler halves are the same;
- without it (``pollux-pool``, what the operator runs with jobs that only export metrics) it is slower than
  with it on at least 9 of 10: the batch it cannot change between restarts costs JCT.
"""

from __future__ import annotations

import numpy as np
import pytest

from learners import training_scheduler as ts
from learners.pollux import SearchSettings
from simulator.training import simulate_training
from simulator.training.artifact_pool import MostFreeFirstPool
from simulator.training.cluster_sim import JobView
from simulator.training.job import JobSpec
from simulator.training.operator_pool import (
    OPERATOR_SCHEDULERS,
    SETTLE_S,
    OperatorPoolScheduler,
    Reporter,
    pack,
    spread,
)
from simulator.training.pollux import PolluxScheduler
from simulator.workloads import OPERATOR_POOL_NAMES, PAPER_COUNTERPART, SEEDED_SCHEDULERS, TRAINING_SCHEDULERS

FAST = SearchSettings(population=40, generations=40)


def _specs(seed: int) -> list[JobSpec]:
    rng = np.random.default_rng(seed)
    apps = rng.choice(["bert", "cifar10", "deepspeech2"], 6)
    return [JobSpec(f"{a}-{i}", str(a), float(i * rng.uniform(120, 600)), 1, None) for i, a in enumerate(apps)]


def _run(scheduler, seed: int):
    r = simulate_training(_specs(seed), scheduler, pool=MostFreeFirstPool.uniform(2, 4), seed=seed)
    assert not r.unfinished and len(r.jcts_s) == 6
    return r


def test_the_operators_pollux_with_the_in_job_advisor_is_pollux_and_without_it_slower():
    same, slower = 0, 0
    for seed in range(10):
        pollux = _run(PolluxScheduler(FAST, seed=seed), seed).avg_jct_s
        pool = _run(OperatorPoolScheduler("pollux-pool", seed=seed, settings=FAST), seed)
        advised = _run(OperatorPoolScheduler("pollux-pool-advised", seed=seed, settings=FAST), seed)
        same += abs(advised.avg_jct_s / pollux - 1) <= 0.06
        slower += pool.avg_jct_s > advised.avg_jct_s
        assert pool.failed_grants == advised.failed_grants == 0  # the answer never asked for GPUs in use
    assert same >= 9 and slower >= 9, (same, slower)


def test_the_reporter_keeps_the_batch_of_the_last_restart_unless_advised():
    from simulator.training.job import TrainingJob
    from simulator.training.profiles import load_profiles

    profile = load_profiles()["cifar10"]
    job = TrainingJob(JobSpec("c", "cifar10", 0.0, 1, None), profile, 30.0)
    job.agent = Reporter()
    job.reallocate((4,), 512)
    first = job.config
    job.advance(0.0, 600.0)
    assert job.config == first and job.agent.samples and job.agent.grad is not None
    assert all(s.replicas == 4 for s in job.agent.samples.values())


def test_the_registry_names_them_and_they_are_seeded():
    assert set(OPERATOR_POOL_NAMES) == set(OPERATOR_SCHEDULERS)
    for name in OPERATOR_POOL_NAMES:
        assert name in TRAINING_SCHEDULERS and name in SEEDED_SCHEDULERS and PAPER_COUNTERPART[name] == "pollux"
        assert isinstance(TRAINING_SCHEDULERS[name](seed=3), OperatorPoolScheduler)
    with pytest.raises(ValueError, match="no operator pool scheduler"):
        OperatorPoolScheduler("pollux")


def test_autocm_sim_runs_the_operators_schedulers_from_a_scenario(tmp_path):
    """The user's path: a scenario names them like any training scheduler, and the report has their rows."""
    import json

    from click.testing import CliRunner

    from controller.cli import main

    (tmp_path / "jobs.csv").write_text("name,time,application,num_replicas,batch_size\n"
                                       "cifar10-0,0,cifar10,2,128\ncifar10-1,120,cifar10,1,128\nncf-2,30,ncf,1,\n")
    (tmp_path / "s.yaml").write_text(
        "name: tiny-pool\ndescription: the operator's pool schedulers on three jobs\n"
        "cluster: {nodes: 2, gpus_per_node: 4, node_choice: most-free}\ntraining: {workload: jobs.csv}\n"
        "policies: [{name: pollux}, {name: pollux-pool}, {name: pollux-pool-advised}]\n")
    res = CliRunner().invoke(main, ["sim", str(tmp_path / "s.yaml"), "-q", "--no-metrics", "--out",
                                    str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    table = json.loads((tmp_path / "out" / "results.json").read_text())["table"]
    for name in ("pollux", "pollux-pool", "pollux-pool-advised"):
        assert table[name]["jobs_completed"]["mean"] == 3 and table[name]["jobs_unfinished"]["mean"] == 0
        assert table[name]["avg_jct_s"]["mean"] > 0


@pytest.mark.parametrize("free, gpus, want", [
    ({"a": 2, "b": 4, "c": 4}, 4, (("b", 4),)),  # the freest node first (ties to the first), all of it there
    ({"a": 2, "b": 3, "c": 1}, 4, (("b", 3), ("a", 1))),  # then the next freest
    ({"a": 4, "b": 4}, 1, (("a", 1),)),
    ({"a": 1, "b": 1}, 3, ()),  # does not fit: nothing taken
])
def test_a_recreated_jobs_pods_fill_the_freest_node_before_the_next(free, gpus, want):
    before = sum(free.values())
    assert pack(free, gpus) == want
    assert sum(free.values()) == before - sum(c for _, c in want)


def test_without_the_preference_each_pod_goes_to_the_freest_node():
    free = {"a": 2, "b": 4, "c": 4}
    assert spread(free, 4) == (("b", 2), ("c", 2))
    assert free == {"a": 2, "b": 2, "c": 2}
    assert spread({"a": 1}, 2) == ()
    with pytest.raises(ValueError, match="pods="):
        OperatorPoolScheduler("pollux-pool", pods="anywhere")


class _Keeps:
    """A scheduler that keeps every job's GPU count (so the pool itself would touch no job)."""

    def allocate(self, observations, nodes, now):
        return {o.name: ts.Allocation(o.allocation or (("slot", 4),), 64) for o in observations}


def _view(name: str, allocation: tuple[tuple[str, int], ...]) -> JobView:
    return JobView(name, "cifar10", 0.0, 600.0, 0.0, 1, None, tuple(c for _, c in allocation), allocation, 1, 0, 0.0)


@pytest.mark.parametrize("consolidate", [True, False])
def test_a_split_job_is_moved_onto_the_fullest_node_with_room_after_it_settles(consolidate):
    sched = OperatorPoolScheduler("pollux-pool", consolidate=consolidate)
    sched.inner = _Keeps()
    from simulator.training.job import TrainingJob
    from simulator.training.profiles import load_profiles

    for name in ("split", "whole"):
        sched.attach(TrainingJob(JobSpec(name, "cifar10", 0.0, 1, None), load_profiles()["cifar10"], 30.0))
    views = [_view("split", (("n0", 2), ("n1", 2))), _view("whole", (("n2", 4),))]
    usable = {"n0": 2 + 2, "n1": 2 + 1, "n2": 4, "n3": 4}  # free plus what the jobs hold: n0 has room for 4
    sched.changed_s["split"] = 0.0
    early = sched.optimize(views, usable, SETTLE_S - 60)
    assert early["split"].nodes == (("n0", 2), ("n1", 2))  # not settled yet: kept
    late = sched.optimize(views, usable, SETTLE_S)
    assert late["whole"].nodes == (("n2", 4),)
    if consolidate:
        assert late["split"].nodes == (("n0", 4),) and late["split"].batch_size == 64  # n0 over n3: fuller
        assert sched.changed_s["split"] == SETTLE_S
    else:
        assert late["split"].nodes == (("n0", 2), ("n1", 2))
