"""What a configuration can serve within the SLO: a Bayesian model of the tail latency against load.

The question a sizing decision asks is "if I hold this configuration and the load is this, will the
interval's tail latency stay under the SLO?". This module answers it with a probability and knows
how sure it is.

**Label.** Every interval gives a soft label ``y = sigmoid(k * log(tail / target))``: 0.5 when the
tail latency (the SLO's metric, for example TTFT p99) sits exactly on the target, near 0 far below
it, near 1 far above. A binary met/missed label would teach the model nothing in the many intervals
that meet the SLO comfortably; the soft label says *how* comfortably, so every interval carries
information about the capacity boundary. (Logistic regression with fractional targets is the
quasi-likelihood of Papke & Wooldridge 1996; the Laplace posterior below is taken over it.)

**Features** of (configuration, load): the log of load per GPU (requests per second per GPU held
ready), an offset per tensor-parallel degree other than the largest, the batch-size position, and the
log burst ratio (peak 10 s rate over the interval mean), all of which an observation carries or the
configuration states.

**Posterior.** Gaussian prior, Laplace approximation, sequential (assumed density filtering: the
posterior after one batch is the prior of the next; MacKay 1992, Bishop *PRML* sec. 4.5), with the
predictive probability moderated by the weights' uncertainty (Bishop eq. 4.153), so a load per GPU
or a TP degree the model has not seen reads as "maybe", which a risk-bounded decision avoids: the
learner stays safe where it has no evidence and gets cheaper where it has.

**Forgetting.** Sequential Bayes with no forgetting treats the service as stationary: after a few
thousand intervals the precision is so large that a slower model version or a different prompt mix
barely moves the mean (issue 11). Before each update the precision is discounted towards the
prior's, ``P <- f^n P + (1 - f^n) P_prior`` for a batch of ``n`` intervals, with the mean left where it
is (exponential forgetting of the information, as in the forgetting-factor Kalman/RLS filters and
Kulhavy & Zarrop 1993's stabilised forgetting: the covariance inflates, never past the prior's). The
information the posterior holds then stays near what ``1 / (1 - f)`` recent intervals carry, so
evidence that the capacity moved outweighs the old evidence within about that many intervals.
Discounting per interval rather than per call keeps batched updates (``update_every``) and parallel
training's merges (one update over many workers' rows) forgetting as much as the same intervals
would one at a time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from learners.predict import _sigmoid, laplace_logistic_update, moderated_probability
from learners.state_checks import finite_number, gaussian

Array = np.ndarray




@dataclass(frozen=True)
class CapacitySettings:
    sharpness: float = 4.0
    """``k`` of the soft label: a tail at 0.6x the target labels 0.12, at 1.5x labels 0.83."""
    load_slope_prior: float = 3.0
    """Prior mean of the weight on log load per GPU: more load per GPU, higher tail (its sign is
    known before any data: queueing only grows with load)."""
    prior_var: float = 2.0
    """Prior variance of every weight (features are O(1); +-3 at two sigma)."""
    intercept_var: float = 25.0
    """Prior variance of the intercept: where the capacity boundary lies is what must be learned."""
    newton_iters: int = 20
    forgetting: float = 0.9995
    """Per-interval forgetting factor ``f`` in (0, 1]: the precision decays towards the prior's by
    ``f`` per interval observed, so the posterior holds about ``1 / (1 - f)`` intervals' worth of
    information (0.9995: about 2000 one-minute intervals, eight evaluation days, where issue 11 saw
    the posterior stop adapting). 1.0 never forgets."""

    def __post_init__(self) -> None:
        if not (0.0 < self.forgetting <= 1.0) or not math.isfinite(self.forgetting):
            raise ValueError(f"forgetting must be in (0, 1], got {self.forgetting}")


class CapacityModel:
    """P(tail latency above the SLO target | configuration features), Bayesian, updated in batches."""

    def __init__(self, dim: int, settings: CapacitySettings | None = None) -> None:
        self.s = settings or CapacitySettings()
        self.dim = dim
        self.mean = np.zeros(dim + 1)  # intercept first, then the features in order
        self.mean[1] = self.s.load_slope_prior
        self.prior_precision = np.diag([1.0 / self.s.intercept_var] + [1.0 / self.s.prior_var] * dim)
        self.precision = self.prior_precision.copy()
        self._cov = np.linalg.inv(self.precision)
        self.samples = 0

    @staticmethod
    def _design(X: Array) -> Array:
        X = np.atleast_2d(np.asarray(X, float))
        return np.hstack([np.ones((X.shape[0], 1)), X])

    def label(self, tail: float, target: float) -> float:
        """The soft label of one interval: ``sigmoid(k log(tail / target))``."""
        if not math.isfinite(tail) or tail <= 0:
            return 1.0 if not math.isfinite(tail) else 0.0
        return float(_sigmoid(np.array(self.s.sharpness * math.log(tail / target))))

    def update(self, X: Array, y: Array, *, elapsed: int | None = None) -> None:
        """Laplace posterior after ``(X, y)`` with the current posterior as the prior (y in [0, 1]).

        ``elapsed``: how many intervals of this workload's time the rows cover, for forgetting (default:
        one per row). Rows a peer of the workload class observed while this workload's own intervals went
        by cover none: its own updates already forgot that time, and forgetting per peer row would make
        a member of a class of k forget k times as fast as one alone."""
        Phi = self._design(X)
        y = np.clip(np.asarray(y, float).ravel(), 0.0, 1.0)
        if Phi.shape != (y.size, self.dim + 1):
            raise ValueError(f"expected {y.size} rows of {self.dim} features, got {Phi.shape[0]} x {Phi.shape[1] - 1}")
        prior = self.forgotten_precision(y.size if elapsed is None else elapsed)
        self.mean, self.precision = laplace_logistic_update(Phi, y, self.mean, prior, self.s.newton_iters, 1e-8)
        self._cov = np.linalg.inv(self.precision)
        self.samples += y.size

    def forgotten_precision(self, intervals: int) -> Array:
        """The precision after forgetting ``intervals`` intervals' worth: ``f^n P + (1 - f^n) P_prior``.

        A convex combination of two positive-definite matrices, so it stays one; with ``f = 1`` it is
        the precision unchanged."""
        if self.s.forgetting >= 1.0 or intervals <= 0:
            return self.precision
        keep = self.s.forgetting ** intervals
        return keep * self.precision + (1.0 - keep) * self.prior_precision

    def predict(self, X: Array) -> Array:
        """Posterior predictive P(above target), moderated by the weights' uncertainty."""
        return moderated_probability(self._design(X), self.mean, self._cov)

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "precision": self.precision.tolist(), "samples": self.samples}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        mean = np.asarray(state["mean"], float)
        if mean.shape != self.mean.shape:
            raise ValueError(f"capacity model has {mean.size} weights in the checkpoint, {self.mean.size} here")
        self.mean, self.precision = gaussian(mean, state["precision"], "capacity model", mean.size)
        self._cov = np.linalg.inv(self.precision)
        self.samples = int(finite_number(state.get("samples", 0), "capacity model samples", 0.0, 1e12))
