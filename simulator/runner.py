"""Runs every policy of a scenario on exactly the same seeded workload, and writes the report.

One run = one policy on one seed: a fresh SimPy environment, a fresh GPU pool, the same trace
(seeded), and one :class:`~controller.loop.ControlLoop` per inference service, stepped every
``period_s`` of simulated time (the policy's own evaluation period: HPA 15 s, KPA 2 s, learners the
scenario's control interval). Training workloads are scheduled by the named cluster scheduler.

Baselines with a ``sweep`` run once per swept setting; the table reports, for each, the cheapest
setting whose every seed met the SLO (the fair comparison the issue asks for), and the report keeps
every swept setting.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

from simulator.hindsight import MAX_SIMULATIONS, best_static
from simulator.metrics import Recorder
from simulator.report import format_table, strict_json, table_rows, write_report
from simulator.results import RunResult, aggregate, beyond_grid, cheapest_meeting_slo, mean_over_seeds
from simulator.scenario import Scenario, ScenarioError
from simulator.workloads import (
    HINDSIGHT,
    ORACLE,
    SEEDED_SCHEDULERS,
    PolicyRun,
    add_oracle_ratios,
    build_services,
    check,
    duration_of,
    simulate,
    training_scheduler,
)


@dataclass
class Report:
    runs: list[RunResult]
    table_text: str
    summary: dict[str, Any]
    chosen: dict[str, str] = field(default_factory=dict)


def _format_value(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def expand(scenario: Scenario, only: Sequence[str] | None, sweep: bool) -> list[PolicyRun]:
    """Policy entries of the scenario -> concrete runs (one per swept setting)."""
    runs: list[PolicyRun] = []
    for entry in scenario.policies:
        label = entry.get("label", entry["name"])
        if only and label not in only:
            continue
        base = dict(entry.get("settings", {}))
        extra = {"share": bool(entry.get("share", False)),
                 "share_every_s": float(entry.get("share_every_s", 300.0)),
                 "share_max_age_s": float(entry.get("share_max_age_s", 600.0)),
                 "share_fraction": float(entry.get("share_fraction", 1.0)),
                 "profiled": bool(entry.get("profiled", False))}
        grid = entry.get("sweep") if sweep else None
        if not grid:
            runs.append(PolicyRun(label, entry["name"], base, group=label, checkpoint=entry.get("checkpoint"), **extra))
            continue
        keys = sorted(grid)
        for values in product(*(grid[k] for k in keys)):
            settings = {**base, **dict(zip(keys, values, strict=True))}
            tag = ", ".join(f"{k}={_format_value(v)}" for k, v in zip(keys, values, strict=True))
            runs.append(PolicyRun(f"{label} ({tag})", entry["name"], settings, group=label,
                                  checkpoint=entry.get("checkpoint"), **extra))
    if not runs:
        raise ScenarioError(f"{scenario.path}: no policy left to run")
    return runs


def check_scenario(scenario: Scenario) -> None:
    """Everything that can be checked without simulating: learners exist, settings parse, knobs fit."""
    services = build_services(scenario)
    for run in expand(scenario, None, sweep=True):
        check(scenario, run, services)


class _Progress:
    """A tqdm bar over simulated seconds of all runs, or nothing when quiet."""

    def __init__(self, total_s: float, enabled: bool) -> None:
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=round(total_s), unit="sim-s", unit_scale=True, dynamic_ncols=True,
                            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} simulated s [{elapsed}<{remaining}]")

    def label(self, text: str) -> None:
        if self.bar is not None:
            self.bar.set_description_str(text[:40])

    def advance(self, seconds: float) -> None:
        if self.bar is not None:
            if self.bar.total is not None and self.bar.n + seconds > self.bar.total:
                # A training run drains its jobs past the scenario's duration: grow the bar, never show "?"
                self.bar.total = self.bar.n + seconds
            self.bar.update(seconds)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _runs_of_groups(runs: Sequence[RunResult]) -> Iterator[tuple[str, dict[str, list[RunResult]]]]:
    """Runs grouped by scenario policy, then by label (one label per swept setting)."""
    groups: dict[str, dict[str, list[RunResult]]] = {}
    for r in runs:
        groups.setdefault(r.group or r.policy, {}).setdefault(r.policy, []).append(r)
    yield from groups.items()


METRICS_AUTO_LIMIT_S = 4 * 3600.0
"""Without ``--metrics``/``--no-metrics``, inference runs up to this many simulated seconds export their
metrics. A day of a busy service is 0.07-0.4 GB of OpenMetrics text per policy and 1.1-1.6x the CPU time
of the run (benchmarks/bench_day_scale.py, docs/day-scale.md), which a default should not impose."""


def metrics_wanted(scenario: Scenario, metrics: bool | None) -> bool:
    """The ``--metrics/--no-metrics`` decision: explicit, or on for inference runs up to METRICS_AUTO_LIMIT_S
    and for training-only scenarios (a few gauges per job per minute, whatever their length)."""
    if metrics is not None:
        return metrics
    return not scenario.inference or duration_of(scenario) <= METRICS_AUTO_LIMIT_S


def seed_sensitive(scenario: Scenario, plan: Sequence[PolicyRun] | None = None) -> bool:
    """Whether the seed changes anything in the runs of ``plan`` (all policies when None): load-shape traces
    draw their arrivals and request sizes from it, node failures their times, and the randomised training
    schedulers (:data:`~simulator.workloads.SEEDED_SCHEDULERS`) their allocation search; recorded logs, the
    Azure trace, the training cluster model and the other schedulers do not."""
    if scenario.raw.get("failures", {}).get("enabled"):
        return True
    if any(spec["trace"]["kind"] == "load-shape" for spec in scenario.inference):
        return True
    return bool(_schedulers_run(scenario, plan) & SEEDED_SCHEDULERS)


def _schedulers_run(scenario: Scenario, plan: Sequence[PolicyRun] | None) -> set[str]:
    """The training schedulers the runs of ``plan`` use (none without training jobs)."""
    if not scenario.training:
        return set()
    learners = [r.learner for r in plan] if plan is not None else [p["name"] for p in scenario.policies]
    return {training_scheduler(scenario, lr) for lr in learners if lr != ORACLE}


def _same_every_seed(scenario: Scenario, plan: Sequence[PolicyRun], seeds: int) -> str:
    """The one-line refusal of ``--seeds N`` where nothing varies, naming what this scenario runs."""
    fixed = []
    kinds = {spec["trace"]["kind"] for spec in scenario.inference}
    if "request-log" in kinds:
        fixed.append("its request logs replay as recorded")
    if "azure-code" in kinds:
        fixed.append("the Azure trace replays as recorded")
    schedulers = sorted(_schedulers_run(scenario, plan))
    if schedulers:
        fixed.append(f"the training scheduler{'s' if len(schedulers) > 1 else ''} it runs "
                     f"({', '.join(schedulers)}) draw{'' if len(schedulers) > 1 else 's'} nothing from the seed")
    fixed.append("node failures are off")
    return (f"{scenario.path}: --seeds {seeds}: nothing in this scenario depends on the seed ({', '.join(fixed)}), "
            "so every seed would repeat one identical run and show a false 95% interval of 0; run one seed, or "
            "vary something real: a load-shape trace (a new Poisson sample per seed), failures: {enabled: true}, "
            f"or a randomised training scheduler ({', '.join(sorted(SEEDED_SCHEDULERS))})")


WALL_TIME_FRACTION = 0.5
"""A swept setting is at the wall when its target asked for the maximum (the replicas knob's upper bound or
every GPU of the cluster) for at least this fraction of the run, time-weighted (``time_at_max``)."""
WALL_GPU_HOURS_SPREAD = 0.01
"""...or when the GPU-hours of every swept setting agree within this fraction (max / min - 1)."""


def wall_note(group: str, cands: dict[str, list[RunResult]]) -> str | None:
    """The note saying a sweep hit the wall, or None when its settings ran differently.

    Flagged when every setting spent most of the run asking for the maximum, or when they all cost the same.
    A target at the maximum at the very end alone is not enough: one final burst pushes every setting there
    however differently they ran until then. The note gives the measured ranges, so a reader can judge."""
    fractions = [r.metrics.get("time_at_max", math.nan) for rs in cands.values() for r in rs]
    costs = [mean_over_seeds(rs, "gpu_hours") for rs in cands.values()]
    attainment = [mean_over_seeds(rs, "slo_attainment") for rs in cands.values()]
    pinned = all(f >= WALL_TIME_FRACTION for f in fractions)
    same = min(costs) > 0 and max(costs) / min(costs) - 1 <= WALL_GPU_HOURS_SPREAD
    if not (pinned or same):
        return None
    spent = (f"every setting asked for the maximum (the replicas knob's upper bound or every GPU of the cluster) "
             f"for {min(fractions):.0%}-{max(fractions):.0%} of the run, time-weighted")
    ranges = f"GPU-hours {min(costs):.3g}-{max(costs):.3g}, SLO attainment {min(attainment):.3g}-{max(attainment):.3g}"
    if same:
        return (f"{group}: the sweep cannot tell its {len(cands)} settings apart: their GPU-hours agree within "
                f"{WALL_GPU_HOURS_SPREAD:.0%} ({ranges}){'; ' + spent if pinned else ''}; widen the knob or the "
                "cluster.")
    return (f"{group}: the sweep ran into the wall: {spent} ({ranges}), so the cluster, not the setting, decided "
            "much of what they did; widen the knob or the cluster to compare them unconstrained.")


def _safe_name(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label)


def run_scenario(scenario: Scenario, out: Path, seeds: Sequence[int], only: Sequence[str] | None = None,
                 sweep: bool = True, progress: bool = True, metrics: bool | None = None,
                 hindsight: bool = True) -> Report:
    """Run every policy on every seed and write the report to ``out``.

    ``metrics``: export the first seed's simulated metrics as OpenMetrics (streamed to disk while the
    run goes); None decides by duration (:func:`metrics_wanted`). ``hindsight``: add the best static
    configuration in hindsight (:mod:`simulator.hindsight`) to inference reports."""
    plan = expand(scenario, only, sweep)
    if len(seeds) > 1 and not seed_sensitive(scenario, plan):
        raise ScenarioError(_same_every_seed(scenario, plan, len(seeds)))
    duration = duration_of(scenario)
    export = metrics_wanted(scenario, metrics)
    bar = _Progress(duration * len(plan) * len(seeds), progress)
    runs: list[RunResult] = []
    metrics_files: list[dict[str, Any]] = []
    extras: dict[str, Any] = {"notes": []}
    if export:
        (out / "metrics").mkdir(parents=True, exist_ok=True)
    elif metrics is None:
        extras["notes"].append(f"Simulated metrics were not exported: runs longer than "
                               f"{METRICS_AUTO_LIMIT_S / 3600:g} simulated hours skip them unless --metrics is given.")
    try:
        for seed in seeds:
            for prun in plan:
                bar.label(f"{prun.label} seed {seed}")
                path = out / "metrics" / f"{_safe_name(prun.label)}.om.txt"
                rec = Recorder(spool=path.with_name(f".{path.name}.spool")) \
                    if export and seed == seeds[0] and prun.learner != ORACLE else None
                t0 = time.perf_counter()
                try:
                    result = simulate(scenario, prun, seed, recorder=rec, tick=bar.advance)
                    if rec is not None:
                        n = rec.write_openmetrics(path)
                        metrics_files.append({"policy": prun.label, "file": f"metrics/{path.name}", "samples": n,
                                              "bytes": path.stat().st_size})
                finally:
                    if rec is not None:
                        rec.close()
                result.wall_s = time.perf_counter() - t0
                result.group = prun.group
                runs.append(result)
    finally:
        bar.close()

    add_oracle_ratios(runs)
    chosen: dict[str, str] = {}
    shown: list[RunResult] = []
    sweeps: dict[str, Any] = {}
    for group, cands in _runs_of_groups(runs):
        if len(cands) == 1:
            shown.extend(next(iter(cands.values())))
            continue
        cost = "gpu_hours"
        best = cheapest_meeting_slo(cands, cost)
        sweeps[group] = {label: {"meets_slo_all_seeds": all(r.meets_slo for r in rs),
                                 cost: mean_over_seeds(rs, cost),
                                 "slo_attainment": mean_over_seeds(rs, "slo_attainment")}
                         for label, rs in cands.items()}
        if best is None:
            best = max(cands, key=lambda lb: sum(r.metrics.get("slo_attainment", 0) for r in cands[lb]))
            extras["notes"].append(f"No {group} setting met the SLO on every seed; showing the one with "
                                   f"the best attainment, {best}.")
        else:
            extras["notes"].append(f"{group}: the cheapest swept setting that met the SLO on every seed "
                                   f"is {best} (of {len(cands)} swept): its hindsight-tuned best case, chosen "
                                   "on this run's own traffic, which no deployment could know in advance.")
        if beyond_grid(best, cands):
            extras["notes"].append(f"{group}: {best} is at the edge of the swept grid; a better setting may lie "
                                   "beyond it.")
        chosen[group] = best
        shown.extend(cands[best])
        wall = wall_note(group, cands)
        if wall:
            extras["notes"].append(wall)
    extras["sweeps"] = sweeps
    extras["chosen"] = chosen
    if scenario.inference and hindsight:
        search = _Progress(duration * MAX_SIMULATIONS, progress)  # counted against the search's budget
        search.label("best static in hindsight")
        try:
            found = best_static(scenario, seeds, tick=search.advance)
        finally:
            search.close()
        extras["notes"].append(found.note)
        extras["hindsight"] = {"config": found.config, "searched": found.searched, "simulations": found.simulations,
                               "budget_reached": found.exhausted}
        for r in found.runs:
            r.learner = HINDSIGHT
        add_oracle_ratios([*[r for r in runs if r.learner == ORACLE], *found.runs])
        shown.extend(found.runs)
    warnings = []
    for r in shown:
        for note in r.notes if r.learner != ORACLE else ():
            if note not in warnings:
                warnings.append(note)
    extras["warnings"] = warnings
    slo_target = next((float(s["slo"]["attainment"]) for s in scenario.inference), None)
    summary = write_report(out, scenario, shown, seeds, extra=extras, metrics_files=metrics_files,
                           slo_target=slo_target)
    summary_all = aggregate(shown)
    header, rows = table_rows(summary_all)
    text = format_table(header, rows)
    if extras["notes"]:
        text += "\n\n" + "\n".join(extras["notes"])
    if warnings:
        text += "\n\nWarnings:\n" + "\n".join(f"- {w}" for w in warnings)
    # keep every run (including non-chosen sweep settings) in the machine-readable output
    (out / "all_runs.json").write_text(strict_json([r.to_json() for r in runs], indent=1))
    return Report(shown, text, summary, chosen)
