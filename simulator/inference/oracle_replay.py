"""The oracle's two halves in the full simulator: its premises checked, its schedule replayed.

:func:`simulator.inference.oracle.hindsight_oracle` gives a lower bound on the GPU-hours of meeting
an SLO, built from per-interval *optimistic* miss counts, and the cheapest schedule it found. This
module

- builds the oracle of a scenario's service with every knob a policy may move (:func:`oracle_of`):
  replicas, the TP degrees and every ``max_batch_size`` value of the scenario's knob grid;
- **replays** that schedule in the SimPy service (:func:`replay`: a process applies each interval's
  configuration at its boundary, through the same ``apply`` port a policy uses) and reports real SLO
  attainment and GPU-hours: an *achievable* clairvoyant schedule, an upper bound on the best possible.
  Where the replay misses the SLO, :func:`cheapest_headroom` adds replicas to every interval until it
  passes. The bound and the passing replay bracket the true optimum;
- **checks the premises directly** (:func:`check_premises`): for a configuration held from the start,
  the optimistic count of each interval must not exceed the misses the full simulator shows among the
  requests that arrived in that interval. Violations are counted, not hidden; their total excess can
  be fed back as ``OracleSettings.slack_misses`` (a bound with a larger budget is lower, so still a
  bound if the optimism fails by at most that much).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import simpy

from learners.space import ConfigSpace
from simulator.inference import InferenceService, PerfModel, ServiceSettings, Trace
from simulator.inference.oracle import OracleResult, OracleSettings, hindsight_oracle
from simulator.inference.service import SLO
from simulator.results import RunResult
from simulator.scenario import Scenario

State = tuple[int, int, int]
"""(gpus_per_replica, max_batch_size, replicas)."""


def oracle_settings(scenario: Scenario, spec: Mapping[str, Any], space: ConfigSpace,
                    interval_s: float | None = None, slack_misses: int = 0) -> OracleSettings:
    """The oracle over every value of every knob of the service's space (batch size included)."""
    knobs = {k.name: k for k in space.knobs}
    batch = knobs["max_batch_size"]
    return OracleSettings(
        interval_s=float(interval_s or scenario.control_interval_s),
        min_replicas=int(knobs["replicas"].lower), max_replicas=int(knobs["replicas"].upper),
        tp_degrees=tuple(int(v) for v in knobs["gpus_per_replica"].values),
        batch_sizes=tuple(sorted({int(v) for v in batch.values})), max_batch_size=int(batch.upper),
        cold_start_s=float(spec.get("cold_start_s", 60.0)), slack_misses=slack_misses)


def kv_capacities(spec: Mapping[str, Any], tps: Sequence[int]) -> dict[int, int]:
    kv = ServiceSettings(model=spec.get("model", "llama2-70b"))
    return {int(tp): kv.kv_capacity(int(tp)) for tp in tps}


@dataclass
class ServiceOracle:
    name: str
    result: OracleResult
    settings: OracleSettings
    wall_s: float


def oracle_of(scenario: Scenario, seed: int, slack: Mapping[str, int] | None = None) -> list[ServiceOracle]:
    """The oracle of every inference service of ``scenario`` on ``seed``'s trace."""
    import time

    from simulator.workloads import _build_service, _slo

    out = []
    for spec in scenario.inference:
        t0 = time.perf_counter()
        svc = _build_service(scenario, spec, seed)
        settings = oracle_settings(scenario, spec, svc.space, slack_misses=(slack or {}).get(spec["name"], 0))
        res = hindsight_oracle(svc.perf, svc.trace, _slo(spec), kv_capacities(spec, settings.tp_degrees or ()),
                               settings)
        out.append(ServiceOracle(spec["name"], res, settings, time.perf_counter() - t0))
    return out


