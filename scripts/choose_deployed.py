"""Choose deployment-only settings for an existing checkpoint on a training scenario, and record them in it.

``autocm bench pretrain --choose-deployed`` does this for the suite's scenarios, training each checkpoint
first. The bundled day-long checkpoint (simulator/checkpoints/slo-rl-diurnal.ckpt, trained on
``inference-diurnal-train`` seeds 101-103) is not a suite scenario, so this script applies the same rule
to it: every combination of the grid is run from the checkpoint on each validation seed of the TRAINING
scenario (learning online within the episode, nothing carried to the next, as an evaluation seed runs);
kept: the fewest mean GPU-hours among the combinations that meet the SLO on every seed, else the one
meeting on the most. With ``--also SCENARIO`` the same seeds of further training-side scenarios count too: a
combination must meet on every seed of every scenario, and GPU-hours are the mean over all of them. The kept
settings are written into the checkpoint's provenance (``settings`` and ``deployed``), which ``autocm sim``,
``autocm bench --pretrained`` and the operator all run it with.

    PYTHONPATH=$PWD python scripts/choose_deployed.py inference-diurnal-train \\
        simulator/checkpoints/slo-rl-diurnal.ckpt --seeds 11-30 --choose down_evidence=0,1.0,1.1,1.25 \\
        --out /tmp/slo-rl-diurnal.ckpt
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

from controller.bench_cmd import parse_grid
from controller.checkpoint import decode
from simulator.bench.pretrain import Tried, keep, redeclare
from simulator.scenario import load
from simulator.workloads import PolicyRun, simulate


def parse_seeds(text: str) -> list[int]:
    if "-" in text:
        lo, hi = (int(x) for x in text.split("-", 1))
        return list(range(lo, hi + 1))
    return [int(x) for x in text.split(",")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenario", help="the training scenario (name or path)")
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--seeds", default="11-30", help="validation seeds of the training scenario: 11-30 or 11,12")
    ap.add_argument("--choose", action="append", default=[], metavar="KEY=V1,V2,...", required=True)
    ap.add_argument("--also", action="append", default=[], metavar="SCENARIO",
                    help="another training-side scenario whose seeds a combination must also meet on (repeatable; "
                         "session 29 validated the diurnal checkpoint on inference-diurnal-train-levels too)")
    ap.add_argument("--out", type=Path, help="write the checkpoint with the kept settings recorded here")
    ap.add_argument("--learner", default="slo-rl")
    args = ap.parse_args(argv)
    if not args.checkpoint.is_file():
        ap.error(f"{args.checkpoint}: no such checkpoint (make one with autocm train)")
    try:
        scenario = load(args.scenario)
        scenarios = [scenario, *(load(name) for name in args.also)]
        ck = decode(args.checkpoint.read_bytes(), args.learner)
    except ValueError as exc:  # ScenarioError, CheckpointError: one line, not a traceback
        ap.error(str(exc))
    try:
        grid = parse_grid("--choose", tuple(args.choose))
    except ValueError as exc:
        ap.error(str(exc))
    recorded = dict(ck.recorded_settings)
    seeds = parse_seeds(args.seeds)
    tried = []
    for combo in itertools.product(*(values for _, values in grid)):
        extra = dict(zip((k for k, _ in grid), combo, strict=True))
        settings = {**recorded, **extra}
        runs, t0 = [], time.time()  # (attainment, GPU-hours, met) per seed of every scenario
        for sc in scenarios:
            aim = float(sc.inference[0]["slo"]["attainment"])
            for seed in seeds:
                r = simulate(sc, PolicyRun(args.learner, args.learner, settings,
                                           checkpoint=str(args.checkpoint.resolve())), seed)
                a = r.metrics["slo_attainment"]
                runs.append((a, r.metrics["gpu_hours"], a >= aim))
        t = Tried(extra, None, sum(m for _, _, m in runs), min(a for a, _, _ in runs),
                  sum(g for _, g, _ in runs) / len(runs), len(runs))
        tried.append(t)
        print(f"{extra}: worst attainment {t.worst:.4f}, meets on {t.met}/{t.episodes}, {t.gpu_hours:.2f} GPU-h mean "
              f"({time.time() - t0:.0f} s)", flush=True)
    best, passing = keep(tried)
    print(f"kept {best.settings}: " + (f"the fewest GPU-hours of the {passing} that met on every seed" if passing
                                       else f"none met on every seed; it met on the most ({best.met})"))
    if args.out:
        redeclare(args.checkpoint, args.out, args.learner, scenario, {**recorded, **best.settings}, best.settings)
        print(f"wrote {args.out} (provenance settings {decode(args.out.read_bytes(), args.learner).recorded_settings})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
