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
