"""λ-policy iteration for discrete-time linear-quadratic regulation, model-based and model-free.

Problem: ``x' = A x + B u``, stage cost ``x'Qx + u'Ru``, linear policies ``u = -K x``. The optimal
value is ``x'P*x`` with ``P*`` the stabilising solution of the discrete algebraic Riccati equation.

λ-policy iteration (Bertsekas & Ioffe, "Temporal differences-based policy iteration and applications
in neuro-dynamic programming", LIDS-P-2349, 1996; Bertsekas, "Abstract Dynamic Programming", ch. 2)
replaces the policy-evaluation step of policy iteration by the λ-weighted multistep operator

    P_{k+1} = T_K^{(λ)} P_k = (1-λ) Σ_{l≥0} λ^l T_K^{l+1} P_k,     T_K P = Q + K'RK + A_K' P A_K,

with ``A_K = A - B K`` and ``K`` greedy with respect to ``P_k``. Because ``T_K`` is affine,
``T_K^{(λ)} P_k`` is the unique fixed point of ``P = Q + K'RK + A_K'((1-λ) P_k + λ P) A_K``, a Stein
(discrete Lyapunov) equation in ``√λ A_K``. λ = 0 is value iteration, λ = 1 policy iteration.
Yang, Kiumarsi, Modares & Xu ("Model-free λ-policy iteration for discrete-time linear quadratic
regulation", IEEE TNNLS 34(2):635-649, 2023, doi:10.1109/TNNLS.2021.3098985) call the bracketed map
the weighted Bellman operator, prove convergence of the composite (greedy + λ-evaluation) fixed
point iteration, and give the off-policy Q-function form implemented in
:func:`lambda_pi_model_free`.

When it needs no stabilising initial gain (the point of λ-PI, checked by the tests): the series
above converges iff ``λ ρ(A_K)² < 1``. So plain PI (λ = 1) needs ``ρ(A - B K0) < 1``, while for
λ < 1 any ``K0`` with ``λ < 1 / ρ(A - B K0)²`` is admissible, and λ = 0 (value iteration) accepts
every ``K0``. The same bound must hold for every later greedy gain; :func:`lambda_pi_model_based`
checks it and raises with the largest admissible λ when it fails. (We could not read the paper's
full text; this is the condition that follows from the operator's definition and Bertsekas' λ-PI
analysis, and is what the code enforces.)

Model-free, off-policy: the Q-function of the λ-evaluated policy is ``z'Hz`` with ``z = [x; u]`` and
``z'Hz = x'Qx + u'Ru + x'_+' ((1-λ) P_k + λ P_{k+1}) x'_+``, ``P_{k+1} = [I; -K]' H [I; -K]``. For
every recorded transition ``(x, u, x_+)`` of *any* behaviour policy this is linear in ``H``:

    φ(z)·θ - λ φ([x_+; -K x_+])·θ = x'Qx + u'Ru + (1-λ) x_+' P_k x_+,

so ``H`` comes from least squares over a batch, without ``A`` or ``B``. Because the behaviour
action ``u`` (probing noise included) enters ``z`` and the target policy only enters the second
term, probing noise biases nothing (Kiumarsi et al., Automatica 2017; Yang et al. 2023, Sec. IV).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

Array = np.ndarray


@dataclass(frozen=True)
class LambdaPISettings:
    lam: float = 0.5
    """λ ∈ [0, 1]. 0.5 sits between VI's slow linear rate and PI's need for a stabilising K0
    (Yang et al. 2023 report faster convergence than VI for intermediate λ)."""

    max_iters: int = 500
    """Outer iterations. VI on the tests' systems needs ~100 to reach 1e-10; λ-PI fewer."""

    tol: float = 1e-11
    """Stop when the relative change of P (Frobenius) falls below this."""

    probing_std: float = 1.0
    """Std of the behaviour policy's exploration noise (model-free). Any positive value gives
    persistent excitation; the off-policy equations are unbiased whatever its size."""

    samples_per_unknown: float = 3.0
    """Least squares needs at least as many transitions as unknowns in H ((n+m)(n+m+1)/2); three
    times as many keeps the regression well conditioned under probing noise."""


@dataclass
class LambdaPIResult:
    P: Array
    K: Array
    H: Array | None = None
    history: list[float] = field(default_factory=list)
    """Relative change of P per iteration (the residual a convergence monitor consumes)."""
    iterations: int = 0


def spectral_radius(M: Array) -> float:
    return float(np.max(np.abs(np.linalg.eigvals(M)))) if M.size else 0.0


def max_admissible_lambda(A: Array, B: Array, K: Array) -> float:
    """Largest λ for which λ-evaluation of ``K`` converges: ``1 / ρ(A - B K)²`` capped at 1."""
    rho = spectral_radius(A - B @ K)
    return 1.0 if rho < 1.0 else 1.0 / rho**2


def greedy_gain(A: Array, B: Array, R: Array, P: Array) -> Array:
    """Policy improvement: ``argmin_u u'Ru + (Ax+Bu)'P(Ax+Bu)`` is ``-K x``."""
    return np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)


