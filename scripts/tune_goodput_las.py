"""Bayesian optimisation of goodput-las' two weights on the TRAINING workloads only (issue 10).

``goodput-las`` (simulator/training/goodput_las.py) weights each job's speedup in Pollux's objective by
``(1 + attained_gpu_s / scale_gpu_s) ** exponent``. Its weights were set by hand; the issue asks that they
be chosen on workloads 1-2 and frozen before the held-out workloads (3-8) are run. This script does that
choice and nothing else: it never runs a held-out workload.

Objective (minimised): goodput-las' mean JCT divided by Pollux's mean JCT on the same (workload, load,
seed), averaged over the training (workload, load) pairs. Pollux runs once per pair and is cached, so each
evaluation costs one goodput-las simulation per pair. ``exponent = 0`` is exactly Pollux (every weight is
1), so that candidate costs no simulation: its ratios are 1 by definition, and the optimiser can answer "no
priority is best". Constraint: the worst job class' mean-JCT ratio, over classes and training pairs, must
stay <= 1.10 (the issue's "no job class more than 10% worse"). p99 and makespan ratios are recorded per
evaluation, not optimised. The optimiser is the project's own constrained BO (learners/bayesopt.py:
Matérn-5/2 GPs, constrained EI) over a grid of (exponent, log scale_gpu_s); the chosen setting is the
cheapest feasible evaluation seen.

    PYTHONPATH=$PWD nice -n 10 .venv/bin/python scripts/tune_goodput_las.py --workloads 1 2 --loads 1.0 \\
        --evaluations 14 --out docs/data/goodput-las-bo-train.txt

Every simulation's summary is cached (``--cache``, JSON): rerunning the same command replays the same
suggestions from the cache without simulating again (the optimiser is seeded), so an interrupted run
resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO, REPO / "scripts"):  # the library, and compare_training beside this script
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import numpy as np  # noqa: E402
from compare_training import RunSummary, run_once  # noqa: E402

from learners.bayesopt import BayesOptSettings, ConstrainedBayesOpt  # noqa: E402
from simulator.training.goodput_las import LasSettings  # noqa: E402

TRAINING_WORKLOADS = (1, 2)
"""The only workloads the weights may be chosen on (issue 10); 3-8 are held out."""
CLASS_BOUND = 1.10
"""The issue's bound on any job class' mean JCT relative to Pollux's."""


@dataclass(frozen=True)
class Ratios:
    """goodput-las over Pollux on one (workload, load, seed)."""

    mean: float
    p99: float
    makespan: float
    worst_class: float


def ratios(las: RunSummary, pollux: RunSummary) -> Ratios:
    """goodput-las' figures over Pollux's; the worst class is over the classes both runs finished."""
    common = sorted(set(las.per_class_s) & set(pollux.per_class_s))
    worst = max(las.per_class_s[a] / pollux.per_class_s[a] for a in common)
    return Ratios(las.mean_s / pollux.mean_s, las.p99_s / pollux.p99_s, las.makespan_s / pollux.makespan_s, worst)


def aggregate(per_pair: Sequence[Ratios]) -> tuple[float, float, Ratios]:
    """(objective, constraint, the pairs' summary): the objective is the MEAN of the pairs' mean-JCT ratios
    (each training workload and load counts alike); the constraint and the reported p99, makespan and class
    figures are the WORST pair's, since every target must hold on every workload."""
    objective = float(np.mean([r.mean for r in per_pair]))
    worst = Ratios(max(r.mean for r in per_pair), max(r.p99 for r in per_pair),
                   max(r.makespan for r in per_pair), max(r.worst_class for r in per_pair))
    return objective, worst.worst_class, worst


def candidate_grid(exponents: Sequence[float], scales_gpu_s: Sequence[float]) -> np.ndarray:
    """Rows (exponent, log scale_gpu_s). Every scale gives the same scheduler at exponent 0 (Pollux), so that
    exponent appears once, at the middle scale: the optimiser can pick it without duplicates to waste
    evaluations on."""
    logs = np.log(np.asarray(scales_gpu_s, dtype=float))
    rows = [(0.0, float(np.median(logs)))] if 0.0 in exponents else []
    rows += [(float(e), float(s)) for e in exponents if e != 0.0 for s in logs]
    return np.array(rows)


def settings_of(row: Sequence[float]) -> LasSettings:
    return LasSettings(exponent=float(row[0]), scale_gpu_s=float(math.exp(row[1])))


def key_of(policy: str, las: LasSettings | None, load: float, workload: int, seed: int) -> str:
    """A cache key that names everything the run depends on (exponent, scale to full precision)."""
    weights = "" if las is None else f" exponent={las.exponent!r} scale_gpu_s={las.scale_gpu_s!r}"
    return f"{policy}{weights} load={load} wl={workload} seed={seed}"


class SimCache:
    """Run summaries by key, saved to a JSON file after each new run (an interrupted tuning resumes)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.runs: dict[str, RunSummary] = {}
        if path is not None and path.exists():
            self.runs = {k: RunSummary(**v) for k, v in json.loads(path.read_text()).items()}

    def get(self, key: str, run: Callable[[], RunSummary]) -> tuple[RunSummary, bool]:
        """The cached summary, or ``run()``'s (then saved); the flag says whether it was simulated now."""
        if key in self.runs:
            return self.runs[key], False
        self.runs[key] = run()
        if self.path is not None:
            self.path.write_text(json.dumps({k: asdict(v) for k, v in sorted(self.runs.items())}, indent=1))
        return self.runs[key], True


Evaluate = Callable[[LasSettings], tuple[float, float, Ratios]]


