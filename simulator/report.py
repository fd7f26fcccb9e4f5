"""The report folder a person can open without reading code.

``summary.md`` (one page: what ran, the table, the verdict, the plots), ``results.json`` (everything,
machine-readable, with seeds, scenario hash and versions), ``runs.csv`` (one row per policy and
seed), ``table.csv`` (means and confidence intervals), PNG plots, and ``metrics/*.om.txt``
(OpenMetrics with timestamps, importable with ``promtool tsdb create-blocks-from openmetrics``).
"""

from __future__ import annotations

import csv
import json
import math
import platform
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from simulator.results import Estimate, RunResult, aggregate


def _figure(figsize: tuple[float, float]) -> tuple[Any, Any]:
    """A figure and its axes, imported when the first plot is drawn. matplotlib's object API, not pyplot:
    pyplot's import and its global figure registry cost a second a report does not need."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.add_subplot()


COLUMNS: dict[str, tuple[str, str]] = {
    # metric -> (column heading, how to read it)
    "slo_attainment": ("SLO attain.", "fraction of requests meeting the SLO"),
    "gpu_hours": ("GPU-hours", "GPU time held, including cold starts"),
    "gpu_hours_vs_oracle": ("x oracle", "GPU-hours over the hindsight oracle's lower bound"),
    "ttft_p50_seconds": ("TTFT p50 s", "median time to first token"),
    "ttft_p99_seconds": ("TTFT p99 s", "99th percentile time to first token"),
    "tbt_p50_seconds": ("TBT p50 s", "median time between tokens"),
    "tbt_p99_seconds": ("TBT p99 s", "99th percentile time between tokens"),
    "e2e_p50_seconds": ("E2E p50 s", "median end-to-end latency"),
    "e2e_p99_seconds": ("E2E p99 s", "99th percentile end-to-end latency"),
    "pending_pods_mean": ("pending pods", "pods waiting for GPUs, time-averaged: asked for but not running"),
    "requests_unfinished": ("unfinished", "requests still unfinished when the drain grace period ended (misses)"),
    "changes": ("changes", "configuration changes applied"),
    "avg_jct_s": ("avg JCT s", "average job completion time"),
    "avg_jct_vs_paper": ("x paper", "avg JCT over the Pollux paper's figure for this scheduler"),
    "makespan_s": ("makespan s", "time until the last job finished"),
    "jobs_completed": ("jobs done", "training jobs completed"),
    "class_models_converged": ("classes conv.", "share of job-class throughput models (shared-goodput) whose "
                               "out-of-sample convergence check passed at the end of the run"),
}


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("autocm", "numpy", "simpy", "scipy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


SHOWN_WHEN_NONZERO = frozenset({"pending_pods_mean", "requests_unfinished"})
"""Columns that only say something when some policy has them (otherwise they stay in runs.csv)."""


def table_rows(agg: Mapping[str, Mapping[str, Estimate]]) -> tuple[list[str], list[list[str]]]:
    present = [m for m in COLUMNS if any(m in per for per in agg.values())
               and (m not in SHOWN_WHEN_NONZERO or any(abs(per[m].mean) >= 0.05 for per in agg.values()
                                                       if m in per and math.isfinite(per[m].mean)))]
    header = ["policy", *[COLUMNS[m][0] for m in present], "meets SLO"]
    rows = []
    for label, per in agg.items():
        row = [label]
        for m in present:
            est = per.get(m)
            row.append(est.format() if est is not None else "-")
        ms = per.get("meets_slo")
        if ms is None or ms.n == 0:
            row.append("")
        else:
            row.append("yes" if ms.mean == 1 else ("no" if ms.mean == 0 else f"{ms.mean:.0%} of seeds"))
        rows.append(row)
    return header, rows


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    sep = "  ".join("-" * w for w in widths)
    body = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join([line, sep, *body])


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def _plot_timelines(runs: Sequence[RunResult], key: str, ylabel: str, path: Path, title: str,
                    extra: tuple[str, list[tuple[float, float]]] | None = None) -> bool:
    shown = [r for r in runs if r.series.get(key)]
    if not shown:
        return False
    fig, ax = _figure((11, 4.4))
    for r in shown:
        pts = r.series[key]
        ax.step([t / 3600 for t, _ in pts], [v for _, v in pts], where="post", label=r.policy, lw=1.3)
    if extra is not None:
        ax2 = ax.twinx()
        name, pts = extra
        ax2.plot([t / 3600 for t, _ in pts], [v for _, v in pts], color="grey", alpha=0.35, lw=1)
        ax2.set_ylabel(name, color="grey")
    ax.set_xlabel("simulated time (hours)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    # beside the axes, never over the lines
    ax.legend(loc="upper left", bbox_to_anchor=(1.08 if extra is not None else 1.01, 1.0), fontsize=8,
              borderaxespad=0.0)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def _plot_cost_vs_slo(agg: Mapping[str, Mapping[str, Estimate]], target: float | None, path: Path,
                      bounds: Mapping[str, float] | None = None) -> bool:
    """Measured policies as numbered points (names in the legend, so labels never overlap); the oracle,
    which measures nothing, as a vertical line at its GPU-hours bound."""
    pts = [(label, per["gpu_hours"].mean, per["slo_attainment"].mean) for label, per in agg.items()
           if "gpu_hours" in per and "slo_attainment" in per]
    if not pts:
        return False
    fig, ax = _figure((10, 4.8))
    markers = "osD^v<>pPX*h"
    at: dict[tuple[float, float], list[str]] = {}  # points that coincide share one label: "1, 2, 4"
    for i, (label, cost, att) in enumerate(pts, 1):
        ax.scatter(cost, att * 100, s=46, marker=markers[(i - 1) % len(markers)], label=f"{i}: {label}", zorder=3)
        at.setdefault((round(cost, 2), round(att * 100, 2)), []).append(str(i))
    for (cost, att), numbers in at.items():
        ax.annotate(", ".join(numbers), (cost, att), fontsize=8, xytext=(4, 3), textcoords="offset points")
    for label, cost in (bounds or {}).items():
        ax.axvline(cost, color="black", ls=":", lw=1, label=f"{label}: GPU-hours bound (not a measurement)")
    if target is not None:
        ax.axhline(target * 100, color="red", ls="--", lw=1, label=f"SLO: {target:.0%} of requests")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, borderaxespad=0.0)
    ax.set_xlabel("GPU-hours (lower is cheaper)")
    ax.set_ylabel("requests meeting the SLO (%)")
    ax.set_title("Cost against SLO attainment (mean over seeds)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def _plot_jct_cdf(runs: Sequence[RunResult], path: Path) -> bool:
    shown = [r for r in runs if r.series.get("jct_s")]
    if not shown:
        return False
    fig, ax = _figure((7, 4.5))
    for r in shown:
        jcts = sorted(v for _, v in r.series["jct_s"])
        ys = [(i + 1) / len(jcts) for i in range(len(jcts))]
        ax.step([j / 3600 for j in jcts], ys, where="post", label=r.policy)
    ax.set_xscale("log")
    ax.set_xlabel("job completion time (hours, log scale)")
    ax.set_ylabel("fraction of jobs")
    ax.set_title("Job completion times (first seed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def write_report(out: Path, scenario: Any, runs: Sequence[RunResult], seeds: Sequence[int],
                 extra: Mapping[str, Any] | None = None, metrics_files: Sequence[Mapping[str, Any]] | None = None,
                 slo_target: float | None = None) -> dict[str, Any]:
    """Write the report folder; returns the machine-readable summary that went into results.json."""
    out.mkdir(parents=True, exist_ok=True)
    agg = aggregate(runs)
    header, rows = table_rows(agg)
    first_seed = [r for r in runs if r.seed == seeds[0]]
    plots = []
    rate = next((r.series["request_rate_per_second"] for r in first_seed
                 if r.series.get("request_rate_per_second")), None)
    if _plot_timelines(first_seed, "gpus", "GPUs held", out / "gpus_over_time.png",
                       "GPUs held over time (first seed); grey: request rate",
                       ("requests / s", rate) if rate else None):
        plots.append(("gpus_over_time.png", "GPUs each policy held over time, against the load"))
    if _plot_timelines(first_seed, "ttft_p99_seconds", "TTFT p99 (s)", out / "latency_over_time.png",
                       "99th percentile time to first token per interval (first seed)"):
        plots.append(("latency_over_time.png", "tail latency per control interval"))
    bounds = {r.policy: r.metrics["gpu_hours"] for r in runs if r.seed == seeds[0] and "gpu_hours" in r.metrics
              and "slo_attainment" not in r.metrics}
    if _plot_cost_vs_slo(agg, slo_target, out / "cost_vs_slo.png", bounds):
        plots.append(("cost_vs_slo.png", "each policy's cost against its SLO attainment"))
    if _plot_jct_cdf(first_seed, out / "jct_cdf.png"):
        plots.append(("jct_cdf.png", "distribution of job completion times"))

    metrics_files = list(metrics_files or [])

    summary = {
        "scenario": scenario.name,
        "scenario_file": str(scenario.path),
        "scenario_sha256": scenario.digest,
        "data_files": [str(p) for p in scenario.data_files],
        "seeds": list(seeds),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": versions(),
        "table": {label: {k: {"mean": e.mean, "ci95_half_width": e.half_width, "n": e.n}
                          for k, e in per.items()} for label, per in agg.items()},
        "runs": [r.to_json() for r in runs],
        "plots": [p for p, _ in plots],
        "metrics": metrics_files,
        **(dict(extra) if extra else {}),
    }
    (out / "results.json").write_text(strict_json(summary, indent=2) + "\n")
    with (out / "runs.csv").open("w", newline="") as f:
        names = sorted({k for r in runs for k in r.metrics})
        w = csv.writer(f)
        w.writerow(["policy", "learner", "seed", "meets_slo", "wall_s", *names])
        for r in runs:
            w.writerow([r.policy, r.learner, r.seed, r.meets_slo, f"{r.wall_s:.3f}",
                        *[r.metrics.get(k, "") for k in names]])
    with (out / "table.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["policy", "metric", "mean", "ci95_half_width", "n"])
        for label, per in agg.items():
            for k, e in per.items():
                w.writerow([label, k, e.mean, e.half_width, e.n])
    (out / "summary.md").write_text(_summary_md(scenario, seeds, header, rows, plots, metrics_files,
                                                extra or {}))
    return summary


def _summary_md(scenario: Any, seeds: Sequence[int], header: Sequence[str], rows: Sequence[Sequence[str]],
                plots: Sequence[tuple[str, str]], metrics_files: Sequence[Mapping[str, Any]],
                extra: Mapping[str, Any]) -> str:
    desc = scenario.raw.get("description", "").strip()
    lines = [f"# {scenario.name}", "", desc, "",
             f"Seeds: {', '.join(map(str, seeds))}. Values are means over seeds"
             + (" with 95% confidence half-widths (Student t)." if len(seeds) > 1 else "."), "",
             markdown_table(header, rows), ""]
    legend = [f"- **{h}**: {why}" for m, (h, why) in COLUMNS.items() if h in header]
    lines += ["Columns:", *legend, ""]
    for note in extra.get("notes", []):
        lines.append(f"> {note}")
    if extra.get("notes"):
        lines.append("")
    if extra.get("warnings"):
        lines += ["## Warnings", "", *[f"- {w}" for w in extra["warnings"]], ""]
    for png, what in plots:
        lines += [f"## {what[0].upper() + what[1:]}", "", f"![{what}]({png})", ""]
    if metrics_files:
        lines += ["## Watching this run in Grafana", "",
                  "Each policy's simulated metrics are in `metrics/` as OpenMetrics text, under the same "
                  "names a real cluster exports (DCGM, vLLM, autocm training metrics). Import one with",
                  "", "    promtool tsdb create-blocks-from openmetrics metrics/<policy>.om.txt ./data", "",
                  "and point a Prometheus at `./data`; autocm's dashboards then show the run.", ""]
    lines += [f"Scenario file `{scenario.path}`, sha256 `{scenario.digest[:16]}...` (scenario and data).", ""]
    return "\n".join(lines)


def _jsonable(o: Any) -> Any:
    """Plain JSON values: non-finite floats become null (JSON has no NaN), numpy and paths become values."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, Mapping):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, list | tuple | set | frozenset):
        return [_jsonable(v) for v in o]
    if isinstance(o, str | int | bool) or o is None:
        return o
    if hasattr(o, "tolist"):
        return _jsonable(o.tolist())
    return str(o)


def strict_json(obj: Any, indent: int | None = None) -> str:
    """JSON any strict parser reads: NaN and infinities written as null, never as bare ``NaN``."""
    return json.dumps(_jsonable(obj), indent=indent, allow_nan=False)
