"""A seasonal-naive forecast of log request rate whose period is found online.

Why: some demand repeats on a clock that no lag-3 autoregression can see: a batch job or a cron-driven
client that doubles the rate for a few minutes every half hour (the ``day-bursty`` scenario: a jump from
about 2.5 to 5.5 requests/s every 30 minutes, 48 times a day). A reactive plan meets every such burst
with the capacity of the quiet minutes before it and loses the SLO in the first interval of each. The
previous season says when the next burst comes.

Model: ``z(t + h) = z(t + h - P)`` for the period ``P`` whose autocorrelation of the *changes* of the log
rate is highest (changes, so a slow daily trend does not read as a short period), among ``min_period``
to ``max_period`` intervals, if it is at least ``min_acf``; otherwise there is no period and no forecast.
The error variance is a running mean of its own one-step errors (prequential, like the AR model's).
This model only proposes; :class:`learners.demand_forecast.DemandForecaster` weighs it against the other
two by how well each predicted what came.

What a checkpoint carries is the period, not the phase. A restored model (a new run, an operator
restart) does not know how much time passed since its last observation, so the history it saw says
nothing about where the next burst falls; it keeps the period as a prior and forecasts once it has
seen one period of the new run (instead of three). Carrying the history, the first version predicted
the new run's bursts where the old run's clock would have put them: right only when the new run
happened to start in phase (day-long training episodes of exactly 48 half-hour periods), wrong as soon
as anything shifted it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class SeasonalSettings:
    min_period: int = 4
    max_period: int = 120
    """Up to two hours at 60 s intervals: the history kept is twice this."""
    min_acf: float = 0.5
    """Autocorrelation of the log rate's changes a period needs (noise around a smooth day: about 0)."""
    noise_init: float = 0.25
    noise_memory: float = 0.9


class SeasonalNaive:
    """``observe`` one log rate per interval; ``predict(h)`` the log rate ``h`` intervals ahead, or None."""

    def __init__(self, settings: SeasonalSettings | None = None) -> None:
        self.s = settings or SeasonalSettings()
        self.z: deque[float] = deque(maxlen=2 * self.s.max_period + 2)
        self.period: int | None = None
        self.noise = self.s.noise_init
        self.prior: int | None = None
        """The period a checkpoint remembered: used from one period of new data until three (when the
        new data's own autocorrelation decides, and may find none)."""

    def predict(self, h: int) -> float | None:
        """The log rate ``h`` >= 1 intervals after the last observed one: the value one period earlier."""
        p = self.period
        if p is None or h > p or len(self.z) < p:
            return None
        return self.z[len(self.z) - 1 + h - p]

    def observe(self, z: float) -> float | None:
        """Take the next log rate; return this model's one-step error on it (None if it had no forecast)."""
        pred = self.predict(1)
        err = None if pred is None else z - pred
        if err is not None:
            self.noise = self.s.noise_memory * self.noise + (1 - self.s.noise_memory) * err * err
        self.z.append(z)
        self.period = self._detect()
        if self.prior is not None:
            if len(self.z) > 3 * self.prior:
                self.prior = None  # three periods of the new run: its own autocorrelation decides
            elif self.period is None and len(self.z) >= self.prior:
                self.period = self.prior
        return err

    def _detect(self) -> int | None:
        d = np.diff(np.asarray(self.z, float))
        n = d.size
        top = min(self.s.max_period, n // 3)  # a period is believed after three of them, not one
        if top < self.s.min_period:
            return None
        d = d - d.mean()
        power = float(d @ d)
        if power <= 1e-12:
            return None
        lags = np.arange(self.s.min_period, top + 1)
        full = np.correlate(d, d, mode="full")  # full[n - 1 + k] = sum_i d[i + k] d[i]
        acf = full[n - 1 + lags] / power * n / (n - lags)
        # white noise has an autocorrelation of sd 1/sqrt(n - k): demand three of those as well
        acf[acf < np.maximum(self.s.min_acf, 3.0 / np.sqrt(n - lags))] = 0.0
        best = float(acf.max())
        if best <= 0.0:
            return None
        return int(lags[np.flatnonzero(acf >= 0.9 * best)[0]])  # the shortest of near-equal harmonics

    def state_dict(self) -> dict[str, Any]:
        return {"period": self.period if self.period is not None else self.prior, "noise": self.noise}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """The period (as a prior) and the error variance; the history starts empty (see the module's
        docstring). Checkpoints of the first version hold the history ``z`` instead: its period is
        found from it, then it is dropped."""
        self.noise = float(state.get("noise", self.s.noise_init))
        if "z" in state:
            self.z = deque((float(v) for v in state["z"]), maxlen=2 * self.s.max_period + 2)
            remembered = self._detect() if self.z else None
        else:
            remembered = state.get("period")
        if remembered is not None:
            try:
                ok = isinstance(remembered, int | float) and self.s.min_period <= int(remembered) <= self.s.max_period
            except (OverflowError, ValueError):  # inf, nan
                ok = False
            if not ok:
                raise ValueError(f"seasonal period {remembered!r} in the checkpoint is not a whole number of "
                                 f"intervals in {self.s.min_period}..{self.s.max_period}")
        self.z = deque(maxlen=2 * self.s.max_period + 2)
        self.period = None
        self.prior = int(remembered) if remembered is not None else None
