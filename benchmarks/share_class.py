"""Does sharing within a workload class help slo-rl from scratch? (docs/learned-autoscaler.md)

Runs the scenario's two slo-rl policies (alone / shared class) on N seeds and reports, per seed:
the intervals until the SLO holds in every later 10-interval window (per service, the class's worst
service), SLO attainment and GPU-hours. Per-interval attainment comes from each service's control
loop records (``ControlLoop.history``).

    PYTHONPATH=$PWD nice -n 10 python -m benchmarks.share_class --seeds 10
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from typing import Any

from controller.loop import ControlLoop, StepRecord
from simulator import workloads
from simulator.runner import expand
from simulator.scenario import load

WINDOW = 10


def settle_interval(records: Sequence[StepRecord], attainment: float, window: int = WINDOW) -> int:
    """The first interval from which every later ``window``-interval window meets ``attainment``
    (request-weighted); ``len(records)`` when the last window misses."""
    att, n = [], []
    for r in records:
        obs = r.observation
        a = obs.metric("slo_attainment") if obs is not None else math.nan
        j = (obs.events.get("completed", 0.0) + obs.events.get("rejected", 0.0)) if obs is not None else 0.0
        att.append(a if math.isfinite(a) else 1.0)
        n.append(j if math.isfinite(a) else 0.0)
    settle = 0
    for start in range(0, max(0, len(att) - window + 1)):
        total = sum(n[start:start + window])
        met = sum(a * j for a, j in zip(att[start:start + window], n[start:start + window], strict=True))
        if total > 0 and met / total < attainment:
            settle = start + window
    return min(settle, len(att))


def run(scenario_path: str, seeds: Sequence[int]) -> list[dict[str, Any]]:
    scenario = load(scenario_path)
    loops: list[ControlLoop] = []

    class Recording(ControlLoop):
        def __post_init__(self) -> None:
            super().__post_init__()
            self.history_limit = 10**6
            loops.append(self)

    rows = []
    original = workloads.ControlLoop
    workloads.ControlLoop = Recording  # type: ignore[misc]
    try:
        for prun in expand(scenario, None, sweep=False):
            for seed in seeds:
                loops.clear()
                r = workloads.simulate(scenario, prun, seed)
                target = loops[0].objective.attainment
                settle = {lp.workload: settle_interval(lp.history, target) for lp in loops}
                shared = [lp.sharing for lp in loops if lp.sharing is not None]
                rows.append({"policy": prun.label, "seed": seed, "settle_worst": max(settle.values()),
                             "settle_mean": sum(settle.values()) / len(settle), "settle": settle,
                             "slo_attainment": r.metrics["slo_attainment"], "gpu_hours": r.metrics["gpu_hours"],
                             "absorbed_rows": sum(m.absorbed_rows for m in shared),
                             "dropped_stale": sum(m.dropped_stale for m in shared)})
                print(json.dumps(rows[-1]), flush=True)
    finally:
        workloads.ControlLoop = original  # type: ignore[misc]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scenario", default="simulator/scenarios/inference-shared-class.yaml")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()
    rows = run(args.scenario, range(args.seed, args.seed + args.seeds))
    print(f"{'policy':24} {'settle worst':>12} {'settle mean':>11} {'attainment':>10} {'GPU-h':>7}  seeds")
    for label in dict.fromkeys(r["policy"] for r in rows):
        rs = [r for r in rows if r["policy"] == label]
        k = len(rs)
        mean = {f: sum(r[f] for r in rs) / k for f in ("settle_worst", "settle_mean", "slo_attainment", "gpu_hours")}
        print(f"{label:24} {mean['settle_worst']:12.1f} {mean['settle_mean']:11.1f} "
              f"{mean['slo_attainment']:10.4f} {mean['gpu_hours']:7.1f}  {k}")


if __name__ == "__main__":
    main()
