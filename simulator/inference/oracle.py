"""The hindsight oracle of an inference service: a lower bound on the GPU cost of meeting the SLO.

Time is cut into intervals of ``interval_s``; a schedule holds, in interval ``k``, ``n_k`` replicas of
``tp_k`` GPUs. For every interval and candidate configuration we count the requests arriving in
that interval that *certainly* miss the SLO, simulated optimistically:

- the interval starts from an EMPTY system (no backlog from earlier intervals);
- replicas also present in interval ``k-1`` (same TP) serve from the interval's start; added ones
  only after ``cold_start_s`` (never, when the cold start is longer than the interval);
- only misses that are certain by the interval's end are counted (a request still in flight whose
  latency cannot yet exceed a threshold counts as met).

Then :func:`learners.baselines.oracle.solve` finds the cheapest schedule whose total misses stay within
``(1 - attainment) x requests`` and a Lagrangian lower bound on it. docs/inference-model.md argues why
the counts never exceed what a real policy sees with the same configuration, hence why the bound
holds for every schedule on the oracle's grid.

The per-interval simulation is a plain discrete-event loop over the same
:class:`~simulator.inference.batching.ReplicaEngine` and the same routing rule as the SimPy service
(tests check that both give identical latencies), because thousands of short windows are simulated
and SimPy's per-event overhead would dominate. Results are cached per (interval, TP, warm, total).
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from learners.baselines.oracle import OracleSolution, solve
from simulator.inference.batching import ReplicaEngine
from simulator.inference.perf_model import PerfModel
from simulator.inference.service import SLO
from simulator.inference.traces import Trace

_BOOT, _IDLE, _PREFILL, _DECODE, _STEP_END = range(5)


@dataclass
class _Rep:
    engine: ReplicaEngine
    phase: int = _BOOT
    version: int = 0
    woken: bool = False
    t0: float = 0.0
    step: float = 0.0
    k: int = 0
    admitted: list[int] = field(default_factory=list)


def simulate_window(perf: PerfModel, tp: int, max_batch: int, kv_capacity: int, arrival: Sequence[float],
                    prompt: Sequence[int], output: Sequence[int], ready_at: Sequence[float],
                    horizon_s: float = math.inf, max_prefill_tokens: int = 8192,
                    ) -> tuple[list[float], list[float]]:
    """First-token and completion times (NaN if not reached by ``horizon_s``) of requests served by
    replicas that become ready at ``ready_at`` (0 = warm), starting from an empty system.

    Same discipline as :class:`~simulator.inference.service.InferenceService`: one FCFS queue, an
    arrival wakes the least-loaded ready replica that can admit it (a decoding one at the end of its
    current iteration), prefill before decode.
    """
    n = len(arrival)
    need = [p + o for p, o in zip(prompt, output, strict=True)]
    t_first = [math.nan] * n
    t_done = [math.nan] * n
    reps = [_Rep(ReplicaEngine(perf, tp, max_batch, kv_capacity, prompt, output, max_prefill_tokens, need))
            for _ in ready_at]
    heap: list[tuple[float, int, int, int]] = []  # (time, seq, replica, version)
    seq = 0
    queue: deque[int] = deque()

    def schedule(i: int, t: float) -> None:
        nonlocal seq
        rep = reps[i]
        rep.version += 1
        heapq.heappush(heap, (t, seq, i, rep.version))
        seq += 1

    def decide(i: int, now: float) -> None:
        rep = reps[i]
        eng = rep.engine
        admitted = eng.admit_from(queue) if queue else None
        if admitted:
            rep.phase, rep.admitted = _PREFILL, admitted
            schedule(i, now + eng.prefill_s(admitted))
        elif eng.decoding:
            rep.step = eng.step_s()
            rep.k = eng.steps_to_next_completion()
            rep.phase, rep.t0 = _DECODE, now
            schedule(i, now + rep.k * rep.step)
        else:
            rep.phase = _IDLE

    def nudge(now: float) -> None:
        head = queue[0]
        best, best_load = -1, 1 << 62
        for i, rep in enumerate(reps):
            eng = rep.engine
            if rep.phase != _BOOT and eng.running < best_load and eng.running < eng.max_batch \
                    and need[head] <= eng.kv_free:
                best, best_load = i, eng.running
        if best < 0:
            return
        rep = reps[best]
        if rep.phase == _IDLE and not rep.woken:
            rep.woken = True
            schedule(best, now)
        elif rep.phase == _DECODE:
            rep.phase = _STEP_END
            rep.k = min(rep.k, math.ceil((now - rep.t0) / rep.step - 1e-9))
            schedule(best, rep.t0 + rep.k * rep.step)

    for i, t in enumerate(ready_at):
        schedule(i, t)
    nxt = 0
    while True:
        t_arr = arrival[nxt] if nxt < n else math.inf
        t_ev = heap[0][0] if heap else math.inf
        if t_arr == t_ev == math.inf:
            break
        if t_arr <= t_ev:
            if t_arr > horizon_s:
                break
            queue.append(nxt)
            nxt += 1
            nudge(t_arr)
            continue
        if t_ev > horizon_s:
            break
        now, _, i, version = heapq.heappop(heap)
        rep = reps[i]
        if version != rep.version:
            continue
        eng = rep.engine
        if rep.phase == _PREFILL:
            for req in rep.admitted:
                t_first[req] = now
            for req in eng.start_decoding():
                t_done[req] = now
            if queue and not eng.fits(queue[0]):
                nudge(now)
        elif rep.phase in (_DECODE, _STEP_END):
            for req in eng.advance(rep.k):
                t_done[req] = now
        rep.woken = False
        decide(i, now)
    return t_first, t_done


def certain_misses(arrival: Sequence[float], output: Sequence[int], t_first: Sequence[float],
                   t_done: Sequence[float], slo: SLO, horizon_s: float) -> int:
    """Requests that missed the SLO, or that will whatever happens after ``horizon_s``."""
    a = np.asarray(arrival, dtype=float)
    first = np.asarray(t_first, dtype=float)
    done = np.asarray(t_done, dtype=float)
    out = np.asarray(output, dtype=float)
    # Latencies known so far; for unfinished requests, the least they can still be.
    first_lb = np.where(np.isnan(first), np.maximum(horizon_s, a), first)
    done_lb = np.where(np.isnan(done), np.maximum(horizon_s, a), done)
    miss = np.zeros(a.shape, dtype=bool)
    if slo.ttft_s is not None:
        miss |= (first_lb - a) > slo.ttft_s
    if slo.e2e_s is not None:
        miss |= (done_lb - a) > slo.e2e_s
    if slo.tbt_s is not None:
        with np.errstate(invalid="ignore"):
            tbt_lb = np.where(out > 1, (done_lb - first_lb) / np.maximum(out - 1, 1), 0.0)
        miss |= ~np.isnan(first) & (tbt_lb > slo.tbt_s)
    return int(miss.sum())


@dataclass(frozen=True)
class OracleSettings:
    interval_s: float = 60.0
    """The oracle's decision grid; the bound covers schedules that change only on this grid."""
    min_replicas: int = 0
    max_replicas: int = 8
    tp_degrees: tuple[int, ...] | None = None
    """TP degrees to consider (None: every measured one)."""
    max_batch_size: int = 64
    cold_start_s: float = 60.0
    initial: tuple[int, int] | None = None
    """(tp, replicas) running before the first interval, warm; None lets the oracle pick the best."""
    max_prefill_tokens: int = 8192


