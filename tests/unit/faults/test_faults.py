"""Node failures and co-location interference: the failure process, and how the inference service and
the training cluster survive them (books balanced, lost work replaced, recovery after repair)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import simpy

from learners.baselines.tiresias import Tiresias
from simulator.cluster import GpuPool
from simulator.datasets import data_path
from simulator.faults import neighbours, node_failures, slowdown_factor
from simulator.inference.perf_model import PerfModel
from simulator.inference.service import SLO, InferenceService, ServiceSettings
from simulator.inference.traces import Trace, load_shape
from simulator.training import TrainingCluster, TrainingSettings, load_profiles, load_workload, workload_path

PERF = PerfModel.load("llama2-70b", "a100-80gb")
POLLUX = data_path("pollux")


def accounted(svc: InferenceService) -> int:
    s = svc.summary()
    return s["requests_completed"] + s["requests_rejected"] + s["requests_in_service"] + s["requests_queued"]


def service(trace: Trace, pool: GpuPool, initial: dict, env: simpy.Environment | None = None, **kw):
    env = env or simpy.Environment()
    settings = ServiceSettings(initial=initial, **kw)
    return env, InferenceService(env, pool, PERF, trace, settings)


# ----------------------------------------------------------------------------------------- the process

def test_nodes_fail_at_the_mtbf_rate_stay_down_for_the_repair_time_and_come_back():
    env, pool = simpy.Environment(), GpuPool.uniform(4, 8)
    mtbf, repair, horizon = 100.0, 10.0, 20_000.0
    failures: list[tuple[float, str]] = []
    repaired_in_time = []

    def listener(node, lost):
        failures.append((env.now, node))
        assert pool.free_on(node) == 0  # down: nothing can be granted there

        def watch():
            yield env.timeout(repair + 1e-6)
            repaired_in_time.append(pool.free_on(node) == 8)
        env.process(watch())

    env.process(node_failures(env, pool, np.random.default_rng(7), mtbf, repair, [listener]))
    env.run(until=horizon)
    # a renewal process: one failure per (up time + repair) on each node
    expected = len(pool.nodes) * horizon / (mtbf + repair)
    assert abs(len(failures) - expected) < 4 * np.sqrt(expected)  # Poisson-like spread, 4 sigma
    for node in (n.name for n in pool.nodes):
        times = [t for t, n in failures if n == node]
        gaps = np.diff(times)
        assert gaps.min() >= repair  # a node never fails while down
        assert np.mean(gaps - repair) == pytest.approx(mtbf, rel=0.25)  # exponential up times, mean mtbf
    assert all(repaired_in_time[:-4])  # every node whose repair ended before the horizon is back


def test_the_failure_sequence_is_a_function_of_the_seed():
    def run(seed):
        env, pool, seen = simpy.Environment(), GpuPool.uniform(3, 8), []
        env.process(node_failures(env, pool, np.random.default_rng(seed), 50.0, 5.0,
                                  [lambda node, lost: seen.append((env.now, node))]))
        env.run(until=1000.0)
        return seen

    assert run(1) == run(1) and run(1) != run(2)


def test_every_listener_is_told_the_failed_node_and_the_allocations_on_it():
    env, pool = simpy.Environment(), GpuPool.uniform(2, 8)
    a, b = pool.allocate("a", 8), pool.allocate("b", 8)
    assert a is not None and b is not None and a.nodes != b.nodes
    first: list[tuple[str, list]] = []
    second: list[str] = []
    env.process(node_failures(env, pool, np.random.default_rng(0), 100.0, 10.0,
                              [lambda n, lost: first.append((n, lost)), lambda n, lost: second.append(n)]))
    env.run(until=1000.0)
    assert first and [n for n, _ in first] == second
    for node, lost in first:  # nobody released, so each failure reports exactly the grant on that node
        assert lost == [x for x in (a, b) if node in x.nodes]


# ----------------------------------------------------------------------------------------- inference

def test_inference_books_balance_under_random_failures_and_a_random_policy():
    trace = load_shape("noisy", 3.0, duration_s=1200.0, seed=2)
    pool = GpuPool.uniform(3, 8)
    env, svc = service(trace, pool, {"replicas": 3, "gpus_per_replica": 4, "max_batch_size": 32},
                       cold_start_s=30.0, queue_timeout_s=120.0)
    lost_seen = []
    env.process(node_failures(env, pool, np.random.default_rng(3), 400.0, 60.0,
                              [svc.node_failed, lambda n, lost: lost_seen.append(len(lost))]))
    rng = random.Random(5)
    violations = []

    def policy():
        while True:
            yield env.timeout(90.0)
            svc.apply(svc.name, {"replicas": rng.randint(1, 6), "gpus_per_replica": rng.choice([4, 8])}, "random")

    def checker():
        while True:
            yield env.timeout(1.7)
            pool.check()  # no GPU given twice, books re-derived from the grants
            if svc.arrived != accounted(svc):
                violations.append(("requests", env.now))
            held = sum(r.tp for r in svc.replicas if r.alloc is not None)
            if held != pool.used:
                violations.append(("gpus", env.now, held, pool.used))
            for r in svc.replicas:
                if r.alloc is not None and any(not n.up for n in pool.nodes if n.name in r.alloc.nodes):
                    violations.append(("replica on a down node", env.now, r.index))

    env.process(policy())
    env.process(checker())
    env.run(until=1300.0)
    assert violations == []
    s = svc.summary()
    assert s["replica_failures"] == sum(lost_seen) > 0  # every lost allocation was one of its replicas
    assert s["requests_completed"] > 0.5 * len(trace)


def test_lost_replicas_are_replaced_after_repair_and_the_service_recovers():
    trace = load_shape("noisy", 3.0, duration_s=1800.0, seed=3)
    pool = GpuPool.uniform(2, 8)  # no spare GPUs: the replacement must wait for the repair
    env, svc = service(trace, pool, {"replicas": 2, "gpus_per_replica": 8, "max_batch_size": 64},
                       cold_start_s=60.0, slo=SLO(ttft_s=2.0))
    obs, snapshots = [], {}

    def script():
        yield env.timeout(600.0)
        obs.append(svc.observe(svc.name))
        in_flight = sum(r.engine.running for r in svc.replicas if r.alloc.nodes == ("node-000",))
        queued = len(svc.queue)
        svc.node_failed("node-000", pool.fail_node("node-000"))
        snapshots["requeued"] = (len(svc.queue), queued + in_flight)
        snapshots["after_failure"] = (len(svc.replicas), sum(r.ready for r in svc.replicas), pool.used)
        yield env.timeout(300.0)
        obs.append(svc.observe(svc.name))
        pool.repair_node("node-000")
        yield env.timeout(300.0)
        obs.append(svc.observe(svc.name))
        snapshots["after_repair"] = (len(svc.replicas), sum(r.ready for r in svc.replicas), pool.used)
        yield env.timeout(600.0)
        obs.append(svc.observe(svc.name))

    env.process(script())
    env.run(until=1800.01)
    before, outage, _, after = (o.metrics["slo_attainment"] for o in obs)
    queue_after, expected_queue = snapshots["requeued"]
    assert queue_after == expected_queue > 0  # the dead replica's requests went back to the queue
    assert snapshots["after_failure"] == (2, 1, 8)  # replacement created, pending (no GPUs anywhere)
    assert snapshots["after_repair"] == (2, 2, 16)  # placed on the repaired node and booted
    assert [o.events["failures"] for o in obs] == [0.0, 1.0, 0.0, 0.0]
    assert svc.summary()["replica_failures"] == 1 and svc.summary()["replicas_created"] == 3
    assert outage < before - 0.2  # one replica cannot carry this load...
    assert after >= before - 0.02  # ...two can again, once the node is back
    assert svc.arrived == accounted(svc)


# ----------------------------------------------------------------------------------------- training

@pytest.fixture(scope="module")
def profiles():
    return load_profiles(POLLUX / "profiles")


@pytest.fixture(scope="module")
def jobs():
    """The first 8 jobs of the Pollux paper's workload 1 at 1.0x load (about 2 hours on 16 GPUs)."""
    return load_workload(workload_path(POLLUX, 1.0, 1))[:8]


