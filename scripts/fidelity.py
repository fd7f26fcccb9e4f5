"""Fidelity check: our training simulator + Tiresias or Pollux against the Pollux paper's own simulator results.

Runs a scheduler (Tiresias with the artifact's settings, or our Pollux re-implementation, docs/pollux.md)
on the paper's job streams, 16 nodes x 4 GPUs, and compares the average JCT per workload and the mean
over workloads with ``results/<policy>-<load>.json``. Nothing is fitted to the results: every constant
comes from the artifact (see docs/training-model.md). Pollux is randomised: ``--seeds`` runs each
workload once per seed and reports the mean and a 95% t-interval over seeds.

    .venv/bin/python scripts/fidelity.py --loads 0.5 1.0 1.5 --workloads 1-8 --jobs 2
    .venv/bin/python scripts/fidelity.py --policy pollux --seeds 0 1 2 --loads 1.0 --workloads 1-8
    .venv/bin/python scripts/fidelity.py --policy pollux --seeds --from docs/data/pollux-fidelity-*.txt
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

from learners.baselines.tiresias import Tiresias  # noqa: E402
from simulator.cluster import GpuPool  # noqa: E402
from simulator.training import load_paper_result, simulate_training, workload_path  # noqa: E402
from simulator.training.artifact_pool import MostFreeFirstPool  # noqa: E402
from simulator.training.pollux import PolluxScheduler  # noqa: E402

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


def run_pollux(task: tuple[Path, float, int, str, int]) -> tuple[float, int, int, float, int, float]:
    """(load, workload, seed, our average JCT s, jobs finished, wall seconds) for one Pollux run."""
    pollux_dir, load, index, node_choice, seed = task
    started = time.perf_counter()
    result = simulate_training(workload_path(pollux_dir, load, index), PolluxScheduler(seed=seed),
                               pool=POOLS[node_choice].uniform(16, 4), data_dir=pollux_dir / "profiles", seed=seed)
    if result.unfinished:
        raise RuntimeError(f"load {load} workload {index} seed {seed}: unfinished jobs {result.unfinished[:5]}")
    return load, index, seed, result.avg_jct_s, len(result.jcts_s), time.perf_counter() - started


def interval(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% Student-t interval (nan with one value)."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return float(v.mean()), float("nan")
    return float(v.mean()), float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))


ROW_FIELDS = 7
"""A Pollux row as printed: load, workload, seed, ours_s, paper_s, ratio, wall_s."""


def read_rows(paths: list[Path]) -> list[tuple[float, int, int, float]]:
    """(load, workload, seed, our average JCT s) of every Pollux row printed by earlier runs of this script.

    Lets a sweep be split over several invocations (one seed or workload at a time on a shared machine) and
    summarised together. A (load, workload, seed) printed twice must agree: runs are deterministic per seed."""
    rows: dict[tuple[float, int, int], float] = {}
    for path in paths:
        in_runs = False  # run rows follow the header naming wall_s; the summary follows another header
        for line in path.read_text().splitlines():
            parts = line.split()
            if parts[:1] == ["load"]:
                in_runs = parts[-1] == "wall_s"
                continue
            if not in_runs or len(parts) != ROW_FIELDS:
                continue
            try:
                load, w, seed, avg = float(parts[0]), int(parts[1]), int(parts[2]), float(parts[3])
            except ValueError:
                continue
            key = (load, w, seed)
            if key in rows and abs(rows[key] - avg) > 0.5:
                raise ValueError(f"{path}: load {load} workload {w} seed {seed}: {avg:.0f} s here, "
                                 f"{rows[key]:.0f} s in an earlier file")
            rows[key] = avg
    return [(load, w, seed, avg) for (load, w, seed), avg in sorted(rows.items())]


def within_band(ratio: float, half_width: float) -> str:
    """``yes``: the ratio's 95% interval lies within the target band; ``mean``: only the ratio does; else ``no``."""
    if not abs(ratio - 1) <= TARGET_RATIO_BAND:
        return "no"
    if math.isfinite(half_width) and abs(ratio - 1) + half_width <= TARGET_RATIO_BAND:
        return "yes"
    return "mean"


