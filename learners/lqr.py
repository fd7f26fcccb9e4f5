"""Model-free λ-policy iteration as a replica autoscaler: LQR around the workload's operating point.

**Why this linearisation.** An inference service's GPU busy fraction is close to ``load / (replicas x
capacity)`` (measured on the simulator in docs/lqr-bo-prediction.md: busy fraction x replicas stays
within 2% from 6 to 12 replicas of llama2-70b TP2). In logarithms that is linear in the replica
count, so with the *relative* utilisation error and the *relative* replica change,

    e  = utilisation / setpoint - 1,        u = Δreplicas / replicas,

the plant is ``e' ≈ e - u`` to first order, plus the load's drift as a disturbance. Queue length and
TTFT p99 are not linearisable around a sensible operating point (both sit at their floor until the
service saturates, then grow without bound), which is why the regulated output is utilisation and the
SLO enters through the setpoint. New replicas cold-start, so part of a change shows up one interval
late; the state therefore carries the previous change, ``x = [e, u_prev]`` (the standard augmentation
for a one-step input delay).

**Learning.** Nothing above is given to the learner: it records transitions ``(x, u, x')`` and fits
the λ-evaluated Q-function off-policy (:mod:`learners.lambda_pi`; Yang, Kiumarsi, Modares & Xu, IEEE
TNNLS 2023). Real transitions carry process noise (the load moves), and ordinary least squares on
the Bellman equation is then biased, because ``x'`` appears among the regressors and carries the
noise. :func:`lambda_pi_lstd` therefore solves it as LSTD-Q (Bradtke & Barto, Machine Learning 1996;
Lagoudakis & Parr, JMLR 2003): the regressors at ``(x, u)`` are the instruments, which the noise of
the step does not touch, and a constant feature absorbs the noise's own cost. It reduces to the same
fixed point as :func:`learners.lambda_pi.lambda_pi_model_free` on noise-free data.

**Acting.** While exploring, a cautious behaviour gain (half of HPA's proportional step) plus probing
noise; once enough transitions are in, ``u = -K x`` with the learned gain, rounded to the replica grid
and kept within bounds (and by the guard rails, which this learner uses like every learner).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from learners.base import register
from learners.lambda_pi import gain_from_kernel, kernel_from_theta, quadratic_features, value_from_kernel
from learners.objective import Objective
from learners.space import ConfigSpace
from learners.state_checks import MAX_WEIGHT, finite_array, grid_value, sequence
from learners.types import Action, Convergence, Observation, Verdict

Array = np.ndarray
MAX_TRANSITION = 1e12
"""Largest magnitude of a restored transition's entry (relative errors and changes; their squares stay far
from overflowing in the least-squares fit)."""


# ----------------------------------------------------------------------------------------- the algorithm


@dataclass
class LSTDResult:
    K: Array
    P: Array
    H: Array
    offset: float
    """Constant feature's weight. It absorbs the cost the process noise adds whatever the policy does;
    the problem is undiscounted, so it is a nuisance parameter, not a value to read."""
    iterations: int
    history: list[float]


def lambda_pi_lstd(X: Array, U: Array, Xn: Array, Q: Array, R: Array, lam: float, K0: Array | None = None,
                   iters: int = 300, tol: float = 1e-10) -> LSTDResult:
    """Off-policy model-free λ-PI whose evaluation step is instrumental-variable least squares.

    Per iteration, with target policy ``K`` and previous value ``x'P_k x + c_k``, solve for ``H, c``

        Φ(z)ᵀ [Φ(z) - λ Φ(z'_K), (1-λ)] [θ; c] = Φ(z)ᵀ (x'Qx + u'Ru + (1-λ)(x''P_k x' + c_k))

    with ``z = [x; u]`` (the behaviour's action), ``z'_K = [x'; -K x']`` and instruments
    ``Φ(z) = [φ(z), 1]``. Then ``P_{k+1} = [I; -K]'H[I; -K]`` and the greedy ``K = H_uu⁻¹ H_ux``.
    ``λ`` must be below 1: at λ = 1 the constant is not identifiable (the noise's cost never decays).
    """
    if not 0.0 <= lam < 1.0:
        raise ValueError(f"λ must lie in [0, 1) for the noisy (LSTD) form, got {lam}")
    X, U, Xn = (np.asarray(a, float) for a in (X, U, Xn))
    n, m = X.shape[1], U.shape[1]
    unknowns = (n + m) * (n + m + 1) // 2 + 1
    if X.shape[0] < unknowns:
        raise ValueError(f"need at least {unknowns} transitions for a {n}+{m} system, got {X.shape[0]}")
    Z = np.hstack([X, U])
    phi = quadratic_features(Z)
    instruments = np.hstack([phi, np.ones((len(Z), 1))])
    cost = np.einsum("ij,jk,ik->i", X, Q, X) + np.einsum("ij,jk,ik->i", U, R, U)
    K = np.zeros((m, n)) if K0 is None else np.asarray(K0, float)
    P, c = np.zeros((n, n)), 0.0
    history: list[float] = []
    H = np.zeros((n + m, n + m))
    it = 0
    for it in range(1, iters + 1):
        phi_next = quadratic_features(np.hstack([Xn, -Xn @ K.T]))
        regressors = np.hstack([phi - lam * phi_next, np.full((len(Z), 1), 1.0 - lam)])
        target = cost + (1.0 - lam) * (np.einsum("ij,jk,ik->i", Xn, P, Xn) + c)
        theta, *_ = np.linalg.lstsq(instruments.T @ regressors, instruments.T @ target, rcond=None)
        H = kernel_from_theta(theta[:-1], n + m)
        if H[n:, n:].min() <= 0 or np.min(np.linalg.eigvalsh(H[n:, n:])) <= 0:
            raise ValueError(f"iteration {it}: the fitted Q-function is not convex in the action "
                             "(too little or too poorly excited data, or λ too large for this gain)")
        P_new = value_from_kernel(H, K)
        change = float(np.linalg.norm(P_new - P) / max(np.linalg.norm(P_new), 1e-300))
        P, c, K = P_new, float(theta[-1]), gain_from_kernel(H, n)
        history.append(change)
        if change < tol:
            break
    return LSTDResult(K, P, H, c, it, history)


# ----------------------------------------------------------------------------------------- the learner


@dataclass(frozen=True)
class LambdaPISizingSettings:
    metric: str = "gpu_utilization"
    """Regulated output: a metric that scales like load / replicas (``gpu_utilization`` or
    ``concurrency_per_replica``)."""
    setpoint: float = 0.6
    """Operating point of ``metric`` (like HPA's target). Choose it where the SLO holds with margin."""
    knob: str = "replicas"
    lam: float = 0.5
    """λ of λ-PI (see learners/lambda_pi.py: between value iteration's slow rate and PI's need for a
    stabilising first gain)."""
    error_weight: float = 1.0
    """Stage cost on the squared relative error of the metric."""
    change_weight: float = 0.2
    """Stage cost on the squared relative replica change. Larger gives a calmer, slower controller."""
    behaviour_gain: float = 0.5
    """Exploration policy: ``u = behaviour_gain x e`` (0.5: half of HPA's proportional step)."""
    probing_std: float = 0.15
    """Std of the relative replica change added while exploring (0.15 of 8 replicas ≈ one replica).
    Any positive value excites the plant enough; the off-policy equations are unbiased by it."""
    explore_intervals: int = 24
    """Transitions collected before the first solve: 3 per unknown of a 2-state, 1-input Q-function
    with its constant (8 unknowns would be the minimum)."""
    resolve_every: int = 8
    """Re-solve on all transitions so far (off-policy: old data stay valid) every this many."""
    max_change: float = 1.0
    """Largest relative change per decision (1.0: at most double the replicas)."""
    converged_change: float = 0.05
    """Relative change of the gain between solves under which the learner reports converged."""
    seed: int = 0


class LambdaPISizing:
    """Replica autoscaler whose gain is learned model-free by off-policy λ-policy iteration."""

    name = "lambda-pi"
    uses_guard_rails = True

    def __init__(self, space: ConfigSpace, objective: Objective, settings: LambdaPISizingSettings) -> None:
        if settings.knob not in space:
            raise ValueError(f"lambda-pi sizes knob {settings.knob!r}, which this workload does not have "
                             f"(knobs: {list(space.names)})")
        if settings.setpoint <= 0:
            raise ValueError(f"lambda-pi setpoint must be positive, got {settings.setpoint}")
        if not 0.0 <= settings.lam < 1.0:
            raise ValueError(f"lambda-pi lam must lie in [0, 1), got {settings.lam}")
        if settings.explore_intervals < 8:
            raise ValueError("lambda-pi explore_intervals must be at least 8 (the unknowns of its Q-function)")
        self.space, self.objective, self.s = space, objective, settings
        self.rng = np.random.default_rng(settings.seed)
        self.Q = np.diag([settings.error_weight, 0.0])
        self.R = np.array([[settings.change_weight]])
        self.K: Array | None = None
        self.P: Array | None = None
        self.data: list[tuple[list[float], float, list[float]]] = []
        self._x: list[float] | None = None          # state at the last decision
        self._knob_at_decision: float | None = None
        self._residual = math.nan
        self._since_solve = 0
        self._solve_error = ""

    # --- state and input in the linearised coordinates ------------------------------------------
    def _error(self, obs: Observation) -> float | None:
        v = obs.metric(self.s.metric)
        return v / self.s.setpoint - 1.0 if math.isfinite(v) else None

    def _state(self, obs: Observation) -> list[float] | None:
        e = self._error(obs)
        if e is None:
            return None
        r = float(self.space.clip(obs.config)[self.s.knob])
        prev = self._knob_at_decision
        u_prev = (r - prev) / prev if prev else 0.0
        return [e, u_prev]

    @property
    def exploring(self) -> bool:
        return self.K is None

    # --- the Learner interface ------------------------------------------------------------------
    def decide(self, obs: Observation) -> Action:
        current = self.space.clip(obs.config)
        x = self._state(obs)
        r = float(current[self.s.knob])
        self._knob_at_decision = r
        self._x = x
        if x is None:
            return Action(current, f"keep: {self.s.metric} missing")
        if self.K is None:
            u = self.s.behaviour_gain * x[0] + float(self.rng.normal(0.0, self.s.probing_std))
            why = f"exploring ({len(self.data)}/{self.s.explore_intervals} transitions)"
        else:
            u = float(-(self.K @ np.asarray(x))[0])
            why = f"gain K=[{self.K[0, 0]:.2f}, {self.K[0, 1]:.2f}]"
        u = float(np.clip(u, -self.s.max_change, self.s.max_change))
        target = dict(current)
        target[self.s.knob] = self.space[self.s.knob].clip(r + u * max(r, 1.0))
        return Action(target, f"{self.s.knob} {r:g} -> {target[self.s.knob]:g} ({why}; "
                              f"{self.s.metric} {obs.metric(self.s.metric):.2f} vs {self.s.setpoint:g})")

    def learn(self, prev: Observation, action: Action, reward: float, obs: Observation) -> None:
        if self._x is None:
            return
        r0 = float(self.space.clip(prev.config)[self.s.knob])
        r1 = float(self.space.clip(action.target)[self.s.knob])
        u = (r1 - r0) / max(r0, 1.0)
        e = self._error(obs)
        if e is None:
            return
        self.data.append((list(self._x), u, [e, u]))
        self._since_solve += 1
        due = len(self.data) >= self.s.explore_intervals and (
            self.K is None or self._since_solve >= self.s.resolve_every)
        if due:
            self._solve()

    def _solve(self) -> None:
        self._since_solve = 0
        X = np.array([d[0] for d in self.data])
        U = np.array([[d[1]] for d in self.data])
        Xn = np.array([d[2] for d in self.data])
        try:
            res = lambda_pi_lstd(X, U, Xn, self.Q, self.R, self.s.lam)
        except (ValueError, np.linalg.LinAlgError) as exc:
            self._solve_error = str(exc)
            return
        if not res.K[0, 0] < 0:  # more load must never mean fewer replicas
            self._solve_error = f"learned gain {res.K.tolist()} scales the wrong way; kept exploring"
            return
        if not (np.all(np.isfinite(res.P)) and float(np.max(np.abs(res.K))) <= MAX_WEIGHT):
            # what load_state_dict would refuse from a checkpoint (u = -K x overflows), this learner never keeps
            self._solve_error = f"learned gain {res.K.tolist()} is out of range; kept exploring"
            return
        if self.K is not None:
            self._residual = float(np.linalg.norm(res.K - self.K) / max(np.linalg.norm(res.K), 1e-12))
        self._solve_error = ""
        self.K, self.P = res.K, res.P

    def convergence(self) -> Convergence:
        samples = len(self.data)
        if self.K is None:
            return Convergence(Verdict.EXPLORING, samples=samples)
        if math.isfinite(self._residual) and self._residual < self.s.converged_change:
            return Convergence(Verdict.CONVERGED, residual=self._residual, samples=samples)
        return Convergence(Verdict.CONVERGING, residual=self._residual, samples=samples)

    def state_dict(self) -> dict[str, Any]:
        return {"learner": self.name, "settings": asdict(self.s), "knob": self.s.knob,
                "K": None if self.K is None else self.K.tolist(),
                "P": None if self.P is None else self.P.tolist(),
                "last_decision": self._knob_at_decision,  # the previous change is part of the state
                "data": [[d[0], [d[1]], d[2]] for d in self.data]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Gain, value matrix, transitions and the last decision's knob value. A checkpoint is tenant input:
        all of it is checked before any of it is set, and what would fail a later step (a gain of another
        shape, a NaN, a knob value off the grid) or act the wrong way (a gain that removes replicas as the
        load grows, which a solve never keeps) is refused."""
        if state.get("knob", self.s.knob) != self.s.knob:
            raise ValueError(f"checkpoint sizes knob {str(state.get('knob'))[:40]!r}, "
                             f"this learner sizes {self.s.knob!r}")
        K = None if state.get("K") is None else finite_array(state["K"], "lambda-pi gain K", (1, 2))
        if K is not None and not K[0, 0] < 0:
            raise ValueError(f"lambda-pi gain K in the checkpoint scales the wrong way: {K.tolist()}")
        # P is kept for the record only (no step reads it): finite is enough
        P = None if state.get("P") is None else finite_array(state["P"], "lambda-pi value matrix P", (2, 2), math.inf)
        data = []
        for n, row in enumerate(sequence(state.get("data", []), "lambda-pi transitions")):
            x, u, xn = sequence(row, f"lambda-pi transition {n}", 3)
            data.append((finite_array(x, f"lambda-pi transition {n} state", (2,), MAX_TRANSITION).tolist(),
                         float(finite_array(u, f"lambda-pi transition {n} change", (1,), MAX_TRANSITION)[0]),
                         finite_array(xn, f"lambda-pi transition {n} next state", (2,), MAX_TRANSITION).tolist()))
        last = state.get("last_decision")
        last = None if last is None else grid_value(last, self.space[self.s.knob], "lambda-pi last decision")
        self.K, self.P, self.data, self._knob_at_decision = K, P, data, last


@register("lambda-pi", LambdaPISizingSettings,
          "LQR on relative utilisation error; gain learned model-free by off-policy λ-policy iteration",
          kinds=("inference",))
def _make(space: ConfigSpace, objective: Objective, settings: LambdaPISizingSettings) -> LambdaPISizing:
    return LambdaPISizing(space, objective, settings)