def run_cluster(profiles, jobs, failure_at=None, random_failures=None):
    env, pool = simpy.Environment(), GpuPool.uniform(4, 4)
    cluster = TrainingCluster(env, pool, Tiresias(), profiles, TrainingSettings(check_pool=True))
    for spec in jobs:
        cluster.submit(spec)
    cluster.start()
    victims: list[str] = []
    if failure_at is not None:
        def script():
            yield env.timeout(failure_at)
            node = pool.grants()[0].nodes[0]  # a node that some job is running on
            lost = pool.fail_node(node)
            victims.extend(a.owner.split("/")[-1] for a in lost)
            cluster.node_failed(node, lost)
            assert not any(node in a.nodes for a in pool.grants())
            pool.check()
            yield env.timeout(1800.0)
            pool.repair_node(node)
        env.process(script())
    if random_failures is not None:
        env.process(node_failures(env, pool, np.random.default_rng(random_failures), 6 * 3600.0, 1800.0,
                                  [cluster.node_failed]))
    env.run(until=env.any_of([cluster.finished, env.timeout(2 * 24 * 3600.0)]))
    return cluster.result(), victims


def test_training_jobs_on_a_failed_node_restart_and_still_finish(profiles, jobs):
    base, _ = run_cluster(profiles, jobs)
    hit, victims = run_cluster(profiles, jobs, failure_at=1800.0 + 30.0)
    assert victims, "jobs should be running half an hour in"
    assert hit.failures == len(victims)
    assert hit.unfinished == [] and len(hit.jcts_s) == len(jobs)
    for name in victims:  # each victim paid one more (re)start when it was placed again
        assert hit.num_restarts[name] >= base.num_restarts[name] + 1
    assert sum(hit.num_restarts.values()) > sum(base.num_restarts.values())
    assert base.failures == 0