def tune(candidates: np.ndarray, evaluate: Evaluate, evaluations: int, seed: int = 0,
         report: Callable[[int, LasSettings, float, float, Ratios], None] | None = None,
         bo_settings: BayesOptSettings | None = None) -> tuple[LasSettings | None, ConstrainedBayesOpt]:
    """Constrained BO over ``candidates`` (rows: exponent, log scale): ``evaluations`` trials, the first being
    the exponent-0 row (Pollux, the reference every ratio is against) when the grid has one. Returns the
    cheapest feasible trial's settings (None if none was feasible) and the optimiser."""
    bo = ConstrainedBayesOpt(candidates, bo_settings or BayesOptSettings(
        initial_points=4, constraint_max=CLASS_BOUND, lengthscale_prior=(0.5, 1.0)), np.random.default_rng(seed))
    zero = np.flatnonzero(candidates[:, 0] == 0.0)
    for n in range(min(evaluations, len(candidates))):
        index = int(zero[0]) if n == 0 and zero.size else bo.suggest()
        las = settings_of(candidates[index])
        objective, constraint, worst = evaluate(las)
        bo.observe(index, objective, constraint)
        if report is not None:
            report(n, las, objective, constraint, worst)
    best = bo.best()
    return (None if best is None else settings_of(candidates[best])), bo


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", nargs="+", type=int, default=list(TRAINING_WORKLOADS))
    ap.add_argument("--loads", nargs="+", type=float, default=[1.0])
    ap.add_argument("--seed", type=int, default=0, help="the simulations' seed (the BO's own seed is 0)")
    ap.add_argument("--evaluations", type=int, default=14)
    ap.add_argument("--exponents", nargs="+", type=float, default=[float(e) for e in np.linspace(0.0, 3.0, 13)])
    ap.add_argument("--scales", nargs="+", type=float,
                    default=[float(s) for s in np.geomspace(600.0, 36000.0, 9)])
    ap.add_argument("--cache", type=Path, default=REPO / "docs" / "data" / "goodput-las-bo-cache.json")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "data" / "goodput-las-bo-train.txt")
    args = ap.parse_args(argv)
    held_out = sorted(set(args.workloads) - set(TRAINING_WORKLOADS))
    if held_out:
        ap.error(f"workloads {held_out} are held out: the weights may be tuned on {list(TRAINING_WORKLOADS)} only")
    cache = SimCache(args.cache)
    pairs = [(load, w) for load in args.loads for w in args.workloads]
    out = args.out.open("w")

    def emit(line: str) -> None:
        print(line, flush=True)
        out.write(line + "\n")
        out.flush()

    def run(policy: str, las: LasSettings | None, load: float, w: int) -> RunSummary:
        started = time.perf_counter()
        summary, fresh = cache.get(key_of(policy, las, load, w, args.seed),
                                   lambda: run_once(policy, load, w, args.seed, las))
        if summary.unfinished:
            raise RuntimeError(f"{policy} {las} left {summary.unfinished} jobs unfinished at load {load} wl {w}")
        emit(f"# {policy} {'' if las is None else f'{las.exponent:.2f}/{las.scale_gpu_s:.0f}'} load {load} wl {w}: "
             f"mean {summary.mean_s:.0f} s, p99 {summary.p99_s:.0f} s, makespan {summary.makespan_s:.0f} s, "
             f"{summary.gpu_hours:.1f} GPU-h, {summary.restarts_per_job:.2f} restarts/job "
             f"({'simulated' if fresh else 'from the cache'}, {time.perf_counter() - started:.0f} s)")
        return summary

    emit(f"# tune goodput-las: workloads {args.workloads}, loads {args.loads}, seed {args.seed}, "
         f"{args.evaluations} evaluations; objective = mean over pairs of mean-JCT ratio vs pollux; "
         f"constraint: worst class ratio <= {CLASS_BOUND}")
    pollux = {(load, w): run("pollux", None, load, w) for load, w in pairs}

    def evaluate(las: LasSettings) -> tuple[float, float, Ratios]:
        if las.exponent == 0.0:  # every weight is 1: the scheduler is Pollux, its ratios are 1 exactly
            return aggregate([Ratios(1.0, 1.0, 1.0, 1.0) for _ in pairs])
        per_pair = [ratios(run("goodput-las", las, load, w), pollux[(load, w)]) for load, w in pairs]
        return aggregate(per_pair)

    emit(f"{'eval':>4} {'exponent':>8} {'scale_gpu_s':>11} {'objective':>9} {'worst_mean':>10} {'worst_p99':>9} "
         f"{'worst_makespan':>14} {'worst_class':>11} {'feasible':>8}")

    def report(n: int, las: LasSettings, objective: float, constraint: float, worst: Ratios) -> None:
        emit(f"{n:>4d} {las.exponent:>8.2f} {las.scale_gpu_s:>11.0f} {objective:>9.4f} {worst.mean:>10.4f} "
             f"{worst.p99:>9.4f} {worst.makespan:>14.4f} {worst.worst_class:>11.4f} "
             f"{'yes' if constraint <= CLASS_BOUND else 'no':>8}")

    chosen, _ = tune(candidate_grid(args.exponents, args.scales), evaluate, args.evaluations, report=report)
    if chosen is None:
        emit("# chosen: none (no evaluation met the class constraint)")
    else:
        emit(f"# chosen (frozen): exponent={chosen.exponent:.2f} scale_gpu_s={chosen.scale_gpu_s:.0f}"
             + ("  (exponent 0: Pollux itself; LAS priority did not pay on the training workloads)"
                if chosen.exponent == 0.0 else ""))
    out.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
