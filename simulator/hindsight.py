"""The best static configuration in hindsight: the cheapest fixed allocation that met the SLO on the very
trace the policies saw, found by simulating candidates.

Every inference report carries it, because a hand-sized static deployment can beat every adaptive policy
(on one real trace, one met the SLO at 0.25x their GPU-hours) and a table without that reference hides it.
It is *hindsight*: it knows the whole trace in advance, so no policy could have chosen it up front.

Search (single-service scenarios): a fixed configuration's cost is known without simulating
(replicas x GPUs per replica x duration), and for a fixed (GPUs per replica, batch) more replicas never
hurt the SLO, so for each (TP, batch) the fewest replicas that meet the SLO on every seed is found by
bisection, only below the cheapest cost found so far (one simulation rules a whole (TP, batch) out).
Batches tried: the service's initial batch, the knob's lower and upper bounds, not every value of the knob,
so the answer is the cheapest *of what was searched*, and the note names that space. Pods start warm at the
candidate configuration, and the run drains like every other.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from simulator.results import RunResult
from simulator.scenario import Scenario
from simulator.workloads import PolicyRun, build_services, simulate

LABEL = "best static in hindsight"
MAX_SIMULATIONS = 40
"""A bound on the search's cost (each candidate is a full run per seed); reached, the answer is
marked as the best found, not the best."""


@dataclass
class Hindsight:
    config: dict[str, float] | None
    runs: list[RunResult] = field(default_factory=list)
    simulations: int = 0
    exhausted: bool = False
    note: str = ""
    searched: dict[str, list[float]] = field(default_factory=dict)
    """The space searched: the replicas range (lowest, highest; fewer where the cluster fits fewer), and the
    GPUs per replica and batch sizes tried."""
    untried_batches: int = 0
    """Values of the batch knob the search did not try."""


def _candidate(scenario: Scenario, config: dict[str, float]) -> Scenario:
    raw = copy.deepcopy(scenario.raw)
    raw["inference"][0]["initial"] = dict(config)
    return dataclasses.replace(scenario, raw=raw)


def best_static(scenario: Scenario, seeds: Sequence[int], max_simulations: int = MAX_SIMULATIONS,
                tick: Callable[[float], None] | None = None) -> Hindsight:
    """Cheapest fixed (replicas, GPUs per replica, batch) meeting the SLO on every seed, or why there is none."""
    if scenario.training or len(scenario.inference) != 1:
        return Hindsight(None, note=f"{LABEL}: computed for scenarios with one inference service and no "
                                    "training; not available here.")
    svc = build_services(scenario)[0]
    knobs = {k.name: k for k in svc.space.knobs}
    c = scenario.raw["cluster"]
    cluster_gpus = int(c["nodes"]) * int(c["gpus_per_node"])
    rep = knobs["replicas"]
    lo_r, hi_r = max(1, int(rep.lower)), int(rep.upper)
    batch = knobs["max_batch_size"]
    batches = sorted({float(batch.default), float(batch.lower), float(batch.upper)})
    tps = sorted(knobs["gpus_per_replica"].values, reverse=True)
    state = Hindsight(None, searched={"replicas": [float(lo_r), float(hi_r)],
                                      "gpus_per_replica": [float(t) for t in sorted(tps)], "max_batch_size": batches},
                      untried_batches=batch.size - len(batches))
    best_cost: float = float("inf")
    cache: dict[tuple[float, float, float], list[RunResult] | None] = {}

    def meets(tp: float, b: float, r: int) -> list[RunResult] | None:
        key = (tp, b, float(r))
        if key in cache:
            return cache[key]
        config = {"replicas": float(r), "gpus_per_replica": tp, "max_batch_size": b}
        variant = _candidate(scenario, config)
        prun = PolicyRun(f"{LABEL} ({r} x TP{tp:g}, batch {b:g})", "static", {"config": config}, group=LABEL)
        runs: list[RunResult] | None = []
        for seed in seeds:
            if state.simulations >= max_simulations:
                state.exhausted = True
                cache[key] = None
                return None
            state.simulations += 1
            t0 = time.perf_counter()
            run = simulate(variant, prun, seed, tick=tick)
            run.wall_s = time.perf_counter() - t0
            if not run.meets_slo:
                runs = None
                break
            runs.append(run)
        cache[key] = runs
        return runs

    for tp in tps:
        top = min(hi_r, cluster_gpus // int(tp))
        for b in batches:
            cheaper = min(top, int((best_cost - 1e-9) // tp)) if best_cost < float("inf") else top
            if cheaper < lo_r or meets(tp, b, cheaper) is None:
                continue
            lo, hi = lo_r, cheaper  # hi meets; find the fewest replicas that do
            while lo < hi:
                mid = (lo + hi) // 2
                if meets(tp, b, mid) is not None:
                    hi = mid
                else:
                    lo = mid + 1
            best_cost = hi * tp
            state.config = {"replicas": float(hi), "gpus_per_replica": tp, "max_batch_size": b}
            state.runs = cache[(tp, b, float(hi))] or []
    state.note = _note(state)
    return state


def _space(searched: dict[str, list[float]]) -> str:
    """The searched space in words: "replicas 1-16 x TP {4, 8} x batch {16, 64}"."""
    def values(key: str) -> str:
        return "{" + ", ".join(f"{v:g}" for v in searched[key]) + "}"

    lo, hi = searched["replicas"]
    return (f"replicas {lo:g}-{hi:g} (as many as the cluster fits) x TP {values('gpus_per_replica')} x batch "
            f"{values('max_batch_size')}")


def _note(state: Hindsight) -> str:
    """What the search found, and the space it searched: only some batch sizes are tried, so "the cheapest"
    is the cheapest of that space, not of every configuration the knobs allow."""
    tried = f"{state.simulations} simulations"
    where = f"among {_space(state.searched)}"
    if state.untried_batches:
        where += (f" (batches: the initial one and the knob's bounds; its {state.untried_batches} other "
                  f"value{'s' if state.untried_batches > 1 else ''} were not tried)")
    if state.config is None:
        return (f"{LABEL}: no fixed configuration {where} met the SLO on every seed "
                f"({tried}{', search budget reached' if state.exhausted else ''}).")
    cfg = state.config
    what = "the cheapest found before the search budget ran out" if state.exhausted else "the cheapest"
    return (f"{LABEL}: {cfg['replicas']:.0f} x TP{cfg['gpus_per_replica']:.0f} (batch {cfg['max_batch_size']:.0f}) "
            f"is {what} fixed configuration that met the SLO on every seed {where} ({tried}). It knew the whole "
            "trace in advance: a reference, not a policy.")
