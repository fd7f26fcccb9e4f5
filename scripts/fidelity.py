"""Fidelity check: our training simulator + Tiresias against the Pollux paper's own simulator results.

Runs Tiresias (artifact settings) on the paper's job streams, 16 nodes x 4 GPUs, and compares the
average JCT per workload and the mean over workloads with ``results/tiresias-<load>.json``.
Nothing is fitted: every constant comes from the artifact (see docs/training-model.md).

    .venv/bin/python scripts/fidelity.py --loads 0.5 1.0 1.5 --workloads 1-8 --jobs 2
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from learners.baselines.tiresias import Tiresias  # noqa: E402
from simulator.cluster import GpuPool  # noqa: E402
from simulator.training import load_paper_result, simulate_training, workload_path  # noqa: E402
from simulator.training.artifact_pool import MostFreeFirstPool  # noqa: E402

POOLS = {"pack": GpuPool, "most-free": MostFreeFirstPool}
"""Node choice: ``pack`` is the project's pool (what autocm runs); ``most-free`` is the artifact's."""

DEFAULT_POLLUX_DIR = REPO / "simulator" / "data" / "pollux"
TARGET_RATIO_BAND = 0.10  # the brief's fidelity target: within 10 % of the paper at every load


def _parse_workloads(text: list[str]) -> list[int]:
    out: list[int] = []
    for part in text:
        for item in part.split(","):
            if "-" in item:
                lo, hi = item.split("-")
                out.extend(range(int(lo), int(hi) + 1))
            elif item:
                out.append(int(item))
    return sorted(set(out))


def run_one(task: tuple[Path, float, int, str]) -> tuple[float, int, float, int, int]:
    """(load, workload, our average JCT s, jobs finished, jobs whose JCT equals the paper's to 1 s)."""
    pollux_dir, load, index, node_choice = task
    result = simulate_training(workload_path(pollux_dir, load, index), Tiresias(),
                               pool=POOLS[node_choice].uniform(16, 4), data_dir=pollux_dir / "profiles")
    if result.unfinished:
        raise RuntimeError(f"load {load} workload {index}: unfinished jobs {result.unfinished[:5]}")
    paper = load_paper_result(pollux_dir, "tiresias", load).jcts_s[f"workload-{index}"]
    exact = sum(abs(result.jcts_s.get(name, -1e18) - jct) <= 1.0 for name, jct in paper.items())
    return load, index, result.avg_jct_s, len(result.jcts_s), exact


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--loads", nargs="+", type=float, default=[0.5, 1.0, 1.5])
    ap.add_argument("--workloads", nargs="+", default=["1-8"], help="indices, e.g. 1-8 or 1,3,5")
    ap.add_argument("--jobs", type=int, default=2, help="parallel processes")
    ap.add_argument("--pollux-dir", type=Path, default=DEFAULT_POLLUX_DIR)
    ap.add_argument("--node-choice", choices=sorted(POOLS), default="pack",
                    help="pack: the project's GpuPool; most-free: the artifact's Tiresias node choice")
    ap.add_argument("--per-workload", action="store_true", help="also print every workload's row")
    args = ap.parse_args(argv)
    workloads = _parse_workloads(args.workloads)
    tasks = [(args.pollux_dir, load, w, args.node_choice) for load in args.loads for w in workloads]
    started = time.perf_counter()
    if args.jobs > 1:
        with multiprocessing.Pool(args.jobs) as pool:
            rows = pool.map(run_one, tasks, chunksize=1)
    else:
        rows = [run_one(t) for t in tasks]
    ours = {(load, w): avg for load, w, avg, _, _ in rows}
    exact = {(load, w): (same, done) for load, w, _, done, same in rows}
    worst = 0.0
    print(f"node choice: {args.node_choice}")
    print(f"{'load':>5} {'workload':>10} {'ours_s':>9} {'paper_s':>9} {'ratio':>6} {'same_jct':>9}")
    for load in args.loads:
        paper = load_paper_result(args.pollux_dir, "tiresias", load)
        if args.per_workload:
            for w in workloads:
                p = paper.avg_jct_s[f"workload-{w}"]
                same, done = exact[load, w]
                print(f"{load:>5.1f} {w:>10d} {ours[load, w]:>9.0f} {p:>9.0f} {ours[load, w] / p:>6.3f} "
                      f"{same:>4d}/{done:<4d}")
        mine = sum(ours[load, w] for w in workloads) / len(workloads)
        theirs = sum(paper.avg_jct_s[f"workload-{w}"] for w in workloads) / len(workloads)
        worst = max(worst, abs(mine / theirs - 1))
        label = "mean" if len(workloads) == 8 else f"mean{len(workloads)}"
        same = sum(exact[load, w][0] for w in workloads)
        done = sum(exact[load, w][1] for w in workloads)
        print(f"{load:>5.1f} {label:>10} {mine:>9.0f} {theirs:>9.0f} {mine / theirs:>6.3f} "
              f"{same:>4d}/{done:<4d}")
    print(f"worst deviation {worst:.1%} (target {TARGET_RATIO_BAND:.0%}); "
          f"{len(tasks)} simulations in {time.perf_counter() - started:.0f} s with {args.jobs} process(es)")
    return 0 if worst <= TARGET_RATIO_BAND else 1


if __name__ == "__main__":
    raise SystemExit(main())
