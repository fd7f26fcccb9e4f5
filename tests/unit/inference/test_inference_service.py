"""The SimPy inference service: invariants, cold starts, KV limits, rollouts, metrics and the loop ports."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import simpy

from learners.types import Observation
from simulator.cluster import GpuPool
from simulator.inference.perf_model import PerfModel
from simulator.inference.service import SLO, InferenceService, ServiceSettings
from simulator.inference.traces import Trace, load_shape
from simulator.metrics import Recorder, read_openmetrics_strictly

PERF = PerfModel.load("llama2-70b", "a100-80gb")
METRIC_NAMES = ("request_rate_per_second", "ttft_p99_seconds", "tbt_p99_seconds", "e2e_p99_seconds",
                "slo_attainment", "queue_length", "concurrency_per_replica", "gpu_utilization",
                "kv_cache_usage")


def make(trace, initial, pool=None, recorder=None, **kw):
    env = simpy.Environment()
    pool = pool or GpuPool.uniform(4, 8)
    settings = ServiceSettings(initial=initial, **kw)
    return env, pool, InferenceService(env, pool, PERF, trace, settings, recorder=recorder)


def accounted(svc):
    s = svc.summary()
    return s["requests_completed"] + s["requests_rejected"] + s["requests_in_service"] + s["requests_queued"]


def test_invariants_hold_while_a_random_policy_scales_and_resizes():
    trace = load_shape("noisy", 3.0, duration_s=1200.0, seed=2)
    env, pool, svc = make(trace, {"replicas": 2, "gpus_per_replica": 4, "max_batch_size": 32},
                          pool=GpuPool.uniform(3, 8), cold_start_s=30.0, queue_timeout_s=120.0)
    rng = random.Random(5)
    violations = []

    def policy():
        while True:
            yield env.timeout(45.0)
            svc.apply(svc.name, {"replicas": rng.randint(0, 6), "gpus_per_replica": rng.choice([2, 4, 8]),
                                 "max_batch_size": rng.choice([8, 16, 32, 64])}, "random")

    def checker():
        while True:
            yield env.timeout(1.7)
            pool.check()  # no GPU given twice
            if svc.arrived != accounted(svc):
                violations.append(("books", env.now))
            held = sum(r.tp for r in svc.replicas if r.alloc is not None)
            if held != pool.used:
                violations.append(("gpus", env.now, held, pool.used))
            for r in svc.replicas:
                if r.engine is not None and (r.engine.kv_used > r.engine.kv_capacity or
                                             r.engine.running > r.engine.max_batch):
                    violations.append(("batch", env.now, r.index))

    env.process(policy())
    env.process(checker())
    env.run(until=1300.0)
    assert violations == []
    s = svc.summary()
    assert s["requests_arrived"] == len(trace) and s["replicas_created"] > 5 and s["config_changes"] >= 20
    assert s["requests_completed"] > 0.5 * len(trace)


def test_scale_down_requeues_in_flight_requests_and_they_still_finish():
    trace = load_shape("bursty", 4.0, duration_s=300.0, seed=1)
    env, pool, svc = make(trace, {"replicas": 4, "gpus_per_replica": 4, "max_batch_size": 64})
    env.run(until=150.0)
    busy = [r for r in svc.replicas if r.engine.running > 0]
    assert busy, "the scenario should have work in flight at t=150"
    svc.apply(svc.name, {"replicas": 1}, "scale down")
    assert len(svc.replicas) == 1 and pool.used == 4
    env.run(until=2000.0)
    s = svc.summary()
    assert s["requests_completed"] == s["requests_arrived"] == len(trace) and s["requests_rejected"] == 0


def test_cold_start_is_honoured_and_booting_gpus_are_paid_for():
    trace = load_shape("noisy", 6.0, duration_s=400.0, seed=3)
    env, _pool, svc = make(trace, {"replicas": 1, "gpus_per_replica": 4, "max_batch_size": 64},
                           cold_start_s=60.0)
    seen = []

    def scale():
        yield env.timeout(100.0)
        svc.apply(svc.name, {"replicas": 3}, "scale up")
        obs = svc.observe(svc.name, env.now)
        seen.append(obs)
        yield env.timeout(30.0)
        seen.append(svc.observe(svc.name, env.now))

    env.process(scale())
    env.run(until=400.0)
    added = {r.index: r for r in svc.replicas if r.index >= 1}
    assert len(added) == 2 and all(r.ready_s == pytest.approx(160.0) for r in added.values())
    first_by_new = [svc.t_first[i] for i in range(len(trace)) if svc.served_by[i] in added]
    assert first_by_new and min(first_by_new) >= 160.0
    assert [s.ready for s in seen[1].replicas] == [True, False, False]  # booting pods are unready
    assert svc.gpu_seconds == pytest.approx(4 * 400.0 + 2 * 4 * 300.0)


def test_kv_cache_limit_bounds_the_batch_and_oversized_requests_are_rejected():
    n = 12
    trace = Trace(np.linspace(0, 1, n), np.full(n, 1000), np.full(n, 400))
    trace = Trace(np.append(trace.arrival_s, 2.0), np.append(trace.prompt_tokens, 5000),
                  np.append(trace.output_tokens, 10))
    env, _pool, svc = make(trace, {"replicas": 1, "gpus_per_replica": 4, "max_batch_size": 64},
                          kv_capacity_tokens={4: 3000})
    peak = []

    def sample():
        while True:
            peak.append(svc.replicas[0].engine.running)
            assert svc.replicas[0].engine.kv_used <= 3000
            yield env.timeout(0.05)

    env.process(sample())
    env.run(until=400.0)
    assert max(peak) == 2  # 2 x 1400 tokens fit in 3000, 3 do not
    s = svc.summary()
    assert s["requests_completed"] == n and s["requests_rejected"] == 1  # 5010 tokens never fit


def test_rolling_update_boots_new_pods_before_old_ones_leave():
    trace = load_shape("noisy", 3.0, duration_s=600.0, seed=4)
    env, pool, svc = make(trace, {"replicas": 4, "gpus_per_replica": 4, "max_batch_size": 64},
                          pool=GpuPool.uniform(6, 8), cold_start_s=60.0)
    ready_counts = []

    def change():
        yield env.timeout(50.0)
        svc.apply(svc.name, {"gpus_per_replica": 8}, "resize")
        while True:
            ready_counts.append(sum(r.ready for r in svc.replicas))
            pool.check()
            yield env.timeout(1.0)

    env.process(change())
    env.run(until=600.0)
    assert min(ready_counts) >= 3  # maxUnavailable = floor(25% of 4) = 1
    assert [r.tp for r in svc.replicas] == [8, 8, 8, 8] and all(r.ready for r in svc.replicas)
    assert all(r.ready_s >= 110.0 for r in svc.replicas)  # the new pods cold-started
    assert svc.summary()["requests_rejected"] == 0 and svc.config["gpus_per_replica"] == 8


def test_observe_is_nan_free_and_per_replica_metric_is_configurable():
    trace = load_shape("bursty", 3.0, duration_s=300.0, seed=6)
    for metric in ("gpu_utilization", "concurrency"):
        env, _pool, svc = make(trace, {"replicas": 2, "gpus_per_replica": 8, "max_batch_size": 64},
                              replica_metric=metric, slo=SLO(ttft_s=1.0, tbt_s=0.2))
        first = svc.observe(svc.name, 0.0)
        assert first.metrics["slo_attainment"] == 1.0  # nothing finished, nothing waits
        observations: list[Observation] = []

        def loop(env=env, svc=svc, observations=observations):
            while True:
                yield env.timeout(30.0)
                observations.append(svc.observe(svc.name, env.now))

        env.process(loop())
        env.run(until=300.0)
        assert svc.observe("someone-else", env.now) is None
        for obs in observations:
            assert set(METRIC_NAMES) <= set(obs.metrics) and obs.finite()
            assert obs.interval_s == pytest.approx(30.0) and len(obs.replicas) == 2
            assert 0.0 <= obs.metrics["gpu_utilization"] <= 1.0
        arrived = sum(o.metrics["request_rate_per_second"] * o.interval_s for o in observations)
        assert arrived == pytest.approx(np.sum(trace.arrival_s <= observations[-1].time_s))
        values = [s.value for o in observations for s in o.replicas]
        if metric == "gpu_utilization":
            assert all(0.0 <= v <= 1.0 for v in values)
        else:
            assert max(values) > 1.0  # requests in flight per pod, not a fraction


def test_exported_metrics_agree_with_the_event_log(tmp_path):
    trace = load_shape("noisy", 4.0, duration_s=600.0, seed=9)
    rec = Recorder()
    env, _pool, svc = make(trace, {"replicas": 2, "gpus_per_replica": 4, "max_batch_size": 32}, recorder=rec,
                          namespace="serving")
    env.run(until=700.0)
    svc.scrape()
    util = rec.series("DCGM_FI_DEV_GPU_UTIL", pod="llm-0", gpu="0")
    util3 = rec.series("DCGM_FI_DEV_GPU_UTIL", pod="llm-0", gpu="3")
    path = tmp_path / "m.om.txt"
    rec.write_openmetrics(path)
    fams = read_openmetrics_strictly(path.read_text())

    def last(name: str, sample: str, **match: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for smp in fams[name]:
            if smp.name == sample and all(smp.labels.get(k) == v for k, v in match.items()):
                out[smp.labels["pod"]] = smp.value  # samples of a series come in time order
        return out

    success = last("vllm:request_success", "vllm:request_success_total")
    assert sum(success.values()) == svc.completed == len(trace)
    counts = last("vllm:time_to_first_token_seconds", "vllm:time_to_first_token_seconds_count")
    assert sum(counts.values()) == svc.completed
    ttft = np.array(svc.t_first) - trace.arrival_s
    sums = last("vllm:time_to_first_token_seconds", "vllm:time_to_first_token_seconds_sum")
    assert sum(sums.values()) == pytest.approx(ttft.sum())
    samples = fams["vllm:request_success"]
    assert set(success) <= {"llm-0", "llm-1"} and all(s.labels["namespace"] == "serving" for s in samples)
    assert len(util) == len(util3) >= 40
    assert all(0.0 <= v <= 100.0 for _, v in util) and max(v for _, v in util) > 0.0
    busy = svc.replicas[0].busy_total(env.now) / env.now
    assert np.mean([v for _, v in util]) / 100 == pytest.approx(busy, abs=0.05)


def test_summary_books_balance_with_rejections_and_count_them_as_misses():
    trace = load_shape("bursty", 8.0, duration_s=300.0, seed=2)
    env, _pool, svc = make(trace, {"replicas": 1, "gpus_per_replica": 2, "max_batch_size": 8},
                          max_queue=20, queue_timeout_s=30.0, slo=SLO(ttft_s=2.0))
    env.run(until=200.0)
    s = svc.summary()
    assert s["requests_rejected"] > 0 and s["requests_arrived"] == accounted(svc)
    met = s["slo_attainment"] * s["requests_arrived"]
    assert met <= s["requests_completed"] and math.isclose(met, round(met), abs_tol=1e-6)
    assert s["slo_attainment"] <= s["slo_attainment_decided"] <= 1.0
    assert len(s["series"]["time_s"]) == 3 and s["gpu_hours"] == pytest.approx(2 * 200 / 3600)


def test_peek_shows_the_last_seconds_without_touching_the_interval_observe_closes():
    """The fast timescale's view: peeks partition the arrivals and completions between two observes, and
    the observe after them reports the whole interval exactly as it would without them."""
    trace = load_shape("bursty", 3.0, duration_s=600.0, seed=6)
    runs = {}
    for peeking in (False, True):
        env, _pool, svc = make(trace, {"replicas": 2, "gpus_per_replica": 8, "max_batch_size": 64},
                               slo=SLO(ttft_s=1.0))
        observed, peeked = [], []

        def loop(env=env, svc=svc, observed=observed, peeked=peeked, peeking=peeking):
            k = 0
            while True:
                yield env.timeout(15.0)
                k += 1
                if k % 4 == 0:
                    observed.append(svc.observe(svc.name, env.now))
                elif peeking:
                    peeked.append((svc.peek(svc.name, env.now), svc.summary()["requests_queued"]))

        env.process(loop())
        env.run(until=600.0)
        runs[peeking] = (observed, peeked)
        assert svc.peek("someone-else", env.now) is None
    plain, (observed, peeked) = runs[False][0], runs[True]
    assert [o.metrics for o in observed] == [o.metrics for o in plain]
    assert [o.events for o in observed] == [o.events for o in plain]
    assert len(peeked) == 30 and all(p.interval_s == pytest.approx(15.0) and p.finite() for p, _ in peeked)
    assert all(p.metrics["queue_length"] == queued for p, queued in peeked)
    # the peeks' arrivals and completions plus those of the last quarter (seen by observe only) add up
    for i, obs in enumerate(observed):
        window = [p for p, _ in peeked[3 * i:3 * i + 3]]
        arrivals = sum(p.metrics["request_rate_per_second"] * p.interval_s for p in window)
        completed = sum(p.events["completed"] for p in window)
        assert arrivals <= obs.metrics["request_rate_per_second"] * obs.interval_s + 1e-6
        assert completed <= obs.events["completed"]
    total = sum(p.metrics["request_rate_per_second"] * p.interval_s for p, _ in peeked)
    assert 0 < total < np.sum(trace.arrival_s <= 600.0)
