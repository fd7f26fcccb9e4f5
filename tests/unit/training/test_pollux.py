"""Pollux re-implemented (learners/pollux.py + simulator/training/pollux.py): the model fits what it saw, the
batch it picks is the best it believes in, the search keeps every constraint of the artifact's repair."""

from __future__ import annotations

import numpy as np
import pytest

from learners.pollux import (
    BatchLimits,
    GoodputModel,
    PerfParams,
    SearchJob,
    SearchProblem,
    SearchSettings,
    efficiency,
    fit_perf_params,
    predict_step_time,
    search,
)
from simulator.cluster import GpuPool
from simulator.datasets import data_path
from simulator.training import JobSpec, load_profiles, load_workload, simulate_training, workload_path
from simulator.training.artifact_pool import MostFreeFirstPool
from simulator.training.pollux import PolluxScheduler

POLLUX = data_path("pollux")
TRUE = PerfParams(0.02, 0.001, 0.05, 0.004, 0.01, 0.001, 2.0)


@pytest.fixture(scope="module")
def profiles():
    return load_profiles(POLLUX / "profiles")


def test_the_fitted_model_reproduces_the_step_times_it_was_fitted_on():
    nodes = np.array([1, 1, 1, 2, 4, 1])
    reps = np.array([1, 2, 4, 8, 16, 4])
    bsz = np.array([32, 32, 64, 64, 128, 16])
    step = predict_step_time(TRUE, nodes, reps, bsz, 0)
    accum = TRUE.alpha_c + TRUE.beta_c * bsz
    fit = fit_perf_params(nodes, reps, bsz, accum, step)
    assert np.allclose(predict_step_time(fit, nodes, reps, bsz, 0), step, rtol=0.05)


def test_unidentified_parameters_stay_pinned_and_the_network_prior_holds():
    fit = fit_perf_params([1], [1], [64], [0.05], [0.05])
    assert fit.alpha_c == pytest.approx(0.025)  # half the mean compute time: one micro-batch size seen
    assert fit.alpha_n >= 1.1 * fit.alpha_r * (1 - 1e-9)  # across nodes at least 10 % slower than within


def test_efficiency_is_one_at_the_initial_batch_and_falls_above_it():
    assert efficiency(1.0, 4.0, 128, 128) == pytest.approx(1.0)
    assert efficiency(1.0, 4.0, 128, 1024) < efficiency(1.0, 4.0, 128, 256) < 1.0


def test_optimize_picks_the_batch_with_the_best_believed_goodput():
    limits = BatchLimits(128, 4096, 16, 256)
    model = GoodputModel(TRUE, 1.0, 50.0, limits)
    good, atomic, accum = model.optimize(2, 8)
    batch = 8 * atomic[0] * (accum[0] + 1)
    assert 128 <= batch <= 4096 * 1.01
    for other in (128, 512, 2048, 4096):
        local = other / 8
        steps = int(np.ceil(local / 256 - 1e-8)) - 1
        a = int(np.ceil(local / (steps + 1) - 1e-8))
        assert model.goodput(2, 8, a, steps) <= good[0] * (1 + 1e-9)


def _problem(jobs=4, nodes=3, per_node=4, max_replicas=8, seed=0):
    rng = np.random.default_rng(seed)
    table = np.zeros((nodes + 1, max_replicas + 1))
    for n in range(1, nodes + 1):
        for r in range(n, max_replicas + 1):
            table[n, r] = r ** 0.8 / (1 + 0.1 * (n - 1))
    search_jobs = [SearchJob(f"j{i}", table * rng.uniform(0.5, 1.5), max_replicas, 0, 600.0) for i in range(jobs)]
    return SearchProblem(search_jobs, np.full(nodes, per_node), np.zeros((jobs, nodes), int),
                         SearchSettings(patience=None, generations=30))


@pytest.mark.parametrize("seed", range(10))
def test_repaired_states_respect_capacity_limits_and_one_distributed_job_per_node(seed):
    prob = _problem(jobs=6, seed=seed)
    rng = np.random.default_rng(seed)
    states = prob.repair(rng.integers(0, 5, size=(50, 6, 3)), rng)
    assert (states.sum(axis=1) <= 4).all()
    assert (states.sum(axis=2) <= 8).all()
    distributed = np.count_nonzero(states, axis=2) > 1
    assert (((states > 0) & distributed[:, :, None]).sum(axis=1) <= 1).all()


