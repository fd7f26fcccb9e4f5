"""Forecasts of a service's demand from its own past: additive Holt-Winters, one step at a time.

The proactive scaler (learners/baselines/forecast_scaler.py) needs the next few intervals' token demand
before it happens, to start replicas one cold start ahead. SageServe (Jaiswal et al., SIGMETRICS 2026)
fits ARIMA to past hourly token demand; we use the other classic seasonal forecaster, additive
Holt-Winters (Holt 1957, Winters 1960; Hyndman & Athanasopoulos, "Forecasting: Principles and
Practice", 3rd ed., section 8.3), because it updates in O(1) per observation with no refits and no
dependency, and degrades to Holt's linear trend (and then to simple exponential smoothing) while less
than a season of history exists, which is the case for an hour-long trace with a daily season.

The forecaster cannot see the future by construction: it only has :meth:`observe`, which takes one
value at a time in strictly increasing time, and :meth:`forecast`, which reads the state those values
left behind. No I/O, no global state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class HoltWintersSettings:
    """Smoothing constants (chosen, not fitted: textbook mid-range values, fpp3 section 8.3)."""

    alpha: float = 0.5
    """Level smoothing: 0.5 weights the last interval as much as all earlier ones together."""
    beta: float = 0.1
    """Trend smoothing: a slow trend, so one burst does not extrapolate into a ramp."""
    gamma: float = 0.3
    """Seasonal smoothing, used once a full season has been seen."""
    phi: float = 0.9
    """Trend damping (Gardner & McKenzie 1985): the h-step trend is phi + ... + phi^h times the slope,
    so long leads do not run away; 0.8-0.98 is fpp3's usual range."""
    season_length: int = 1440
    """Intervals per season: 1440 one-minute intervals is a day."""
    error_memory: int = 60
    """One-step errors kept for the forecast's spread (the last hour at one-minute intervals)."""

    def __post_init__(self) -> None:
        for name in ("alpha", "beta", "gamma", "phi"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"Holt-Winters {name} must be in [0, 1], got {v}")
        if self.season_length < 2 or self.error_memory < 2:
            raise ValueError("Holt-Winters season_length and error_memory must be at least 2")


class HoltWinters:
    """Additive damped Holt-Winters over a series observed once per interval, in time order."""

    def __init__(self, settings: HoltWintersSettings | None = None) -> None:
        self.s = settings or HoltWintersSettings()
        self.level: float | None = None
        self.trend = 0.0
        self.season: list[float] = [0.0] * self.s.season_length
        self.count = 0
        self.last_time: float | None = None
        self.errors: list[float] = []
        self.history: list[float] = []  # the first season, to initialise the seasonal indices

    def observe(self, time_s: float, value: float) -> None:
        """Add the value of the interval ending at ``time_s``; times must strictly increase."""
        if self.last_time is not None and not time_s > self.last_time:
            raise ValueError(f"forecaster observations must be in time order: {time_s} after {self.last_time}")
        if not math.isfinite(value):
            raise ValueError(f"forecaster observation must be finite, got {value}")
        self.last_time = time_s
        s, m = self.s, self.s.season_length
        if self.level is None:
            self.level, self.count = value, 1
            self.history.append(value)
            return
        idx = self.count % m
        seasonal = self.count >= m  # a full season seen: the seasonal index is meaningful
        predicted = self.level + s.phi * self.trend + (self.season[idx] if seasonal else 0.0)
        self.errors.append(value - predicted)
        del self.errors[:-s.error_memory]
        prev_level = self.level
        base = value - (self.season[idx] if seasonal else 0.0)
        self.level = s.alpha * base + (1 - s.alpha) * (prev_level + s.phi * self.trend)
        self.trend = s.beta * (self.level - prev_level) + (1 - s.beta) * s.phi * self.trend
        if seasonal:
            self.season[idx] = s.gamma * (value - self.level) + (1 - s.gamma) * self.season[idx]
        elif len(self.history) < m:
            self.history.append(value)
            if len(self.history) == m:  # initial indices: the first season's deviations from its mean
                mean = sum(self.history) / m
                self.season = [v - mean for v in self.history]
        self.count += 1

    def forecast(self, steps: int) -> list[float]:
        """Point forecasts for the next ``steps`` intervals (never negative); [] before any data."""
        if self.level is None:
            return []
        s, m = self.s, self.s.season_length
        out, damp = [], 0.0
        for h in range(1, steps + 1):
            damp += s.phi ** h
            seasonal = self.season[(self.count + h - 1) % m] if self.count >= m else 0.0
            out.append(max(0.0, self.level + damp * self.trend + seasonal))
        return out

    def spread(self) -> float:
        """Root mean square of the recent one-step errors (0 until two are known)."""
        if len(self.errors) < 2:
            return 0.0
        return math.sqrt(sum(e * e for e in self.errors) / len(self.errors))

    def upper(self, steps: int, z: float) -> list[float]:
        """Forecasts plus ``z`` spreads, widened as sqrt(h) for the h-step horizon (a random-walk bound)."""
        sd = self.spread()
        return [f + z * sd * math.sqrt(h) for h, f in enumerate(self.forecast(steps), start=1)]
