"""Where one job class's time goes under a training scheduler: per job, JCT, restarts, seconds restarting and
running, mean GPUs, goodput, batch, and the share of running time on each (nodes, GPUs) placement.

Written to find why yolov3 runs longer under the operator's Pollux than under the simulator's (session 28,
docs/training-operator.md): it shows a job's GPUs split over nodes while its count does not change.

    nice -n 10 .venv/bin/python scripts/placement_breakdown.py --app yolov3 --workload 3 \\
        --policies pollux pollux-pool-advised
    # the operator's pool when Kubernetes spreads a recreated job's pods (no together preference):
    nice -n 10 .venv/bin/python scripts/placement_breakdown.py --app yolov3 --workload 3 \\
        --policies pollux-pool-advised --pods spread --no-consolidate

Same cluster as scripts/compare_training.py: the paper's job streams, 16 nodes x 4 GPUs, the artifact's node
choice. About 90-180 s a run on the 2-core machine.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from simulator.training import simulate_training, workload_path  # noqa: E402
from simulator.training.artifact_pool import MostFreeFirstPool  # noqa: E402
from simulator.training.cluster_sim import TrainingScheduler  # noqa: E402
from simulator.training.job import TrainingJob  # noqa: E402
from simulator.training.operator_pool import OPERATOR_SCHEDULERS, PLACERS, OperatorPoolScheduler  # noqa: E402
from simulator.workloads import TRAINING_SCHEDULERS  # noqa: E402

POLLUX_DIR = REPO / "simulator" / "data" / "pollux"


def app_of(job: str) -> str:
    return job.rsplit("-", 1)[0]


@contextmanager
def recording(app: str) -> Iterator[dict[str, dict[str, float]]]:
    """Per job of ``app``, seconds by what it did, while the context is open: it wraps ``TrainingJob.advance``
    (the only place a job's time passes), and restores it after."""
    stats: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    original = TrainingJob.advance

    def advance(self: TrainingJob, start_s: float, seconds: float) -> None:
        if app_of(self.name) == app and self.placement and not self.done and seconds > 0:
            row = stats[self.name]
            restart = min(self.restart_left_s, seconds)
            row["restart_s"] += restart
            run = seconds - restart
            if run > 0 and self.config is not None:
                row["run_s"] += run
                row[f"{len(self.placement)}n{sum(self.placement)}g"] += run
                row["gpu_s"] += run * sum(self.placement)
                row["goodput"] += run * self.goodput_samples_per_s()
                row["batch"] += run * self.config.batch_size
        original(self, start_s, seconds)

    TrainingJob.advance = advance  # type: ignore[method-assign]
    try:
        yield stats
    finally:
        TrainingJob.advance = original  # type: ignore[method-assign]


def scheduler(policy: str, seed: int, pods: str, consolidate: bool = True) -> TrainingScheduler:
    if policy in OPERATOR_SCHEDULERS:
        return OperatorPoolScheduler(policy, seed=seed, pods=pods, consolidate=consolidate)
    return TRAINING_SCHEDULERS[policy](seed)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--app", default="yolov3", help="the job class to break down (default yolov3)")
    ap.add_argument("--workload", type=int, default=3, choices=range(1, 9), metavar="1-8",
                    help="the paper's workload (default 3)")
    ap.add_argument("--load", type=float, default=1.0, choices=(0.5, 1.0, 1.5))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--policies", nargs="+", default=["pollux", "pollux-pool-advised"],
                    choices=sorted(TRAINING_SCHEDULERS), metavar="POLICY",
                    help="training schedulers (default: pollux pollux-pool-advised)")
    ap.add_argument("--pods", default="together", choices=sorted(PLACERS),
                    help="for the operator's pool schedulers: how Kubernetes places a recreated job's pods")
    ap.add_argument("--no-consolidate", dest="consolidate", action="store_false",
                    help="for the operator's pool schedulers: never move a job split over nodes (the pool does, "
                         "with spec.trainingPool.consolidate true, the default)")
    ap.add_argument("--top", type=int, default=4, help="placements shown per job, most used first")
    args = ap.parse_args(argv)
    for policy in args.policies:
        with recording(args.app) as stats:
            r = simulate_training(workload_path(POLLUX_DIR, args.load, args.workload),
                                  scheduler(policy, args.seed, args.pods, args.consolidate),
                                  pool=MostFreeFirstPool.uniform(16, 4), data_dir=POLLUX_DIR / "profiles",
                                  seed=args.seed)
        mean = sum(r.jcts_s.values()) / max(len(r.jcts_s), 1)
        how = (f" (pods {args.pods}" + ("" if args.consolidate else ", not consolidating") + ")"
               if policy in OPERATOR_SCHEDULERS else "")
        print(f"== {policy}{how} load {args.load} workload {args.workload} seed {args.seed}: "
              f"mean JCT {mean:.0f} s; {args.app} jobs:", flush=True)
        if not stats:
            print(f"   no {args.app} job ran")
        for name in sorted(stats):
            row = stats[name]
            run = row["run_s"] or 1.0
            shapes = sorted(((k, v / run) for k, v in row.items() if k[0].isdigit()), key=lambda kv: -kv[1])
            shown = " ".join(f"{k}:{v:.2f}" for k, v in shapes[: args.top])
            jct = r.jcts_s.get(name)
            print(f"{name:>14} jct {'unfinished' if jct is None else f'{jct:.0f}':>6} "
                  f"restarts {r.num_restarts.get(name, 0):>2} restart_s {row['restart_s']:5.0f} "
                  f"run_s {row['run_s']:6.0f} gpus {row['gpu_s'] / run:4.1f} goodput {row['goodput'] / run:5.0f} "
                  f"batch {row['batch'] / run:4.0f}  {shown}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