def test_the_search_gives_every_job_gpus_when_there_are_enough_across_seeds():
    found = 0
    for seed in range(10):
        prob = _problem(jobs=4, nodes=3, seed=seed)
        best, _ = search(prob, None, np.random.default_rng(seed))
        assert best.sum(axis=1).min() >= 0 and (best.sum(axis=0) <= 4).all()
        found += bool((best.sum(axis=1) > 0).all() and best.sum() >= 10)
        assert prob.fitness(best[None])[0] >= prob.fitness(prob.base[None])[0]
    assert found >= 9


def test_a_restart_penalty_keeps_a_young_job_where_it_is():
    prob = _problem(jobs=1, nodes=1)
    young = SearchProblem([SearchJob("j0", prob.jobs[0].speedup, 8, 3, 120.0)], np.array([4]),
                          np.array([[2]]), prob.settings)
    assert young.fitness(np.array([[[2]]]))[0] > young.fitness(np.array([[[4]]]))[0]


def test_a_lone_job_grows_by_doubling_what_it_has_profiled(profiles):
    spec = [JobSpec("cifar10-0", "cifar10", 0.0, 1, None)]
    sched = PolluxScheduler(seed=0)
    simulate_training(spec, sched, pool=MostFreeFirstPool.uniform(4, 4), profiles=profiles, until=300)
    agent = sched.agents["cifar10-0"]
    assert agent.perf is not None and agent.fits >= 1
    assert 1 < agent.max_profiled_replicas <= 8  # 1 GPU first, then at most doubling per round


def test_a_stream_runs_to_completion_without_oversubscription(profiles):
    stream = load_workload(workload_path(POLLUX, 1.0, 1))[:12]
    result = simulate_training(stream, PolluxScheduler(seed=1), pool=GpuPool.uniform(4, 4), profiles=profiles)
    assert not result.unfinished and len(result.jcts_s) == 12
    assert result.failed_grants == 0
    assert max(u for _, u in result.utilisation) <= 1.0


def test_the_old_scheduler_name_is_refused_with_the_new_one(tmp_path):
    from simulator import scenario as sc
    from simulator.workloads import PolicyRun, _pool, check

    path = tmp_path / "s.yaml"
    path.write_text("name: s\ndescription: d\ncluster: {nodes: 2, gpus_per_node: 4, node_choice: most-free}\n"
                    "training: {workload: pollux-1.0/workload-1}\npolicies: [{name: rl-arbiter}]\n")
    with pytest.raises(sc.ScenarioError, match="renamed 'goodput-waterfill'"):
        sc.load(path)  # a training-only scenario names its schedulers: refused when read
    path.write_text(path.read_text().replace("rl-arbiter", "pollux"))
    scen = sc.load(path)
    with pytest.raises(sc.ScenarioError, match="renamed 'goodput-waterfill'"):
        check(scen, PolicyRun("rl-arbiter", "rl-arbiter"))  # and by the runner, for mixed scenarios
    check(scen, PolicyRun("pollux", "pollux"))
    assert isinstance(_pool(scen), MostFreeFirstPool)


def test_the_paper_scenarios_use_the_artifacts_node_choice_and_run_pollux():
    from simulator import scenario as sc

    for load in ("0.5", "1.0", "1.5"):
        raw = sc.load(f"training-pollux-{load}").raw
        assert raw["cluster"]["node_choice"] == "most-free"
        assert {p["name"] for p in raw["policies"]} == {"tiresias", "pollux", "goodput-waterfill", "shared-goodput"}


def test_the_hand_written_gradient_matches_finite_differences():
    from learners.pollux import _objective

    nodes, reps = np.array([1.0, 1.0, 2.0, 3.0]), np.array([1.0, 4.0, 8.0, 12.0])
    bsz = np.array([64.0, 64.0, 128.0, 32.0])
    acc, opt = np.log([0.1, 0.1, 0.2, 0.05]), np.log([0.1, 0.15, 0.3, 0.2])
    x = np.array([0.11, 0.02, 0.12, 0.03, 0.09, 0.02, 1.7])
    _, grad = _objective(x, nodes, reps, bsz, acc, opt)
    h = 1e-6
    num = [(_objective(x + h * e, nodes, reps, bsz, acc, opt)[0] - _objective(x - h * e, nodes, reps, bsz, acc, opt)[0])
           / (2 * h) for e in np.eye(7)]
    assert np.allclose(grad, num, rtol=1e-4, atol=1e-6)
