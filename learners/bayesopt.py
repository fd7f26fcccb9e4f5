"""Constrained Bayesian optimisation over a discrete set of configurations.

Configurations are rows of a numeric feature matrix (for a training job, e.g. log GPUs, nodes,
log batch size). Each trial measures a cost to minimise and a constraint metric that must stay at
or below a threshold (the SLO). Two Gaussian processes, one per metric, each with a Matérn-5/2 ARD
kernel whose hyper-parameters maximise the log marginal likelihood (Rasmussen & Williams, "Gaussian
Processes for Machine Learning", 2006, eqs. 4.17 and 5.8-5.9; Snoek, Larochelle & Adams, "Practical
Bayesian optimization of machine learning algorithms", NIPS 2012, for Matérn-5/2 ARD with EI). The
next trial maximises constrained expected improvement, EI on the cost times the probability that
the constraint holds (Gardner et al., "Bayesian optimization with inequality constraints", ICML
2014; Gelbart, Snoek & Adams, UAI 2014); until a feasible point is known it maximises the
probability of feasibility alone (Gelbart et al., Sec. 3). CherryPick (Alipourfard et al., NSDI 2017)
applies the same recipe to cloud configurations, which is our use.

``suggest()`` returns the index of the next candidate; ``observe(index, cost, constraint)`` records
a measurement. The first ``initial_points`` suggestions are a space-filling (farthest-point)
design, seeded, so a handful of trials already spans every knob.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# scipy is imported inside the functions that use it: registering the learners (every autocm command
# does) must not cost the second scipy.stats and scipy.optimize take to import.

Array = np.ndarray
SQRT5 = np.sqrt(5.0)


@dataclass(frozen=True)
class BayesOptSettings:
    initial_points: int = 4
    """Space-filling trials before the GPs steer: CherryPick starts from 3 (NSDI 2017, Sec. 4);
    one more than the usual three knobs of a training job."""

    constraint_max: float = 0.0
    """A trial is feasible when its constraint metric is at most this (in observe()'s units)."""

    log_metrics: bool = True
    """Model log(cost) and log(constraint): step times and costs are positive and multiplicative
    (CherryPick models log cost for the same reason). Needs positive metrics and threshold."""

    restarts: int = 3
    """Random restarts of the marginal-likelihood optimiser, besides a warm start from the last fit."""

    lengthscale_bounds: tuple[float, float] = (0.05, 20.0)
    """On inputs scaled to [0, 1]: from a twentieth of a knob's range to effectively irrelevant."""

    signal_var_bounds: tuple[float, float] = (0.05, 20.0)
    """On standardised outputs, whose sample variance is 1."""

    noise_var_bounds: tuple[float, float] = (1e-6, 0.05)
    """On standardised outputs. Profiled step times repeat to a few percent, so noise is a small
    share of the spread across configurations; capping it at 5% stops the fit from explaining real
    structure as noise (on the Pollux imagenet test, cap 0.5 found the optimum in 34/40 seeds, 0.05
    in 37/40). The floor keeps the Cholesky factor stable."""

    lengthscale_prior: tuple[float, float] | None = None
    """Log-normal prior (median, sd of log) on each lengthscale, making the fit a MAP estimate.
    With under 15 points pure maximum likelihood often sets a lengthscale to a bound (a knob
    declared irrelevant after 4 trials); a weak prior is the usual remedy (BoTorch puts a Gamma
    prior on lengthscales for the same reason; Snoek et al. 2012 integrate them out instead).
    None gives plain type-II maximum likelihood."""


class GaussianProcess:
    """Zero-mean GP on standardised outputs, Matérn-5/2 ARD kernel, type-II maximum likelihood."""

    def __init__(self, settings: BayesOptSettings) -> None:
        self.settings = settings
        self._theta: Array | None = None  # log [signal var, lengthscales..., noise var]

    def _bounds(self, d: int) -> list[tuple[float, float]]:
        s = self.settings
        return [tuple(np.log(s.signal_var_bounds))] + [tuple(np.log(s.lengthscale_bounds))] * d + [
            tuple(np.log(s.noise_var_bounds))
        ]

    @staticmethod
    def _kernel(theta: Array, X1: Array, X2: Array) -> tuple[Array, Array]:
        """Matérn-5/2 ARD matrix and the per-dimension scaled squared distances (for gradients)."""
        ell = np.exp(theta[1:-1])
        diff2 = ((X1[:, None, :] - X2[None, :, :]) / ell) ** 2
        r = np.sqrt(diff2.sum(-1))
        K = np.exp(theta[0]) * (1.0 + SQRT5 * r + 5.0 / 3.0 * r**2) * np.exp(-SQRT5 * r)
        return K, diff2

    def _neg_lml(self, theta: Array, X: Array, y: Array) -> tuple[float, Array]:
        """Negative log marginal likelihood and its gradient in log-parameters (R&W eq. 5.9)."""
        from scipy.linalg import cho_factor, cho_solve
        n = len(y)
        Kf, diff2 = self._kernel(theta, X, X)
        noise = np.exp(theta[-1])
        try:
            c = cho_factor(Kf + noise * np.eye(n), lower=True)
        except np.linalg.LinAlgError:
            return 1e25, np.zeros_like(theta)
        alpha = cho_solve(c, y)
        nll = 0.5 * y @ alpha + np.log(np.diag(c[0])).sum() + 0.5 * n * np.log(2 * np.pi)
        W = np.outer(alpha, alpha) - cho_solve(c, np.eye(n))
        r = np.sqrt(diff2.sum(-1))
        # dK/dlog ell_d = σ² (5/3)(1 + √5 r) e^{-√5 r} Δ_d²/ell_d²  (the 1/r of dr cancels)
        common = np.exp(theta[0]) * 5.0 / 3.0 * (1.0 + SQRT5 * r) * np.exp(-SQRT5 * r)
        grads = [Kf] + [common * diff2[:, :, d] for d in range(X.shape[1])] + [noise * np.eye(n)]
        grad = np.array([-0.5 * np.sum(W * dK) for dK in grads])
        prior = self.settings.lengthscale_prior
        if prior is not None:
            z = (theta[1:-1] - np.log(prior[0])) / prior[1]
            nll += 0.5 * float(z @ z)
            grad[1:-1] += z / prior[1]
        return float(nll), grad

    def fit(self, X: Array, y: Array, rng: np.random.Generator) -> GaussianProcess:
        from scipy.linalg import cho_factor, cho_solve
        from scipy.optimize import minimize
        self.X = X
        self.y_mean, self.y_std = float(y.mean()), float(y.std()) or 1.0
        self.y = (y - self.y_mean) / self.y_std
        bounds = self._bounds(X.shape[1])
        lo, hi = np.array(bounds).T
        starts = [rng.uniform(lo, hi) for _ in range(self.settings.restarts)]
        if self._theta is not None and len(self._theta) == len(lo):
            starts.insert(0, self._theta)
        else:
            starts.insert(0, np.r_[0.0, np.full(X.shape[1], np.log(0.5)), np.log(1e-3)])
        best: tuple[float, Array] | None = None
        for x0 in starts:
            res = minimize(self._neg_lml, x0, args=(X, self.y), jac=True, method="L-BFGS-B", bounds=bounds)
            if best is None or res.fun < best[0]:
                best = (float(res.fun), res.x)
        assert best is not None
        self._theta = best[1]
        K, _ = self._kernel(self._theta, X, X)
        self._chol = cho_factor(K + np.exp(self._theta[-1]) * np.eye(len(y)), lower=True)
        self._alpha = cho_solve(self._chol, self.y)
        self._K_inv = cho_solve(self._chol, np.eye(len(y)))
        return self

    def predict(self, Xs: Array) -> tuple[Array, Array]:
        """Posterior mean and standard deviation of the latent function, in the original units."""
        Ks, _ = self._kernel(self._theta, Xs, self.X)
        # einsum, not BLAS: on a loaded machine multithreaded BLAS on these thin matrices is 5x slower
        mean = np.einsum("ij,j->i", Ks, self._alpha)
        quad = np.einsum("ij,jk,ik->i", Ks, self._K_inv, Ks, optimize=False)
        var = np.maximum(np.exp(self._theta[0]) - quad, 1e-12)
        return self.y_mean + self.y_std * mean, self.y_std * np.sqrt(var)

    @property
    def lengthscales(self) -> Array:
        return np.exp(self._theta[1:-1])


def expected_improvement(mean: Array, std: Array, best: float) -> Array:
    """EI for minimisation: E[max(best - f, 0)] under f ~ N(mean, std²)."""
    from scipy.stats import norm
    z = (best - mean) / std
    return (best - mean) * norm.cdf(z) + std * norm.pdf(z)


def farthest_point_design(X: Array, count: int, rng: np.random.Generator) -> list[int]:
    """A random first point, then repeatedly the candidate farthest from those chosen (maximin)."""
    chosen = [int(rng.integers(len(X)))]
    dist = np.linalg.norm(X - X[chosen[0]], axis=1)
    while len(chosen) < min(count, len(X)):
        nxt = int(np.argmax(dist + 1e-9 * rng.random(len(X))))  # random tie-break
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(X - X[nxt], axis=1))
    return chosen


