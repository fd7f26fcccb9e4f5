"""Predicting an SLO violation a few intervals before it happens: Bayesian logistic regression.

**What is predicted, and what is not.** Node failures in the simulator are memoryless: each node
stays up for an exponential time (:mod:`simulator.faults`) and emits nothing beforehand, so no
predictor can see one coming, by construction (a real cluster has precursors, such as ECC error
counts or XID events; the simulator does not model them, and we do not pretend otherwise). What *is*
predictable is the consequence: an SLO violation in the next ``horizon`` intervals, from trends the
control loop already observes (TTFT p99 rising towards the target, the queue growing, utilisation
near saturation, fewer ready replicas than wanted after a failure or during a cold start).

**Model.** ``P(violation within H | features) = σ(wᵀφ)``, with a Gaussian prior on ``w`` and the
posterior approximated by Laplace's method (MacKay 1992; Bishop, *PRML* 2006, sec. 4.5): the MAP
weights by Newton's method, the covariance as the inverse Hessian there. Updating is sequential:
the current posterior is the prior for the next batch (assumed density filtering), so the
predictor keeps learning online at the cost of one small Newton solve per batch. Predictions are
moderated by the posterior's uncertainty, ``σ(μ / sqrt(1 + π s² / 8))`` (Bishop eq. 4.153), so a
predictor that has seen little says "maybe" rather than "certainly".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from learners.objective import Objective
from learners.types import Observation

Array = np.ndarray

FEATURES: tuple[str, ...] = (
    "log_ttft_over_target", "ttft_trend", "log_queue", "queue_trend", "gpu_utilization", "utilization_trend",
    "load_trend", "ready_fraction", "failed_last_interval", "shortfall_last_interval", "kv_cache_usage",
    "log_concurrency",
)
"""Feature names, in the order of :func:`violation_features`' vector."""


@dataclass(frozen=True)
class PredictorSettings:
    horizon: int = 3
    """Predict a violation in any of the next this many intervals (3 minutes at 60 s): long enough to
    act (a replica cold-starts in about one minute), short enough to be about the present trend."""
    window: int = 3
    """Intervals of history the trend features compare (latest against the mean of the others)."""
    prior_var: float = 1.0
    """Prior variance of each weight on standardised features: weights beyond ±2 are a priori unlikely."""
    intercept_var: float = 10.0
    """Prior variance of the intercept: the base rate of violations is not known in advance."""
    newton_iters: int = 50


def _sigmoid(z: Array) -> Array:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def laplace_logistic_update(Phi: Array, y: Array, mean: Array, precision: Array, iters: int,
                            tol: float) -> tuple[Array, Array]:
    """Newton's method to the MAP of a logistic likelihood under the Gaussian prior ``(mean, precision)``;
    returns the Laplace posterior's mean and precision. ``y`` may be soft labels in [0, 1]. Shared by the
    violation forecaster and slo-rl's capacity model, which differ only in their features and labels.

    A full Newton step is taken whenever it lowers the objective (then the result is plain Newton's); one
    that would raise it is halved until it does not. Plain Newton diverges on logistic losses from far
    starts: 400 rows at one load, one TP degree and one burst level (four constant columns) sent the
    intercept to about 5,000 in one update, since where every probability saturates the Hessian is the prior
    alone."""
    w = mean.copy()

    def objective(v: Array) -> float:
        z = Phi @ v
        # cross-entropy with soft labels, computed stably: log(1 + e^z) - y z
        return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * (v - mean) @ precision @ (v - mean))

    current = objective(w)
    for _ in range(iters):
        p = _sigmoid(Phi @ w)
        grad = Phi.T @ (p - y) + precision @ (w - mean)
        hess = (Phi * (p * (1 - p))[:, None]).T @ Phi + precision
        step = np.linalg.solve(hess, grad)
        t = 1.0
        trial = objective(w - step)
        slack = 1e-9 * (1.0 + abs(current))  # rounding near the optimum is not a rise: keep plain Newton there
        while trial > current + slack and t > 1e-6:
            t *= 0.5
            trial = objective(w - t * step)
        w, current = w - t * step, trial
        if np.max(np.abs(t * step)) < tol:
            break
    p = _sigmoid(Phi @ w)
    return w, (Phi * (p * (1 - p))[:, None]).T @ Phi + precision


