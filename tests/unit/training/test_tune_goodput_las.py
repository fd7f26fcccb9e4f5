"""scripts/tune_goodput_las.py: the objective is computed from the runs' JCTs as documented, the BO loop finds
the minimum region of a cheap 2-D function, the weights reach the scheduler, and exponent 0 is Pollux (so the
tuner may take Pollux's run as that candidate's). No test here runs a paper workload."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
from script_loader import load_script

from simulator.cluster import GpuPool
from simulator.datasets import data_path
from simulator.training import load_profiles, load_workload, simulate_training, workload_path
from simulator.training.goodput_las import GoodputLasScheduler, LasSettings
from simulator.training.pollux import PolluxScheduler
from simulator.workloads import TRAINING_SCHEDULERS

POLLUX = data_path("pollux")


tune_las = load_script("tune_goodput_las")
compare = sys.modules[tune_las.RunSummary.__module__]  # the compare_training the tuner imports its runs from


def test_the_objective_is_the_mean_over_pairs_of_mean_jct_ratios_and_the_constraint_the_worst_class():
    pollux = compare.summarise({"bert-1": 100.0, "bert-2": 300.0, "ncf-1": 50.0, "ncf-2": 150.0}, 1000.0, 2.0,
                                {"bert-1": 1, "bert-2": 0, "ncf-1": 2, "ncf-2": 1})
    las = compare.summarise({"bert-1": 80.0, "bert-2": 200.0, "ncf-1": 60.0, "ncf-2": 180.0}, 900.0, 2.5,
                             {"bert-1": 2, "bert-2": 2, "ncf-1": 2, "ncf-2": 2})
    assert pollux.mean_s == 150.0 and pollux.per_class_s == {"bert": 200.0, "ncf": 100.0}
    assert pollux.restarts_per_job == 1.0 and pollux.p99_s == pytest.approx(np.percentile([100, 300, 50, 150], 99))
    r = tune_las.ratios(las, pollux)
    assert r.mean == pytest.approx(130.0 / 150.0)
    assert r.worst_class == pytest.approx(1.2)  # ncf: 120 / 100; bert improved (140 / 200)
    assert r.makespan == pytest.approx(0.9)
    other = tune_las.Ratios(1.1, 0.95, 1.05, 1.0)
    objective, constraint, worst = tune_las.aggregate([r, other])
    assert objective == pytest.approx((130.0 / 150.0 + 1.1) / 2)  # each training pair counts alike
    assert constraint == pytest.approx(1.2)  # the worst pair's worst class
    assert worst.mean == 1.1 and worst.makespan == 1.05 and worst.p99 == pytest.approx(max(r.p99, 0.95))


def test_the_grid_has_pollux_once_and_the_first_trial_is_pollux():
    grid = tune_las.candidate_grid([0.0, 1.0, 2.0], [600.0, 3600.0, 36000.0])
    assert (grid[:, 0] == 0.0).sum() == 1 and len(grid) == 7
    seen: list[float] = []

    def evaluate(las):
        seen.append(las.exponent)
        return 1.0, 1.0, tune_las.Ratios(1.0, 1.0, 1.0, 1.0)

    _, bo = tune_las.tune(grid, evaluate, 3)
    assert seen[0] == 0.0 and len(seen) == 3 and len(set(bo.indices)) == 3


def _bowl(las: LasSettings) -> float:
    """A cheap 2-D stand-in for the simulation: minimum 0.9 at exponent 1.5, scale 5000 GPU-s."""
    return 0.9 + 0.05 * (las.exponent - 1.5) ** 2 + 0.02 * (math.log(las.scale_gpu_s) - math.log(5000.0)) ** 2


def test_the_bo_loop_finds_the_minimum_region_of_a_2d_function_on_9_of_10_seeds():
    grid = tune_las.candidate_grid([float(e) for e in np.linspace(0.0, 3.0, 13)],
                                   [float(s) for s in np.geomspace(600.0, 36000.0, 9)])
    values = np.array([_bowl(tune_las.settings_of(row)) for row in grid])
    region = np.sort(values)[4]  # the grid's five best candidates (of 109)
    found = 0
    for seed in range(10):
        def evaluate(las):
            f = _bowl(las)
            return f, 1.0, tune_las.Ratios(f, 1.0, 1.0, 1.0)

        best, bo = tune_las.tune(grid, evaluate, 14, seed=seed)
        assert best is not None and len(bo.indices) == 14
        found += _bowl(best) <= region
    assert found >= 9


def test_an_infeasible_class_ratio_is_never_chosen():
    grid = tune_las.candidate_grid([0.0, 1.0, 2.0, 3.0], [600.0, 6000.0, 36000.0])

    def evaluate(las):
        # higher exponents are faster on average but push some class over the 10% bound
        f = 1.0 - 0.05 * las.exponent
        worst = 1.0 + 0.06 * las.exponent
        return f, worst, tune_las.Ratios(f, 1.0, 1.0, worst)

    best, _ = tune_las.tune(grid, evaluate, 10)
    assert best is not None and best.exponent <= 1.0


def test_the_weights_reach_the_scheduler_through_the_registry_and_compare_training():
    las = LasSettings(exponent=2.0, scale_gpu_s=900.0)
    sched = TRAINING_SCHEDULERS["goodput-las"](3, las=las)
    assert isinstance(sched, GoodputLasScheduler) and sched.las == las
    assert compare.scheduler_of("goodput-las", 3, las).las == las
    assert compare.scheduler_of("goodput-las", 3).las == LasSettings()
    assert isinstance(compare.scheduler_of("pollux", 3, las), PolluxScheduler)
    assert compare.las_settings(None, None) is None
    assert compare.las_settings(0.5, None) == LasSettings(0.5, LasSettings().scale_gpu_s)


def test_the_cache_keys_name_the_weights_and_resume(tmp_path):
    a, b = LasSettings(1.0, 3600.0), LasSettings(1.0, 3600.0001)
    assert tune_las.key_of("goodput-las", a, 1.0, 1, 0) != tune_las.key_of("goodput-las", b, 1.0, 1, 0)
    summary = compare.summarise({"ncf-1": 10.0}, 10.0, 1.0, {"ncf-1": 0})
    cache = tune_las.SimCache(tmp_path / "c.json")
    assert cache.get("k", lambda: summary) == (summary, True)
    again = tune_las.SimCache(tmp_path / "c.json")
    assert again.get("k", lambda: pytest.fail("simulated again")) == (summary, False)


def test_held_out_workloads_are_refused():
    with pytest.raises(SystemExit):
        tune_las.main(["--workloads", "1", "3"])


def test_exponent_zero_runs_exactly_as_pollux():
    """Why the tuner may use Pollux's run for the exponent-0 candidate: same seed, same JCTs and restarts."""
    stream = load_workload(workload_path(POLLUX, 1.0, 1))[:8]
    profiles = load_profiles(POLLUX / "profiles")
    runs = [simulate_training(stream, s, pool=GpuPool.uniform(2, 4), profiles=profiles)
            for s in (PolluxScheduler(seed=1), GoodputLasScheduler(LasSettings(exponent=0.0), seed=1))]
    assert runs[0].jcts_s == runs[1].jcts_s and runs[0].num_restarts == runs[1].num_restarts
