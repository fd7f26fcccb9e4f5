"""Issue 10's operator-form ratios per seed (session 29): the operator's learned scheduler (shared-goodput-pool-advised)
over the operator's Pollux (pollux-pool-advised) and over the faithful pollux, and the operator's Pollux over the
faithful one, on held-out workloads 3-8. Seed 0 from session 28's logs, seeds 1-2 from this folder's; the faithful
pollux rows from the files in docs/data/. Run from the repository root: python3 docs/data/bench-2026-12-07-session29/
operator_seeds_table.py"""

from __future__ import annotations

import collections
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parent
sys.path.insert(0, str(HERE.parents[2]))
from scripts.training_table import parse  # noqa: E402  compare_training's row format, read in one place

FILES = [DATA / "goodput-las-bo-heldout-seed0.txt", DATA / "goodput-las-bo-seed1.txt",
         *sorted(DATA.glob("shared-goodput-heldout-*.txt")),
         *sorted((DATA / "bench-2026-12-07-session28").glob("*-pool-advised-[01].[05]x.log")),
         *sorted((DATA / "bench-2026-12-07-session28").glob("*-pool-advised-1.5x.log")),
         *sorted(HERE.glob("operator-pool-seeds-1-2-*.log")),
         *sorted((DATA / "bench-2026-12-07-session30").glob("operator-pool-seeds-1-2-*.log"))]  # 1.5x, session 30


def main() -> None:
    rows = {(r.policy, r.load, r.workload, r.seed): r.mean_s for path in FILES for r in parse(path.read_text())}
    for load in (0.5, 1.0, 1.5):
        per = collections.defaultdict(list)
        for seed in (0, 1, 2):
            for wl in range(3, 9):
                learned, op, faithful = (rows.get((p, load, wl, seed)) for p in
                                         ("shared-goodput-pool-advised", "pollux-pool-advised", "pollux"))
                if learned and op and faithful:
                    per[seed].append((wl, learned / op, learned / faithful, op / faithful))
        for seed, v in sorted(per.items()):
            mean = [sum(x[i] for x in v) / len(v) for i in (1, 2, 3)]
            under = sum(x[1] <= 0.9 for x in v)
            print(f"{load}x seed {seed}: learned / operator Pollux {mean[0]:.3f} (<= 0.90 on {under} of {len(v)}), "
                  f"learned / pollux {mean[1]:.3f}, operator Pollux / pollux {mean[2]:.3f}; per workload "
                  + " ".join(f"{x[0]}:{x[1]:.3f}" for x in v))


if __name__ == "__main__":
    main()
