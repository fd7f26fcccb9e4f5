"""Job streams of the Pollux simulator study (``workloads-<load>/workload-<n>.csv``) and its results."""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from simulator.training.job import JobSpec
from simulator.training.profiles import ARTIFACT_APPLICATIONS

WORKLOAD_COLUMNS = ("name", "time", "application", "num_replicas", "batch_size")


MAX_ARRIVAL_S = 7 * 86_400.0
"""Latest arrival a workload may give (simulator/scenario.py ``MAX_DURATION_S``): a run covers at most a week."""
MAX_JOBS = 100_000
MAX_JOB_REPLICAS = 100_000
MAX_BATCH_SIZE = 1 << 24


def _row_error(path: Path, line: int, column: str, text: str, expected: str) -> ValueError:
    return ValueError(f"{path}: line {line}: {column} {text!r}: expected {expected}")


def _job(row: dict[str, str | None], path: Path, line: int) -> JobSpec:
    """One row, every field checked: a NaN time or a negative replica count would otherwise run silently."""
    name = (row["name"] or "").strip()
    if not name:
        raise _row_error(path, line, "name", name, "a job name")
    app = (row["application"] or "").strip()
    if app not in ARTIFACT_APPLICATIONS:
        raise _row_error(path, line, "application", app,
                         f"one of the profiled applications {', '.join(sorted(ARTIFACT_APPLICATIONS))}")
    text = (row["time"] or "").strip()
    try:
        arrival = float(text)
    except ValueError:
        raise _row_error(path, line, "time", text, "seconds from the start of the trace") from None
    if not (math.isfinite(arrival) and 0 <= arrival <= MAX_ARRIVAL_S):
        raise _row_error(path, line, "time", text, f"seconds from 0 to {MAX_ARRIVAL_S:g}")
    replicas = _whole(row["num_replicas"], path, line, "num_replicas", 1, MAX_JOB_REPLICAS)
    batch = (row["batch_size"] or "").strip()
    return JobSpec(name, app, arrival, replicas,
                   _whole(batch, path, line, "batch_size", 1, MAX_BATCH_SIZE) if batch else None)


def _whole(text: str | None, path: Path, line: int, column: str, lo: int, hi: int) -> int:
    text = (text or "").strip()
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value == int(value) and lo <= value <= hi):
        raise _row_error(path, line, column, text, f"a whole number from {lo} to {hi}")
    return int(value)


def load_workload(path: Path) -> list[JobSpec]:
    """Read one workload CSV; arrival times are seconds from the start of the trace."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a folder, expected a workload CSV ({','.join(WORKLOAD_COLUMNS)})")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            missing = set(WORKLOAD_COLUMNS) - set(reader.fieldnames or ())
            if missing:
                raise ValueError(f"{path}: missing column(s) {sorted(missing)}; expected {','.join(WORKLOAD_COLUMNS)}")
            jobs = []
            for row in reader:
                if len(jobs) >= MAX_JOBS:
                    raise ValueError(f"{path}: more than {MAX_JOBS} jobs")
                jobs.append(_job(row, path, reader.line_num))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a text (UTF-8) CSV file (byte {exc.start}); expected "
                         f"{','.join(WORKLOAD_COLUMNS)} rows") from None
    except csv.Error as exc:
        raise ValueError(f"{path}: not a readable CSV file: {exc}") from None
    if not jobs:
        raise ValueError(f"{path}: no jobs (expected rows of {','.join(WORKLOAD_COLUMNS)} after the header)")
    dup = sorted(n for n, k in Counter(j.name for j in jobs).items() if k > 1)
    if dup:
        raise ValueError(f"{path}: job names are not unique: {dup[:5]}")
    return sorted(jobs, key=lambda j: j.arrival_s)  # stable: ties keep file order, as the artifact


def workload_path(pollux_dir: Path, load: float, index: int) -> Path:
    """``<pollux_dir>/workloads-<load>/workload-<index>.csv`` (load written like ``1.0``)."""
    return Path(pollux_dir) / f"workloads-{load:.1f}" / f"workload-{index}.csv"


@dataclass(frozen=True)
class PaperResult:
    """The artifact's own simulator output for one policy and load (``results/<policy>-<load>.json``)."""

    mean_jct_s: float
    avg_jct_s: dict[str, float]
    jcts_s: dict[str, dict[str, float]]


def load_paper_result(pollux_dir: Path, policy: str, load: float) -> PaperResult:
    with (Path(pollux_dir) / "results" / f"{policy}-{load:.1f}.json").open() as f:
        raw = json.load(f)
    return PaperResult(float(raw["mean"]), {k: float(v) for k, v in raw["avgs"].items()},
                       {k: {j: float(t) for j, t in v.items()} for k, v in raw["jcts"].items()})