def moderated_probability(Phi: Array, mean: Array, covariance: Array) -> Array:
    """Posterior predictive probability with the probit approximation (MacKay): the weights' uncertainty
    pulls predictions towards 0.5."""
    mu = Phi @ mean
    var = np.einsum("ij,jk,ik->i", Phi, covariance, Phi)
    return _sigmoid(mu / np.sqrt(1.0 + math.pi * var / 8.0))


class BayesianLogisticRegression:
    """Logistic regression with a Gaussian prior, Laplace posterior and sequential updates."""

    def __init__(self, dim: int, prior_var: float = 1.0, intercept_var: float = 10.0, newton_iters: int = 50) -> None:
        self.dim = dim
        self.mean = np.zeros(dim + 1)                          # intercept first
        self.precision = np.diag([1.0 / intercept_var] + [1.0 / prior_var] * dim)
        self.newton_iters = newton_iters
        self.samples = 0

    @staticmethod
    def _design(X: Array) -> Array:
        X = np.atleast_2d(np.asarray(X, float))
        return np.hstack([np.ones((X.shape[0], 1)), X])

    @property
    def covariance(self) -> Array:
        return np.linalg.inv(self.precision)

    def update(self, X: Array, y: Array) -> BayesianLogisticRegression:
        """Posterior after ``(X, y)``, the current posterior acting as prior (y in {0, 1})."""
        Phi = self._design(X)
        y = np.asarray(y, float).ravel()
        if Phi.shape[0] != y.shape[0]:
            raise ValueError(f"{Phi.shape[0]} feature rows but {y.shape[0]} labels")
        if not np.all((y == 0) | (y == 1)):
            raise ValueError("labels must be 0 or 1")
        if Phi.shape[1] != self.dim + 1:
            raise ValueError(f"expected {self.dim} features, got {Phi.shape[1] - 1}")
        self.mean, self.precision = laplace_logistic_update(Phi, y, self.mean, self.precision, self.newton_iters, 1e-9)
        self.samples += len(y)
        return self

    def predict_proba(self, X: Array) -> Array:
        """Posterior predictive probability, moderated by the weights' uncertainty."""
        return moderated_probability(self._design(X), self.mean, self.covariance)


def violation_features(history: Sequence[Observation], objective: Objective) -> Array:
    """The feature vector (:data:`FEATURES`) at the last of ``history`` (oldest first, at least one)."""
    if not history:
        raise ValueError("need at least one observation")
    last = history[-1]
    earlier = history[:-1] or history

    def metric(o: Observation, name: str, default: float = 0.0) -> float:
        v = o.metric(name, default)
        return v if math.isfinite(v) else default

    def log_ttft(o: Observation) -> float:
        return math.log(max(metric(o, objective.metric, objective.target), 1e-3) / objective.target)

    def log_queue(o: Observation) -> float:
        return math.log1p(max(metric(o, "queue_length"), 0.0))

    def mean(f, obs: Sequence[Observation]) -> float:
        return float(np.mean([f(o) for o in obs]))

    rate_now = metric(last, "request_rate_per_second")
    rate_before = mean(lambda o: metric(o, "request_rate_per_second"), earlier)
    wanted = max(float(last.config.get("replicas", 1.0)), 1.0)
    ready = sum(1 for r in last.replicas if r.ready) if last.replicas else wanted
    values = [
        log_ttft(last),
        log_ttft(last) - mean(log_ttft, earlier),
        log_queue(last),
        log_queue(last) - mean(log_queue, earlier),
        metric(last, "gpu_utilization"),
        metric(last, "gpu_utilization") - mean(lambda o: metric(o, "gpu_utilization"), earlier),
        math.log((rate_now + 0.01) / (rate_before + 0.01)),
        min(ready / wanted, 1.5),
        float(last.events.get("failures", 0.0) > 0),
        min(objective.shortfall(last) / objective.miss_budget, 5.0),
        metric(last, "kv_cache_usage"),
        math.log1p(max(metric(last, "concurrency_per_replica"), 0.0)),
    ]
    return np.asarray(values, float)


def labelled(history: Sequence[Observation], objective: Objective, settings: PredictorSettings
             ) -> tuple[Array, Array, Array]:
    """Features, labels and the violation flag of every interval of one run with a full window
    behind it and a full horizon after it. Label at t: a violation in t+1..t+horizon."""
    violated = np.array([not objective.meets(o) for o in history])
    X, y, idx = [], [], []
    for t in range(settings.window - 1, len(history) - settings.horizon):
        X.append(violation_features(history[t - settings.window + 1: t + 1], objective))
        y.append(float(violated[t + 1: t + 1 + settings.horizon].any()))
        idx.append(t)
    return np.array(X).reshape(-1, len(FEATURES)), np.array(y), np.array(idx, dtype=int)


