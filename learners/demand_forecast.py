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

A random walk is the wrong model for on-off traffic (a coding assistant's trace: bursts of 5-9 req/s
between idle minutes). Its one-step error there is the whole swing between idle and busy, so its noise
estimate in log space reached 5-8 and every plan sat at ``max_ratio`` times the last burst (22 req/s
planned for a service that never exceeded 9). Such demand is better read as draws around a level. So a
second model, a **stationary level** (discounted mean and variance of the recent rates in square-root
space, the variance-stabilising scale of counts, where an idle minute is not the outlier it is in log
space), predicts each next rate too, and the two are mixed by Bayesian model averaging: each model's
weight follows its prequential predictive density of the rates it did not yet see (discounted, so the
mixture moves to the level model while traffic is stationary and back to the AR model on a ramp or a
step). A third model, **seasonal-naive** with a period found online (:mod:`learners.seasonal`), joins
the mixture the same way, for demand that repeats on a clock. The quantile planned for is the
mixture's.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from learners.seasonal import SeasonalNaive
from learners.state_checks import finite_array, finite_number, gaussian

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
    level: bool = True
    """Mix in the stationary level model (module docstring). False: the AR model alone."""
    level_discount: float = 0.95
    """Weight kept per interval by the level's mean and variance (an evidence half-life of about 14
    intervals: a level is a statement about the last quarter of an hour, not the day)."""
    level_prior_n: float = 2.0
    """Pseudo-intervals of ``level_var_init`` variance in the level's variance, so two equal rates do
    not make a level of zero spread."""
    level_var_init: float = 0.25
    """Prior variance of the square root of the rate (Poisson counts over a 60 s interval alone give
    1/240 per interval; 0.25 is +-1 req/s at 1 req/s: a level starts out vague)."""
    evidence_discount: float = 0.9
    """Log evidence kept per interval by the model weights: about 10 intervals decide which model is
    trusted, so a step change moves the weight to the AR model within a few intervals."""
    level_log_odds: float = -3.0
    """Prior log odds of the level model against the AR model: the level model takes over only where its
    predictions were clearly better (by a likelihood ratio of about 20 over the evidence's memory). On a
    smooth day the two predict about equally well, and the level's narrower quantile lags a ramp; on
    on-off traffic it wins by far more than this."""
    seasonal: bool = True
    """Mix in the seasonal-naive model (:mod:`learners.seasonal`). False: without it."""
    seasonal_log_odds: float = -3.0
    """Prior log odds of the seasonal model against the AR model (a period found in noise must first
    predict better than the AR model for a while)."""
    level_memory: int = 30
    """Intervals of log rates whose maximum bounds the level model's forecasts (times ``max_ratio``)."""
    noise_clip: float = 0.0
    """Huber-style robust noise: a one-step error enters the noise estimate as at most this many of the
    current noise's standard deviations (0: off, every error whole). Why: a step in demand is one error
    of the whole step's size (x3 is 1.1 in log rate); squared, it multiplied the noise variance by about
    7, and the planned quantile stayed at twice the new rate for some 12 intervals after the step while
    replicas sat idle. Clipped at 3 sigma, one error raises the variance by at most 1.8x, and errors that
    keep coming (demand that really became noisy) still raise it 1.8x per interval."""


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
        self.level_sums = np.zeros(3)
        """Discounted (count, sum, sum of squares) of sqrt(rate + floor): the level model's statistics."""
        self.evidence = np.zeros(2)
        """Discounted log predictive density of the observed log rates: (AR model, level model)."""
        self.seasonal = SeasonalNaive()
        self.season_evidence = np.zeros(2)
        """The same for (AR model, seasonal model), discounted over about two periods instead of 10
        intervals: the seasonal model's wins come once a period (at a burst's start and end), and
        with the short memory each win was forgotten before the next burst."""
        self.recent: deque[float] = deque(maxlen=self.s.level_memory)

    def _x(self, lags: list[float]) -> np.ndarray:
        diffs = np.diff(np.asarray(lags, float))[::-1]  # newest change first
        return np.array([1.0, *diffs])

    def level(self) -> tuple[float, float]:
        """The level model's predictive (mean, variance) of the next sqrt(rate + floor)."""
        n, s1, s2 = self.level_sums
        mean = s1 / n if n > 0 else (math.exp(0.5 * self.history[-1]) if self.history else 0.0)
        var = (max(s2 - s1 * s1 / n, 0.0) if n > 0 else 0.0) + self.s.level_prior_n * self.s.level_var_init
        var /= n + self.s.level_prior_n
        return mean, var * (1.0 + 1.0 / max(n, 1.0))

    def weights(self) -> tuple[float, float, float]:
        """Posterior probabilities of (AR, level, seasonal): a model that is off, or has no forecast yet
        (the level before 3 intervals, the seasonal model before it has found a period), gets 0."""
        logits = [0.0, -math.inf, -math.inf]
        if self.s.level and self.level_sums[0] >= 3.0:
            logits[1] = float(self.evidence[1] - self.evidence[0]) + self.s.level_log_odds
        if self.s.seasonal and self.seasonal.period is not None:
            logits[2] = float(self.season_evidence[1] - self.season_evidence[0]) + self.s.seasonal_log_odds
        top = max(logits)
        e = [math.exp(max(v - top, -50.0)) if v > -math.inf else 0.0 for v in logits]
        total = sum(e)
        return e[0] / total, e[1] / total, e[2] / total

    def level_weight(self) -> float:
        """Posterior probability of the level model (0 when mixing is off or before evidence)."""
        return self.weights()[1]

    def seasonal_weight(self) -> float:
        """Posterior probability of the seasonal model (0 when off or without a period)."""
        return self.weights()[2]

    def observe(self, rate: float) -> None:
        z = math.log(max(rate, 0.0) + _FLOOR)
        if len(self.history) == self.s.lags:
            x = self._x(list(self.history))
            z_change = z - self.history[-1]
            err = z_change - float(x @ self.mean)
            if self.level_sums[0] >= 1.0:  # both models predicted z before seeing it: score them
                var_ar = self.noise + float(x @ np.linalg.solve(self.precision, x))
                mean_lv, var_lv = self.level()
                u = math.exp(0.5 * z)  # the level's density of z: its density of u times du/dz = u/2
                dens = [_log_t(err, var_ar), _log_t(u - mean_lv, var_lv) + math.log(0.5 * u)]
                self.evidence = self.s.evidence_discount * self.evidence + np.asarray(dens)
                seasonal = self.seasonal.predict(1)
                if seasonal is None:  # no period (predict says None without one)
                    self.season_evidence[:] = 0.0  # no period, no record: a new period starts at its prior
                else:
                    d = math.exp(-1.0 / (2.0 * self.seasonal.period))
                    self.season_evidence = d * self.season_evidence + np.array(
                        [dens[0], _log_t(z - seasonal, self.seasonal.noise)])
            self.errors.append(err)
            sq = err * err if self.s.noise_clip <= 0 else min(err * err, self.s.noise_clip ** 2 * self.noise)
            self.noise = self.s.noise_memory * self.noise + (1 - self.s.noise_memory) * sq
            # forget towards the prior (not towards nothing), so directions the data never excites
            # keep the prior's precision and the weights cannot drift without evidence
            k = self.s.discount
            info = k * (self.precision @ self.mean) + (1 - k) * (self._p0 @ self._m0)
            self.precision = k * self.precision + (1 - k) * self._p0 + np.outer(x, x) / self.noise
            self.mean = np.linalg.solve(self.precision, info + x * z_change / self.noise)
            self.samples += 1
        self.history.append(z)
        self.recent.append(z)
        self.seasonal.observe(z)
        u = math.exp(0.5 * z)
        self.level_sums = self.s.level_discount * self.level_sums + np.array([1.0, u, u * u])

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
        w_ar, w_lv, w_s = self.weights()
        mean_lv, var_lv = self.level()
        # no extrapolated ramp beyond this; the level model's bound is its longer memory's maximum, the
        # seasonal model's the last season's
        top = max(lags)
        if w_lv > 0.5 and self.recent:
            top = max(top, max(self.recent))
        if w_s > 0.5 and self.seasonal.period:
            top = max(top, max(list(self.seasonal.z)[-self.seasonal.period:]))
        ceiling = top + math.log(self.s.max_ratio)
        for h in range(1, max(1, horizon) + 1):
            x = self._x(lags)
            mu = lags[-1] + float(x @ self.mean)
            var += self.noise + float(x @ cov @ x)
            q = mu + z * math.sqrt(var)
            season = self.seasonal.predict(h) if w_s > 0.0 else None
            if w_lv > 0.0 or season is not None:
                parts = [(w_ar, mu, var, False), (w_lv, mean_lv, var_lv, True)]
                if season is not None:
                    parts.append((w_s, season, self.seasonal.noise, False))
                q = _mixture_quantile(parts, z)
            best = max(best, q)
            lags = [*lags[1:], mu]
        return max(math.exp(min(best, ceiling)) - _FLOOR, 0.0)

    def rmse(self) -> float:
        """Recent one-step error of the log rate (prequential: each error was made before its outcome)."""
        return float(np.sqrt(np.mean(np.square(self.errors)))) if self.errors else math.nan

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "precision": self.precision.tolist(), "noise": self.noise,
                "samples": self.samples, "level_sums": self.level_sums.tolist(),
                "evidence": self.evidence.tolist(), "recent": list(self.recent),
                "seasonal": self.seasonal.state_dict(), "season_evidence": self.season_evidence.tolist()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        mean = np.asarray(state["mean"], float)
        if mean.shape != self.mean.shape:
            raise ValueError(f"forecaster has {mean.size} weights in the checkpoint, {self.mean.size} here")
        # checked before anything is assigned: a refused state leaves the forecaster as it was
        mean, precision = gaussian(mean, state["precision"], "forecaster", mean.size)
        noise = finite_number(state["noise"], "forecaster noise", 1e-300)
        samples = int(finite_number(state.get("samples", 0), "forecaster samples", 0.0, 1e12))
        try:  # checkpoints from before the level model: it starts empty and earns its weight online
            level_sums = finite_array(state.get("level_sums", [0.0, 0.0, 0.0]), "forecaster level sums", (3,), 1e12)
            evidence = finite_array(state.get("evidence", [0.0, 0.0]), "forecaster evidence", (2,), 1e12)
            # and from before the seasonal model: it starts empty, without a period
            season_evidence = finite_array(state.get("season_evidence", [0.0, 0.0]), "seasonal evidence", (2,), 1e12)
        except ValueError as e:
            raise ValueError(f"forecaster's level or seasonal statistics in the checkpoint have the wrong shape or "
                             f"values: {e}") from e
        recent = finite_array(list(state.get("recent", [])), "forecaster recent rates", None, 1e12)
        if recent.ndim != 1:
            raise ValueError("forecaster recent rates in the checkpoint are not a list of numbers")
        self.seasonal.load_state_dict(state.get("seasonal", {}))
        self.mean, self.precision, self.noise, self.samples = mean, precision, noise, samples
        self.level_sums, self.evidence, self.season_evidence = level_sums, evidence, season_evidence
        self.recent = deque((float(v) for v in recent), maxlen=self.s.level_memory)