def test_training_survives_random_failures(profiles, jobs):
    res, _ = run_cluster(profiles, jobs, random_failures=11)
    assert res.failures > 0 and res.unfinished == []


def test_training_interference_slows_a_job_by_the_factor(profiles, jobs):
    """A lone job next to another owner's allocation: the same progress takes 1.5x the wall time (the
    restart is not slowed; epoch boundaries round to whole seconds in the job's time, hence 1 s)."""
    spec = jobs[0]

    def jct(neighbour: bool, slowdown: float) -> float:
        env, pool = simpy.Environment(), GpuPool.uniform(1, 4)
        if neighbour:
            pool.allocate("other", 1)
        cluster = TrainingCluster(env, pool, _OneGpu(), profiles, TrainingSettings(interference_slowdown=slowdown))
        cluster.submit(spec)
        cluster.start()
        env.run(until=cluster.finished)
        return cluster.result().jcts_s[spec.name]

    base = jct(False, 0.5)
    assert jct(True, 0.0) == base  # switched off: a neighbour changes nothing
    slowed = jct(True, 0.5)
    restart, round_s = TrainingSettings().restart_delay_s, TrainingSettings().round_s
    # JCT = wait for the first round + restart + run time; only the run time stretches
    wait = math.ceil(spec.arrival_s / round_s) * round_s - spec.arrival_s
    run = base - wait - restart
    assert run > 10 * round_s
    assert slowed == pytest.approx(wait + restart + 1.5 * run, abs=1.0)


class _OneGpu:
    def optimize(self, jobs, nodes, now):
        return {j.name: (1,) for j in jobs}


# ----------------------------------------------------------------------------------------- interference

def lone_request(neighbour: bool, slowdown: float) -> tuple[float, float]:
    trace = Trace(np.array([1.0]), np.array([2048]), np.array([200]))
    pool = GpuPool.uniform(1, 8)
    if neighbour:
        assert pool.allocate("someone-else", 4) is not None
    env, svc = service(trace, pool, {"replicas": 1, "gpus_per_replica": 4, "max_batch_size": 8},
                       interference_slowdown=slowdown)
    env.run(until=600.0)
    s = svc.summary()
    assert s["requests_completed"] == 1
    return s["ttft_p50_s"], s["e2e_p50_s"]


def test_a_lone_request_next_to_another_tenant_is_slower_by_exactly_the_factor():
    ttft, e2e = lone_request(neighbour=False, slowdown=0.25)
    ttft_slow, e2e_slow = lone_request(neighbour=True, slowdown=0.25)
    assert ttft > 0 and e2e > ttft
    assert ttft_slow == pytest.approx(1.25 * ttft, rel=1e-9)
    assert e2e_slow == pytest.approx(1.25 * e2e, rel=1e-9)


def test_neighbours_count_other_owners_allocations_on_the_same_node():
    pool = GpuPool.uniform(2, 8)
    mine = pool.allocate("me", 2)
    assert mine is not None and neighbours(pool, mine) == 0
    pool.allocate("a", 2)
    pool.allocate("b", 2)          # packed onto the same (fullest) node
    pool.allocate_placement("c", [8])  # the other node: not a neighbour
    assert neighbours(pool, mine) == 2
    assert slowdown_factor(pool, mine, 0.1) == pytest.approx(1.2)
    assert slowdown_factor(pool, mine, 0.0) == 1.0


def test_interference_off_leaves_results_bit_identical():
    """With the slowdown at 0, co-located tenants and a registered (never firing) failure process
    change nothing: every number of the summary is the same as a plain run."""
    trace = load_shape("bursty", 3.0, duration_s=900.0, seed=4)
    initial = {"replicas": 3, "gpus_per_replica": 4, "max_batch_size": 32}

    def run(disturbed: bool) -> dict:
        pool = GpuPool.uniform(2, 8)
        env = simpy.Environment()
        if disturbed:
            pool.allocate("someone-else", 2)
        env, svc = service(trace, pool, initial, env=env, cold_start_s=30.0)
        if disturbed:
            env.process(node_failures(env, pool, np.random.default_rng(0), 1e12, 1.0, [svc.node_failed]))
        env.run(until=1000.0)
        s = svc.summary()
        s.pop("series")
        return s

    plain, disturbed = run(False), run(True)
    assert plain == disturbed and plain["requests_completed"] > 0
