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
                    templates: Sequence[tuple[int, int, int]] | None = None,
                    ) -> tuple[list[float], list[float]]:
    """First-token and completion times (NaN if not reached by ``horizon_s``) of requests served by
    replicas that become ready at ``ready_at`` (0 = warm), starting from an empty system.

    ``templates``: per replica (tp, max_batch, kv_capacity), for a mixed pool (a rolling update);
    None gives every replica ``(tp, max_batch, kv_capacity)``.

    Same discipline as :class:`~simulator.inference.service.InferenceService`: one FCFS queue, an
    arrival wakes the least-loaded ready replica that can admit it (a decoding one at the end of its
    current iteration), prefill before decode.
    """
    n = len(arrival)
    need = [p + o for p, o in zip(prompt, output, strict=True)]
    t_first = [math.nan] * n
    t_done = [math.nan] * n
    tmpl = list(templates) if templates is not None else [(tp, max_batch, kv_capacity)] * len(ready_at)
    if len(tmpl) != len(ready_at):
        raise ValueError(f"templates has {len(tmpl)} entries for {len(ready_at)} replicas")
    reps = [_Rep(ReplicaEngine(perf, t, b, kv, prompt, output, max_prefill_tokens, need)) for t, b, kv in tmpl]
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
    batch_sizes: tuple[int, ...] | None = None
    """``max_batch_size`` values to consider (None: only ``max_batch_size``). A policy that moves the
    batch-size knob is covered only when every value it can choose is listed here."""
    max_batch_size: int = 64
    cold_start_s: float = 60.0
    initial: tuple[int, ...] | None = None
    """(tp, replicas) or (tp, batch, replicas) running before the first interval, warm; None lets the
    oracle pick the best."""
    max_prefill_tokens: int = 8192
    max_surge: float = 0.25
    max_unavailable: float = 0.25
    """The service's rolling-update bounds (Deployment defaults): they decide how long old pods of a
    previous template keep serving, and being paid for, after a TP or batch-size change."""
    slack_misses: int = 0
    """Misses added to the budget: a repair for premise violations measured by
    :func:`simulator.inference.oracle_replay.check_premises` (the bound stays a bound if the optimistic
    counts undercount by at most this many in total)."""

    @property
    def batches(self) -> tuple[int, ...]:
        return tuple(int(b) for b in (self.batch_sizes or (self.max_batch_size,)))


@dataclass(frozen=True)
class OracleResult:
    solution: OracleSolution
    states: tuple[tuple[int, int, int], ...]
    """(tp, max_batch_size, replicas) of each state index."""
    schedule: tuple[tuple[int, int, int], ...]
    """The cheapest feasible schedule found, one state per interval (empty when infeasible)."""
    interval_s: float
    requests: int
    budget: float
    gpu_hours_lower_bound: float
    """No policy on the grid meets the SLO for less (inf when the SLO is infeasible)."""
    gpu_hours: float
    """Nominal cost of :attr:`schedule` (tp x replicas x time; inf when infeasible)."""
    simulations: int

    @property
    def feasible(self) -> bool:
        return self.solution.feasible

    def as_dict(self) -> dict[str, object]:
        if not self.feasible:
            return {"feasible": False, "infeasible": True, "gpu_hours_lower_bound": None, "gpu_hours": None,
                    "fewest_misses": self.solution.misses, "budget": self.budget, "requests": self.requests,
                    "interval_s": self.interval_s, "simulations": self.simulations, "schedule": []}
        return {"feasible": True, "gpu_hours_lower_bound": self.gpu_hours_lower_bound, "gpu_hours": self.gpu_hours,
                "gap_gpu_hours": self.gpu_hours - self.gpu_hours_lower_bound,
                "misses": self.solution.misses, "budget": self.budget, "requests": self.requests,
                "interval_s": self.interval_s, "simulations": self.simulations,
                "schedule": [list(s) for s in self.schedule]}


Template = tuple[int, int]
"""(tp, max_batch_size): what a pod template fixes; changing it rolls the pods."""


