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

import json
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

from simulator.metrics import Recorder
from simulator.report import format_table, table_rows, write_report
from simulator.results import RunResult, aggregate, cheapest_meeting_slo
from simulator.scenario import Scenario, ScenarioError
from simulator.workloads import PolicyRun, add_oracle_ratios, build_services, check, duration_of, simulate


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
        grid = entry.get("sweep") if sweep else None
        if not grid:
            runs.append(PolicyRun(label, entry["name"], base, group=label, checkpoint=entry.get("checkpoint")))
            continue
        keys = sorted(grid)
        for values in product(*(grid[k] for k in keys)):
            settings = {**base, **dict(zip(keys, values, strict=True))}
            tag = ", ".join(f"{k}={_format_value(v)}" for k, v in zip(keys, values, strict=True))
            runs.append(PolicyRun(f"{label} ({tag})", entry["name"], settings, group=label,
                                  checkpoint=entry.get("checkpoint")))
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


def run_scenario(scenario: Scenario, out: Path, seeds: Sequence[int], only: Sequence[str] | None = None,
                 sweep: bool = True, progress: bool = True) -> Report:
    plan = expand(scenario, only, sweep)
    duration = duration_of(scenario)
    bar = _Progress(duration * len(plan) * len(seeds), progress)
    runs: list[RunResult] = []
    recorders: dict[str, Recorder] = {}
    extras: dict[str, Any] = {"notes": []}
    try:
        for seed in seeds:
            for prun in plan:
                bar.label(f"{prun.label} seed {seed}")
                rec = Recorder() if seed == seeds[0] else None
                t0 = time.perf_counter()
                result = simulate(scenario, prun, seed, recorder=rec, tick=bar.advance)
                result.wall_s = time.perf_counter() - t0
                result.group = prun.group
                runs.append(result)
                if rec is not None:
                    recorders[prun.label] = rec
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
                                 cost: sum(r.metrics.get(cost, math.nan) for r in rs) / len(rs),
                                 "slo_attainment": sum(r.metrics.get("slo_attainment", math.nan)
                                                       for r in rs) / len(rs)}
                         for label, rs in cands.items()}
        if best is None:
            best = max(cands, key=lambda lb: sum(r.metrics.get("slo_attainment", 0) for r in cands[lb]))
            extras["notes"].append(f"No {group} setting met the SLO on every seed; showing the one with "
                                   f"the best attainment, {best}.")
        else:
            extras["notes"].append(f"{group}: the cheapest swept setting that met the SLO on every seed "
                                   f"is {best} (of {len(cands)} swept).")
        chosen[group] = best
        shown.extend(cands[best])
    extras["sweeps"] = sweeps
    extras["chosen"] = chosen
    slo_target = next((float(s["slo"]["attainment"]) for s in scenario.inference), None)
    summary = write_report(out, scenario, shown, seeds, extra=extras, recorders=recorders,
                           slo_target=slo_target)
    summary_all = aggregate(shown)
    header, rows = table_rows(summary_all)
    text = format_table(header, rows)
    if extras["notes"]:
        text += "\n\n" + "\n".join(extras["notes"])
    # keep every run (including non-chosen sweep settings) in the machine-readable output
    (out / "all_runs.json").write_text(json.dumps([r.to_json() for r in runs], indent=1,
                                                                default=str))
    return Report(shown, text, summary, chosen)