_T_DOF = 4.0
"""Degrees of freedom of the Student-t the models are scored with: one surprise (a step that both models
missed by many standard deviations) must not hand the weight to whichever was less surprised for the
next several intervals (with normal densities the level model took the weight at a tripling and lagged
it by 4-6 intervals); heavy tails make the score a matter of many intervals, not of one."""


def _log_t(err: float, var: float, nu: float = _T_DOF) -> float:
    """Log density of ``err`` under a Student-t with ``nu`` degrees of freedom and variance ``var``."""
    scale2 = var * (nu - 2.0) / nu
    return (math.lgamma(0.5 * (nu + 1)) - math.lgamma(0.5 * nu) - 0.5 * math.log(nu * math.pi * scale2)
            - 0.5 * (nu + 1) * math.log1p(err * err / (nu * scale2)))


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _mixture_quantile(parts: list[tuple[float, float, float, bool]], z: float) -> float:
    """The log rate under which a mixture holds probability ``Phi(z)``, by bisection (its CDF is monotone
    in the log rate). ``parts``: (weight, mean, variance, in sqrt space); a part in sqrt space is a normal
    of sqrt(rate + floor), the others normals of the log rate."""
    level = _phi(z)
    kept = [(w, m, math.sqrt(max(v, 1e-12)), sq) for w, m, v, sq in parts if w > 0.0]
    lo = min([math.log(_FLOOR)] + [m - 10 * sd for _, m, sd, sq in kept if not sq])
    hi = max(2 * math.log(max(m + 10 * sd, 1e-6)) if sq else m + 10 * sd for _, m, sd, sq in kept)
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        u = math.exp(0.5 * mid)
        cdf = sum(w * _phi(((u if sq else mid) - m) / sd) for w, m, sd, sq in kept)
        lo, hi = (mid, hi) if cdf < level else (lo, mid)
    return 0.5 * (lo + hi)
