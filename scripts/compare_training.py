"""Training schedulers side by side in one simulator: mean / p99 JCT, makespan, GPU-hours, restarts per job.

Runs each (policy, load, workload, seed) once, in one process, printing every row as it finishes, on the
Pollux paper's job streams, 16 nodes x 4 GPUs, the artifact's node choice (as ``scripts/fidelity.py``).
The last column is the mean JCT of every application (job class), ``app=seconds``.

    nice -n 10 .venv/bin/python scripts/compare_training.py --policies goodput-las pollux tiresias \\
        --loads 0.5 1.0 1.5 --workloads 3

``--las-exponent`` / ``--las-scale-gpu-s`` give goodput-las other weights than its frozen defaults (the
tuning on workloads 1-2, scripts/tune_goodput_las.py, needs that); other schedulers ignore them.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from simulator.training import simulate_training, workload_path  # noqa: E402
from simulator.training.artifact_pool import MostFreeFirstPool  # noqa: E402
from simulator.training.cluster_sim import TrainingScheduler  # noqa: E402
from simulator.training.goodput_las import LasSettings  # noqa: E402
from simulator.workloads import TRAINING_SCHEDULERS  # noqa: E402

POLLUX_DIR = REPO / "simulator" / "data" / "pollux"


def _app(job: str) -> str:
    """The application of a trace job, from its name (``<app>-<n>`` in the paper's traces)."""
    return job.rsplit("-", 1)[0]


def las_settings(exponent: float | None, scale_gpu_s: float | None) -> LasSettings | None:
    """goodput-las' weights from the command line: None (the frozen defaults) unless one is given; a weight
    not given keeps its default."""
    if exponent is None and scale_gpu_s is None:
        return None
    default = LasSettings()
    return LasSettings(default.exponent if exponent is None else exponent,
                       default.scale_gpu_s if scale_gpu_s is None else scale_gpu_s)


def scheduler_of(policy: str, seed: int, las: LasSettings | None = None) -> TrainingScheduler:
    """The registered scheduler; goodput-las gets ``las`` when given (no other scheduler has weights)."""
    if policy == "goodput-las" and las is not None:
        return TRAINING_SCHEDULERS[policy](seed, las=las)
    return TRAINING_SCHEDULERS[policy](seed)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policies", nargs="+", default=["goodput-las", "pollux", "tiresias"])
    ap.add_argument("--loads", nargs="+", type=float, default=[0.5, 1.0, 1.5])
    ap.add_argument("--workloads", nargs="+", type=int, default=[3])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--las-exponent", type=float, default=None,
                    help="goodput-las' exponent (default: the frozen LasSettings); only goodput-las reads it")
    ap.add_argument("--las-scale-gpu-s", type=float, default=None,
                    help="goodput-las' scale_gpu_s (default: the frozen LasSettings)")
    args = ap.parse_args(argv)
    las = las_settings(args.las_exponent, args.las_scale_gpu_s)
    if las is not None:
        print(f"# goodput-las: exponent={las.exponent!r} scale_gpu_s={las.scale_gpu_s!r}", flush=True)
    print(f"{'policy':>12} {'load':>4} {'wl':>3} {'seed':>4} {'mean_s':>7} {'p99_s':>7} {'makespan_s':>10} "
          f"{'gpu_h':>7} {'restarts/job':>12} {'wall_s':>6}  per-class mean JCT", flush=True)
    for load in args.loads:
        for w in args.workloads:
            for seed in args.seeds:
                for policy in args.policies:
                    started = time.perf_counter()
                    r = simulate_training(workload_path(POLLUX_DIR, load, w), scheduler_of(policy, seed, las),
                                          pool=MostFreeFirstPool.uniform(16, 4), data_dir=POLLUX_DIR / "profiles",
                                          seed=seed)
                    jcts = np.array(list(r.jcts_s.values()))
                    classes: dict[str, list[float]] = defaultdict(list)
                    for name, jct in r.jcts_s.items():
                        classes[_app(name)].append(jct)
                    per = " ".join(f"{a}={np.mean(v):.0f}" for a, v in sorted(classes.items()))
                    restarts = sum(r.num_restarts.values()) / max(len(r.num_restarts), 1)
                    print(f"{policy:>12} {load:>4.1f} {w:>3d} {seed:>4d} {jcts.mean():>7.0f} "
                          f"{np.percentile(jcts, 99):>7.0f} {r.makespan_s:>10.0f} {r.gpu_hours:>7.1f} "
                          f"{restarts:>12.2f} {time.perf_counter() - started:>6.0f}  {per}"
                          + (f" UNFINISHED {len(r.unfinished)}" if r.unfinished else ""), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
