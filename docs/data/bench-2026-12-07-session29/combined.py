"""Session 29's selection rule for the diurnal checkpoints, from the logs of scripts/choose_deployed.py in this folder:
a combination counts only if it met the SLO on all 20 training days (inference-diurnal-train, 11-30) AND all 20
load-levels days (inference-diurnal-train-levels, 11-30); kept: the fewest GPU-hours over the 40.
Run: python3 combined.py"""

from __future__ import annotations

import ast
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
LINE = re.compile(r"^(\{.*\}): worst attainment ([\d.]+), meets on (\d+)/(\d+), ([\d.]+) GPU-h mean")
PAIRS = {  # (training seed, sharpness, grid) -> (training-days log, levels-days log)
    (101, 4, "risk x down_evidence"): ("choose-k4.log", "choose-levels-k4.log"),
    (101, 8, "risk x down_evidence"): ("choose-k8.log", "choose-levels-k8.log"),
    (101, 16, "risk x down_evidence"): ("choose-k16.log", "choose-levels-k16.log"),
    (101, 8, "risk x switch_mean"): ("choose-sm-inference-diurnal-train-k8.log",
                                     "choose-sm-inference-diurnal-train-levels-k8.log"),
    (101, 16, "risk x switch_mean"): ("choose-sm-inference-diurnal-train-k16.log",
                                      "choose-sm-inference-diurnal-train-levels-k16.log"),
    **{(s, k, "risk x down_evidence"): (f"choose-inference-diurnal-train-k{k}-s{s}.log",
                                         f"choose-inference-diurnal-train-levels-k{k}-s{s}.log")
       for s in (202, 303) for k in (4, 8)},
}


def rows(name: str) -> dict[str, tuple[float, int, int, float]]:
    out = {}
    for line in (HERE / name).read_text().splitlines():
        m = LINE.match(line)
        if m:
            settings = ast.literal_eval(m.group(1))
            if settings.get("dual_step", 0.03) == 0.03:  # the first grids also tried 0.1 on the training days only
                key = repr(sorted(settings.items()))
                out[key] = (float(m.group(2)), int(m.group(3)), int(m.group(4)), float(m.group(5)))
    return out


def main() -> None:
    print("seed  k   grid                  kept (met 40/40, fewest GPU-h)                      train  levels  mean")
    for (seed, k, grid), (train, levels) in PAIRS.items():
        a, b = rows(train), rows(levels)
        both = [(0.5 * (a[s][3] + b[s][3]), s) for s in a if s in b and a[s][1] == a[s][2] and b[s][1] == b[s][2]]
        if not both:
            print(f"{seed}  {k:2d}  {grid:20s}  none met on all 40")
            continue
        mean, s = min(both)
        print(f"{seed}  {k:2d}  {grid:20s}  {s:50s}  {a[s][3]:5.2f}  {b[s][3]:6.2f}  {mean:5.2f}")


if __name__ == "__main__":
    main()
