"""scripts/placement_breakdown.py: the time a job class spends restarting and running, by placement."""

from __future__ import annotations

import pytest
from script_loader import load_script

from simulator.training import simulate_training
from simulator.training.artifact_pool import MostFreeFirstPool
from simulator.training.job import JobSpec, TrainingJob

pb = load_script("placement_breakdown")


@pytest.mark.parametrize("policy", ["pollux", "pollux-pool-advised"])
def test_a_lone_jobs_restarts_and_running_add_up_to_its_jct_and_its_placements_to_its_running(policy):
    original = TrainingJob.advance
    jobs = [JobSpec("cifar10-0", "cifar10", 0.0, 4, 4096), JobSpec("bert-0", "bert", 0.0, 4, 4096)]
    with pb.recording("cifar10") as stats:
        r = simulate_training(jobs, pb.scheduler(policy, 0, "together"), pool=MostFreeFirstPool.uniform(2, 4),
                              data_dir=pb.POLLUX_DIR / "profiles")
    assert TrainingJob.advance is original  # put back
    assert set(stats) == {"cifar10-0"}  # only the class asked for
    row = stats["cifar10-0"]
    # Placed from the first round (every 60 s) to the end: restarting and running are all of its time after it.
    jct = r.jcts_s["cifar10-0"]
    assert jct - 60 <= row["restart_s"] + row["run_s"] <= jct + 1e-6
    assert row["restart_s"] > 0 and row["gpu_s"] >= row["run_s"]
    placed = sum(v for k, v in row.items() if k[0].isdigit())
    assert placed == pytest.approx(row["run_s"])


def test_the_script_prints_one_row_per_job_of_the_class(capsys, monkeypatch):
    monkeypatch.setattr(pb, "workload_path", lambda *a: [JobSpec("ncf-0", "ncf", 0.0, 1, 4096)])
    assert pb.main(["--app", "ncf", "--policies", "pollux-pool", "--pods", "spread"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("== pollux-pool (pods spread)") and "ncf-0 jct" in out[1]