def oracle_run(scenario: Scenario, label: str, seed: int) -> RunResult:
    """The oracle as a row of ``autocm sim``'s table: the summed lower bound of every service, or,
    when some service's SLO is infeasible (even the fewest-miss schedule exceeds the budget), a row
    labelled infeasible with no bound (GPU-hours NaN) and ``meets_slo`` False."""
    oracles = oracle_of(scenario, seed)
    notes = []
    for o in oracles:
        r = o.result
        if r.feasible:
            notes.append(f"{o.name}: lower bound {r.gpu_hours_lower_bound:.2f} GPU-h, best schedule "
                         f"{r.gpu_hours:.2f} GPU-h, {r.simulations} interval simulations "
                         f"(covers policies changing configuration every {r.interval_s:g} s or less often)")
        else:
            notes.append(f"{o.name}: SLO infeasible: even the schedule with the fewest misses has "
                         f"{r.solution.misses:.0f} > budget {r.budget:.0f} (optimistically counted)")
    from simulator.workloads import ORACLE

    target = min(float(s["slo"]["attainment"]) for s in scenario.inference)
    if not all(o.result.feasible for o in oracles):
        # meets_slo False is a finding here: no schedule on the grid meets the SLO
        metrics = {"gpu_hours": math.nan, "slo_target": target, "oracle_infeasible": 1.0}
        return RunResult(label + " (infeasible SLO)", ORACLE, {}, seed, metrics, False, {}, notes=notes)
    # No slo_attainment: the bound is computed for the target, nothing is measured; meets_slo stays None.
    metrics = {"gpu_hours": sum(o.result.gpu_hours_lower_bound for o in oracles),
               "oracle_schedule_gpu_hours": sum(o.result.gpu_hours for o in oracles), "slo_target": target}
    return RunResult(label + " (lower bound)", ORACLE, {}, seed, metrics, None, {}, notes=notes)


def _applier(env: simpy.Environment, service: InferenceService, plan: Sequence[dict[str, float]],
             interval_s: float):
    for config in plan[1:]:
        yield env.timeout(interval_s)
        if config != service.config:
            service.apply(service.name, config, "oracle schedule")


def _config(state: State, space: ConfigSpace, headroom: int) -> dict[str, float]:
    tp, batch, n = state
    return space.clip({"replicas": float(n + headroom), "gpus_per_replica": float(tp),
                       "max_batch_size": float(batch)})


def replay(scenario: Scenario, schedules: Mapping[str, Sequence[State]], seed: int, interval_s: float,
           headroom: int | Mapping[str, int] = 0, label: str = "oracle (replayed)",
           tick: Callable[[float], None] | None = None) -> RunResult:
    """Run the services of ``scenario`` on ``seed`` with each service's configuration set, at every
    interval boundary, to its schedule's state (plus ``headroom`` replicas, per service when a mapping,
    clipped to the knob's max). The first state is the warm initial configuration (the oracle assumes
    the same). Metrics include ``slo_attainment[<service>]`` per service."""
    from simulator.workloads import (
        _build_service,
        _drain,
        _inference_metrics,
        _pool,
        _ticker,
        drain_grace_s,
        duration_of,
        service_settings,
    )

    if scenario.raw.get("failures", {}).get("enabled") or scenario.raw.get("interference", {}).get("enabled"):
        raise ValueError(f"{scenario.path}: the oracle replay models neither failures nor interference")
    env = simpy.Environment()
    pool = _pool(scenario)
    services = []
    for spec in scenario.inference:
        svc = _build_service(scenario, spec, seed)
        states = schedules[spec["name"]]
        if not states:
            raise ValueError(f"{scenario.path}: no oracle schedule for service {spec['name']} (infeasible SLO)")
        extra = headroom.get(spec["name"], 0) if isinstance(headroom, Mapping) else headroom
        plan = [_config(s, svc.space, extra) for s in states]
        settings = replace(service_settings(spec, svc.space, "static"), initial=plan[0])
        svc.service = InferenceService(env, pool, svc.perf, svc.trace, settings, seed)
        env.process(_applier(env, svc.service, plan, interval_s))
        services.append(svc)
    if tick is not None:
        env.process(_ticker(env, tick, scenario.control_interval_s))
    duration = duration_of(scenario)
    env.run(until=duration)
    _drain(env, services, duration + drain_grace_s(scenario))  # as simulate() does: in-flight requests finish
    c = scenario.raw["cluster"]
    sums = [svc.service.summary() for svc in services]
    metrics, series, meets = _inference_metrics(services, sums, env.now, int(c["nodes"]) * int(c["gpus_per_node"]))
    heads = dict(headroom) if isinstance(headroom, Mapping) else {s["name"]: headroom for s in scenario.inference}
    metrics["headroom_replicas"] = float(sum(heads.values()))
    for svc, summary in zip(services, sums, strict=True):
        metrics[f"slo_attainment[{svc.spec['name']}]"] = float(summary["slo_attainment"])
        metrics[f"meets_slo[{svc.spec['name']}]"] = float(summary["slo_attainment"] >= svc.objective.attainment)
    return RunResult(label, "oracle-replay", {"headroom": heads}, seed, metrics, meets, series)