def summarise_pollux(rows: list[tuple[float, int, int, float]], pollux_dir: Path) -> float:
    """Per (load, workload): mean over seeds, its 95% t-interval, the paper's figure, the ratio and its interval;
    per load: the mean over workloads (each workload's seed mean) against the paper's mean over the same
    workloads. Returns the worst deviation of a load's ratio from 1."""
    worst = 0.0
    print(f"{'load':>5} {'workload':>9} {'seeds':>5} {'mean_s':>8} {'+-95%':>6} {'paper_s':>8} {'ratio':>6} "
          f"{'ratio_95%':>13} {'in_10%':>6}")
    for load in sorted({r[0] for r in rows}):
        paper = load_paper_result(pollux_dir, "pollux", load)
        means, theirs = [], []
        for w in sorted({r[1] for r in rows if r[0] == load}):
            vals = [a for ld, ww, _, a in rows if ld == load and ww == w]
            m, h = interval(vals)
            p = paper.avg_jct_s[f"workload-{w}"]
            means.append(m)
            theirs.append(p)
            span = f"{(m - h) / p:.3f}..{(m + h) / p:.3f}" if len(vals) > 1 else "n/a"
            print(f"{load:>5.1f} {w:>9d} {len(vals):>5d} {m:>8.0f} {h:>6.0f} {p:>8.0f} {m / p:>6.3f} {span:>13} "
                  f"{within_band(m / p, h / p):>6}")
        ratios = [m / p for m, p in zip(means, theirs, strict=True)]
        rm, rh = interval(ratios)
        ours, paper_mean = float(np.mean(means)), float(np.mean(theirs))
        worst = max(worst, abs(ours / paper_mean - 1))
        span = f"{rm - rh:.3f}..{rm + rh:.3f}" if len(ratios) > 1 else "n/a"
        print(f"{load:>5.1f} {'mean':>9} {len(means):>5d} {ours:>8.0f} {'':>6} {paper_mean:>8.0f} "
              f"{ours / paper_mean:>6.3f} {span:>13} {within_band(ours / paper_mean, rh):>6}"
              f"  (mean of {len(means)} workloads; interval over their ratios)")
    return worst


def main_pollux(args: argparse.Namespace, workloads: list[int]) -> int:
    """Every (load, workload, seed), streamed as it finishes (long sweeps can be read while they run), then the
    summary; with ``--from``, rows of earlier runs are summarised with these (or alone, with ``--seeds``
    none)."""
    tasks = [(args.pollux_dir, load, w, args.node_choice, seed)
             for seed in args.seeds for load in args.loads for w in workloads]
    started = time.perf_counter()
    rows = read_rows(args.from_files) if args.from_files else []
    if tasks:
        print(f"policy pollux, node choice {args.node_choice}, seeds {args.seeds}", flush=True)
        print(f"{'load':>5} {'workload':>9} {'seed':>5} {'ours_s':>8} {'paper_s':>8} {'ratio':>6} {'wall_s':>7}",
              flush=True)
    runner = multiprocessing.Pool(args.jobs).imap if args.jobs > 1 and tasks else map
    for load, w, seed, avg, _, wall in runner(run_pollux, tasks):
        paper = load_paper_result(args.pollux_dir, "pollux", load).avg_jct_s[f"workload-{w}"]
        rows.append((load, w, seed, avg))
        print(f"{load:>5.1f} {w:>9d} {seed:>5d} {avg:>8.0f} {paper:>8.0f} {avg / paper:>6.3f} {wall:>7.0f}", flush=True)
    if not rows:
        print("nothing to summarise")
        return 1
    if args.from_files:
        print(f"summary of {len(rows)} runs, including those in {', '.join(str(f) for f in args.from_files)}")
    worst = summarise_pollux(rows, args.pollux_dir)
    print(f"worst deviation of a load's mean {worst:.1%} (target {TARGET_RATIO_BAND:.0%}); "
          f"{len(tasks)} new simulations in {time.perf_counter() - started:.0f} s with {args.jobs} process(es)")
    return 0 if worst <= TARGET_RATIO_BAND else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--loads", nargs="+", type=float, default=[0.5, 1.0, 1.5])
    ap.add_argument("--workloads", nargs="+", default=["1-8"], help="indices, e.g. 1-8 or 1,3,5")
    ap.add_argument("--jobs", type=int, default=2, help="parallel processes")
    ap.add_argument("--pollux-dir", type=Path, default=DEFAULT_POLLUX_DIR)
    ap.add_argument("--node-choice", choices=sorted(POOLS), default="most-free",
                    help="most-free (default): the artifact's node choice; pack: the project's GpuPool (fullest first)")
    ap.add_argument("--policy", choices=("tiresias", "pollux"), default="tiresias")
    ap.add_argument("--seeds", nargs="*", type=int, default=[0],
                    help="pollux only: one run per seed (none, with --from: only summarise)")
    ap.add_argument("--from", dest="from_files", nargs="+", type=Path, default=[], metavar="FILE",
                    help="pollux only: also summarise the rows printed by earlier runs of this script")
    ap.add_argument("--per-workload", action="store_true", help="also print every workload's row")
    args = ap.parse_args(argv)
    workloads = _parse_workloads(args.workloads)
    if args.policy == "pollux":
        return main_pollux(args, workloads)
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
