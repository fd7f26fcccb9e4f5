"""How low can mean JCT go? Each job of a workload run alone on the whole cluster: a floor for any scheduler.

A job's JCT in a shared cluster is at least its JCT with the cluster to itself (no queueing, no other job's
GPUs). The mean of those isolated JCTs, over a workload's jobs, bounds the mean JCT any scheduler can reach
on that workload, up to how well the scheduler used for the isolated run exploits a lone job. Run alone under
``goodput-waterfill`` (which reads the exact step-time and gradient curves, so it is an oracle here, not a
contender) and under ``pollux``. Compared with a scheduler's measured mean JCT this says how much of a target
("10% below Pollux") is reachable at all.

    PYTHONPATH=$PWD .venv/bin/python scripts/jct_floor.py --loads 0.5 1.0 1.5 --workloads 1 2 3 4 5 6 7 8 \\
        --policies goodput-waterfill

Jobs of one application with the same requested replicas and batch size have the same isolated JCT, so each
distinct (application, replicas, batch size) is simulated once. Prints per workload the floor of the mean
JCT and each class's isolated JCT (mean over its jobs).
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from simulator.training import simulate_training, workload_path  # noqa: E402
from simulator.training.artifact_pool import MostFreeFirstPool  # noqa: E402
from simulator.training.job import JobSpec  # noqa: E402
from simulator.training.workloads import load_workload  # noqa: E402
from simulator.workloads import TRAINING_SCHEDULERS  # noqa: E402

POLLUX_DIR = REPO / "simulator" / "data" / "pollux"


def isolated_jct(spec: JobSpec, policy: str, seed: int = 0) -> float:
    """JCT of ``spec`` submitted at time 0 to an empty 16 x 4 GPU cluster under ``policy``."""
    lone = JobSpec(spec.name, spec.application, 0.0, spec.num_replicas, spec.batch_size)
    r = simulate_training([lone], TRAINING_SCHEDULERS[policy](seed), pool=MostFreeFirstPool.uniform(16, 4),
                          data_dir=POLLUX_DIR / "profiles", seed=seed)
    if r.unfinished:
        raise RuntimeError(f"{spec.name} did not finish alone under {policy}")
    return float(next(iter(r.jcts_s.values())))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policies", nargs="+", default=["goodput-waterfill"])
    ap.add_argument("--loads", nargs="+", type=float, default=[1.0])
    ap.add_argument("--workloads", nargs="+", type=int, default=[1])
    args = ap.parse_args(argv)
    unknown = [p for p in args.policies if p not in TRAINING_SCHEDULERS]
    if unknown:
        ap.error(f"unknown polic{'y' if len(unknown) == 1 else 'ies'} {unknown}; one of {sorted(TRAINING_SCHEDULERS)}")
    cache: dict[tuple[str, str, int, int | None], float] = {}
    print(f"{'policy':>18} {'load':>4} {'wl':>3} {'jobs':>4} {'floor_mean_s':>12}  per-class isolated JCT (s)",
          flush=True)
    for policy in args.policies:
        for load in args.loads:
            for w in args.workloads:
                specs = load_workload(workload_path(POLLUX_DIR, load, w))
                jcts: dict[str, list[float]] = defaultdict(list)
                for spec in specs:
                    key = (policy, spec.application, spec.num_replicas, spec.batch_size)
                    if key not in cache:
                        cache[key] = isolated_jct(spec, policy)
                    jcts[spec.application].append(cache[key])
                every = [v for vs in jcts.values() for v in vs]
                per = " ".join(f"{a}={np.mean(v):.0f}" for a, v in sorted(jcts.items()))
                print(f"{policy:>18} {load:>4.1f} {w:>3d} {len(every):>4d} {np.mean(every):>12.0f}  {per}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