@dataclass
class Bracket:
    """The oracle's lower bound and the cheapest replayed schedule that met the SLO, on one seed."""

    seed: int
    lower_bound: float
    """Sum over services of the oracle's bound; inf when some service's SLO is infeasible."""
    schedule_gpu_hours: float
    replays: list[RunResult]
    passing: RunResult | None
    """The first replay (headroom 0, 1, 2, ...) that met every service's SLO; None if none did."""
    oracles: list[ServiceOracle]

    @property
    def feasible(self) -> bool:
        return math.isfinite(self.lower_bound)

    @property
    def upper(self) -> float:
        return self.passing.metrics["gpu_hours"] if self.passing is not None else math.nan

    @property
    def gap(self) -> float:
        """(achievable - bound) / achievable: how far apart the two sides of the bracket are."""
        u = self.upper
        return (u - self.lower_bound) / u if math.isfinite(u) and u > 0 and self.feasible else math.nan

    def as_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "feasible": self.feasible,
                "lower_bound_gpu_hours": self.lower_bound if self.feasible else None,
                "schedule_gpu_hours": self.schedule_gpu_hours if self.feasible else None,
                "replays": [{"schedule": r.settings.get("schedule"), "headroom": r.settings.get("headroom"),
                             "gpu_hours": r.metrics["gpu_hours"],
                             "slo_attainment": r.metrics["slo_attainment"], "meets_slo": r.meets_slo}
                            for r in self.replays],
                "passing_headroom": self.passing.settings.get("headroom") if self.passing else None,
                "passing_schedule": self.passing.settings.get("schedule") if self.passing else None,
                "replay_gpu_hours": None if self.passing is None else self.upper,
                "gap": None if math.isnan(self.gap) else self.gap,
                "services": {o.name: {**o.result.as_dict(), "wall_s": o.wall_s} for o in self.oracles}}


def _fixed_template(scenario: Scenario, seed: int, oracle: ServiceOracle, tmpl: tuple[int, int]) -> ServiceOracle:
    """The oracle restricted to one pod template: a schedule that only scales replicas (no rolls)."""
    import time

    from simulator.workloads import _build_service, _slo

    spec = next(s for s in scenario.inference if s["name"] == oracle.name)
    t0 = time.perf_counter()
    svc = _build_service(scenario, spec, seed)
    settings = replace(oracle.settings, tp_degrees=(tmpl[0],), batch_sizes=(tmpl[1],), max_batch_size=tmpl[1])
    res = hindsight_oracle(svc.perf, svc.trace, _slo(spec), kv_capacities(spec, (tmpl[0],)), settings)
    return ServiceOracle(oracle.name, res, settings, time.perf_counter() - t0)


