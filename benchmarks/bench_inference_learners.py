"""Each learner on the Azure code trace against HPA, KPA and the hindsight oracle, in one process.

Issue 3's inference target: "SLO attainment and GPU-hours of each learner against HPA and KPA (each
at its cheapest target that still meets the SLO) and the hindsight oracle. Target: meet the SLO for at
least 99% of requests with GPU-hours no more than 1.10x the oracle and at most 0.7x HPA's".

This runs the scenario once with the experiment runner (every policy on the same seeded trace, HPA and
KPA swept; the runner picks each baseline's cheapest passing target, or its best attainment when no
target passes, and says which) and prints, for every learner, its attainment and its GPU-hours as
ratios of HPA's, KPA's and the oracle's lower bound, and whether it meets the target.

Run: ``PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_inference_learners.py [--scenario inference-azure-code]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from simulator.runner import run_scenario
from simulator.scenario import load as load_scenario
from simulator.workloads import ORACLE

BASELINES = ("static", "hpa", "kpa")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", default="inference-azure-code", help="scenario (bundled name or YAML)")
    ap.add_argument("--seed", type=int, default=None, help="seed (default: the scenario's)")
    args = ap.parse_args()
    scenario = load_scenario(args.scenario)
    seed = scenario.seed if args.seed is None else args.seed
    target = float(scenario.inference[0]["slo"]["attainment"])
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        report = run_scenario(scenario, Path(out), [seed], progress=False)
    wall = time.perf_counter() - t0
    by = {r.learner: r for r in report.runs if r.learner in (*BASELINES, ORACLE)}
    oracle = by[ORACLE].metrics["gpu_hours"]
    print(f"{scenario.name}, seed {seed}, {wall:.0f} s wall; SLO attainment target {target}")
    for name in ("hpa", "kpa"):
        r = by.get(name)
        if r is not None:
            passes = "meets the SLO" if r.meets_slo else "NO target meets the SLO: best attainment shown"
            print(f"  {name}: {r.policy} ({passes}): attainment {r.metrics['slo_attainment']:.3f}, "
                  f"{r.metrics['gpu_hours']:.1f} GPU-h")
    print(f"  oracle lower bound: {oracle:.1f} GPU-h")
    print("learner | attainment | GPU-h | x HPA | x KPA | x oracle | target (>= 0.99, <= 1.10x oracle, <= 0.7x HPA)")
    for r in report.runs:
        if r.learner in (*BASELINES, ORACLE):
            continue
        gh, att = r.metrics["gpu_hours"], r.metrics["slo_attainment"]
        x_hpa = gh / by["hpa"].metrics["gpu_hours"] if "hpa" in by else float("nan")
        x_kpa = gh / by["kpa"].metrics["gpu_hours"] if "kpa" in by else float("nan")
        ok = att >= target and gh <= 1.10 * oracle and x_hpa <= 0.7
        print(f"{r.policy} | {att:.3f} | {gh:.1f} | {x_hpa:.2f} | {x_kpa:.2f} | {gh / oracle:.2f} | "
              f"{'met' if ok else 'missed'}")


if __name__ == "__main__":
    main()