@dataclass(frozen=True)
class OracleResult:
    solution: OracleSolution
    states: tuple[tuple[int, int], ...]
    """(tp, replicas) of each state index."""
    schedule: tuple[tuple[int, int], ...]
    interval_s: float
    requests: int
    budget: float
    gpu_hours_lower_bound: float
    gpu_hours: float
    simulations: int

    def as_dict(self) -> dict[str, object]:
        return {"gpu_hours_lower_bound": self.gpu_hours_lower_bound, "gpu_hours": self.gpu_hours,
                "gap_gpu_hours": self.gpu_hours - self.gpu_hours_lower_bound,
                "misses": self.solution.misses, "budget": self.budget, "requests": self.requests,
                "feasible": self.solution.feasible, "simulations": self.simulations,
                "schedule": [list(s) for s in self.schedule]}


class MissTable:
    """Optimistic miss counts per (interval, TP, warm replicas, total replicas), computed lazily."""

    def __init__(self, perf: PerfModel, trace: Trace, slo: SLO, kv_capacity: dict[int, int],
                 settings: OracleSettings) -> None:
        self.perf, self.slo, self.settings = perf, slo, settings
        self.kv_capacity = kv_capacity
        a = np.asarray(trace.arrival_s, dtype=float)
        dt = settings.interval_s
        self.intervals = max(1, math.ceil((a[-1] + 1e-9) / dt)) if len(a) else 1
        bounds = np.searchsorted(a, np.arange(self.intervals + 1) * dt, side="left")
        self._windows = [(int(bounds[k]), int(bounds[k + 1])) for k in range(self.intervals)]
        self.arrival, self.prompt = a, np.asarray(trace.prompt_tokens, dtype=np.int64)
        self.output = np.maximum(np.asarray(trace.output_tokens, dtype=np.int64), 1)
        self._cache: dict[tuple[int, int, int, int], int] = {}
        self.simulations = 0

    def requests_in(self, k: int) -> int:
        lo, hi = self._windows[k]
        return hi - lo

    def misses(self, k: int, tp: int, warm: int, total: int) -> int:
        """Certain misses in interval ``k`` with ``warm`` replicas ready at its start, ``total`` in all."""
        s = self.settings
        if s.cold_start_s >= s.interval_s:
            total = warm  # replicas added at the boundary never become ready inside the interval
        warm = min(warm, total)
        key = (k, tp, warm, total)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        lo, hi = self._windows[k]
        if hi == lo:
            self._cache[key] = 0
            return 0
        t0 = k * s.interval_s
        arrival = (self.arrival[lo:hi] - t0).tolist()
        prompt, output = self.prompt[lo:hi].tolist(), self.output[lo:hi].tolist()
        ready = [0.0] * warm + [s.cold_start_s] * (total - warm)
        first, done = simulate_window(self.perf, tp, s.max_batch_size, self.kv_capacity[tp], arrival, prompt,
                                      output, ready, s.interval_s, s.max_prefill_tokens)
        self.simulations += 1
        value = certain_misses(arrival, output, first, done, self.slo, s.interval_s)
        self._cache[key] = value
        return value

    def full(self, k: int, tp: int, cap: int) -> list[int]:
        """Misses with every replica warm, for replicas min..max, using monotonicity in the count:
        find the fewest replicas with no miss by bisection, then walk down until the cap is reached."""
        s = self.settings
        counts = list(range(s.min_replicas, s.max_replicas + 1))
        out = {c: cap for c in counts}
        lo, hi = 0, len(counts) - 1
        if self.misses(k, tp, counts[hi], counts[hi]) > 0:
            zero_from = len(counts)
        else:
            while lo < hi:  # first index with zero misses
                mid = (lo + hi) // 2
                if self.misses(k, tp, counts[mid], counts[mid]) == 0:
                    hi = mid
                else:
                    lo = mid + 1
            zero_from = lo
        for i in range(zero_from, len(counts)):
            out[counts[i]] = 0
        for i in range(zero_from - 1, -1, -1):
            value = min(cap, self.misses(k, tp, counts[i], counts[i]))
            out[counts[i]] = value
            if value >= cap:
                break  # fewer replicas miss at least as many: all capped
        return [out[c] for c in counts]


