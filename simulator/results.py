"""Results of simulated runs and their aggregation across seeds (mean and 95% confidence interval)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class RunResult:
    """One policy on one seed of one scenario."""

    policy: str
    """The label shown in tables (``hpa``, ``hpa (target=0.6)``)."""
    learner: str
    settings: dict[str, Any]
    seed: int
    metrics: dict[str, float]
    meets_slo: bool | None = None
    series: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    group: str = ""
    """The scenario policy this run belongs to; the swept settings of one policy share it."""

    def to_json(self, with_series: bool = False) -> dict[str, Any]:
        d = asdict(self)
        if not with_series:
            d.pop("series")
        return d


@dataclass(frozen=True)
class Estimate:
    mean: float
    half_width: float
    n: int

    def format(self, digits: int = 3) -> str:
        if not math.isfinite(self.mean):
            return "n/a"
        text = f"{self.mean:,.0f}" if abs(self.mean) >= 1000 else _digits(self.mean, digits)
        if self.n < 2 or not math.isfinite(self.half_width) or self.half_width == 0:
            return text
        half = f"{self.half_width:,.0f}" if abs(self.half_width) >= 1000 else f"{self.half_width:.2g}"
        return f"{text} ± {half}"


def _digits(value: float, digits: int) -> str:
    """``value`` to ``digits`` significant digits, with more where rounding would reach 0 or 1 (an
    attainment of 0.99998 is not 1: it missed the SLO for some requests)."""
    text = f"{value:.{digits}g}"
    while float(text) in (0.0, 1.0, -1.0) and value not in (0.0, 1.0, -1.0) and digits < 12:
        digits += 1
        text = f"{value:.{digits}g}"
    return text


def estimate(values: Sequence[float], confidence: float = 0.95) -> Estimate:
    """Mean and the half-width of a Student-t confidence interval (seeds are few: t, not normal)."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(vals)
    if n == 0:
        return Estimate(math.nan, math.nan, 0)
    mean = sum(vals) / n
    if n == 1:
        return Estimate(mean, math.nan, 1)
    var = sum((v - mean) ** 2 for v in vals) / (n - 1)
    from scipy import stats  # on use: half a second of import that a single-seed run never needs

    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * math.sqrt(var / n)
    return Estimate(mean, half, n)


def aggregate(runs: Sequence[RunResult]) -> dict[str, dict[str, Estimate]]:
    """policy label -> metric -> estimate across seeds."""
    by_policy: dict[str, list[RunResult]] = {}
    for r in runs:
        by_policy.setdefault(r.policy, []).append(r)
    out: dict[str, dict[str, Estimate]] = {}
    for label, rs in by_policy.items():
        names = sorted({k for r in rs for k in r.metrics})
        out[label] = {k: estimate([r.metrics.get(k, math.nan) for r in rs]) for k in names}
        out[label]["meets_slo"] = estimate([1.0 if r.meets_slo else 0.0 for r in rs
                                            if r.meets_slo is not None])
    return out


def cheapest_meeting_slo(candidates: Mapping[str, Sequence[RunResult]], cost_metric: str) -> str | None:
    """Among swept settings (label -> runs over seeds), the cheapest whose every seed met the SLO."""
    best: tuple[float, str] | None = None
    for label, rs in candidates.items():
        if not rs or not all(r.meets_slo for r in rs):
            continue
        cost = estimate([r.metrics.get(cost_metric, math.nan) for r in rs]).mean
        if best is None or cost < best[0]:
            best = (cost, label)
    return None if best is None else best[1]


def mean_over_seeds(runs: Sequence[RunResult], metric: str) -> float:
    """A metric's mean over the seeds of one setting (NaN where a run lacks it, so a gap is not averaged away)."""
    return sum(r.metrics.get(metric, math.nan) for r in runs) / len(runs)


def beyond_grid(chosen: str, by_label: Mapping[str, Sequence[RunResult]], cost: str = "gpu_hours") -> bool:
    """Whether a better setting than ``chosen`` may lie beyond the swept grid (labels in grid order): it is
    the first or last value and either no setting met the SLO on every seed (the most attaining sits at an
    end, so further out may meet) or it met and is the cheapest of the grid (further out may be cheaper
    and still meet). A pick at an end whose inner neighbours are cheaper but miss is bracketed, not cut off."""
    labels = list(by_label)
    if len(labels) < 2 or chosen not in (labels[0], labels[-1]):
        return False
    runs = by_label[chosen]
    if not all(r.meets_slo for r in runs):
        return True
    mean = {lb: mean_over_seeds(rs, cost) for lb, rs in by_label.items() if rs}
    return all(mean[chosen] <= v for v in mean.values() if math.isfinite(v))