class MissTable:
    """Optimistic miss counts per (interval, template, warm replicas, total replicas), computed lazily."""

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
        self._cache: dict[tuple, int] = {}
        self.simulations = 0

    def requests_in(self, k: int) -> int:
        lo, hi = self._windows[k]
        return hi - lo

    def _window(self, k: int) -> tuple[list[float], list[int], list[int]]:
        lo, hi = self._windows[k]
        t0 = k * self.settings.interval_s
        return (self.arrival[lo:hi] - t0).tolist(), self.prompt[lo:hi].tolist(), self.output[lo:hi].tolist()

    def _count(self, k: int, replicas: list[tuple[int, int, float]]) -> int:
        """Certain misses in interval ``k`` served by ``replicas`` = [(tp, batch, ready_at)], empty start."""
        s = self.settings
        arrival, prompt, output = self._window(k)
        tmpl = [(tp, b, self.kv_capacity[tp]) for tp, b, _ in replicas]
        first, done = simulate_window(self.perf, 1, 1, 1, arrival, prompt, output, [r[2] for r in replicas],
                                      s.interval_s, s.max_prefill_tokens, templates=tmpl)
        self.simulations += 1
        return certain_misses(arrival, output, first, done, self.slo, s.interval_s)

    def misses(self, k: int, tmpl: Template | int, warm: int, total: int) -> int:
        """Certain misses in interval ``k`` with ``warm`` replicas of ``tmpl`` ready at its start,
        ``total`` in all (the others ready after the cold start). An int ``tmpl`` is a TP degree at
        the settings' ``max_batch_size``."""
        s = self.settings
        tp, batch = (tmpl, s.max_batch_size) if isinstance(tmpl, int) else tmpl
        if s.cold_start_s >= s.interval_s:
            total = warm  # replicas added at the boundary never become ready inside the interval
        warm = min(warm, total)
        key = (k, tp, batch, warm, total)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        value = 0
        if self.requests_in(k):
            value = self._count(k, [(tp, batch, 0.0)] * warm + [(tp, batch, s.cold_start_s)] * (total - warm))
        self._cache[key] = value
        return value

    def rolling(self, k: int, old: Template, n_old: int, new: Template, n_new: int) -> int:
        """Certain misses in an interval that starts a rolling update ``old`` -> ``new``.

        A Deployment at the change deletes old pods while more than ``n_new - floor(unavailable x
        n_new)`` are ready, so at most ``kept = min(n_old, n_new - floor(unavailable x n_new))`` old
        pods serve; they are counted warm for the whole interval, and (when the cold start is shorter
        than the interval) all ``n_new`` new pods from the cold start on: more capacity than the roll has."""
        s = self.settings
        kept = min(n_old, n_new - math.floor(s.max_unavailable * n_new))
        if s.cold_start_s >= s.interval_s or n_new == 0:
            return self.misses(k, old, kept, kept)
        key = ("roll", k, old, kept, new, n_new)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        value = 0
        if self.requests_in(k):
            value = self._count(k, [(*old, 0.0)] * kept + [(*new, s.cold_start_s)] * n_new)
        self._cache[key] = value
        return value

    def full(self, k: int, tmpl: Template | int, cap: int) -> list[int]:
        """Misses with every replica warm, for replicas min..max, using monotonicity in the count:
        find the fewest replicas with no miss by bisection, then walk down until the cap is reached."""
        s = self.settings
        counts = list(range(s.min_replicas, s.max_replicas + 1))
        out = {c: cap for c in counts}
        lo, hi = 0, len(counts) - 1
        if self.misses(k, tmpl, counts[hi], counts[hi]) > 0:
            zero_from = len(counts)
        else:
            while lo < hi:  # first index with zero misses
                mid = (lo + hi) // 2
                if self.misses(k, tmpl, counts[mid], counts[mid]) == 0:
                    hi = mid
                else:
                    lo = mid + 1
            zero_from = lo
        for i in range(zero_from, len(counts)):
            out[counts[i]] = 0
        for i in range(zero_from - 1, -1, -1):
            value = min(cap, self.misses(k, tmpl, counts[i], counts[i]))
            out[counts[i]] = value
            if value >= cap:
                break  # fewer replicas miss at least as many: all capped
        return [out[c] for c in counts]


