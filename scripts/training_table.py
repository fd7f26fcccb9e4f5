"""One training scheduler against another, from ``scripts/compare_training.py`` output: the issue's table.

Reads any number of compare_training output files (rows may come from different runs: the baseline's rows
from an earlier run of the same code, the candidate's from a new one), pairs the two policies' rows on
(load, workload, seed), and prints per (load, workload) the candidate's figures as ratios to the baseline's:
mean JCT (mean over seeds, with the per-seed range), p99 JCT, makespan, GPU-hours, restarts per job and the
worst job class (its mean JCT ratio). Then per load: the mean of the mean-JCT ratios and how many workloads
meet each target of issue 10 (mean JCT at least 10% lower; p99 and makespan no worse; no class more than
10% worse).

    .venv/bin/python scripts/training_table.py --candidate shared-goodput --baseline pollux FILE...
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Row:
    policy: str
    load: float
    workload: int
    seed: int
    mean_s: float
    p99_s: float
    makespan_s: float
    gpu_hours: float
    restarts_per_job: float
    per_class_s: dict[str, float]


def parse(text: str) -> list[Row]:
    """compare_training's rows; comments, headers and anything else are skipped."""
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 10 or parts[0] in ("policy", "#"):
            continue
        try:
            per = {k: float(v) for k, _, v in (p.partition("=") for p in parts[10:] if "=" in p)}
            rows.append(Row(parts[0], float(parts[1]), int(parts[2]), int(parts[3]), float(parts[4]),
                            float(parts[5]), float(parts[6]), float(parts[7]), float(parts[8]), per))
        except ValueError:
            continue
    return rows


@dataclass(frozen=True)
class Pair:
    load: float
    workload: int
    seeds: tuple[int, ...]
    mean_ratio: float
    mean_ratio_range: tuple[float, float]
    p99_ratio: float
    makespan_ratio: float
    gpu_hours: tuple[float, float]
    restarts: tuple[float, float]
    worst_class: tuple[str, float]


def _avg(values: list[float]) -> float:
    return sum(values) / len(values)


def pair(rows: list[Row], candidate: str, baseline: str) -> list[Pair]:
    """Per (load, workload) over the seeds both policies ran; a later duplicate row replaces an earlier one."""
    by = {(r.policy, r.load, r.workload, r.seed): r for r in rows}
    groups: dict[tuple[float, int], list[tuple[Row, Row]]] = defaultdict(list)
    for (policy, load, w, seed), c in sorted(by.items()):
        b = by.get((baseline, load, w, seed))
        if policy == candidate and b is not None:
            groups[(load, w)].append((c, b))
    out = []
    for (load, w), runs in sorted(groups.items()):
        ratios = [c.mean_s / b.mean_s for c, b in runs]
        classes = {k for c, b in runs for k in c.per_class_s if k in b.per_class_s}
        worst = max(((k, _avg([c.per_class_s[k] for c, _ in runs]) / _avg([b.per_class_s[k] for _, b in runs]))
                     for k in classes), key=lambda kv: kv[1], default=("-", float("nan")))
        out.append(Pair(load, w, tuple(c.seed for c, _ in runs),
                        _avg([c.mean_s for c, _ in runs]) / _avg([b.mean_s for _, b in runs]),
                        (min(ratios), max(ratios)),
                        _avg([c.p99_s for c, _ in runs]) / _avg([b.p99_s for _, b in runs]),
                        _avg([c.makespan_s for c, _ in runs]) / _avg([b.makespan_s for _, b in runs]),
                        (_avg([c.gpu_hours for c, _ in runs]), _avg([b.gpu_hours for _, b in runs])),
                        (_avg([c.restarts_per_job for c, _ in runs]), _avg([b.restarts_per_job for _, b in runs])),
                        worst))
    return out


def render(pairs: list[Pair], candidate: str, baseline: str) -> str:
    lines = [f"{candidate} / {baseline} (ratios < 1: {candidate} lower)", "",
             "| load | wl | seeds | mean JCT | per-seed range | p99 | makespan | GPU-h | restarts/job | worst class |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for p in pairs:
        lines.append(f"| {p.load:.1f} | {p.workload} | {','.join(map(str, p.seeds))} | {p.mean_ratio:.3f} | "
                     f"{p.mean_ratio_range[0]:.3f}-{p.mean_ratio_range[1]:.3f} | {p.p99_ratio:.3f} | "
                     f"{p.makespan_ratio:.3f} | {p.gpu_hours[0]:.0f} / {p.gpu_hours[1]:.0f} | "
                     f"{p.restarts[0]:.2f} / {p.restarts[1]:.2f} | {p.worst_class[0]} {p.worst_class[1]:.3f} |")
    lines += ["", "| load | workloads | mean of mean-JCT ratios | mean JCT <= 0.90 | p99 <= 1 | makespan <= 1 "
              "| worst class <= 1.10 |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for load in sorted({p.load for p in pairs}):
        ps = [p for p in pairs if p.load == load]
        lines.append(f"| {load:.1f} | {len(ps)} | {_avg([p.mean_ratio for p in ps]):.3f} | "
                     f"{sum(p.mean_ratio <= 0.90 for p in ps)} | {sum(p.p99_ratio <= 1 for p in ps)} | "
                     f"{sum(p.makespan_ratio <= 1 for p in ps)} | {sum(p.worst_class[1] <= 1.10 for p in ps)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", type=Path, help="compare_training.py output files")
    ap.add_argument("--candidate", default="shared-goodput")
    ap.add_argument("--baseline", default="pollux")
    args = ap.parse_args(argv)
    rows: list[Row] = []
    for f in args.files:
        try:
            rows += parse(f.read_text())
        except OSError as e:
            ap.error(f"{f}: {e.strerror}")
    pairs = pair(rows, args.candidate, args.baseline)
    if not pairs:
        print(f"no (load, workload, seed) has rows of both {args.candidate} and {args.baseline}", file=sys.stderr)
        return 2
    print(render(pairs, args.candidate, args.baseline))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