def q_kernel(A: Array, B: Array, Q: Array, R: Array, P: Array) -> Array:
    """Q-function kernel ``H`` with ``Q(x, u) = [x;u]' H [x;u] = x'Qx + u'Ru + x_+' P x_+``."""
    return np.block([[Q + A.T @ P @ A, A.T @ P @ B], [B.T @ P @ A, R + B.T @ P @ B]])


def gain_from_kernel(H: Array, n: int) -> Array:
    """Greedy gain from a Q-kernel: ``K = H_uu^{-1} H_ux`` (needs no model)."""
    return np.linalg.solve(H[n:, n:], H[n:, :n])


def value_from_kernel(H: Array, K: Array) -> Array:
    """``P = [I; -K]' H [I; -K]``: the value of following ``K`` after the first step."""
    n = K.shape[1]
    M = np.vstack([np.eye(n), -K])
    return _sym(M.T @ H @ M)


def lambda_evaluate(A: Array, B: Array, Q: Array, R: Array, K: Array, P_prev: Array, lam: float) -> Array:
    """``T_K^{(λ)} P_prev``: solve ``P = Q + K'RK + A_K'((1-λ)P_prev + λP)A_K``."""
    AK = A - B @ K
    c = Q + K.T @ R @ K + (1.0 - lam) * AK.T @ P_prev @ AK
    if lam == 0.0:
        return _sym(c)
    if lam * spectral_radius(AK) ** 2 >= 1.0:
        raise ValueError(
            f"λ-evaluation diverges: λ·ρ(A-BK)² = {lam * spectral_radius(AK) ** 2:.3g} ≥ 1; "
            f"choose λ < {max_admissible_lambda(A, B, K):.3g} (λ-PI's condition for a non-stabilising K)"
        )
    from scipy.linalg import solve_discrete_lyapunov  # on use: registering learners must stay cheap

    # solve_discrete_lyapunov(a, q) solves X = a X a' + q; we need P = (√λ A_K)' P (√λ A_K) + c.
    return _sym(solve_discrete_lyapunov(np.sqrt(lam) * AK.T, c))


def lambda_pi_model_based(
    A: Array, B: Array, Q: Array, R: Array, K0: Array, lam: float, iters: int = 500, tol: float = 1e-11
) -> LambdaPIResult:
    """λ-PI with a known model, from ``P_0 = 0`` and first policy ``K0`` (need not stabilise).

    Returns the final ``P``, its greedy ``K`` and the relative change of ``P`` per iteration.
    """
    _check_lambda(lam)
    n = A.shape[0]
    P = np.zeros((n, n))
    K = np.asarray(K0, dtype=float)
    result = LambdaPIResult(P, K)
    for it in range(1, iters + 1):
        P_new = lambda_evaluate(A, B, Q, R, K, P, lam)
        change = _relative_change(P_new, P)
        P, K = P_new, greedy_gain(A, B, R, P_new)
        result.history.append(change)
        result.iterations = it
        if change < tol:
            break
    result.P, result.K = P, K
    return result


def quadratic_features(Z: Array) -> Array:
    """Rows ``φ(z)`` with ``φ(z)·θ = z'Hz`` for θ the upper triangle of symmetric ``H``."""
    d = Z.shape[1]
    iu, ju = np.triu_indices(d)
    scale = np.where(iu == ju, 1.0, 2.0)
    return Z[:, iu] * Z[:, ju] * scale


def kernel_from_theta(theta: Array, d: int) -> Array:
    H = np.zeros((d, d))
    H[np.triu_indices(d)] = theta
    return _sym(H + np.triu(H, 1).T)


def lambda_q_step(
    X: Array, U: Array, Xn: Array, Q: Array, R: Array, P_prev: Array, K: Array, lam: float
) -> Array:
    """One off-policy λ-evaluation from data: least-squares ``H`` for target policy ``K``.

    ``X, U, Xn``: transitions (rows) from any behaviour policy. ``P_prev``: previous value matrix.
    """
    Z = np.hstack([X, U])
    Zn = np.hstack([Xn, -Xn @ K.T])
    features = quadratic_features(Z) - lam * quadratic_features(Zn)
    cost = np.einsum("ij,jk,ik->i", X, Q, X) + np.einsum("ij,jk,ik->i", U, R, U)
    target = cost + (1.0 - lam) * np.einsum("ij,jk,ik->i", Xn, P_prev, Xn)
    theta, *_ = np.linalg.lstsq(features, target, rcond=None)
    return kernel_from_theta(theta, Z.shape[1])


