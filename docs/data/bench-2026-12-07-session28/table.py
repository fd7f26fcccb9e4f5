"""The operator-form table of docs/training-operator.md, "Placement in the operator's pool" (session 28), from the
logs in this folder and the faithful schedulers' seed-0 runs in docs/data/. Run: python3 table.py"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parent
sys.path.insert(0, str(HERE.parents[2]))
from scripts.training_table import parse  # noqa: E402  compare_training's row format, read in one place

LOGS = {  # tag -> logs of scripts/compare_training.py
    "together": ["operator-pool-advised-together-1.0x.log", "pollux-pool-advised-together-0.5x.log",
                 "pollux-pool-advised-together-1.5x.log"],
    "consolidating": ["pollux-pool-advised-0.5x.log", "pollux-pool-advised-1.0x.log", "pollux-pool-advised-1.5x.log"],
    "sg-together": ["shared-goodput-pool-advised-together-0.5x.log", "shared-goodput-pool-advised-together-1.0x.log",
                    "shared-goodput-pool-advised-together-1.5x.log"],
    "sg-consolidating": ["shared-goodput-pool-advised-0.5x.log", "shared-goodput-pool-advised-1.0x.log",
                         "shared-goodput-pool-advised-1.5x.log"],
}


def read(path: Path, tag: str | None, rows: dict) -> None:
    """Seed 0's mean JCTs, keyed by (``tag`` or the row's policy, load as printed, workload)."""
    for r in parse(path.read_text()):
        if r.seed == 0:
            rows[(tag or r.policy, f"{r.load:.1f}", r.workload)] = r.mean_s


def main() -> None:
    rows: dict = {}
    read(DATA / "goodput-las-bo-heldout-seed0.txt", None, rows)
    for p in DATA.glob("shared-goodput-heldout-*seed0.txt"):
        read(p, None, rows)
    for tag, files in LOGS.items():
        for name in files:
            read(HERE / name, tag, rows)
    print("| load | wl | `pollux` | pool, together | pool, consolidating | x `pollux` | `shared-goodput` | "
          "learned pool, together | learned pool, consolidating | x `pollux` | x pool |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    ratios: dict = {}
    for load in ("0.5", "1.0", "1.5"):
        for wl in range(3, 9):
            po, sg = rows.get(("pollux", load, wl)), rows.get(("shared-goodput", load, wl))
            pt, pc = rows.get(("together", load, wl)), rows.get(("consolidating", load, wl))
            st, sc = rows.get(("sg-together", load, wl)), rows.get(("sg-consolidating", load, wl))
            cells = [f"{v:.0f}" if v else "-" for v in (po, pt, pc)]
            r1 = f"{pc / po:.3f}" if pc and po else "-"
            r2 = f"{sc / po:.3f}" if sc and po else "-"
            r3 = f"{sc / pc:.3f}" if sc and pc else "-"
            more = [f"{v:.0f}" if v else "-" for v in (sg, st, sc)]
            print(f"| {load} | {wl} | {' | '.join(cells)} | {r1} | {' | '.join(more)} | {r2} | {r3} |")
            for key, a, b in (("pool together / pollux", pt, po), ("pool consolidating / pollux", pc, po),
                              ("learned pool together / pollux", st, po),
                              ("learned pool consolidating / pollux", sc, po),
                              ("learned pool consolidating / pool consolidating", sc, pc)):
                if a and b:
                    ratios.setdefault((load, key), []).append(a / b)
    print()
    for (load, key), v in sorted(ratios.items()):
        print(f"- {load}x, {key}: mean {sum(v) / len(v):.3f} over {len(v)} (range {min(v):.3f}-{max(v):.3f}; "
              f"<= 0.90 on {sum(x <= 0.90 for x in v)})")


if __name__ == "__main__":
    main()
