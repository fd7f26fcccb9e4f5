"""Measured Pollux profiles: step time by placement and local batch, and statistical efficiency by batch.

The Pollux artifact (AdaptDL, branch ``osdi21-artifact``, ``simulator/applications.py``) drives its
simulator with measurements, not with its own fitted model: ``Application.get_throughput`` looks a
placement up in ``placements.csv`` and interpolates linearly in the local batch size (``interp1d``,
which raises outside the measured range), and for a placement that was never measured interpolates
linearly in (nodes, replicas, local batch) over the per-configuration means of ``placements.csv``
plus ``scalability.csv`` (``LinearNDInterpolator``, NaN outside the convex hull, caught by an
assert). The throughput *model* of ``goodput.py`` (``fit_perf_params``) is only what Pollux's
scheduler believes; the ground truth the jobs run at is the interpolation. We do the same, but an
out-of-range query raises :class:`ProfileCoverageError` instead of an assert, so a scheduler that
asks for a configuration nobody measured is told so instead of getting an invented number.

Statistical efficiency comes from ``validation-<M>.csv`` (gradient statistics measured while
training at total batch ``M``), exactly as ``simulator.py`` ``Job.step`` uses them: with
``r = M / M0`` the progress made per step is ``gain = (var + sqr) / (var / r + sqr)`` steps of the
initial batch ``M0``, i.e. ``r`` times the efficiency ``(PGNS + M0) / (PGNS + M)`` where
``PGNS = M0 * var / sqr`` is the gradient noise scale (``goodput.py`` ``GoodputFunction.efficiency``).
Progress therefore counts "steps at the initial batch size" (samples / ``M0``), and a job is done
when it reaches the progress of ``max_epochs`` epochs (``Application.get_progress``).
"""

from __future__ import annotations

import csv
import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.interpolate import LinearNDInterpolator

from learners.pollux import BatchLimits


class ProfileCoverageError(ValueError):
    """A step time or gradient statistic was asked for outside what was measured."""


@dataclass(frozen=True)
class ApplicationSettings:
    """Per-application constants the artifact sets by hand; the rest come from the measurements.

    Source: ``simulator/applications.py``, the ``APPLICATIONS`` table at the bottom of the file.
    ``init_batch_size``/``max_batch_size`` default to the smallest/largest validated batch and
    ``min_local_bsz``/``max_local_bsz`` to the smallest/largest measured local batch
    (``Application.__init__``).
    """

    max_epochs: int
    max_local_bsz: int | None = None


ARTIFACT_APPLICATIONS: Mapping[str, ApplicationSettings] = {
    "bert": ApplicationSettings(max_epochs=2),
    "cifar10": ApplicationSettings(max_epochs=100),
    "ncf": ApplicationSettings(max_epochs=10),
    "imagenet": ApplicationSettings(max_epochs=90),
    "deepspeech2": ApplicationSettings(max_epochs=80),
    "yolov3": ApplicationSettings(max_epochs=50, max_local_bsz=8),
}


@dataclass(frozen=True)
class StepTime:
    """Seconds per optimizer step at one local batch: ``sync_s`` is the all-reduce part of ``step_s``."""

    step_s: float
    sync_s: float

    @property
    def compute_s(self) -> float:
        """Time of one forward/backward pass (what a gradient-accumulation micro-step costs)."""
        return self.step_s - self.sync_s


@dataclass(frozen=True)
class Validation:
    """One ``validation-<M>.csv``: per-epoch cumulative progress and gradient statistics at batch M."""

    batch_size: int
    progress: np.ndarray
    grad_sqr: np.ndarray
    grad_var: np.ndarray


def placement_id(placement: Sequence[int]) -> str:
    """The artifact's key for a placement: GPUs per node, rotated to the lexicographically smallest.

    ``Application.get_throughput`` normalises the ring of nodes this way; a shape handed out
    largest-part-first (as our pool and the artifact's allocators do) maps to the measured row.
    """
    parts = tuple(int(p) for p in placement if p)
    if not parts:
        raise ValueError("an empty placement has no step time")
    best = min(parts[i:] + parts[:i] for i in range(len(parts)))
    return "".join(str(p) for p in best)


