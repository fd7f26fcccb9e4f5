"""Writes the compressed-day load shapes of the inference-diurnal-* scenarios (deterministic, no RNG).

A real service's day (trough at night, one or two daytime peaks) compressed into ``DAY_S`` seconds so
that a run takes minutes, not an hour: each scenario "day" is 4 hours, 240 one-minute control
intervals. Within the day the rate follows a smooth daily curve multiplied by one of the bundled
one-hour Autothrottle shapes (tiled, normalised to mean 1) for minute- and second-level variation:

- ``diurnal-train.txt``: one afternoon peak x the ``bursty`` hour (training);
- ``diurnal-eval.txt``: a morning and a larger evening peak x the ``noisy`` hour (evaluation: neither
  the daily curve nor the hour's variation was seen in training).

And one training shape for the bursty code-trace hour, whose per-minute rate jumps unpredictably
(from 0 to 9 requests/s and back within minutes) in a way no bundled shape does:

- ``bursty-minutes-train.txt``: two hours of synthetic on/off traffic, seeded: per-minute rates
  log-normal (sigma 1.0, lag-1 correlation 0.3) with silent minutes (10%), times log-normal 10 s
  sub-bursts (sigma 0.6). It is not derived from the Azure trace's timing.

Usage: ``python scripts/make_diurnal_shapes.py`` (rewrites simulator/scenarios/shapes/diurnal-*.txt).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from simulator.inference.traces import read_shape

DAY_S = 4 * 3600
OUT = Path(__file__).resolve().parent.parent / "simulator" / "scenarios" / "shapes"


def _hour(shape: str) -> np.ndarray:
    r = read_shape(shape)
    return np.resize(r / r.mean(), DAY_S)


def train_curve(u: np.ndarray) -> np.ndarray:
    """One peak at 60% of the day, trough 0.3 of the peak."""
    return 0.3 + 0.7 * (0.5 - 0.5 * np.cos(2 * np.pi * (u - 0.1))) ** 1.5


def eval_curve(u: np.ndarray) -> np.ndarray:
    """A morning peak (0.7) at 35% of the day and an evening peak (1.0) at 75%, trough 0.25."""
    bump = lambda c, w: np.exp(-0.5 * ((u - c) / w) ** 2)  # noqa: E731
    return 0.25 + 0.45 * bump(0.35, 0.08) + 0.75 * bump(0.75, 0.07)


def bursty_minutes(seconds: int = 7200, seed: int = 20261204) -> np.ndarray:
    """Synthetic minute-level on/off bursts with 10 s sub-bursts (see the module docstring)."""
    rng = np.random.default_rng(seed)
    minutes = seconds // 60
    z = np.zeros(minutes)
    for m in range(1, minutes):
        z[m] = 0.3 * z[m - 1] + np.sqrt(1 - 0.09) * rng.normal()
    per_min = np.exp(1.0 * z) * (rng.random(minutes) >= 0.1)
    sub = np.exp(0.6 * rng.normal(size=seconds // 10))
    return np.repeat(per_min, 60) * np.repeat(sub, 10)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    u = np.arange(DAY_S) / DAY_S
    for name, curve, hour in (("diurnal-train", train_curve, "bursty"), ("diurnal-eval", eval_curve, "noisy")):
        rates = curve(u) * _hour(hour)
        (OUT / f"{name}.txt").write_text("".join(f"{v:.4f}\n" for v in rates))
        m = rates.reshape(-1, 60).mean(axis=1)
        print(f"{name}: {DAY_S} s, minute means min {m.min() / m.mean():.2f} max {m.max() / m.mean():.2f} of the mean")
    rates = bursty_minutes()
    (OUT / "bursty-minutes-train.txt").write_text("".join(f"{v:.4f}\n" for v in rates))
    silent = np.mean(rates.reshape(-1, 60).mean(axis=1) == 0)
    print(f"bursty-minutes-train: {rates.size} s, {silent:.0%} silent minutes")


if __name__ == "__main__":
    main()
