"""The simulator's capacity of a configuration at the SLO: the steady Poisson rate it still serves.

Something outside the simulator that stands in for the simulated service (the e2e emulator,
tests/e2e/emulator.py) needs to know how much one configuration serves, so that a configuration
the simulator says meets the SLO at rate ``r`` also meets it there. This module answers that from
the simulator's own request-level model, not from a second copy of its numbers: Poisson arrivals at
a constant rate, request sizes drawn from the scenario's pool, served by ``replicas`` warm replicas
of one (TP, max batch) template through :func:`~simulator.inference.oracle.simulate_window` (the same
:class:`~simulator.inference.batching.ReplicaEngine` and routing as the SimPy service, tested equal
there), and the attainment = fraction of requests whose TTFT is within the SLO, as the simulator
counts it. The capacity is the largest rate whose attainment, pooled over a few seeds, stays at or
above the SLO's; found by bisection.

Common random numbers make the bisection sane: each seed draws one unit-rate arrival sequence and
one size sequence, and the rate only scales the arrival times, so attainment is (nearly) monotone
in the rate instead of jumping with every fresh draw.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from simulator.inference.oracle import simulate_window
from simulator.inference.perf_model import PerfModel
from simulator.inference.service import SLO, ServiceSettings
from simulator.inference.traces import Trace, azure_code_half


def attainment_at(perf: PerfModel, sizes: Trace, tp: int, max_batch: int, replicas: int, rate_per_s: float,
                  slo: SLO, duration_s: float = 900.0, seeds: tuple[int, ...] = (0, 1, 2),
                  kv_capacity: int | None = None) -> float:
    """Fraction of requests with TTFT within ``slo.ttft_s`` at a steady Poisson ``rate_per_s``, pooled
    over ``seeds``; a request not started by the end of the window counts as a miss if it has already
    waited longer than the SLO (and as met otherwise, as the oracle's certain misses count it)."""
    if slo.ttft_s is None:
        raise ValueError("capacity at the SLO needs a TTFT threshold")
    kv = kv_capacity if kv_capacity is not None else ServiceSettings(model=perf.model).kv_capacity(tp)
    met = total = 0
    for seed in seeds:
        rng = np.random.default_rng(seed)
        unit = np.cumsum(rng.exponential(1.0, size=int(duration_s * rate_per_s * 1.2) + 50))
        arrival = unit / rate_per_s
        arrival = arrival[arrival < duration_s]
        pick = rng.integers(0, len(sizes), size=len(unit))[: arrival.size]
        prompt, output = sizes.prompt_tokens[pick].tolist(), sizes.output_tokens[pick].tolist()
        first, _ = simulate_window(perf, tp, max_batch, kv, arrival.tolist(), prompt, output, [0.0] * replicas,
                                   horizon_s=duration_s * 3)
        ttft = np.asarray(first) - arrival
        late = np.where(np.isnan(ttft), duration_s * 3 - arrival, ttft) > slo.ttft_s
        met += int((~late).sum())
        total += arrival.size
    return met / max(total, 1)


def slo_capacity(perf: PerfModel, sizes: Trace, tp: int, max_batch: int, replicas: int, slo: SLO,
                 duration_s: float = 900.0, seeds: tuple[int, ...] = (0, 1, 2), tolerance: float = 0.01) -> float:
    """Largest steady rate (requests/s) that ``replicas`` x (``tp``, ``max_batch``) serve with the SLO's
    attainment, to a relative ``tolerance``."""
    def ok(rate: float) -> bool:
        return attainment_at(perf, sizes, tp, max_batch, replicas, rate, slo, duration_s, seeds) >= slo.attainment

    lo, hi = 0.05 * replicas, 0.5 * replicas
    while ok(hi):  # grow the bracket until the rate is too much
        lo, hi = hi, hi * 2.0
        if hi > 1e4:
            raise ValueError("capacity search diverged: the configuration never misses the SLO")
    if not ok(lo):
        return lo  # below the first bracket: as good as none
    while hi / lo > 1.0 + tolerance:
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


@lru_cache(maxsize=64)
def bundled_slo_capacity(model: str, hardware: str, tp: int, max_batch: int, replicas: int, ttft_s: float,
                         attainment: float = 0.99, sizes: str = "second-half") -> float:
    """:func:`slo_capacity` on the bundled latency table and the Azure code trace's sizes (``sizes``: which
    half, as a scenario's ``trace.sizes`` says), memoised: what the inference scenarios simulate."""
    return slo_capacity(PerfModel.load(model, hardware), azure_code_half(sizes), tp, max_batch, replicas,
                        SLO(ttft_s=ttft_s, attainment=attainment))


SIGNALS = ("gpu_utilization", "requests_running", "kv_cache_usage")
"""The per-replica signals a rule scales on, as the simulator reports them: the busy fraction of a replica's
GPUs (DCGM's ``DCGM_FI_DEV_GPU_UTIL`` / 100), the requests its engine is running (``vllm:num_requests_running``)
and the share of its KV cache in use (``vllm:kv_cache_usage_perc``)."""


def steady_signals(perf: PerfModel, sizes: Trace, tp: int, max_batch: int, replicas: int, rate_per_s: float,
                   duration_s: float = 900.0, warmup_s: float = 180.0, seed: int = 0) -> dict[str, float]:
    """Per replica, the mean of each of :data:`SIGNALS` over 60 s observations of ``replicas`` warm
    (``tp``, ``max_batch``) replicas serving steady Poisson arrivals at ``rate_per_s`` (all replicas
    together), after ``warmup_s``: what the simulator's HPA, KEDA and KPA read at that load.

    The SimPy service itself (not :func:`simulate_window`), because the busy fraction is its own
    accounting: a replica's GPUs count as busy while its engine runs any iteration, so a batching engine
    reads near 100% long before it is near its capacity, as DCGM does for a real vLLM server."""
    import simpy  # the service needs it; this module's capacity search does not

    from simulator.cluster import GpuPool
    from simulator.inference.service import InferenceService

    if rate_per_s <= 0:
        return dict.fromkeys(SIGNALS, 0.0)
    rng = np.random.default_rng(seed)
    arrival = np.cumsum(rng.exponential(1.0 / rate_per_s, size=int(duration_s * rate_per_s * 1.3) + 50))
    arrival = arrival[arrival < duration_s]
    pick = rng.integers(0, len(sizes), size=arrival.size)
    trace = Trace(arrival, sizes.prompt_tokens[pick], sizes.output_tokens[pick])
    env = simpy.Environment()
    service = InferenceService(env, GpuPool.uniform(math.ceil(replicas * tp / 8) + 1, 8), perf, trace,
                               ServiceSettings(initial={"replicas": replicas, "gpus_per_replica": tp,
                                                        "max_batch_size": max_batch}, cold_start_s=0.0))
    seen: list[dict[str, float]] = []

    def observe():
        while True:
            yield env.timeout(60.0)
            obs = service.observe(service.name, env.now)
            if obs is not None and env.now > warmup_s:
                seen.append(obs.metrics)

    env.process(observe())
    env.run(until=duration_s)
    return {
        "gpu_utilization": float(np.mean([m["gpu_utilization"] for m in seen])),
        "requests_running": float(np.mean([m["requests_running"] for m in seen])) / replicas,
        "kv_cache_usage": float(np.mean([m["kv_cache_usage"] for m in seen])),
    }


@lru_cache(maxsize=64)
def bundled_steady_signals(model: str, hardware: str, tp: int, max_batch: int, replicas: int, rate_per_s: float,
                           sizes: str = "second-half") -> tuple[float, float, float]:
    """:func:`steady_signals` on the bundled latency table and the Azure code trace's sizes, memoised, as a
    tuple in the order of :data:`SIGNALS`."""
    got = steady_signals(PerfModel.load(model, hardware), azure_code_half(sizes), tp, max_batch, replicas,
                         rate_per_s)
    return tuple(got[name] for name in SIGNALS)  # type: ignore[return-value]