@dataclass
class Standardiser:
    """Feature scaling fixed on training data (the prior's scale assumes standardised features)."""

    mean: Array
    std: Array

    @classmethod
    def fit(cls, X: Array) -> Standardiser:
        std = X.std(axis=0)
        return cls(X.mean(axis=0), np.where(std > 1e-9, std, 1.0))

    def __call__(self, X: Array) -> Array:
        return (np.atleast_2d(X) - self.mean) / self.std


@dataclass(frozen=True)
class AlarmScore:
    precision: float
    recall: float
    onsets: int
    onsets_caught: int
    mean_lead_intervals: float
    alarms: int


def score_alarms(alarm: Array, violated: Array, horizon: int) -> AlarmScore:
    """Per-interval precision/recall of "a violation within ``horizon``", and lead times at onsets.

    ``alarm[t]``: raised after interval t, about t+1..t+horizon; ``violated[t]``: interval t missed
    the SLO. An onset is a violation after a met interval; it is caught when an alarm was raised in
    the ``horizon`` intervals before it, with lead time the distance to the earliest such alarm.
    """
    alarm, violated = np.asarray(alarm, bool), np.asarray(violated, bool)
    T = len(violated)
    label = np.array([violated[t + 1: t + 1 + horizon].any() for t in range(T)])
    tp = int((alarm & label).sum())
    precision = tp / int(alarm.sum()) if alarm.any() else math.nan
    recall = tp / int(label.sum()) if label.any() else math.nan
    leads = []
    onsets = [t for t in range(1, T) if violated[t] and not violated[t - 1]]
    for t in onsets:
        before = [j for j in range(1, horizon + 1) if t - j >= 0 and alarm[t - j]]
        if before:
            leads.append(max(before))
    return AlarmScore(precision, recall, len(onsets), len(leads),
                      float(np.mean(leads)) if leads else math.nan, int(alarm.sum()))


def best_threshold(p: Array, y: Array) -> float:
    """The alarm threshold with the best F1 on (training) data."""
    best, best_f1 = 0.5, -1.0
    for th in np.linspace(0.05, 0.95, 19):
        a = p >= th
        tp = float((a & (y > 0)).sum())
        f1 = 2 * tp / (a.sum() + (y > 0).sum()) if (a.sum() + (y > 0).sum()) else 0.0
        if f1 > best_f1:
            best, best_f1 = float(th), f1
    return best


class ViolationForecaster:
    """The predictor as the control loop would run it: one observation at a time, learning online.

    ``observe(obs)`` returns P(violation within ``horizon`` intervals) from the latest window, then
    files the features until their label is known ``horizon`` intervals later and updates the
    posterior with it (predict first, learn after: every prediction is made before its outcome is
    seen, so a prequential score of these predictions never tests on training data).
    ``scale`` standardises features; fix it from earlier runs (a fresh forecaster uses none).
    """

    def __init__(self, objective: Objective, settings: PredictorSettings | None = None,
                 model: BayesianLogisticRegression | None = None, scale: Standardiser | None = None) -> None:
        self.objective = objective
        self.s = settings or PredictorSettings()
        self.model = model or BayesianLogisticRegression(len(FEATURES), self.s.prior_var, self.s.intercept_var,
                                                         self.s.newton_iters)
        self.scale = scale
        self.window: list[Observation] = []
        self.pending: list[tuple[Array, int]] = []  # (features, interval index)
        self.violations: list[bool] = []

    def observe(self, obs: Observation) -> float:
        self.violations.append(not self.objective.meets(obs))
        t = len(self.violations) - 1
        ready = [(x, i) for x, i in self.pending if t - i >= self.s.horizon]
        if ready:
            X = np.vstack([x for x, _ in ready])
            y = np.array([float(any(self.violations[i + 1: i + 1 + self.s.horizon])) for _, i in ready])
            self.model.update(X, y)
            self.pending = [(x, i) for x, i in self.pending if t - i < self.s.horizon]
        self.window = [*self.window, obs][-self.s.window:]
        x = violation_features(self.window, self.objective)
        x = self.scale(x)[0] if self.scale is not None else x
        self.pending.append((x, t))
        return float(self.model.predict_proba(x[None, :])[0])