def switch_costs(states: Sequence[tuple[int, int, int]], s: OracleSettings) -> np.ndarray:
    """``d[i, j]``, added to the cost of state ``j`` in an interval whose predecessor ran state ``i``,
    so that what the oracle charges for a change interval is what a real rolling update certainly holds.

    Same template: nothing (pods are created or deleted at the boundary; the new state is paid in full).
    Template change (TP or batch size): the change interval is charged only for the old pods the
    Deployment keeps, ``tp_old x min(n_old, n - floor(unavailable x n))``, during ``min(interval,
    cold start)`` -- the same pods :meth:`MissTable.rolling` counts as serving. Entries can be
    negative (a change to a larger state); the DP allows it.
    """
    hours = s.interval_s / 3600.0
    size = len(states)
    d = np.zeros((size, size), dtype=float)
    for j, (tp, b, n) in enumerate(states):
        kept = max(n - math.floor(s.max_unavailable * n), 0)
        for i, (tp0, b0, n0) in enumerate(states):
            if (tp0, b0) == (tp, b):
                continue
            held = tp0 * min(n0, kept) * min(s.interval_s, s.cold_start_s) / 3600.0
            d[i, j] = held - tp * n * hours
    return d


def hindsight_oracle(perf: PerfModel, trace: Trace, slo: SLO, kv_capacity: dict[int, int],
                     settings: OracleSettings | None = None) -> OracleResult:
    """Lower bound (and a schedule attaining the upper bound) on the GPU-hours of meeting ``slo``.

    When even the fewest-miss schedule misses more than the budget (optimistically counted), no
    policy on the grid can meet the SLO: the result says so (``feasible`` False, bound and cost inf),
    it never reports a bound for an SLO nothing meets.
    """
    s = settings or OracleSettings()
    tps = tuple(s.tp_degrees or perf.tp_degrees)
    templates = [(int(tp), b) for tp in tps for b in s.batches]
    table = MissTable(perf, trace, slo, kv_capacity, s)
    counts = list(range(s.min_replicas, s.max_replicas + 1))
    states = tuple((tp, b, n) for tp, b in templates for n in counts)
    size = len(states)
    requests = len(trace)
    budget = math.floor((1.0 - slo.attainment) * requests + 1e-9) + int(s.slack_misses)
    cap = budget + 1  # any count above the budget makes a schedule infeasible: its exact value is moot
    k_count = table.intervals
    hours = s.interval_s / 3600.0
    cost = np.array([[tp * n * hours for tp, _, n in states]] * k_count, dtype=float)
    misses = np.zeros((k_count, size, size), dtype=np.float32)
    for k in range(k_count):
        full = {t: table.full(k, t, cap) for t in templates}
        for j, (tp, b, n) in enumerate(states):
            col = full[(tp, b)][n - s.min_replicas]
            for i, (tp0, b0, n0) in enumerate(states):
                if k == 0 and s.initial is None:
                    value = col  # the oracle may assume it started warm in the best configuration
                elif (tp0, b0) != (tp, b):
                    value = min(cap, table.rolling(k, (tp0, b0), n0, (tp, b), n))
                else:
                    warm = min(n0, n)
                    if warm == n or (warm >= s.min_replicas and full[(tp, b)][warm - s.min_replicas] == col):
                        value = col  # bounds coincide: no simulation needed
                    else:
                        value = min(cap, table.misses(k, (tp, b), warm, n))
                misses[k, i, j] = value
    initial = None
    if s.initial is not None:
        init = tuple(int(v) for v in s.initial)
        init = (init[0], s.batches[-1], init[1]) if len(init) == 2 else init
        if init not in states:
            raise ValueError(f"initial configuration {s.initial} is outside the oracle's states")
        initial = states.index(init)
    sol = solve(cost, misses, budget, initial=initial, switch=switch_costs(states, s))
    if not sol.feasible:
        return OracleResult(sol, states, (), s.interval_s, requests, budget, math.inf, math.inf, table.simulations)
    schedule = tuple(states[i] for i in sol.schedule)
    nominal = float(sum(tp * n * hours for tp, _, n in schedule))
    return OracleResult(sol, states, schedule, s.interval_s, requests, budget, sol.lower_bound, nominal,
                        table.simulations)