def lambda_pi_model_free(
    X: Array, U: Array, Xn: Array, Q: Array, R: Array, K0: Array, lam: float,
    iters: int = 500, tol: float = 1e-11,
) -> LambdaPIResult:
    """Off-policy model-free λ-PI on a fixed batch of transitions (reused every iteration).

    Raises when the evaluated value stops being positive semidefinite, the data-side symptom of
    ``λ ρ(A-BK)² ≥ 1`` (the Stein equation then has an indefinite solution).
    """
    _check_lambda(lam)
    n, m = X.shape[1], U.shape[1]
    unknowns = (n + m) * (n + m + 1) // 2
    if X.shape[0] < unknowns:
        raise ValueError(f"need at least {unknowns} transitions for a {n}+{m} system, got {X.shape[0]}")
    P = np.zeros((n, n))
    K = np.asarray(K0, dtype=float)
    result = LambdaPIResult(P, K)
    for it in range(1, iters + 1):
        H = lambda_q_step(X, U, Xn, Q, R, P, K, lam)
        P_new = value_from_kernel(H, K)
        if np.min(np.linalg.eigvalsh(P_new)) < -1e-8 * max(1.0, np.linalg.norm(P_new)):
            raise ValueError(f"iteration {it}: evaluated value is indefinite; λ={lam} too large for this K")
        change = _relative_change(P_new, P)
        P, K = P_new, gain_from_kernel(H, n)
        result.H = H
        result.history.append(change)
        result.iterations = it
        if change < tol:
            break
    result.P, result.K = P, K
    return result


Step = Callable[[Array, Array], Array]
"""The plant seen as a black box: ``step(x, u) -> x_next``."""


def collect_transitions(
    step: Step, n: int, m: int, rng: np.random.Generator, episodes: int = 20, horizon: int = 10,
    behaviour_gain: Array | None = None, probing_std: float = 1.0, x0_std: float = 1.0,
) -> tuple[Array, Array, Array]:
    """Short episodes under ``u = -K_b x + noise`` from random starts.

    Short episodes keep an unstable plant's states bounded without any stabilising policy.
    """
    Kb = np.zeros((m, n)) if behaviour_gain is None else behaviour_gain
    xs, us, xns = [], [], []
    for _ in range(episodes):
        x = rng.normal(0.0, x0_std, n)
        for _ in range(horizon):
            u = -Kb @ x + rng.normal(0.0, probing_std, m)
            xn = np.asarray(step(x, u), dtype=float)
            xs.append(x)
            us.append(u)
            xns.append(xn)
            x = xn
    return np.array(xs), np.array(us), np.array(xns)


class LQRLearner:
    """Online wrapper: act with probing noise, record transitions, re-solve λ-PI on the batch.

    ``decide(x)`` returns ``-K x`` plus probing noise while exploring; ``learn(x, u, x_next)``
    records a transition and, once the batch holds ``samples_per_unknown`` × unknowns of them,
    runs model-free λ-PI on everything seen so far (off-policy: old data stay valid when K
    changes). ``residual`` is the last relative change of P, for a convergence monitor.
    """

    def __init__(self, Q: Array, R: Array, K0: Array, settings: LambdaPISettings | None = None,
                 rng: np.random.Generator | None = None) -> None:
        self.Q, self.R = np.asarray(Q, float), np.asarray(R, float)
        self.settings = settings or LambdaPISettings()
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.K0 = np.asarray(K0, float)
        self.K = self.K0.copy()
        self.P: Array | None = None
        self.residual = float("nan")
        n, m = self.Q.shape[0], self.R.shape[0]
        self._needed = int(np.ceil(self.settings.samples_per_unknown * (n + m) * (n + m + 1) / 2))
        self._data: list[tuple[Array, Array, Array]] = []
        self._since_solve = 0

    def decide(self, x: Array, explore: bool = True) -> Array:
        u = -self.K @ np.asarray(x, float)
        if explore:
            u = u + self.rng.normal(0.0, self.settings.probing_std, u.shape)
        return u

    def learn(self, x: Array, u: Array, x_next: Array) -> bool:
        """Record a transition; returns True when it triggered a new solve."""
        self._data.append((np.asarray(x, float), np.asarray(u, float), np.asarray(x_next, float)))
        self._since_solve += 1
        if len(self._data) < self._needed or self._since_solve < self._needed:
            return False
        self._since_solve = 0
        X, U, Xn = (np.array(col) for col in zip(*self._data, strict=True))
        s = self.settings
        result = lambda_pi_model_free(X, U, Xn, self.Q, self.R, self.K0, s.lam, s.max_iters, s.tol)
        if self.P is not None:
            self.residual = _relative_change(result.P, self.P)
        self.P, self.K = result.P, result.K
        return True

    def state_dict(self) -> dict[str, object]:
        return {"K": self.K.tolist(), "P": None if self.P is None else self.P.tolist()}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.K = np.asarray(state["K"], float)
        self.P = None if state.get("P") is None else np.asarray(state["P"], float)


def _check_lambda(lam: float) -> None:
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"λ must lie in [0, 1], got {lam}")


def _sym(M: Array) -> Array:
    return 0.5 * (M + M.T)


def _relative_change(new: Array, old: Array) -> float:
    return float(np.linalg.norm(new - old) / max(np.linalg.norm(new), 1e-300))
