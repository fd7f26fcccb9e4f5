"""Turning residuals and greedy-policy snapshots into a convergence verdict a control loop can act on.

A learner feeds :class:`ConvergenceMonitor` one report at a time: a Bellman/TD residual (any
non-negative number that goes to zero at the fixed point, in the learner's own norm) and, when it
has one, a snapshot of its greedy policy (any array-like of actions, compared for equality). The
monitor answers with a :class:`learners.types.Convergence`.

Verdicts, checked in this order over the last ``window`` reports:

* ``diverging``  a residual is not finite, or log(residual) grows with least-squares slope above
  ``log(divergence_growth)`` per report: geometric growth, the signature of an unstable iteration
  (a policy evaluation with ``λ ρ² ≥ 1``, a step size too large for the contraction), provided the
  latest residual is at least ``tol`` (below it, growth is rounding noise).
* ``converged``  every residual in the window is below ``tol`` AND the greedy policy did not change
  over the window. Both, because a small residual with a flipping greedy action means near-ties that
  still matter to the decisions, and an unchanged policy with a large residual means values are
  still wrong (they would mislead anything that reads them, like a rollback rule).
* ``converging`` the log-residual trend over the window is decreasing.
* ``exploring``  otherwise, including before ``window`` reports have been seen.

For a γ-contraction the residual certifies the error: ``‖Q - Q*‖∞ ≤ ‖TQ - Q‖∞ / (1 - γ)``
(Bertsekas & Tsitsiklis, Neuro-Dynamic Programming, 1996, Prop. 2.1-style bound), so choosing
``tol = (1 - γ) ε`` makes ``converged`` imply an error below ε when the residual is exact.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from learners.types import Convergence, Verdict


@dataclass(frozen=True)
class ConvergenceSettings:
    tol: float = 1e-3
    """Residual threshold. Set it to (1 - γ) × the value error you accept (bound in the module doc)."""

    window: int = 5
    """Reports that must agree before a verdict changes: five control intervals or checkpoints is
    the smallest window in which a least-squares trend of a noisy residual is meaningful."""

    divergence_growth: float = 1.1
    """Per-report growth factor of the residual's fitted geometric trend above which the learner is
    diverging (1.1 per report is ×1.46 over a 5-report window: clearly not noise)."""

    def __post_init__(self) -> None:
        if self.window < 2:
            raise ValueError(f"window must be at least 2, got {self.window}")
        if self.tol <= 0:
            raise ValueError(f"tol must be positive, got {self.tol}")
        if self.divergence_growth <= 1.0:
            raise ValueError(f"divergence_growth must exceed 1, got {self.divergence_growth}")


class ConvergenceMonitor:
    """Keeps the last ``window`` residuals and policy snapshots; :meth:`report` gives the verdict."""

    def __init__(self, settings: ConvergenceSettings | None = None) -> None:
        self.settings = settings or ConvergenceSettings()
        w = self.settings.window
        self._residuals: deque[float] = deque(maxlen=w)
        self._policies: deque[tuple[object, ...]] = deque(maxlen=w)
        self._samples = 0

    def update(self, residual: float, greedy_policy: Sequence[object] | np.ndarray | None = None,
               samples: int = 0) -> Convergence:
        """Feed one report; ``samples`` counts transitions consumed since the previous report."""
        self._residuals.append(float(residual))
        if greedy_policy is not None:
            self._policies.append(tuple(np.asarray(greedy_policy).ravel().tolist()))
        self._samples += int(samples)
        return self.report()

    def reset(self) -> None:
        """Forget the evidence (after a workload change invalidates what was learned)."""
        self._residuals.clear()
        self._policies.clear()

    def policy_stability(self) -> float:
        """Fraction of recent policy snapshots equal to the latest one (nan when none)."""
        if not self._policies:
            return math.nan
        latest = self._policies[-1]
        return sum(p == latest for p in self._policies) / len(self._policies)

    def verdict(self) -> Verdict:
        s = self.settings
        res = list(self._residuals)
        if any(not math.isfinite(r) for r in res):
            return Verdict.DIVERGING
        if len(res) < s.window:
            return Verdict.EXPLORING
        slope = _log_slope(res)
        if slope > math.log(s.divergence_growth) and res[-1] >= s.tol:
            return Verdict.DIVERGING  # growth among residuals below tol is rounding noise, not divergence
        policy_settled = not self._policies or (
            len(self._policies) == s.window and self.policy_stability() == 1.0
        )
        if max(res) < s.tol and policy_settled:
            return Verdict.CONVERGED
        if slope < 0.0:
            return Verdict.CONVERGING
        return Verdict.EXPLORING

    def report(self) -> Convergence:
        latest = self._residuals[-1] if self._residuals else math.nan
        return Convergence(self.verdict(), latest, self.policy_stability(), self._samples)


def _log_slope(values: Sequence[float]) -> float:
    """Least-squares slope of log(value) per report; zeros are floored to the smallest double."""
    y = np.log(np.maximum(np.asarray(values, dtype=float), np.finfo(float).tiny))
    x = np.arange(len(y), dtype=float)
    x -= x.mean()
    return float(x @ (y - y.mean()) / (x @ x))
