"""The hindsight oracle's optimiser: the cheapest schedule that keeps SLO misses within a budget.

Given, for every interval ``k`` and configuration (state) ``s``, the cost ``c[k, s]`` of holding
``s`` for the interval and the number of requests ``m[k, s_prev, s]`` that miss their SLO in that
interval when the previous interval ran ``s_prev`` (cold starts make the transition matter), find

    min_x  sum_k c[k, x_k]   subject to   sum_k m[k, x_{k-1}, x_k] <= B.

The constraint couples all intervals, so dynamic programming alone does not apply. Lagrangian
relaxation moves it into the objective with a price ``lam >= 0`` per miss:

    L(lam) = min_x sum_k (c[k, x_k] + lam * m[k, x_{k-1}, x_k]) - lam * B,

which *is* a shortest path over (interval, state), solved exactly by DP in O(K S^2). By weak duality
every ``L(lam)`` is a lower bound on the constrained optimum: for any feasible ``x``,
``C(x) >= C(x) + lam (M(x) - B) >= L(lam)``. ``L`` is concave in ``lam``; bisection on ``lam`` looks for
the price at which the DP's path crosses the budget. Every path the DP returns with
``M(x) <= B`` is feasible, so its cost is an upper bound. :func:`solve` reports both bounds and the gap
(the duality gap of this integer program plus the bisection's tolerance).

Pure numpy, no I/O: the simulator computes ``c`` and ``m`` (simulator/inference/oracle.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OracleSolution:
    schedule: tuple[int, ...]
    """State index per interval of the best feasible schedule found (empty when none is feasible)."""
    cost: float
    """Its cost: an upper bound on the optimum (inf when no feasible schedule exists)."""
    misses: float
    lower_bound: float
    """max over the evaluated prices of the Lagrangian dual: no schedule meeting the budget costs less."""
    multiplier: float
    """The price per miss at which the lower bound was attained."""
    budget: float
    feasible: bool

    @property
    def gap(self) -> float:
        return self.cost - self.lower_bound

    @property
    def relative_gap(self) -> float:
        return self.gap / self.cost if self.cost > 0 and math.isfinite(self.cost) else 0.0


def _as_transitions(misses: np.ndarray, states: int) -> np.ndarray:
    """Accept m[k, s] (no cold-start effect) or m[k, s_prev, s]; return the (K, S, S) form."""
    m = np.asarray(misses, dtype=float)
    if m.ndim == 2:
        return np.broadcast_to(m[:, None, :], (m.shape[0], states, states))
    if m.ndim == 3 and m.shape[1] == m.shape[2] == states:
        return m
    raise ValueError(f"misses must have shape (K, S) or (K, S, S) with S={states}, got {m.shape}")


def _switch(switch: np.ndarray | None, states: int) -> np.ndarray:
    if switch is None:
        return np.zeros((states, states))
    d = np.asarray(switch, dtype=float)
    if d.shape != (states, states):
        raise ValueError(f"switch costs must have shape ({states}, {states}), got {d.shape}")
    return d


def shortest_path(cost: np.ndarray, misses: np.ndarray, lam: float,
                  initial: int | None = None, switch: np.ndarray | None = None) -> tuple[np.ndarray, float, float]:
    """The schedule minimising sum(c + d + lam * m): (states per interval, its cost, its misses).

    ``initial``: the state before interval 0 (None: the cheapest of all, which only lowers bounds).
    ``switch``: ``d[s_prev, s]`` added to the cost of entering ``s`` from ``s_prev`` (may be negative: the
    oracle uses it to charge a rolling update only what it certainly holds).
    """
    c = np.asarray(cost, dtype=float)
    k_count, states = c.shape
    m = _as_transitions(misses, states)
    d = _switch(switch, states)
    first = m[0][initial] if initial is not None else m[0].min(axis=0)
    value = c[0] + lam * first + (d[initial] if initial is not None else 0.0)
    back = np.zeros((k_count, states), dtype=np.int64)
    for k in range(1, k_count):
        total = value[:, None] + d + lam * m[k]  # [s_prev, s]
        back[k] = np.argmin(total, axis=0)
        value = total[back[k], np.arange(states)] + c[k]
    path = np.zeros(k_count, dtype=np.int64)
    path[-1] = int(np.argmin(value))
    for k in range(k_count - 1, 0, -1):
        path[k - 1] = back[k, path[k]]
    path_cost = float(c[np.arange(k_count), path].sum() + sum(d[path[k - 1], path[k]] for k in range(1, k_count))
                      + (d[initial, path[0]] if initial is not None else 0.0))
    path_misses = float(first[path[0]] + sum(m[k, path[k - 1], path[k]] for k in range(1, k_count)))
    return path, path_cost, path_misses


def solve(cost: np.ndarray, misses: np.ndarray, budget: float, initial: int | None = None,
          iterations: int = 60, rel_tol: float = 1e-9, switch: np.ndarray | None = None) -> OracleSolution:
    """Min-cost schedule with total misses <= ``budget``, and a Lagrangian lower bound on it.

    Infeasible (even the fewest-miss schedule exceeds the budget): ``feasible`` False, ``cost`` and
    ``lower_bound`` inf: no schedule meets the budget, so the cheapest one that does costs +inf."""
    c = np.asarray(cost, dtype=float)
    if c.ndim != 2 or c.size == 0:
        raise ValueError(f"cost must have shape (K, S) with K, S >= 1, got {c.shape}")
    if np.any(c < 0) or np.any(np.asarray(misses) < 0):
        raise ValueError("costs and miss counts must be non-negative")
    best: tuple[np.ndarray, float, float] | None = None
    lower, lower_lam = -math.inf, 0.0

    def evaluate(lam: float) -> tuple[np.ndarray, float, float]:
        nonlocal best, lower, lower_lam
        path, pc, pm = shortest_path(c, misses, lam, initial, switch)
        dual = pc + lam * pm - lam * budget
        if dual > lower:
            lower, lower_lam = dual, lam
        if pm <= budget and (best is None or pc < best[1]):
            best = (path, pc, pm)
        return path, pc, pm

    _, _, m0 = evaluate(0.0)
    if m0 > budget:
        # Raise the price until the path meets the budget; if even the fewest-miss path cannot, stop.
        fewest = shortest_path(np.zeros_like(c), misses, 1.0, initial)[2]
        if fewest > budget:
            return OracleSolution((), math.inf, fewest, math.inf, math.inf, budget, False)
        lo, hi = 0.0, max(1e-9, float(c.max() + np.abs(_switch(switch, c.shape[1])).max()) / max(1.0, budget))
        for _ in range(200):
            if evaluate(hi)[2] <= budget:
                break
            lo, hi = hi, hi * 4.0
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            if evaluate(mid)[2] > budget:
                lo = mid
            else:
                hi = mid
            if hi - lo <= rel_tol * hi:
                break
    assert best is not None
    path, pc, pm = best
    return OracleSolution(tuple(int(s) for s in path), pc, pm, min(lower, pc), lower_lam, budget, True)


def brute_force(cost: np.ndarray, misses: np.ndarray, budget: float,
                initial: int | None = None, switch: np.ndarray | None = None) -> tuple[tuple[int, ...], float]:
    """Exact optimum by enumeration (tests only: S**K schedules)."""
    from itertools import product

    c = np.asarray(cost, dtype=float)
    k_count, states = c.shape
    m = _as_transitions(misses, states)
    d = _switch(switch, states)
    best: tuple[tuple[int, ...], float] = ((), math.inf)
    for x in product(range(states), repeat=k_count):
        first = m[0][initial][x[0]] if initial is not None else m[0][:, x[0]].min()
        total_m = first + sum(m[k, x[k - 1], x[k]] for k in range(1, k_count))
        if total_m <= budget:
            total_c = float(sum(c[k, x[k]] for k in range(k_count)) + sum(d[x[k - 1], x[k]] for k in range(1, k_count))
                            + (d[initial, x[0]] if initial is not None else 0.0))
            if total_c < best[1]:
                best = (x, total_c)
    return best
