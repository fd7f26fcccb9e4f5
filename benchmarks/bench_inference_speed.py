"""How fast the request-level inference simulator runs a day of traffic, against bare SimPy.

Scenario: 24 h at the Azure code trace's mean rate (2.57 requests/s, about 222,000 requests), the
``bursty`` load shape tiled over the day, request sizes resampled from the Azure trace (seeded), a
fixed number of llama2-70b replicas on A100s. Reference in the same process: the cheapest honest
SimPy request pipeline of the same size, one process per request through a ``simpy.Resource``
(arrive, queue, hold a server for a sampled service time, leave), i.e. what a naive request-level
model costs before it models batching at all.

Run: ``.venv/bin/python benchmarks/bench_inference_speed.py [--hours 24] [--replicas 6] [--tp 8]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import simpy

from simulator.cluster import GpuPool
from simulator.inference.perf_model import PerfModel
from simulator.inference.service import SLO, InferenceService, ServiceSettings
from simulator.inference.traces import azure_code, load_shape


def run_service(trace, replicas: int, tp: int, batch: int) -> tuple[float, float, dict]:
    """(wall seconds, CPU seconds, summary) of the service simulating ``trace`` to the end."""
    perf = PerfModel.load("llama2-70b", "a100-80gb")
    env = simpy.Environment()
    pool = GpuPool.uniform(16, 8)
    initial = {"replicas": replicas, "gpus_per_replica": tp, "max_batch_size": batch}
    settings = ServiceSettings(initial=initial, slo=SLO(ttft_s=2.0))
    svc = InferenceService(env, pool, perf, trace, settings)
    t0, c0 = time.perf_counter(), time.process_time()
    env.run(until=float(trace.arrival_s[-1]) + 600.0)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return wall, cpu, svc.summary()


def run_bare_simpy(trace, servers: int, mean_service_s: float, seed: int = 0) -> tuple[float, float]:
    """One SimPy process per request through a Resource: (wall, CPU) seconds, the reference cost."""
    env = simpy.Environment()
    res = simpy.Resource(env, capacity=servers)
    service = np.random.default_rng(seed).exponential(mean_service_s, len(trace)).tolist()

    def request(i: int):
        with res.request() as slot:
            yield slot
            yield env.timeout(service[i])

    def source():
        for i, t in enumerate(trace.arrival_s.tolist()):
            if t > env.now:
                yield env.timeout(t - env.now)
            env.process(request(i))

    env.process(source())
    t0, c0 = time.perf_counter(), time.process_time()
    env.run()
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--replicas", type=int, default=6)
    ap.add_argument("--tp", type=int, default=8)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--shape", default="bursty")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rate = azure_code().mean_rate_per_s
    trace = load_shape(args.shape, rate, duration_s=args.hours * 3600.0, seed=args.seed)
    n = len(trace)
    print(f"scenario: {args.hours:g} h, {args.shape} shape at {rate:.2f} req/s -> {n} requests; "
          f"{args.replicas} x TP{args.tp} llama2-70b/a100, max batch {args.batch}")
    wall, cpu, summary = run_service(trace, args.replicas, args.tp, args.batch)
    print(f"inference service  : {wall:7.2f} s wall ({cpu:.2f} s CPU), "
          f"{n / wall:8.0f} simulated requests per wall-second")
    print(f"  completed {summary['requests_completed']}, SLO attainment {summary['slo_attainment']:.4f}, "
          f"ttft p99 {summary['ttft_p99_s']:.2f} s, GPU-hours {summary['gpu_hours']:.1f}")
    bare, bare_cpu = run_bare_simpy(trace, servers=args.replicas * args.batch,
                                    mean_service_s=summary["e2e_p50_s"])
    print(f"bare SimPy pipeline: {bare:7.2f} s wall ({bare_cpu:.2f} s CPU), "
          f"{n / bare:8.0f} requests per wall-second")
    print(f"ratio service / bare SimPy: {wall / bare:.2f} (wall), {cpu / bare_cpu:.2f} (CPU)")


if __name__ == "__main__":
    main()