class ConstrainedBayesOpt:
    """Minimise cost subject to ``constraint <= constraint_max`` over the rows of ``candidates``."""

    def __init__(self, candidates: Array, settings: BayesOptSettings | None = None,
                 rng: np.random.Generator | None = None) -> None:
        self.settings = settings or BayesOptSettings()
        self.rng = rng if rng is not None else np.random.default_rng(0)
        C = np.asarray(candidates, dtype=float)
        span = C.max(axis=0) - C.min(axis=0)
        self.candidates = C
        self._unit = (C - C.min(axis=0)) / np.where(span > 0, span, 1.0)  # GP inputs in [0, 1]
        self._initial = farthest_point_design(self._unit, self.settings.initial_points, self.rng)
        self._cost_gp = GaussianProcess(self.settings)
        self._con_gp = GaussianProcess(self.settings)
        self.indices: list[int] = []
        self.costs: list[float] = []
        self.constraints: list[float] = []

    def _transform(self, v: Array | float) -> Array:
        return np.log(v) if self.settings.log_metrics else np.asarray(v, dtype=float)

    def feasible(self) -> Array:
        return np.asarray(self.constraints) <= self.settings.constraint_max

    def suggest(self) -> int:
        """Index of the candidate to try next (never one already observed)."""
        untried = np.setdiff1d(np.arange(len(self.candidates)), self.indices)
        if untried.size == 0:
            raise RuntimeError("every candidate has been observed")
        for i in self._initial:
            if i not in self.indices:
                return int(i)
        return int(untried[np.argmax(self.acquisition(untried))])

    def acquisition(self, idx: Array) -> Array:
        """Constrained EI at candidates ``idx`` (probability of feasibility while none is known)."""
        from scipy.stats import norm
        X, Xs = self._unit[self.indices], self._unit[idx]
        con_gp = self._con_gp.fit(X, self._transform(np.array(self.constraints)), self.rng)
        con_mean, con_std = con_gp.predict(Xs)
        threshold = float(self._transform(self.settings.constraint_max))
        p_feasible = norm.cdf((threshold - con_mean) / con_std)
        feasible = self.feasible()
        if not feasible.any():
            return p_feasible
        y = self._transform(np.array(self.costs))
        mean, std = self._cost_gp.fit(X, y, self.rng).predict(Xs)
        return expected_improvement(mean, std, float(y[feasible].min())) * p_feasible

    def observe(self, index: int, cost: float, constraint: float) -> None:
        """Record a trial of candidate ``index``; metrics must be positive when ``log_metrics``."""
        if self.settings.log_metrics and (cost <= 0 or constraint <= 0):
            raise ValueError(f"log_metrics needs positive metrics, got cost={cost}, constraint={constraint}")
        if index in self.indices:
            raise ValueError(f"candidate {index} was already observed")
        self.indices.append(int(index))
        self.costs.append(float(cost))
        self.constraints.append(float(constraint))

    def best(self) -> int | None:
        """Index of the cheapest feasible trial so far (None while nothing feasible was seen)."""
        feasible = self.feasible()
        if not feasible.any():
            return None
        costs = np.where(feasible, self.costs, np.inf)
        return self.indices[int(np.argmin(costs))]
