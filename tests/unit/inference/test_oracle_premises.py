"""The oracle's premises, each tested directly: per knob (batch size covered), per transition (rolling
updates counted optimistically and charged no more than they hold), per interval (window counts against
the full simulator), infeasible SLOs, and the replay of its schedule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import simpy
import yaml

from learners.baselines.oracle import brute_force, solve
from simulator.cluster import GpuPool
from simulator.inference.memory import kv_capacity_tokens
from simulator.inference.oracle import MissTable, OracleSettings, hindsight_oracle, switch_costs
from simulator.inference.oracle_replay import (
    check_premises,
    premise_slack,
    replay,
    request_meets,
    simulated_misses_per_interval,
)
from simulator.inference.perf_model import PerfModel
from simulator.inference.service import SLO, InferenceService, ServiceSettings
from simulator.inference.traces import load_shape
from simulator.scenario import load
from simulator.workloads import DRAIN_GRACE_S, PolicyRun, simulate

PERF = PerfModel.load("llama2-70b", "a100-80gb")
KV = {tp: kv_capacity_tokens("llama2-70b", tp) for tp in (2, 4, 8)}


@pytest.mark.parametrize("seed", range(6))
def test_solver_with_switch_costs_brackets_the_brute_force_optimum(seed):
    rng = np.random.default_rng(seed)
    k, s = 4, 3
    cost = rng.uniform(0.0, 3.0, size=(k, s))
    misses = rng.integers(0, 4, size=(k, s, s)).astype(float)
    switch = rng.uniform(-1.0, 1.0, size=(s, s))
    np.fill_diagonal(switch, 0.0)
    budget = float(rng.integers(2, 8))
    for initial in (None, 1):
        best, opt = brute_force(cost, misses, budget, initial, switch)
        sol = solve(cost, misses, budget, initial=initial, switch=switch)
        if not best:
            assert not sol.feasible and sol.lower_bound == math.inf
            continue
        assert sol.feasible and sol.lower_bound <= opt + 1e-9 <= sol.cost + 2e-9


def _fixed_run(trace, slo, tp, batch, n, until):
    env = simpy.Environment()
    settings = ServiceSettings(initial={"replicas": n, "gpus_per_replica": tp, "max_batch_size": batch}, slo=slo)
    svc = InferenceService(env, GpuPool.uniform(4, 8), PERF, trace, settings)
    env.run(until=until)
    return svc.summary()["slo_attainment"]


def test_bound_covers_every_batch_size_a_policy_can_choose():
    """Every fixed (TP, batch, replicas) that meets the SLO in the SimPy service costs at least the bound
    (the old oracle fixed the batch at its maximum; a smaller batch could then beat its 'bound')."""
    duration, interval = 600.0, 60.0
    trace = load_shape("noisy", 2.5, duration_s=duration, seed=21)
    slo = SLO(ttft_s=5.0, attainment=0.99)
    batches = (16, 32, 48, 64)
    res = hindsight_oracle(PERF, trace, slo, KV, OracleSettings(interval_s=interval, min_replicas=1, max_replicas=4,
                                                                tp_degrees=(4, 8), batch_sizes=batches))
    assert res.feasible and res.gpu_hours_lower_bound <= res.gpu_hours
    horizon_h = math.ceil(trace.duration_s / interval) * interval / 3600.0
    meeting = []
    for tp in (4, 8):
        for b in batches:
            for n in range(1, 5):
                if _fixed_run(trace, slo, tp, b, n, duration + 900.0) >= slo.attainment:
                    meeting.append((tp, b, n, tp * n * horizon_h))
    assert any(b < 64 for _, b, _, _ in meeting)
    for tp, b, n, cost in meeting:
        assert res.gpu_hours_lower_bound <= cost + 1e-9, (tp, b, n)
    assert {b for _, b, _ in res.schedule} <= set(batches)


def test_infeasible_slo_is_reported_as_infeasible_never_as_a_bound(tmp_path):
    trace = load_shape("bursty", 3.0, duration_s=300.0, seed=2)
    slo = SLO(ttft_s=0.01, attainment=0.99)  # no prefill is that fast
    res = hindsight_oracle(PERF, trace, slo, KV, OracleSettings(max_replicas=2, tp_degrees=(8,)))
    assert not res.feasible
    assert res.gpu_hours_lower_bound == math.inf and res.schedule == ()
    d = res.as_dict()
    assert d["infeasible"] is True and d["gpu_hours_lower_bound"] is None
    raw = {"name": "impossible", "description": "An SLO no configuration meets.", "seed": 1, "duration_s": 300,
           "cluster": {"nodes": 2, "gpus_per_node": 8},
           "inference": [{"name": "svc", "trace": {"kind": "load-shape", "shape": "bursty", "mean_rate_per_s": 3.0,
                                                   "duration_s": 300},
                          "slo": {"ttft_seconds": 0.01, "attainment": 0.99},
                          "knobs": {"replicas": {"min": 1, "max": 2}, "gpus_per_replica": [8]}}],
           "policies": [{"name": "oracle"}]}
    path = tmp_path / "impossible.yaml"
    path.write_text(yaml.safe_dump(raw))
    row = simulate(load(path), PolicyRun("oracle", "oracle"), 1)
    assert "infeasible" in row.policy and row.meets_slo is False
    assert math.isnan(row.metrics["gpu_hours"]) and "slo_attainment" not in row.metrics


def _misses_in(svc, trace, slo, lo, hi):
    miss = ~request_meets(trace, np.asarray(svc.t_first), np.asarray(svc.t_done), slo)
    a = trace.arrival_s
    return int(np.sum(miss & (a >= lo) & (a < hi)))


@pytest.mark.parametrize("old,new", [((4, 64, 3), (8, 64, 3)), ((8, 64, 3), (4, 64, 4)), ((8, 64, 4), (8, 32, 4)),
                                     ((4, 32, 2), (4, 64, 4))])
def test_a_rolling_update_is_counted_optimistically_and_charged_no_more_than_it_holds(old, new):
    """Per transition: at the change interval the oracle counts no more misses than the SimPy service
    has among that interval's arrivals, and charges no more GPU-time than the service holds."""
    interval, k = 60.0, 3
    trace = load_shape("noisy", 3.0, duration_s=480.0, seed=7)
    slo = SLO(ttft_s=4.0, attainment=0.99)
    s = OracleSettings(interval_s=interval, min_replicas=0, max_replicas=4, tp_degrees=(4, 8), batch_sizes=(32, 64),
                       cold_start_s=60.0)
    table = MissTable(PERF, trace, slo, KV, s)
    env = simpy.Environment()
    settings = ServiceSettings(initial={"replicas": old[2], "gpus_per_replica": old[0], "max_batch_size": old[1]},
                               slo=slo)
    svc = InferenceService(env, GpuPool.uniform(8, 8), PERF, trace, settings)
    env.run(until=k * interval)
    gpu_s0 = svc.gpu_seconds
    svc.apply(svc.name, {"replicas": new[2], "gpus_per_replica": new[0], "max_batch_size": new[1]}, "test")
    env.run(until=(k + 1) * interval)
    held_h = (svc.gpu_seconds - gpu_s0) / 3600.0
    env.run(until=trace.duration_s + 900.0)
    states = [old, new]
    charged = float(new[0] * new[2] * interval / 3600.0 + switch_costs(states, s)[0, 1])
    assert charged <= held_h + 1e-9
    if (old[0], old[1]) != (new[0], new[1]):
        optimistic = table.rolling(k, (old[0], old[1]), old[2], (new[0], new[1]), new[2])
    else:
        optimistic = table.misses(k, (new[0], new[1]), min(old[2], new[2]), new[2])
    assert optimistic <= _misses_in(svc, trace, slo, k * interval, (k + 1) * interval)