def hindsight_oracle(perf: PerfModel, trace: Trace, slo: SLO, kv_capacity: dict[int, int],
                     settings: OracleSettings | None = None) -> OracleResult:
    """Lower bound (and a schedule attaining the upper bound) on the GPU-hours of meeting ``slo``."""
    s = settings or OracleSettings()
    tps = tuple(s.tp_degrees or perf.tp_degrees)
    table = MissTable(perf, trace, slo, kv_capacity, s)
    counts = list(range(s.min_replicas, s.max_replicas + 1))
    states = tuple((tp, n) for tp in tps for n in counts)
    size = len(states)
    requests = len(trace)
    budget = math.floor((1.0 - slo.attainment) * requests + 1e-9)
    cap = budget + 1  # any count above the budget makes a schedule infeasible: its exact value is moot
    k_count = table.intervals
    hours = s.interval_s / 3600.0
    cost = np.array([[tp * n * hours for tp, n in states]] * k_count, dtype=float)
    misses = np.zeros((k_count, size, size), dtype=float)
    for k in range(k_count):
        full = {tp: table.full(k, tp, cap) for tp in tps}
        for j, (tp, n) in enumerate(states):
            for i, (tp_prev, n_prev) in enumerate(states):
                warm = min(n_prev, n) if tp_prev == tp else 0
                if k == 0 and s.initial is None:
                    warm = n  # the oracle may assume it started warm in the best configuration
                if warm == n:
                    value = full[tp][n - s.min_replicas]
                elif warm >= s.min_replicas and \
                        full[tp][warm - s.min_replicas] == full[tp][n - s.min_replicas]:
                    value = full[tp][n - s.min_replicas]  # bounds coincide: no simulation needed
                else:
                    value = min(cap, table.misses(k, tp, warm, n))
                misses[k, i, j] = value
    initial = None
    if s.initial is not None:
        if s.initial not in states:
            raise ValueError(f"initial configuration {s.initial} is outside the oracle's states")
        initial = states.index(s.initial)
    sol = solve(cost, misses, budget, initial=initial)
    schedule = tuple(states[i] for i in sol.schedule)
    return OracleResult(sol, states, schedule, s.interval_s, requests, budget, sol.lower_bound, sol.cost,
                        table.simulations)
