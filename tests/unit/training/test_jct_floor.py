"""scripts/jct_floor.py: each job alone on the whole cluster, and the mean of those isolated JCTs."""

from __future__ import annotations

import pytest
from script_loader import load_script

from simulator.training.job import JobSpec

jf = load_script("jct_floor")


def test_a_job_alone_finishes_no_later_than_beside_another():
    """The isolated JCT is what the floor is made of: a lone cifar10 job must not be slower than the same job
    sharing the cluster with a second one that arrives with it."""
    job = JobSpec("cifar10-0", "cifar10", 0.0, 4, 4096)
    alone = jf.isolated_jct(job, "goodput-waterfill")
    from simulator.training import simulate_training
    from simulator.training.artifact_pool import MostFreeFirstPool
    from simulator.workloads import TRAINING_SCHEDULERS

    pair = [job, JobSpec("cifar10-1", "cifar10", 0.0, 4, 4096)]
    shared = simulate_training(pair, TRAINING_SCHEDULERS["goodput-waterfill"](0),
                               pool=MostFreeFirstPool.uniform(16, 4), data_dir=jf.POLLUX_DIR / "profiles")
    assert 0 < alone <= shared.jcts_s["cifar10-0"] * 1.001


def test_the_floor_is_the_mean_of_its_classes(capsys):
    assert jf.main(["--loads", "0.5", "--workloads", "1", "--policies", "goodput-waterfill"]) == 0
    row = capsys.readouterr().out.splitlines()[-1].split()
    assert row[:4] == ["goodput-waterfill", "0.5", "1", "80"]
    per = dict(kv.split("=") for kv in row[5:])
    counts = {a: 0 for a in per}
    for spec in jf.load_workload(jf.workload_path(jf.POLLUX_DIR, 0.5, 1)):
        counts[spec.application] += 1
    expected = sum(counts[a] * float(v) for a, v in per.items()) / 80
    assert float(row[4]) == pytest.approx(expected, abs=1.0)  # per-class means are printed rounded


def test_an_unknown_policy_is_one_clear_error(capsys):
    with pytest.raises(SystemExit):
        jf.main(["--policies", "best-ever"])
    assert "unknown policy ['best-ever']" in capsys.readouterr().err
