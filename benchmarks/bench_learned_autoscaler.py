"""slo-rl against hindsight-tuned rules on evaluation scenarios it never trained on (issue 11's table).

For each scenario, every policy runs on the same seeds (the experiment runner). Each rule (static,
HPA, KPA, and any other rule the scenario sweeps) is represented by its *cheapest swept setting that
met the SLO on every seed* (hindsight tuning: the best a user who knew the evaluation traffic could
have set); the best passing rule is the cheapest of those. For every learner the table gives SLO
attainment (mean over seeds and the worst seed), GPU-hours (mean), the ratio to the best passing rule
and whether the SLO held on every seed; and the wall time of one learner run against one HPA run.

Targets (issue 11): SLO met on every seed; GPU-hours <= 0.75x the best rule where demand varies
predictably (inference-diurnal-eval); on the bursty code-trace hour (inference-code-hour-eval) at
least equal to the best rule at the SLO (ratio <= 1.0); learner wall time <= 3x HPA's.

Run (about 10-40 minutes on the loaded 2-core machine)::

    PYTHONPATH=$PWD python benchmarks/bench_learned_autoscaler.py --seeds 3

``--day`` instead times one compressed day stretched to 24 simulated hours (the 4-hour evaluation
day tiled six times, about 259,000 requests): HPA at its cheapest passing target against slo-rl from
its checkpoint, each run once after a warm-up (a static run of the 4-hour day) in the same process,
and prints the wall-time ratio.

``--windows`` reports online convergence from the checkpoint (issue 11: the SLO holds in every
10-interval window after at most 25 intervals): per seed, the first interval from which every later
10-interval window meets the SLO (attainment of the requests judged in the window, weighted by the
requests each interval judged) and the mean GPU-hours per window after it. ``--plot PNG`` also draws
it: the convergence figure (docs/learned-autoscaler.md, "Online convergence from the checkpoint").

``--runs DIR [DIR ...]`` skips simulating and reads ``all_runs.json`` from earlier ``autocm sim``
outputs of the same scenario and seeds instead (for example a baseline run and a learner run made
separately with ``--policies``).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simulator.runner import run_scenario, seed_sensitive
from simulator.scenario import Scenario
from simulator.scenario import load as load_scenario

if TYPE_CHECKING:
    from simulator.workloads import PolicyRun

RULES = ("static", "hpa", "kpa", "keda", "aibrix-kpa", "aibrix-apa", "forecast")
DEFAULT_SCENARIOS = ("inference-diurnal-eval", "inference-code-hour-eval")
PREDICTABLE = {"inference-diurnal-eval"}


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def summarise(runs: list[dict[str, Any]], target: float) -> dict[str, Any]:
    """Rules at their cheapest passing setting, learners as they are, and wall times."""
    by_label: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        by_label[r["policy"]].append(r)
    rows: dict[str, dict[str, Any]] = {}
    for label, rs in by_label.items():
        att = [r["metrics"]["slo_attainment"] for r in rs]
        rows[label] = {"learner": rs[0]["learner"], "group": rs[0].get("group") or label, "seeds": len(rs),
                       "attainment": _mean(att), "worst": min(att),
                       "gpu_hours": _mean([r["metrics"]["gpu_hours"] for r in rs]),
                       "meets": all(a >= target for a in att), "wall_s": _mean([r.get("wall_s", 0.0) for r in rs])}
    best_rule: dict[str, str] = {}
    for label, row in rows.items():
        if row["learner"] in RULES and row["meets"]:
            g = row["group"]
            if g not in best_rule or row["gpu_hours"] < rows[best_rule[g]]["gpu_hours"]:
                best_rule[g] = label
    best = min(best_rule.values(), key=lambda lb: rows[lb]["gpu_hours"]) if best_rule else None
    hpa_wall = _mean([row["wall_s"] for row in rows.values() if row["learner"] == "hpa"])
    return {"rows": rows, "best_rule_per_group": best_rule, "best": best, "hpa_wall_s": hpa_wall}


def table(name: str, s: dict[str, Any]) -> str:
    rows, best = s["rows"], s["best"]
    base = rows[best]["gpu_hours"] if best else math.nan
    out = [f"### {name}", "",
           f"best passing rule: {best or 'none'}" + (f" ({base:.1f} GPU-h)" if best else ""), "",
           "| policy | attainment (mean) | worst seed | GPU-hours | x best passing rule | SLO every seed "
           "| wall s/run |",
           "| --- | --- | --- | --- | --- | --- | --- |"]
    shown = list(s["best_rule_per_group"].values()) + [lb for lb, r in rows.items() if r["learner"] not in RULES]
    for label in shown:
        r = rows[label]
        out.append(f"| {label} | {r['attainment']:.4f} | {r['worst']:.4f} | {r['gpu_hours']:.1f} | "
                   f"{r['gpu_hours'] / base:.2f} | {'yes' if r['meets'] else 'NO'} | {r['wall_s']:.1f} |")
    learners = [lb for lb, r in rows.items() if r["learner"] not in RULES]
    if learners and math.isfinite(s["hpa_wall_s"]) and s["hpa_wall_s"] > 0:
        out.append("")
        for lb in learners:
            out.append(f"wall time {lb} / HPA (mean per run): {rows[lb]['wall_s'] / s['hpa_wall_s']:.2f}")
    return "\n".join(out)


def day_wall_times(hpa_target: float, checkpoint: Path | None = None) -> None:
    """Wall time of a 24-hour day with HPA and with slo-rl (pretrained: ``checkpoint``, default the bundled
    slo-rl-diurnal.ckpt), same process, after a warm-up."""
    import yaml

    from simulator.workloads import PolicyRun, simulate

    src = load_scenario("inference-diurnal-eval")
    raw = yaml.safe_load(src.path.read_text())
    raw["name"] = "inference-diurnal-eval-24h"
    raw["duration_s"] = 86400
    svc = raw["inference"][0]
    svc["trace"]["duration_s"] = 86400
    svc["trace"]["shape"] = str(src.resolve(svc["trace"]["shape"]))
    ckpt = str(checkpoint.resolve() if checkpoint else src.resolve("../checkpoints/slo-rl-diurnal.ckpt"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "inference-diurnal-eval-24h.yaml"
        path.write_text(yaml.safe_dump(raw))
        scenario = load_scenario(str(path))
        runs = {"hpa": PolicyRun("hpa", "hpa", {"metric": "gpu_utilization", "target": hpa_target}),
                "slo-rl (pretrained)": PolicyRun("slo-rl (pretrained)", "slo-rl", {}, checkpoint=ckpt)}
        simulate(src, PolicyRun("static", "static", {}), src.seed)  # warm-up: trace, latency tables, imports
        walls = {}
        for label, prun in runs.items():
            t0 = time.perf_counter()
            res = simulate(scenario, prun, scenario.seed)
            walls[label] = time.perf_counter() - t0
            print(f"{label}: 24 h simulated in {walls[label]:.1f} s wall; attainment "
                  f"{res.metrics['slo_attainment']:.4f}, {res.metrics['gpu_hours']:.1f} GPU-h, "
                  f"{res.metrics['requests']:.0f} requests")
        ratio = walls["slo-rl (pretrained)"] / walls["hpa"]
        print(f"wall time slo-rl / HPA: {ratio:.2f} (target <= 3): {'met' if ratio <= 3 else 'missed'}")


def seeds_for(scenario: Scenario, wanted: int) -> tuple[list[int], str | None]:
    """The seeds to run ``scenario`` on, and a line to print when fewer than ``wanted`` are run.

    Where nothing depends on the seed (a recorded log, the Azure trace) every seed repeats one identical
    run: the runner refuses that, and a mean over copies would only pretend to be an interval, so such a
    scenario runs its own seed once and the output says so."""
    if wanted <= 1 or seed_sensitive(scenario):
        return [scenario.seed + k for k in range(max(wanted, 1))], None
    return [scenario.seed], (f"{scenario.name}: one seed ({scenario.seed}), not {wanted}: nothing in this "
                             "scenario depends on the seed, so further seeds would repeat the same run")


def online_windows(name: str, checkpoint: str, seeds: int, window: int = 10) -> list[WindowRun]:
    """First interval after which every ``window``-interval window meets the SLO, from the checkpoint."""
    from simulator.workloads import PolicyRun

    scenario = load_scenario(name)
    seed_list, note = seeds_for(scenario, seeds)
    if note:
        print(note)
    return [window_report(name, scenario, PolicyRun("slo-rl", "slo-rl", {}, checkpoint=checkpoint), seed, window,
                          label=f"{name}, {Path(checkpoint).stem}") for seed in seed_list]


def suite_windows(folder: Path, names: list[str] | None, seeds: int, window: int = 10) -> list[WindowRun]:
    """:func:`online_windows` on the suite's evaluation scenarios (``autocm bench inference``'s seeds 101, ...),
    from the checkpoints ``autocm bench pretrain`` wrote to ``folder``, each with the settings it records."""
    from simulator.bench.scenarios import by_name
    from simulator.bench.split import EVAL, EVAL_SEED0
    from simulator.bench.suite import Plan, pretrained_plans
    from simulator.workloads import PolicyRun

    runs: list[WindowRun] = []
    with tempfile.TemporaryDirectory() as tmp:
        for bench in by_name(names):
            plans = pretrained_plans([Plan("slo-rl", "slo-rl", {}, "slo-rl")], folder, bench.name)
            if not plans:
                print(f"{bench.name}: no slo-rl checkpoint in {folder}")
                continue
            plan = plans[0]
            print(f"{bench.name}: {plan.checkpoint}, settings {plan.settings}")
            for seed in range(EVAL_SEED0, EVAL_SEED0 + seeds):
                scenario = load_scenario(str(bench.write(Path(tmp), EVAL, seed)[0]))
                runs.append(window_report(bench.name, scenario, PolicyRun("slo-rl", "slo-rl", plan.settings,
                                                                          checkpoint=plan.checkpoint), seed, window))
    return runs


@dataclass
class WindowRun:
    """One run's online-convergence record: per interval the attainment, requests judged and GPUs held, and
    per ``window``-interval window whether it met the SLO (the window starting at that interval)."""

    label: str
    seed: int
    target: float
    window: int
    interval_s: float
    attainment: list[float]
    judged: list[float]
    gpus: list[float]
    run_attainment: float
    run_gpu_hours: float

    def window_attainment(self) -> list[float]:
        """Attainment of the requests judged in each window, weighted by the requests each interval judged (1.0
        for a window that judged none)."""
        out = []
        for i in range(len(self.attainment) - self.window + 1):
            a, j = self.attainment[i: i + self.window], self.judged[i: i + self.window]
            total = sum(j)
            out.append(sum(x * w for x, w in zip(a, j, strict=True)) / total if total else 1.0)
        return out

    def first_holding(self) -> int | None:
        """The first interval from which every later window meets the SLO (None: never)."""
        ok = [a >= self.target for a in self.window_attainment()]
        return next((i for i in range(len(ok)) if all(ok[i:])), None)


def window_report(name: str, scenario: Scenario, prun: PolicyRun, seed: int, window: int = 10,
                  label: str | None = None) -> WindowRun:
    """Run ``prun`` on ``scenario`` and print the first interval from which every ``window``-interval window
    meets the SLO, and the GPU-hours per window after it; return the per-interval record (for ``--plot``)."""
    from controller.loop import ControlLoop
    from simulator.workloads import simulate

    target = float(scenario.inference[0]["slo"]["attainment"])
    steps: list[tuple[float, float, float]] = []  # (attainment, requests judged, GPUs held)
    original = ControlLoop.step

    def step(self, now, _orig=original, _steps=steps):
        rec = _orig(self, now)
        o = rec.observation
        if o is not None:
            judged = o.events.get("completed", 0.0) + o.events.get("rejected", 0.0)
            gpus = o.config.get("replicas", 0) * o.config.get("gpus_per_replica", 1)
            _steps.append((o.metric("slo_attainment"), judged, gpus))
        return rec

    ControlLoop.step = step
    try:
        res = simulate(scenario, prun, seed)
    finally:
        ControlLoop.step = original
    run = WindowRun(label or name, seed, target, window, float(scenario.control_interval_s),
                    [s[0] for s in steps], [s[1] for s in steps], [s[2] for s in steps],
                    float(res.metrics["slo_attainment"]), float(res.metrics["gpu_hours"]))
    ok = [a >= target for a in run.window_attainment()]
    first = run.first_holding()
    after = run.gpus[first:] if first is not None else []
    gpu_h = sum(after) * run.interval_s / 3600.0
    per_window = gpu_h / max(len(after) / window, 1e-9) if after else float("nan")
    failing = sum(1 for x in ok if not x)
    print(f"{run.label} seed {seed}: run attainment {run.run_attainment:.4f}, "
          f"{run.run_gpu_hours:.1f} GPU-h; windows failing {failing}/{len(ok)}; "
          f"SLO holds in every window from interval {first if first is not None else 'never'}"
          f" (target <= 25: {'met' if first is not None and first <= 25 else 'missed'}); "
          f"{per_window:.2f} GPU-h (as configured) per {window}-interval window after it")
    return run


def plot_windows(runs: list[WindowRun], path: Path, limit: int = 25) -> None:
    """The convergence figure: per run, the attainment of the window starting at each interval against the
    target (top; the first interval from which every window holds is marked, the issue's bound of ``limit``
    intervals dashed), and the GPUs held (bottom). One panel column per scenario label."""
    from matplotlib.figure import Figure  # the object API: no pyplot registry for one figure

    labels = list(dict.fromkeys(r.label for r in runs))
    fig = Figure(figsize=(5.2 * len(labels), 6.4), layout="constrained")
    axes = fig.subplots(2, len(labels), squeeze=False, sharex="col")
    for col, label in enumerate(labels):
        top, bottom = axes[0][col], axes[1][col]
        mine = [r for r in runs if r.label == label]
        for k, r in enumerate(mine):
            colour = f"C{k % 10}"
            att = r.window_attainment()
            first = r.first_holding()
            top.plot(range(len(att)), [max(a, 0.9) for a in att], color=colour, lw=1.0,
                     label=f"seed {r.seed}: holds from {first if first is not None else 'never'}")
            if first is not None:
                top.axvline(first, color=colour, lw=0.8, ls=":")
            bottom.step(range(len(r.gpus)), r.gpus, where="post", color=colour, lw=0.9)
        top.axhline(mine[0].target, color="k", lw=0.8)
        top.axvline(limit, color="grey", lw=1.0, ls="--", label=f"issue's bound ({limit} intervals)")
        top.set_ylim(0.9, 1.001)
        top.set_title(label, fontsize=9)
        top.set_ylabel(f"attainment, {mine[0].window}-interval window\nstarting here (below 0.9: at 0.9)", fontsize=8)
        top.legend(fontsize=7, loc="lower right")
        bottom.set_xlabel(f"interval ({mine[0].interval_s:.0f} s)")
        bottom.set_ylabel("GPUs held")
    fig.savefig(path, dpi=110)
    print(f"figure: {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenarios", nargs="+", default=list(DEFAULT_SCENARIOS))
    ap.add_argument("--seeds", type=int, default=3, help="seeds per scenario (from the scenario's seed)")
    ap.add_argument("--runs", nargs="*", type=Path, default=None,
                    help="read all_runs.json from these autocm sim output folders instead of simulating "
                         "(only with one scenario)")
    ap.add_argument("--day", action="store_true", help="time a 24-hour day: HPA against slo-rl")
    ap.add_argument("--hpa-target", type=float, default=0.9, help="HPA target for --day")
    ap.add_argument("--windows", action="store_true",
                    help="online convergence from the checkpoint on each evaluation scenario")
    ap.add_argument("--checkpoint", type=Path, nargs="+", default=None,
                    help="with --windows on the bundled evaluation scenarios (one or more, each its own column in "
                         "--plot), or --day (exactly one): this slo-rl checkpoint instead of the default "
                         "(slo-rl-diurnal.ckpt, slo-rl-code.ckpt), e.g. "
                         "simulator/checkpoints/slo-rl-diurnal-levels.ckpt")
    ap.add_argument("--plot", type=Path, default=None,
                    help="with --windows: also draw the convergence figure (window attainment and GPUs held per "
                         "interval, one column per scenario) to this PNG")
    ap.add_argument("--pretrained", type=Path, default=None,
                    help="with --windows: the suite's evaluation scenarios (--scenarios: suite names, default all; "
                         "seeds 101, ...) from the slo-rl checkpoints `autocm bench pretrain` wrote to this folder")
    args = ap.parse_args()
    if args.windows and args.pretrained is not None:
        names = None if args.scenarios == list(DEFAULT_SCENARIOS) else args.scenarios
        runs = suite_windows(args.pretrained, names, args.seeds)
        if args.plot and runs:
            plot_windows(runs, args.plot)
        return
    if args.windows:
        ckpts = {"inference-diurnal-eval": "slo-rl-diurnal.ckpt", "inference-code-hour-eval": "slo-rl-code.ckpt"}
        runs = []
        for name in args.scenarios:
            paths = [c.resolve() for c in args.checkpoint] if args.checkpoint else \
                [load_scenario(name).resolve(f"../checkpoints/{ckpts[name]}")]
            for path in paths:
                runs += online_windows(name, str(path), args.seeds)
        if args.plot and runs:
            plot_windows(runs, args.plot)
        return
    if args.day:
        if args.checkpoint and len(args.checkpoint) > 1:
            ap.error("--day times one checkpoint: give --checkpoint once")
        day_wall_times(args.hpa_target, args.checkpoint[0] if args.checkpoint else None)
        return
    if args.runs and len(args.scenarios) != 1:
        ap.error("--runs reads one scenario's outputs: name exactly one scenario with --scenarios")
    for name in args.scenarios:
        scenario = load_scenario(name)
        target = float(scenario.inference[0]["slo"]["attainment"])
        t0 = time.perf_counter()
        if args.runs:
            runs = [r for d in args.runs for r in json.loads((d / "all_runs.json").read_text())]
        else:
            seeds, note = seeds_for(scenario, args.seeds)
            if note:
                print(note)
            with tempfile.TemporaryDirectory() as out:
                run_scenario(scenario, Path(out), seeds, progress=False)
                runs = json.loads((Path(out) / "all_runs.json").read_text())
        s = summarise(runs, target)
        print(table(name, s))
        best = s["best"]
        for lb, r in s["rows"].items():
            if r["learner"] in RULES or best is None:
                continue
            ratio = r["gpu_hours"] / s["rows"][best]["gpu_hours"]
            limit = 0.75 if name in PREDICTABLE else 1.0
            ok = r["meets"] and ratio <= limit
            print(f"target {lb}: SLO every seed and <= {limit:.2f}x best rule: {'met' if ok else 'missed'} "
                  f"(ratio {ratio:.2f}, worst seed {r['worst']:.4f})")
        print(f"[{time.perf_counter() - t0:.0f} s]\n")


if __name__ == "__main__":
    main()
