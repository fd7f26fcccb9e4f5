"""Job streams of the Pollux simulator study (``workloads-<load>/workload-<n>.csv``) and its results."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from simulator.training.job import JobSpec

WORKLOAD_COLUMNS = ("name", "time", "application", "num_replicas", "batch_size")


def load_workload(path: Path) -> list[JobSpec]:
    """Read one workload CSV; arrival times are seconds from the start of the trace."""
    path = Path(path)
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = set(WORKLOAD_COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
        jobs = []
        for line, row in enumerate(reader, start=2):
            try:
                batch = row["batch_size"].strip()
                jobs.append(JobSpec(row["name"], row["application"], float(row["time"]),
                                    int(row["num_replicas"]), int(batch) if batch else None))
            except ValueError as exc:
                raise ValueError(f"{path}:{line}: {exc}") from exc
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: job names are not unique")
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