def test_per_interval_premise_is_checked_and_its_violations_bounded():
    """Per interval and configuration held from the start: the window count vs the full simulator.
    The premise is not a theorem (batch boundaries shift); the check must find the violations, and the
    repaired bound (budget + the largest excess) is below the unrepaired one."""
    trace = load_shape("bursty", 3.0, duration_s=900.0, seed=5)
    slo = SLO(ttft_s=3.0, attainment=0.95)
    s = OracleSettings(interval_s=60.0, min_replicas=1, max_replicas=4, tp_degrees=(4, 8), batch_sizes=(32, 64))
    states = [(tp, b, n) for tp in (4, 8) for b in (32, 64) for n in (1, 2, 3)]
    violations = check_premises(PERF, trace, slo, KV, s, states)
    table = MissTable(PERF, trace, slo, KV, s)
    pairs = table.intervals * len(states)
    assert len(violations) <= 0.05 * pairs, violations  # measured: rare, and small when they occur
    for v in violations:
        real = simulated_misses_per_interval(PERF, trace, slo, v.state, 60.0)
        assert v.optimistic > v.simulated == int(real[v.interval])
    slack = premise_slack(violations)
    plain = hindsight_oracle(PERF, trace, slo, KV, s)
    repaired = hindsight_oracle(PERF, trace, slo, KV, OracleSettings(**{**s.__dict__, "slack_misses": slack}))
    assert repaired.gpu_hours_lower_bound <= plain.gpu_hours_lower_bound + 1e-9


def test_replay_applies_the_schedule_at_interval_boundaries(tmp_path):
    raw = {"name": "replay", "description": "Replay check.", "seed": 1, "duration_s": 300, "control_interval_s": 60,
           "cluster": {"nodes": 4, "gpus_per_node": 8},
           "inference": [{"name": "svc", "trace": {"kind": "load-shape", "shape": "noisy", "mean_rate_per_s": 1.0,
                                                   "duration_s": 300},
                          "slo": {"ttft_seconds": 10.0, "attainment": 0.99},
                          "knobs": {"replicas": {"min": 1, "max": 4}, "gpus_per_replica": [4, 8],
                                    "max_batch_size": {"min": 32, "max": 64, "step": 32}},
                          "initial": {"replicas": 2, "gpus_per_replica": 8, "max_batch_size": 64}}],
           "policies": [{"name": "static"}]}
    path = tmp_path / "replay.yaml"
    path.write_text(yaml.safe_dump(raw))
    scen = load(path)
    schedule = [(4, 64, 1), (4, 64, 3), (4, 64, 3), (4, 64, 2), (4, 64, 1)]
    run = replay(scen, {"svc": schedule}, seed=1, interval_s=60.0)
    # same template throughout: pods are created (holding GPUs while booting) or deleted at the boundary;
    # after the last interval the last state is held while in-flight requests drain (as simulate() does)
    held = sum(tp * n for tp, _, n in schedule) * 60.0 / 3600.0
    last = schedule[-1][0] * schedule[-1][2]
    assert held - 1e-9 <= run.metrics["gpu_hours"] <= held + last * DRAIN_GRACE_S / 3600.0 + 1e-9
    constant = replay(scen, {"svc": [(8, 64, 2)] * 5}, seed=1, interval_s=60.0)
    static = simulate(load(path), PolicyRun("static", "static", {"config": {"replicas": 2, "gpus_per_replica": 8,
                                                                            "max_batch_size": 64}}), 1)
    assert constant.metrics["gpu_hours"] == pytest.approx(static.metrics["gpu_hours"])
    assert constant.metrics["slo_attainment"] == pytest.approx(static.metrics["slo_attainment"])
