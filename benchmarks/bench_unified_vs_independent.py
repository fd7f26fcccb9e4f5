"""Unified tuning against independent tuning of the same two knob groups, on the inference-unified scenario.

Both policies run the same algorithm (``learners/unified.py``: a bottleneck-steered Nelder-Mead
simplex scored per control interval); ``unified`` is one agent over replicas, GPUs per replica and
batch size, ``independent`` two agents, resources and application, sharing the reward and nothing
else. Every seed runs both on exactly the same seeded workload, in this process, and the script
prints, per seed and as a mean with its 95% Student-t interval over seeds, the ratios
unified / independent of SLO attainment, of the fraction of requests that missed the SLO, and of
GPU-hours. A run is one simulated scenario (two hours of traffic) per policy and seed.

Run: ``PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_unified_vs_independent.py [--seeds 5] [--first-seed 1]
[--settings JSON]``; ``--settings '{"bottleneck": false}'`` compares the two without the bottleneck rules
(an ablation), ``--settings '{"mode": "alternating"}'`` lets the independent agents take turns (the
unified agent ignores ``mode``).
"""

from __future__ import annotations

import argparse
import json
import time

from simulator import scenario as sc
from simulator.results import estimate
from simulator.workloads import PolicyRun, simulate

SCENARIO = "inference-unified"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5, help="number of seeds (default 5)")
    ap.add_argument("--first-seed", type=int, default=1, help="first seed (default 1, the scenario's)")
    ap.add_argument("--scenario", default=SCENARIO, help=f"scenario name or file (default {SCENARIO})")
    ap.add_argument("--settings", default="{}", help="learner settings (JSON) given to both policies")
    args = ap.parse_args()
    settings = json.loads(args.settings)
    scen = sc.load(args.scenario)
    ratios: dict[str, list[float]] = {"slo_attainment": [], "slo_misses": [], "gpu_hours": []}
    print(f"{'seed':>4}  {'unified att':>11}  {'indep. att':>10}  {'unified GPU-h':>13}  {'indep. GPU-h':>12}  "
          f"{'att ratio':>9}  {'miss ratio':>10}  {'GPU-h ratio':>11}  {'wall s':>6}")
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        t0 = time.perf_counter()
        uni = simulate(scen, PolicyRun("unified", "unified", settings), seed).metrics
        ind = simulate(scen, PolicyRun("independent", "independent", settings), seed).metrics
        wall = time.perf_counter() - t0
        att = uni["slo_attainment"] / ind["slo_attainment"]
        miss_u, miss_i = 1.0 - uni["slo_attainment"], 1.0 - ind["slo_attainment"]
        miss = miss_u / miss_i if miss_i > 0 else float("nan")
        gpu = uni["gpu_hours"] / ind["gpu_hours"]
        ratios["slo_attainment"].append(att)
        ratios["slo_misses"].append(miss)
        ratios["gpu_hours"].append(gpu)
        print(f"{seed:>4}  {uni['slo_attainment']:>11.4f}  {ind['slo_attainment']:>10.4f}  {uni['gpu_hours']:>13.1f}  "
              f"{ind['gpu_hours']:>12.1f}  {att:>9.4f}  {miss:>10.3f}  {gpu:>11.3f}  {wall:>6.0f}")
    print()
    for name, vals in ratios.items():
        est = estimate(vals)
        print(f"unified / independent, {name}: {est.mean:.4f} ± {est.half_width:.4f} (95% CI over {est.n} seeds)")


if __name__ == "__main__":
    main()
