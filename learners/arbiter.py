"""A cluster-level GPU arbiter for cooperating per-job agents: each asks, the arbiter grants under capacity.

Each training job has an agent that knows (or learns) its own value curve: how fast it makes
progress with g GPUs at the best batch size for g, relative to one GPU (its *speedup*, Pollux's
normalisation, Qiao et al. OSDI'21 §4.1, so that jobs of different sizes are comparable). The agent
sends that curve as a :class:`GpuBid`; the arbiter answers with a GPU count per job that fits the
pool, and the agents see their grants (and, next round, the goodput it gave them): the feedback.

The arbiter maximises the sum of speedups by water-filling, which is optimal for concave curves
(greedy on marginal gains) and a good heuristic otherwise; to step over a non-concave kink (a job
that only gains once a whole node is its own) it compares gains per GPU over the next
``lookahead`` counts, not only the next one. Before water-filling, every job gets one GPU in
least-attained-service order (Tiresias' information-agnostic priority, Gu et al. NSDI'19), so no job
waits while a GPU sits on a job's flat tail, and, when jobs outnumber GPUs, short jobs finish first.
Jobs whose attained service is below Tiresias' first-queue threshold are
water-filled before the others (``priority_service``), which keeps short jobs short without knowing
any job's length. A running job keeps its count unless the new one is worth a restart: its speedup must grow by
``resize_gain`` (Pollux charges restarts the same way, through a re-allocation penalty).

Pure: plain numbers in, a dict out; no profiles, no simulator (the agents that build bids live
with the simulator's job model, ``simulator/training/arbiter.py``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class GpuBid:
    """One agent's ask. ``speedup[g - 1]`` is its value with g GPUs (nan: it cannot run on g)."""

    name: str
    speedup: tuple[float, ...]
    current_gpus: int = 0
    attained_service: float = 0.0
    """GPU-seconds received so far: lower is served first when GPUs are short."""

    def value(self, gpus: int) -> float:
        if gpus == 0:
            return 0.0
        if gpus > len(self.speedup):
            return math.nan
        return self.speedup[gpus - 1]

    def runnable(self, gpus: int) -> bool:
        return gpus == 0 or math.isfinite(self.value(gpus))


@dataclass(frozen=True)
class ArbiterSettings:
    lookahead: int = 4
    """GPU counts ahead the water-filling compares per-GPU gains over: a node's worth (4 GPUs per node in
    the Pollux study), enough to see past the step from a one-node to a two-node placement."""
    resize_gain: float = 0.1
    """A running job changes its count only if its speedup grows by this share (or it must shrink to make
    room for others). A resize costs a 30 s restart; 10% pays that back within 5 minutes of running."""
    max_gpus_per_job: int | None = None
    power: float = 1.0
    """Maximise the sum of ``sign(p) speedup^p`` over jobs: p = 1 is total speedup (throughput); p = -1 is
    Pollux's default fairness (``-Σ 1/speedup``, OSDI'21 §4.2), which favours jobs with little speedup."""
    priority_service: float | None = 3600.0 * 16
    """GPU-seconds of attained service below which a job is filled before every job above it: Tiresias' first
    queue, with the threshold the Pollux artifact gives Tiresias (16 GPU-hours). Information-agnostic like
    Tiresias: no job length is known. None: one class (plain water-filling)."""

    def __post_init__(self) -> None:
        if self.power == 0:
            raise ValueError("power must be non-zero")
        if self.lookahead < 1:
            raise ValueError(f"lookahead must be at least 1, got {self.lookahead}")
        if self.resize_gain < 0:
            raise ValueError(f"resize_gain must be non-negative, got {self.resize_gain}")


def _smallest_runnable(bid: GpuBid, start: int, limit: int) -> int | None:
    return next((g for g in range(start, limit + 1) if bid.runnable(g)), None)


def arbitrate(bids: Sequence[GpuBid], capacity: int, settings: ArbiterSettings | None = None) -> dict[str, int]:
    """GPU counts per job, summing to at most ``capacity``.

    Two passes: fill freely; then hold every running job whose new count is its current one, or a
    growth not worth a restart, at its current count, and fill the rest again around them. Shrinks
    stay (they are what makes room for others).
    """
    s = settings or ArbiterSettings()
    if capacity < 0:
        raise ValueError(f"capacity must be non-negative, got {capacity}")
    names = [b.name for b in bids]
    if len(set(names)) != len(names):
        raise ValueError("bids must have distinct names")
    order = sorted(bids, key=lambda b: (b.attained_service, names.index(b.name)))
    free = _fill(order, capacity, {}, s)
    held: dict[str, int] = {}
    for bid in order:
        old, new = bid.current_gpus, free[bid.name]
        if old <= 0 or not bid.runnable(old) or new < old:
            continue
        if new == old or bid.value(new) < (1.0 + s.resize_gain) * bid.value(old):
            held[bid.name] = old
    return _fill(order, capacity, held, s)


def _fill(order: Sequence[GpuBid], capacity: int, held: Mapping[str, int], s: ArbiterSettings) -> dict[str, int]:
    limit = capacity if s.max_gpus_per_job is None else min(capacity, s.max_gpus_per_job)
    grant = {b.name: held.get(b.name, 0) for b in order}
    by_service = {b.name: b.attained_service for b in order}
    left = capacity - sum(held.values())
    if left < 0:
        raise ValueError("held counts exceed the capacity")
    for bid in order:  # admission: the smallest count each job can run on, least attained service first
        if bid.name in held:
            continue
        first = _smallest_runnable(bid, 1, limit)
        if first is not None and first <= left:
            grant[bid.name] = first
            left -= first
    p = s.power
    curves = {b.name: [0.0, *(math.copysign(v**p, p) if v > 0 else math.nan for v in b.speedup)]
              for b in order}  # curves[name][g]: utility on g GPUs (nan: cannot run)
    classes = [[b.name for b in order if grant[b.name] > 0 and b.name not in held]]
    if s.priority_service is not None:
        first = [n for n in classes[0] if by_service[n] < s.priority_service]
        classes = [first, [n for n in classes[0] if n not in first]]
    for growing in classes:
        left = _water_fill(growing, curves, grant, left, limit, s.lookahead)
    return grant


def _water_fill(growing: Sequence[str], curves: Mapping[str, list[float]], grant: dict[str, int], left: int,
                limit: int, lookahead: int) -> int:
    while left > 0 and growing:  # water-filling on the best per-GPU gain within the lookahead
        best_gain, best_name, best_step = 1e-12, "", 0
        for name in growing:
            curve, g = curves[name], grant[name]
            base = curve[g]
            for step in range(1, min(lookahead, left, limit - g, len(curve) - 1 - g) + 1):
                gain = (curve[g + step] - base) / step
                if gain > best_gain:  # False for nan: a count the job cannot run on is never chosen
                    best_gain, best_name, best_step = gain, name, step
        if not best_step:
            break
        grant[best_name] += best_step
        left -= best_step
    return left
