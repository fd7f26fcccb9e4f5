"""A learned, uncertainty-aware forecast of request rate a few control intervals ahead.

Why: a replica takes a cold start (about a minute) to serve, so a sizing decision taken now must hold
for the load of the next one or two intervals, not the last one. A reactive rule plans for what it
just saw; this forecaster plans for an upper quantile of what comes next.

Model: Bayesian linear regression of the next change of log rate on the last ``lags - 1`` changes
and an intercept (the drift): an ARIMA(lags-1, 1, 0) in log space, so growth and decay are relative,
with a Gaussian prior centred on "the next interval equals this one" (random walk) and exponential
forgetting of old evidence
(the precision is discounted every update, as in discounted recursive least squares; West & Harrison,
*Bayesian Forecasting and Dynamic Models*, ch. 6, the discount factor), so the model tracks a day
whose dynamics change between morning and evening. The noise variance is a running mean of squared
one-step prediction errors. Multi-step forecasts iterate the mean; the variance adds the noise of
every step and the weights' posterior uncertainty, so the quantile widens with the horizon and with
how little the model has seen.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

_FLOOR = 0.01  # req/s added before the log, so an idle interval has a finite log rate


@dataclass(frozen=True)
class ForecastSettings:
    lags: int = 4
    """Past log rates the regression reads (3 changes over 3 minutes at 60 s: a trend's slope and bend)."""
    discount: float = 0.97
    """Precision kept per update: evidence half-life of about 23 intervals, long enough to average the
    noise of one-minute rates, short enough to follow a day's phases."""
    prior_var: float = 0.3
    """Prior variance of each weight on a past change (0: the random walk)."""
    drift_var: float = 0.01
    """Prior variance of the drift per interval (+-20% a minute at two sigma is already a steep ramp)."""
    noise_init: float = 0.25
    """Prior variance of the one-step error of the log rate (+-65% at one sigma): before it has seen a
    service's demand, the forecaster assumes it may be bursty, and narrows as evidence says otherwise."""
    noise_memory: float = 0.9
    """Running-mean factor of the squared one-step errors that estimate the noise variance."""
    max_ratio: float = 4.0
    """A forecast never exceeds this multiple of the largest rate in the lag window: an AR model fitted
    to a sudden jump would otherwise extrapolate it into thousands of requests per second."""


class DemandForecaster:
    """Online Bayesian AR forecaster of log request rate; ``observe`` one rate per interval."""

    def __init__(self, settings: ForecastSettings | None = None) -> None:
        self.s = settings or ForecastSettings()
        d = self.s.lags  # drift + (lags - 1) past changes
        self.mean = np.zeros(d)  # random walk: no drift, no momentum
        self.precision = np.diag([1.0 / self.s.drift_var] + [1.0 / self.s.prior_var] * (d - 1))
        self._m0, self._p0 = self.mean.copy(), self.precision.copy()
        self.noise = self.s.noise_init
        self.history: deque[float] = deque(maxlen=self.s.lags)
        self.errors: deque[float] = deque(maxlen=50)
        self.samples = 0

    def _x(self, lags: list[float]) -> np.ndarray:
        diffs = np.diff(np.asarray(lags, float))[::-1]  # newest change first
        return np.array([1.0, *diffs])

    def observe(self, rate: float) -> None:
        z = math.log(max(rate, 0.0) + _FLOOR)
        if len(self.history) == self.s.lags:
            x = self._x(list(self.history))
            z_change = z - self.history[-1]
            err = z_change - float(x @ self.mean)
            self.errors.append(err)
            self.noise = self.s.noise_memory * self.noise + (1 - self.s.noise_memory) * err * err
            # forget towards the prior (not towards nothing), so directions the data never excites
            # keep the prior's precision and the weights cannot drift without evidence
            k = self.s.discount
            info = k * (self.precision @ self.mean) + (1 - k) * (self._p0 @ self._m0)
            self.precision = k * self.precision + (1 - k) * self._p0 + np.outer(x, x) / self.noise
            self.mean = np.linalg.solve(self.precision, info + x * z_change / self.noise)
            self.samples += 1
        self.history.append(z)

    def quantile(self, horizon: int, z: float) -> float:
        """The request rate that the next ``horizon`` intervals stay under with one-sided normal
        quantile ``z`` (in log space), the largest over steps 1..horizon. Before any history: 0."""
        if not self.history:
            return 0.0
        lags = list(self.history)
        while len(lags) < self.s.lags:
            lags.insert(0, lags[0])
        cov = np.linalg.inv(self.precision)
        best, var = -math.inf, 0.0
        ceiling = max(lags) + math.log(self.s.max_ratio)  # no extrapolated ramp beyond this
        for _ in range(max(1, horizon)):
            x = self._x(lags)
            mu = lags[-1] + float(x @ self.mean)
            var += self.noise + float(x @ cov @ x)
            best = max(best, mu + z * math.sqrt(var))
            lags = [*lags[1:], mu]
        return max(math.exp(min(best, ceiling)) - _FLOOR, 0.0)

    def rmse(self) -> float:
        """Recent one-step error of the log rate (prequential: each error was made before its outcome)."""
        return float(np.sqrt(np.mean(np.square(self.errors)))) if self.errors else math.nan

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "precision": self.precision.tolist(), "noise": self.noise,
                "samples": self.samples}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        mean = np.asarray(state["mean"], float)
        if mean.shape != self.mean.shape:
            raise ValueError(f"forecaster has {mean.size} weights in the checkpoint, {self.mean.size} here")
        self.mean = mean
        self.precision = np.asarray(state["precision"], float)
        self.noise = float(state["noise"])
        self.samples = int(state.get("samples", 0))