class ApplicationProfile:
    """Everything measured about one model: step times, validation runs and the derived constants."""

    def __init__(self, name: str, placements: Mapping[str, np.ndarray], scalability: np.ndarray,
                 validations: Sequence[Validation], settings: ApplicationSettings) -> None:
        self.name = name
        self._placements = dict(placements)  # id -> rows (local_bsz, step, sync) sorted by bsz
        self.validations = tuple(sorted(validations, key=lambda v: v.batch_size))
        self.validated_batch_sizes = tuple(v.batch_size for v in self.validations)
        all_bsz = np.concatenate([rows[:, 0] for rows in self._placements.values()])
        self.init_batch_size = self.validated_batch_sizes[0]
        self.max_batch_size = self.validated_batch_sizes[-1]
        self.min_local_bsz = int(all_bsz.min())
        self.max_local_bsz = int(settings.max_local_bsz or all_bsz.max())
        self.max_epochs = settings.max_epochs
        if self.max_epochs > min(len(v.progress) for v in self.validations):
            raise ValueError(f"{name}: max_epochs {self.max_epochs} exceeds the validation runs")
        # Progress at the end of each epoch: the slowest validation run's (get_progress).
        epochs = min(len(v.progress) for v in self.validations)
        self.epoch_progress = np.min(np.stack([v.progress[:epochs] for v in self.validations]), axis=0)
        self._scattered = self._scattered_points(scalability)
        self._nd: LinearNDInterpolator | None = None
        self._cache: dict[tuple[str, float], StepTime] = {}
        self.batch_limits = BatchLimits(self.init_batch_size, self.max_batch_size, self.min_local_bsz,
                                        self.max_local_bsz)
        """What the job's code says about its batch, in the form Pollux's agents and the pool schedulers take."""

    # --- throughput ---------------------------------------------------------------------------------
    def _scattered_points(self, scalability: np.ndarray) -> np.ndarray:
        """Rows (nodes, replicas, local_bsz, step, sync): placement means + scalability, as the artifact."""
        groups: dict[tuple[int, int, float], list[np.ndarray]] = {}
        for pid, rows in self._placements.items():
            key_nodes, key_replicas = len(pid), sum(int(c) for c in pid)
            for row in rows:
                groups.setdefault((key_nodes, key_replicas, float(row[0])), []).append(row[1:])
        means = [(*k, *np.mean(v, axis=0)) for k, v in sorted(groups.items())]
        return np.vstack([np.array(means, dtype=float), scalability])

    def step_time(self, placement: Sequence[int], local_bsz: float) -> StepTime:
        """Measured step time for ``placement`` (GPUs per node) at per-GPU micro-batch ``local_bsz``.

        Coverage: a measured placement is interpolated linearly between its measured local batches
        and refused outside them; any other placement is interpolated linearly inside the convex
        hull of all measured (nodes, replicas, local batch) points and refused outside it.
        """
        pid = placement_id(placement)
        key = (pid, float(local_bsz))
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        rows = self._placements.get(pid)
        if rows is not None:
            bsz = rows[:, 0]
            if not bsz[0] <= local_bsz <= bsz[-1]:
                raise ProfileCoverageError(
                    f"{self.name}: local batch {local_bsz} outside the measured {bsz[0]:g}..{bsz[-1]:g} "
                    f"for placement {pid}")
            result = StepTime(float(np.interp(local_bsz, bsz, rows[:, 1])),
                              float(np.interp(local_bsz, bsz, rows[:, 2])))
        else:
            if self._nd is None:
                pts = self._scattered
                self._nd = LinearNDInterpolator(pts[:, :3], pts[:, 3:])
            nodes, replicas = len(pid), sum(int(c) for c in pid)
            step, sync = self._nd([nodes, replicas, local_bsz])[0]
            if not (math.isfinite(step) and math.isfinite(sync)):
                raise ProfileCoverageError(
                    f"{self.name}: ({nodes} nodes, {replicas} GPUs, local batch {local_bsz}) is outside "
                    "the measured placements and scalability points")
            result = StepTime(float(step), float(sync))
        self._cache[key] = result
        return result

    def step_times(self, placement: Sequence[int], local_bszs: Sequence[float]) -> list[StepTime | None]:
        """:meth:`step_time` for many local batches of one placement (None where not covered).

        One interpolator call for all of them: a scheduler that scans batch sizes for every GPU count
        (``simulator/training/arbiter.py``) would otherwise pay the triangulation lookup per point.
        """
        pid = placement_id(placement)
        if pid not in self._placements:
            todo = [b for b in local_bszs if (pid, float(b)) not in self._cache]
            if todo:
                if self._nd is None:
                    pts = self._scattered
                    self._nd = LinearNDInterpolator(pts[:, :3], pts[:, 3:])
                q = np.array([[len(pid), sum(int(c) for c in pid), float(b)] for b in todo])
                for b, (step, sync) in zip(todo, self._nd(q), strict=True):
                    if math.isfinite(step) and math.isfinite(sync):
                        self._cache[(pid, float(b))] = StepTime(float(step), float(sync))
        out: list[StepTime | None] = []
        for b in local_bszs:
            try:
                out.append(self.step_time(placement, b))
            except ProfileCoverageError:
                out.append(None)
        return out

    def is_measured(self, placement: Sequence[int]) -> bool:
        """Whether this exact placement (up to rotation) has its own rows in placements.csv."""
        return placement_id(placement) in self._placements

    def measured_local_batches(self, placement: Sequence[int]) -> tuple[int, ...]:
        rows = self._placements.get(placement_id(placement))
        return () if rows is None else tuple(int(b) for b in rows[:, 0])

    # --- statistical efficiency --------------------------------------------------------------------
    def grad_stats(self, batch_size: float, epoch: int) -> tuple[float, float]:
        """(grad_sqr, grad_var) during ``epoch`` at ``batch_size``: linear between validated batches."""
        sizes = self.validated_batch_sizes
        if not sizes[0] <= batch_size <= sizes[-1]:
            raise ProfileCoverageError(
                f"{self.name}: batch {batch_size} outside the validated {sizes[0]}..{sizes[-1]}")
        if not 0 <= epoch < self.max_epochs:
            raise ProfileCoverageError(f"{self.name}: epoch {epoch} outside 0..{self.max_epochs - 1}")
        hi = int(np.searchsorted(sizes, batch_size, side="left"))
        upper = self.validations[hi]
        if upper.batch_size == batch_size:
            return float(upper.grad_sqr[epoch]), float(upper.grad_var[epoch])
        lower = self.validations[hi - 1]
        w = (batch_size - lower.batch_size) / (upper.batch_size - lower.batch_size)
        sqr = (1 - w) * lower.grad_sqr[epoch] + w * upper.grad_sqr[epoch]
        var = (1 - w) * lower.grad_var[epoch] + w * upper.grad_var[epoch]
        return float(sqr), float(var)

    def gain(self, batch_size: float, epoch: int) -> float:
        """Progress per step at ``batch_size``, in steps of the initial batch (scale x efficiency)."""
        sqr, var = self.grad_stats(batch_size, epoch)
        scale = batch_size / self.init_batch_size
        return gain_from_stats(sqr, var, scale)

    def efficiency(self, batch_size: float, epoch: int) -> float:
        """Statistical efficiency relative to the initial batch: 1 at M0, below 1 above it."""
        return self.gain(batch_size, epoch) / (batch_size / self.init_batch_size)

    def progress_at_epoch(self, epoch: int) -> float:
        """Cumulative progress at the end of ``epoch`` epochs (0 for none)."""
        return 0.0 if epoch == 0 else float(self.epoch_progress[epoch - 1])

    @property
    def target_progress(self) -> float:
        """Progress at which a job of this application is complete (``max_epochs`` epochs)."""
        return self.progress_at_epoch(self.max_epochs)


