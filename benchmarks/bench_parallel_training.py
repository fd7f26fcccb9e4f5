"""Wall time of ``slo-rl``'s asynchronous parallel training with 1, 2 and 4 simulator workers.

Each run is ``autocm train SCENARIO --learner slo-rl --workers N --until-converged`` in this process
(simulator/parallel_pretrain.py): the same scenario, first seed, episode budget, staleness bound,
check cadence (in merged episodes, independent of N) and held-out seeds. Reported per run: the wall
time to the stopping verdict, the verdict, episodes merged, the held-out quality of the policy kept
(the best check: SLO met on how many held-out seeds, mean attainment, GPU-hours), and the wall time
to the first check that reaches the 1-worker run's kept quality (the SLO met on at least as many
held-out seeds at no more than ``1 + tol_gpu`` of its GPU-hours): "time to the same quality". Ratios
are against the 1-worker run measured in the same process. The machine's load average before and
after each run is printed, because the cores are shared: a speed-up needs idle cores to show.

    .venv/bin/python benchmarks/bench_parallel_training.py --scenario inference-diurnal-train \\
        --workers 1 2 4 --episodes 20 --repeats 3 --eval-seeds 5

The default scenario is inference-diurnal-train: there 20 episodes train a policy that meets the SLO on
held-out seeds, so "the same quality" is a policy that works (on inference-code-train no run's policy met it,
docs/learned-autoscaler.md).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from simulator import scenario as sc  # noqa: E402
from simulator.parallel_pretrain import Check, ParallelSettings, pretrain_parallel  # noqa: E402


def _reaches(c: Check, ref: Check, tol_gpu: float) -> bool:
    return c.slo_met >= ref.slo_met and c.gpu_hours <= (1 + tol_gpu) * ref.gpu_hours


def _to_target(record, target: Check, tol: float) -> float:
    """Seconds from the start to the first check that reaches ``target``'s quality (nan: never)."""
    return next((c.wall_at_s for c in record.checks if _reaches(c, target, tol)), float("nan"))


def run(loaded, n: int, first: int, args) -> dict:
    settings = ParallelSettings(workers=n, staleness=args.staleness, max_episodes=args.episodes,
                                until_converged=True, check_every=args.check_every, patience=args.patience,
                                eval_seeds=tuple(first + 100_000 + i for i in range(args.eval_seeds)))
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    _, record = pretrain_parallel(loaded, "slo-rl", {}, first, settings)
    wall = time.perf_counter() - t0
    kept = record.checks[record.best_check]
    episodes = len(record.merged) + sum(c.seeds for c in record.checks)  # training + held-out, all simulated
    out = {"n": n, "first": first, "record": record, "wall": wall, "load": (load0, os.getloadavg()[0]),
           "rate": episodes / record.wall_s}
    print(f"first seed {first}, workers {n}: {record.verdict} after {len(record.merged)} episodes, {wall:.1f} s "
          f"(to the verdict {record.wall_s:.1f} s, {out['rate']:.2f} episodes/s incl. held-out); kept check "
          f"{record.best_check + 1}: SLO met on {kept.slo_met}/{kept.seeds}, attainment {kept.attainment:.4f}, "
          f"{kept.gpu_hours:.2f} GPU-h; max staleness {record.max_staleness}; "
          f"load average {load0:.2f} -> {os.getloadavg()[0]:.2f}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default="inference-diurnal-train")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--episodes", type=int, default=20, help="episode budget of every run")
    parser.add_argument("--staleness", type=int, default=1)
    parser.add_argument("--check-every", type=int, default=2)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--eval-seeds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=1, help="runs per worker count, first seeds 1000 apart")
    args = parser.parse_args(argv)
    if not args.workers or min(args.workers) < 1 or args.repeats < 1:
        parser.error("--workers and --repeats: every count must be at least 1")
    loaded = sc.load(args.scenario)
    print(f"scenario {loaded.name}, budget {args.episodes} episodes, staleness {args.staleness}, check every "
          f"{args.check_every} episodes on {args.eval_seeds} held-out seeds, patience {args.patience}; "
          f"{os.cpu_count()} CPUs")
    tol = ParallelSettings().tol_gpu
    rows = []
    for r in range(args.repeats):
        first = loaded.seed + 1000 * r
        runs = [run(loaded, n, first, args) for n in args.workers]
        ref = runs[0]["record"]
        target = ref.checks[ref.best_check]
        base_t = _to_target(ref, target, tol)
        for x in runs:
            rec, tt = x["record"], _to_target(x["record"], target, tol)
            rows.append(f"{x['n']:7d}  {first:5d}  {rec.verdict:10s}  {len(rec.merged):8d}  {rec.wall_s:15.1f}  "
                        f"{ref.wall_s / rec.wall_s:5.2f}  {x['rate']:10.2f}  {x['rate'] / runs[0]['rate']:5.2f}  "
                        f"{tt:14.1f}  {base_t / tt:5.2f}  {x['load'][0]:.2f} / {x['load'][1]:.2f}")
        rows.append(f"  (target of first seed {first}: SLO met on >= {target.slo_met}/{target.seeds} held-out seeds "
                    f"at <= {(1 + tol) * target.gpu_hours:.2f} GPU-h, the {runs[0]['n']}-worker run's kept check)")
    print("\nworkers  first  verdict     episodes  wall to verdict  ratio  episodes/s  ratio  wall to target  ratio  "
          "load avg before/after")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