def _candidates(scenario: Scenario, seed: int, oracles: Sequence[ServiceOracle],
                templates: int) -> list[tuple[str, dict[str, tuple[State, ...]]]]:
    """Schedules to replay: the oracle's own, then per service the ``templates`` pod templates its
    schedule uses most, each re-solved without template changes (rolls cost more in the real service
    than the optimistic counts charge, so a schedule that never rolls often replays better)."""
    out = [("oracle schedule", {o.name: o.result.schedule for o in oracles})]
    ranked = []
    for o in oracles:
        use: dict[tuple[int, int], int] = {}
        for tp, b, _ in o.result.schedule:
            use[(tp, b)] = use.get((tp, b), 0) + 1
        ranked.append(sorted(use, key=lambda t: (-use[t], t))[:templates])
    for r in range(templates):
        sched = {}
        for o, tmpls in zip(oracles, ranked, strict=True):
            t = tmpls[min(r, len(tmpls) - 1)]
            fixed = _fixed_template(scenario, seed, o, t)
            sched[o.name] = fixed.result.schedule or o.result.schedule
        label = "fixed template " + ", ".join(f"{o.name}: TP{t[min(r, len(t) - 1)][0]} batch {t[min(r, len(t) - 1)][1]}"
                                              for o, t in zip(oracles, ranked, strict=True))
        if all(sched[o.name] for o in oracles):
            out.append((label, sched))
    return out


def cheapest_headroom(scenario: Scenario, seed: int, oracles: Sequence[ServiceOracle],
                      max_headroom: int = 8, templates: int = 2,
                      tick: Callable[[float], None] | None = None) -> Bracket:
    """Replay the oracle's schedules (its own, and re-solved on its most used fixed templates) with
    0, 1, 2, ... extra replicas per interval until the SLO is met; keep the cheapest that passed."""
    lower = sum(o.result.gpu_hours_lower_bound for o in oracles)
    nominal = sum(o.result.gpu_hours for o in oracles)
    if not all(o.result.feasible for o in oracles):
        return Bracket(seed, math.inf, math.inf, [], None, list(oracles))
    interval = oracles[0].settings.interval_s
    tops = {o.name: o.settings.max_replicas for o in oracles}
    replays: list[RunResult] = []
    passing = None
    for label, schedules in _candidates(scenario, seed, oracles, templates):
        heads = {name: 0 for name in schedules}
        for _ in range(max_headroom * len(heads) + 1):
            run = replay(scenario, schedules, seed, interval, heads, tick=tick)
            run.notes.append(label)
            run.settings["schedule"] = label
            replays.append(run)
            if run.meets_slo:
                if passing is None or run.metrics["gpu_hours"] < passing.metrics["gpu_hours"]:
                    passing = run
                break
            if passing is not None and run.metrics["gpu_hours"] >= passing.metrics["gpu_hours"]:
                break  # already dearer than a passing replay
            # one more replica for every service that missed its SLO (in a shared pool, only those)
            grow = [n for n in heads if not run.metrics[f"meets_slo[{n}]"]
                    and heads[n] < max_headroom and min(x for _, _, x in schedules[n]) + heads[n] < tops[n]]
            if not grow:
                break  # the failing services are at the knob's maximum or the headroom limit
            for n in grow:
                heads[n] += 1
    return Bracket(seed, lower, nominal, replays, passing, list(oracles))


# ----------------------------------------------------------------------------------------- premises

def request_meets(trace: Trace, t_first: np.ndarray, t_done: np.ndarray, slo: SLO) -> np.ndarray:
    """Per request: did it meet every threshold of ``slo``? Unfinished or rejected requests did not."""
    a = np.asarray(trace.arrival_s, dtype=float)
    first, done = np.asarray(t_first, dtype=float), np.asarray(t_done, dtype=float)
    out = np.maximum(np.asarray(trace.output_tokens, dtype=float), 1)
    ok = ~np.isnan(first) & ~np.isnan(done)
    with np.errstate(invalid="ignore"):
        if slo.ttft_s is not None:
            ok &= (first - a) <= slo.ttft_s
        if slo.e2e_s is not None:
            ok &= (done - a) <= slo.e2e_s
        if slo.tbt_s is not None:
            ok &= np.where(out > 1, (done - first) / np.maximum(out - 1, 1), 0.0) <= slo.tbt_s
    return ok


@dataclass(frozen=True)
class PremiseViolation:
    """An interval where the optimistic count exceeded the misses the full simulator showed."""

    interval: int
    state: State
    optimistic: int
    simulated: int