def gain_from_stats(grad_sqr: float, grad_var: float, scale: float) -> float:
    """``(var + sqr) / (var / scale + sqr)``: steps of the initial batch made by one step at ``scale`` x."""
    denom = grad_var / scale + grad_sqr
    return (grad_var + grad_sqr) / denom if denom > 0 else 1.0


def gradient_noise_scale(grad_sqr: float, grad_var: float, init_batch_size: float) -> float:
    """Pollux's PGNS ``M0 * var / sqr`` (goodput.py ``GoodputFunction.efficiency`` comment).

    Infinite when the measured squared gradient norm is 0 (it happens in deepspeech2's runs): all
    noise, so any batch is perfectly efficient, which is also what ``gain_from_stats`` gives.
    """
    if grad_sqr <= 0:
        return math.inf
    return init_batch_size * grad_var / grad_sqr


# --- loading --------------------------------------------------------------------------------------
def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        return header, [row for row in reader if row]


def load_application(model_dir: Path, settings: ApplicationSettings | None = None) -> ApplicationProfile:
    """Read ``placements.csv``, ``scalability.csv`` and every ``validation-<M>.csv`` of one model."""
    model_dir = Path(model_dir)
    name = model_dir.name
    settings = settings or ARTIFACT_APPLICATIONS.get(name)
    if settings is None:
        raise KeyError(f"no application settings for {name!r}; pass settings=")
    header, rows = _read_csv(model_dir / "placements.csv")
    col = {h: i for i, h in enumerate(header)}
    by_id: dict[str, list[tuple[float, float, float]]] = {}
    for r in rows:
        by_id.setdefault(r[col["placement"]], []).append(
            (float(r[col["local_bsz"]]), float(r[col["step_time"]]), float(r[col["sync_time"]])))
    placements = {}
    for pid, vals in by_id.items():
        arr = np.array(sorted(vals), dtype=float)
        if len(np.unique(arr[:, 0])) != len(arr):
            raise ValueError(f"{name}: duplicate local batch sizes for placement {pid}")
        placements[pid] = arr
    header, rows = _read_csv(model_dir / "scalability.csv")
    col = {h: i for i, h in enumerate(header)}
    scal = np.array([[float(r[col[k]]) for k in ("num_nodes", "num_replicas", "local_bsz", "step_time",
                                                 "sync_time")] for r in rows], dtype=float)
    validations = []
    for path in sorted(model_dir.glob("validation-*.csv")):
        batch = int(path.stem.split("-")[-1])
        header, rows = _read_csv(path)
        col = {h: i for i, h in enumerate(header)}
        arr = np.array([[float(r[col[k]]) for k in ("progress", "grad_sqr", "grad_var")] for r in rows])
        validations.append(Validation(batch, arr[:, 0], arr[:, 1], arr[:, 2]))
    if not validations:
        raise FileNotFoundError(f"no validation-*.csv in {model_dir}")
    return ApplicationProfile(name, placements, scal, validations, settings)


@functools.lru_cache(maxsize=8)
def _load_profiles_cached(data_dir: Path) -> dict[str, ApplicationProfile]:
    return {name: load_application(data_dir / name, ARTIFACT_APPLICATIONS[name])
            for name in sorted(ARTIFACT_APPLICATIONS) if (data_dir / name).is_dir()}


def load_profiles(data_dir: Path | None = None) -> dict[str, ApplicationProfile]:
    """All six Pollux applications under ``data_dir`` (default: the bundled ``pollux/profiles``).

    Cached per directory: the interpolators are built once per process.
    """
    if data_dir is None:
        from simulator.datasets import data_path

        data_dir = data_path("pollux", "profiles")
    profiles = _load_profiles_cached(Path(data_dir).resolve())
    if not profiles:
        raise FileNotFoundError(f"no Pollux application profiles under {data_dir}")
    return profiles
