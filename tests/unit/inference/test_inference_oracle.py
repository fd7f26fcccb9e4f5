"""The hindsight oracle: the Lagrangian solver against brute force, and the bound against simulation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import simpy

from learners.baselines.oracle import brute_force, shortest_path, solve
from simulator.cluster import GpuPool
from simulator.inference.memory import kv_capacity_tokens
from simulator.inference.oracle import MissTable, OracleSettings, hindsight_oracle, simulate_window
from simulator.inference.perf_model import PerfModel
from simulator.inference.service import SLO, InferenceService, ServiceSettings
from simulator.inference.traces import load_shape

PERF = PerfModel.load("llama2-70b", "a100-80gb")
KV = {tp: kv_capacity_tokens("llama2-70b", tp) for tp in PERF.tp_degrees}


@pytest.mark.parametrize("seed", range(12))
def test_solver_bounds_bracket_the_brute_force_optimum(seed):
    rng = np.random.default_rng(seed)
    k_count, states = 4, 3
    cost = np.sort(rng.uniform(0.5, 2.0, (k_count, states)), axis=1)  # bigger state, dearer
    if seed % 2:
        misses = rng.integers(0, 6, (k_count, states, states)).astype(float)  # transition-dependent
    else:
        misses = np.sort(rng.integers(0, 8, (k_count, states)), axis=1)[:, ::-1].astype(float)
    budget = float(rng.integers(0, 10))
    initial = None if seed % 3 else 1
    _best_x, best_c = brute_force(cost, misses, budget, initial)
    sol = solve(cost, misses, budget, initial)
    if not np.isfinite(best_c):
        assert not sol.feasible
        return
    assert sol.feasible
    assert sol.lower_bound <= best_c + 1e-9 <= sol.cost + 2e-9
    # the reported schedule is feasible and costs what it says
    path, pc, pm = np.array(sol.schedule), sol.cost, sol.misses
    assert pm <= budget and pc == pytest.approx(sum(cost[k, path[k]] for k in range(k_count)))
    assert sol.gap >= -1e-9


def test_unconstrained_optimum_has_no_gap_and_dp_matches_enumeration():
    cost = np.array([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0]])
    misses = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 0.0]])
    sol = solve(cost, misses, budget=5.0)
    assert sol.schedule == (0, 0, 0) and sol.gap == 0.0
    sol = solve(cost, misses, budget=1.0)
    assert sol.schedule == (0, 1, 0) and sol.cost == 4.0 and sol.lower_bound <= 4.0
    path, pc, pm = shortest_path(cost, misses, lam=10.0)
    assert list(path) == [0, 1, 0] and pc == 4.0 and pm == 0.0


def test_window_simulator_reproduces_the_simpy_service_exactly():
    trace = load_shape("bursty", 3.0, duration_s=900.0, seed=11)
    for tp, n in ((4, 2), (8, 1), (2, 3)):
        env = simpy.Environment()
        settings = ServiceSettings(initial={"replicas": n, "gpus_per_replica": tp, "max_batch_size": 16})
        svc = InferenceService(env, GpuPool.uniform(4, 8), PERF, trace, settings)
        env.run(until=20000.0)
        first, done = simulate_window(PERF, tp, 16, KV[tp], trace.arrival_s.tolist(),
                                      trace.prompt_tokens.tolist(),
                                      trace.output_tokens.tolist(), [0.0] * n)
        assert np.array_equal(np.array(first), np.array(svc.t_first))
        assert np.array_equal(np.array(done), np.array(svc.t_done))


def test_window_misses_shrink_with_more_replicas_and_warm_ones_help():
    trace = load_shape("bursty", 4.0, duration_s=600.0, seed=12)
    s = OracleSettings(interval_s=60.0, max_replicas=4, cold_start_s=20.0)
    table = MissTable(PERF, trace, SLO(ttft_s=1.0), KV, s)
    for k in range(table.intervals):
        full = [table.misses(k, 4, n, n) for n in range(5)]
        assert full[0] == table.requests_in(k) or full[0] <= table.requests_in(k)
        assert all(b <= a for a, b in itertools.pairwise(full)), (k, full)
        # 1 warm + 2 booting for 20 s: between 1 warm and 3 warm
        mixed = table.misses(k, 4, 1, 3)
        assert full[3] <= mixed <= full[1]


def test_lower_bound_is_below_every_fixed_schedule_that_meets_the_slo():
    duration, interval = 900.0, 60.0
    trace = load_shape("noisy", 3.0, duration_s=duration, seed=5)
    slo = SLO(ttft_s=1.5, attainment=0.99)
    result = hindsight_oracle(PERF, trace, slo, KV, OracleSettings(interval_s=interval, max_replicas=4,
                                                                   tp_degrees=(4, 8), cold_start_s=60.0))
    assert result.solution.feasible and result.gpu_hours_lower_bound <= result.gpu_hours
    assert result.solution.misses <= result.budget
    horizon_h = len(result.schedule) * interval / 3600.0
    meeting = []
    for tp in (4, 8):
        for n in range(1, 5):
            env = simpy.Environment()
            settings = ServiceSettings(initial={"replicas": n, "gpus_per_replica": tp, "max_batch_size": 64},
                                       slo=slo)
            svc = InferenceService(env, GpuPool.uniform(4, 8), PERF, trace, settings)
            env.run(until=duration + 600.0)
            if svc.summary()["slo_attainment"] >= slo.attainment:
                meeting.append((tp, n, tp * n * horizon_h))
    assert meeting, "some fixed size must meet the SLO for this test to say anything"
    for tp, n, cost in meeting:
        assert result.gpu_hours_lower_bound <= cost + 1e-9, (tp, n)
    # and the oracle is not trivially loose: within the cheapest fixed schedule that meets the SLO
    assert result.gpu_hours <= min(c for _, _, c in meeting) + 1e-9
