"""Pollux (our re-implementation, docs/pollux.md) side by side with Tiresias on one of the paper's job streams.

Both run in this process, one after the other, on 16 nodes x 4 GPUs with the artifact's node choice (most
free GPUs first). Printed per scheduler: average JCT against the paper's figure for the same scheduler,
p99 JCT, makespan, GPU-hours, restarts, wall and CPU seconds; then the wall-time ratios: Pollux against Tiresias
in this simulator, and Pollux against the artifact's own simulator, which takes about 26 minutes for
workload 6 at 1.0x on this kind of machine (issue 10; pymoo's NSGA-II, 100 x 100 per round).

    .venv/bin/python benchmarks/bench_pollux.py --load 1.0 --workload 6 --seed 0
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from learners.baselines.tiresias import Tiresias  # noqa: E402
from simulator.datasets import DATA_DIR  # noqa: E402
from simulator.training import load_paper_result, load_profiles, simulate_training, workload_path  # noqa: E402
from simulator.training.artifact_pool import MostFreeFirstPool  # noqa: E402
from simulator.training.pollux import PolluxScheduler  # noqa: E402

POLLUX_DIR = DATA_DIR / "pollux"
ARTIFACT_WALL_S = 26 * 60.0
"""The artifact simulator's wall time for one Pollux workload (workload 6, 1.0x), as measured for issue 10."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--load", type=float, default=1.0, choices=(0.5, 1.0, 1.5))
    parser.add_argument("--workload", type=int, default=6, choices=range(1, 9), metavar="1..8")
    parser.add_argument("--seed", type=int, default=0, help="Pollux's random seed (Tiresias is deterministic)")
    args = parser.parse_args(argv)
    path = workload_path(POLLUX_DIR, args.load, args.workload)
    profiles = load_profiles(POLLUX_DIR / "profiles")
    rows = {}
    for name, make in (("tiresias", Tiresias), ("pollux", lambda: PolluxScheduler(seed=args.seed))):
        started, cpu = time.perf_counter(), time.process_time()
        result = simulate_training(path, make(), pool=MostFreeFirstPool.uniform(16, 4), profiles=profiles,
                                   seed=args.seed)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        paper = load_paper_result(POLLUX_DIR, name, args.load).avg_jct_s[f"workload-{args.workload}"]
        jcts = np.array(list(result.jcts_s.values()))
        rows[name] = (result, wall, paper, float(np.percentile(jcts, 99)), cpu)
    print(f"workload {args.workload} at {args.load}x, seed {args.seed}; seconds unless said")
    print(f"{'scheduler':>9} {'avg_jct':>8} {'paper':>8} {'ratio':>6} {'p99_jct':>8} {'makespan':>9} "
          f"{'gpu_h':>7} {'restarts':>8} {'unfinished':>10} {'wall_s':>7} {'cpu_s':>7}")
    for name, (res, wall, paper, p99, cpu) in rows.items():
        print(f"{name:>9} {res.avg_jct_s:>8.0f} {paper:>8.0f} {res.avg_jct_s / paper:>6.3f} {p99:>8.0f} "
              f"{res.makespan_s:>9.0f} {res.gpu_hours:>7.1f} {sum(res.num_restarts.values()):>8d} "
              f"{len(res.unfinished):>10d} {wall:>7.1f} {cpu:>7.1f}")
    pw, tw = rows["pollux"][1], rows["tiresias"][1]
    pc, tc = rows["pollux"][4], rows["tiresias"][4]
    print(f"wall: pollux / tiresias {pw / tw:.1f}x; pollux / artifact's 26 min {pw / ARTIFACT_WALL_S:.3f}")
    print(f"cpu:  pollux / tiresias {pc / tc:.1f}x; pollux / artifact's 26 min {pc / ARTIFACT_WALL_S:.3f} "
          f"(CPU time: what a shared machine's load does not inflate)")
    print(f"avg JCT: pollux / tiresias {rows['pollux'][0].avg_jct_s / rows['tiresias'][0].avg_jct_s:.3f} "
          f"(paper: {rows['pollux'][2] / rows['tiresias'][2]:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