def simulated_misses_per_interval(perf: PerfModel, trace: Trace, slo: SLO, state: State, interval_s: float,
                                  settings: ServiceSettings | None = None, drain_s: float = 3600.0) -> np.ndarray:
    """Misses among the requests arriving in each interval when ``state`` is held, warm, from time 0,
    in the SimPy service (the full simulator, not the oracle's window simulator)."""
    from simulator.cluster import GpuPool

    tp, batch, n = state
    base = settings or ServiceSettings()
    svc_settings = replace(base, slo=slo, initial={"replicas": n, "gpus_per_replica": tp, "max_batch_size": batch})
    env = simpy.Environment()
    per_node = max(8, tp)
    svc = InferenceService(env, GpuPool.uniform(max(1, math.ceil(n * tp / per_node)), per_node), perf, trace,
                           svc_settings)
    env.run(until=trace.duration_s + drain_s)
    miss = ~request_meets(trace, np.asarray(svc.t_first), np.asarray(svc.t_done), slo)
    k = np.minimum((np.asarray(trace.arrival_s) // interval_s).astype(int), math.ceil(trace.duration_s / interval_s))
    return np.bincount(k[miss], minlength=int(k.max()) + 1 if len(k) else 0)


def check_premises(perf: PerfModel, trace: Trace, slo: SLO, kv_capacity: Mapping[int, int],
                   settings: OracleSettings, states: Sequence[State],
                   service: ServiceSettings | None = None) -> list[PremiseViolation]:
    """Per interval and per held configuration: optimistic (window) count <= simulated misses.

    The window count is uncapped here (``misses`` of the table), so every interval is compared."""
    from simulator.inference.oracle import MissTable

    table = MissTable(perf, trace, slo, dict(kv_capacity), settings)
    out = []
    for state in states:
        tp, batch, n = state
        real = simulated_misses_per_interval(perf, trace, slo, state, settings.interval_s, service)
        for k in range(table.intervals):
            opt = table.misses(k, (tp, batch), n, n)
            sim = int(real[k]) if k < len(real) else 0
            if opt > sim:
                out.append(PremiseViolation(k, state, opt, sim))
    return out


def premise_slack(violations: Sequence[PremiseViolation]) -> int:
    """The largest total excess of one configuration: the misses the optimism may be short by."""
    by_state: dict[State, int] = {}
    for v in violations:
        by_state[v.state] = by_state.get(v.state, 0) + v.optimistic - v.simulated
    return max(by_state.values(), default=0)


def premise_report(scenario: Scenario, seed: int, oracles: Sequence[ServiceOracle], max_states: int = 6,
                   repair: bool = True) -> dict[str, Any]:
    """Check the per-interval premise for the states each service's schedule uses most; with ``repair``,
    re-solve the bound with the largest measured excess added to the budget."""
    from simulator.workloads import _build_service, _slo

    out: dict[str, Any] = {}
    for o in oracles:
        if not o.result.feasible:
            continue
        spec = next(s for s in scenario.inference if s["name"] == o.name)
        svc = _build_service(scenario, spec, seed)
        use: dict[State, int] = {}
        for st in o.result.schedule:
            use[st] = use.get(st, 0) + 1
        states = sorted(use, key=lambda st: (-use[st], st))[:max_states]
        settings = replace(o.settings, slack_misses=0)
        viol = check_premises(svc.perf, svc.trace, _slo(spec), kv_capacities(spec, settings.tp_degrees or ()),
                              settings, states)
        slack = premise_slack(viol)
        entry: dict[str, Any] = {"states_checked": [list(s) for s in states], "pairs_checked":
                                 len(states) * math.ceil(svc.trace.duration_s / settings.interval_s),
                                 "violations": len(viol), "slack_misses": slack,
                                 "lower_bound_gpu_hours": o.result.gpu_hours_lower_bound}
        if repair and slack:
            fixed = hindsight_oracle(svc.perf, svc.trace, _slo(spec), kv_capacities(spec, settings.tp_degrees or ()),
                                     replace(settings, slack_misses=slack))
            entry["repaired_lower_bound_gpu_hours"] = fixed.gpu_hours_lower_bound if fixed.feasible else None
        out[o.name] = entry
    return out
