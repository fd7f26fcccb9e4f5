"""Distributional Q-learning by quantile regression: learn the quantiles of the return, not only its mean.

Latency SLOs are percentiles, so an agent that only knows the mean return cannot tell a safe
configuration from one that is good on average and bad in the tail. Quantile-regression TD
(Dabney, Rowland, Bellemare & Munos, "Distributional reinforcement learning with quantile
regression", AAAI 2018) keeps, for every (s, a), N values ``θ_i`` that estimate the return's
quantiles at the midpoints ``τ̂_i = (2i - 1) / 2N``. The tabular update for a target distribution
``Z`` (here: the reward plus γ times the next state's quantiles under the greedy action) is the
stochastic (sub)gradient step of the quantile (pinball) loss:

    θ_i += c α (τ̂_i - P(Z < θ_i))

with Robbins-Monro ``α = n(s, a)^-ω`` as in :mod:`learners.async_rl`, and ``c`` a value scale
(the pinball gradient is a probability, not a value). The quantile-projected distributional Bellman
operator is a γ-contraction in the ∞-Wasserstein metric (Dabney et al. 2018, Prop. 2), so the
residual below (∞-norm between θ and the projection of its own exact target) certifies the distance
to the projected fixed point as ``residual / (1 - γ)``.

The table is ``(S, A, N)`` and goes through the *same* versioned store and staleness bound as the
expected-value learner (:class:`learners.async_rl.InMemoryValueStore` with ``rule=apply_quantile_td``),
so parallel agents cooperate through the return distribution exactly as they do through its mean.

Rewards here depend on the transition, ``R[s, a, s']``: with rewards a function of (s, a) only the
return's spread would come from the transitions alone and a one-step episode would have none.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from learners.async_rl import Array, AsyncTask, FiniteMDP, step_size


@dataclass(frozen=True)
class TransitionRewardMDP:
    """``P[s, a, s']`` and rewards ``R[s, a, s']`` received on that transition; ``gamma``."""

    P: Array
    R: Array
    gamma: float

    def __post_init__(self) -> None:
        if self.R.shape != self.P.shape:
            raise ValueError(f"R must have the shape of P {self.P.shape}, got {self.R.shape}")
        FiniteMDP(self.P, self.expected_rewards(), self.gamma)  # validates P and gamma

    @property
    def shape(self) -> tuple[int, int]:
        return self.P.shape[:2]  # type: ignore[return-value]

    def expected_rewards(self) -> Array:
        return (self.P * self.R).sum(axis=2)

    def expected(self) -> FiniteMDP:
        """The same MDP for expected-value learning (``R[s, a] = E[R(s, a, s')]``)."""
        return FiniteMDP(self.P, self.expected_rewards(), self.gamma)


def quantile_midpoints(n: int) -> Array:
    """``τ̂_i = (2i - 1) / 2N``, i = 1..N: the levels whose quantiles minimise the W1 projection error."""
    if n < 1:
        raise ValueError(f"need at least one quantile, got {n}")
    return (2.0 * np.arange(1, n + 1) - 1.0) / (2.0 * n)


def greedy_by_mean(theta: Array) -> Array:
    """Greedy actions by the mean of the quantiles (the expected return)."""
    return np.argmax(theta.mean(axis=2), axis=1)


def cvar(theta: Array, alpha: float) -> Array:
    """Conditional value at risk of each (s, a): the mean of the lowest ``alpha`` share of quantiles.

    A risk-averse agent acts greedily on this instead of on the mean; it is how a tail objective
    (a p99 latency SLO) enters the decision.
    """
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must lie in (0, 1], got {alpha}")
    n = theta.shape[-1]
    k = max(1, int(np.ceil(alpha * n - 1e-9)))
    return np.sort(theta, axis=-1)[..., :k].mean(axis=-1)


@dataclass(frozen=True)
class QuantileBatch:
    """Per listed (s, a): the target distribution as atoms ``values[e, m]`` with weights ``weights[e, m]``
    (each row sums to 1), computed from one table version."""

    states: Array
    actions: Array
    values: Array
    weights: Array
    step_scale: float = 1.0
    """``c`` in θ += c α (τ̂ - F): value units per unit of probability, about the spread of returns."""


def _targets(mdp: TransitionRewardMDP, theta: Array, next_weights: Array) -> tuple[Array, Array]:
    """Atoms ``R[s,a,s'] + γ θ[s', a*(s'), j]`` for every (s,a) and weights ``next_weights[s,a,s'] / N``."""
    S, A, N = theta.shape
    nxt = theta[np.arange(S), greedy_by_mean(theta)]  # (S', N)
    values = mdp.R[:, :, :, None] + mdp.gamma * nxt[None, None, :, :]  # (S, A, S', N)
    weights = np.repeat(next_weights[:, :, :, None] / N, N, axis=3)
    return values.reshape(S * A, S * N), weights.reshape(S * A, S * N)


def sample_quantile_sweep(mdp: TransitionRewardMDP, theta: Array, rng: np.random.Generator,
                          transitions_per_pair: int, step_scale: float = 1.0) -> QuantileBatch:
    """For every (s, a), the target distribution of ``k`` sampled transitions (multinomial counts, as
    :func:`learners.async_rl.sample_sweep`): an unbiased estimate of the exact target's CDF."""
    S, A, _ = theta.shape
    k = transitions_per_pair
    counts = rng.multinomial(k, mdp.P.reshape(S * A, S)).reshape(S, A, S) / k
    values, weights = _targets(mdp, theta, counts)
    s, a = np.divmod(np.arange(S * A), A)
    return QuantileBatch(s, a, values, weights, step_scale)


def apply_quantile_td(theta: Array, counts: Array, batch: QuantileBatch, exponent: float) -> None:
    """In place, for each listed (s, a): ``n += 1; θ_i += c n^-ω (τ̂_i - P(Z < θ_i))``.

    Ties count half (``P(Z < θ) + P(Z = θ) / 2``): the pinball loss' subgradient midpoint, so a
    quantile that sits exactly on an atom of its target does not drift off it.
    """
    N = theta.shape[2]
    tau = quantile_midpoints(N)
    flat = batch.states * theta.shape[1] + batch.actions
    if np.unique(flat).size != flat.size:
        raise ValueError("a quantile batch lists each (s, a) at most once")
    counts[batch.states, batch.actions] += 1
    th = theta[batch.states, batch.actions][:, :, None]  # (E, N, 1)
    vals, w = batch.values[:, None, :], batch.weights[:, None, :]  # (E, 1, M)
    below = (w * ((vals < th) + 0.5 * (vals == th))).sum(axis=2)  # (E, N)
    alpha = step_size(counts[batch.states, batch.actions], exponent)[:, None]
    theta[batch.states, batch.actions] += batch.step_scale * alpha * (tau[None, :] - below)


def projected_quantiles(values: Array, weights: Array, levels: Array) -> Array:
    """The ``levels``-quantiles (smallest x with F(x) ≥ level) of the atoms ``values`` with ``weights``."""
    order = np.argsort(values, kind="stable")
    cdf = np.cumsum(weights[order])
    idx = np.searchsorted(cdf, levels - 1e-12, side="left")
    return values[order][np.minimum(idx, len(values) - 1)]


def quantile_bellman_residual(mdp: TransitionRewardMDP, theta: Array) -> float:
    """``max |Π T θ - θ|`` with the exact transition probabilities: 0 at the projected fixed point."""
    S, A, N = theta.shape
    values, weights = _targets(mdp, theta, mdp.P)
    tau = quantile_midpoints(N)
    target = np.stack([projected_quantiles(values[e], weights[e], tau) for e in range(S * A)])
    return float(np.max(np.abs(target - theta.reshape(S * A, N))))


def return_distribution(mdp: TransitionRewardMDP, policy: Sequence[int], state: int,
                        terminal: Sequence[int], max_steps: int = 50) -> tuple[Array, Array]:
    """Exact return distribution (atoms, probabilities) from ``state`` under ``policy`` on an episodic MDP
    whose ``terminal`` states are absorbing with zero reward, by enumerating paths (ground truth for tests)."""
    done = set(terminal)

    @functools.cache
    def dist(s: int, depth: int) -> tuple[tuple[float, float], ...]:
        if s in done:
            return ((0.0, 1.0),)
        if depth >= max_steps:
            raise ValueError(f"no terminal state within {max_steps} steps of state {state}")
        a = int(policy[s])
        out: dict[float, float] = {}
        for s2 in np.flatnonzero(mdp.P[s, a] > 0):
            p, r = float(mdp.P[s, a, s2]), float(mdp.R[s, a, s2])
            for g, q in dist(int(s2), depth + 1):
                key = round(r + mdp.gamma * g, 12)
                out[key] = out.get(key, 0.0) + p * q
        return tuple(sorted(out.items()))

    atoms = dist(state, 0)
    return np.array([v for v, _ in atoms]), np.array([p for _, p in atoms])


def exact_quantiles(mdp: TransitionRewardMDP, policy: Sequence[int], state: int, terminal: Sequence[int],
                    quantiles: int) -> Array:
    """The true return distribution's quantiles at the midpoints τ̂ (what a converged learner should hold)."""
    atoms, probs = return_distribution(mdp, policy, state, terminal)
    return projected_quantiles(atoms, probs, quantile_midpoints(quantiles))


EXAMPLE_TERMINAL = (3, 4)


def episodic_example(gamma: float = 0.9) -> TransitionRewardMDP:
    """A known-answer MDP: start 0 -> {1, 2} -> terminal {3, 4} (absorbing, zero reward), 2 actions.

    Its last-stage probabilities are multiples of 1/10, so 10 quantiles represent states 1 and 2
    exactly and the projected fixed point at state 0 is the true return's quantiles; every CDF level
    at state 0 is a sum of 0.04s and 0.06s, never a midpoint τ̂ = 0.05, 0.15, ... (so each quantile
    is unique). The best action by mean is 0 everywhere; its returns range from -0.9 to 2.8.
    """
    S, A = 5, 2
    P, R = np.zeros((S, A, S)), np.zeros((S, A, S))
    P[0, 0, [1, 2]], R[0, 0, [1, 2]] = (0.4, 0.6), (1.0, 0.0)
    P[0, 1, [1, 2]], R[0, 1, [1, 2]] = (0.1, 0.9), (0.5, 0.2)
    P[1, 0, [3, 4]], R[1, 0, [3, 4]] = (0.3, 0.7), (2.0, 0.0)
    P[1, 1, 3], R[1, 1, 3] = 1.0, 0.4
    P[2, 0, [3, 4]], R[2, 0, [3, 4]] = (0.6, 0.4), (1.0, -1.0)
    P[2, 1, 4] = 1.0
    for t in EXAMPLE_TERMINAL:
        P[t, :, t] = 1.0
    return TransitionRewardMDP(P, R, gamma)


def _quantile_sweep(theta: Array, rng: np.random.Generator, mdp: TransitionRewardMDP, transitions_per_pair: int,
                    step_scale: float) -> QuantileBatch:
    return sample_quantile_sweep(mdp, theta, rng, transitions_per_pair, step_scale)


def _residual(theta: Array, mdp: TransitionRewardMDP) -> float:
    return quantile_bellman_residual(mdp, theta)


def quantile_task(mdp: TransitionRewardMDP, quantiles: int, transitions_per_pair: int = 256,
                  step_scale: float = 1.0) -> AsyncTask:
    """Distributional Q-learning as an :class:`AsyncTask`: any execution backend runs it unchanged."""
    quantile_midpoints(quantiles)  # validates
    S, A = mdp.shape
    return AsyncTask((S, A, quantiles),
                     functools.partial(_quantile_sweep, mdp=mdp, transitions_per_pair=transitions_per_pair,
                                       step_scale=step_scale),
                     apply_quantile_td, functools.partial(_residual, mdp=mdp), greedy_by_mean,
                     transitions_per_pair * S * A)
