"""λ-policy iteration reaches the Riccati solution from a NON-stabilising initial gain.

Known answers come from scipy.linalg.solve_discrete_are. Every case asserts ρ(A - B K0) > 1 first,
so the tests exercise exactly what distinguishes λ-PI from plain policy iteration.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import solve_discrete_are

from learners.lambda_pi import (
    LambdaPISettings,
    LQRLearner,
    collect_transitions,
    lambda_pi_model_based,
    lambda_pi_model_free,
    max_admissible_lambda,
    spectral_radius,
)

# name, A, B, Q, R, K0 (non-stabilising), λ used (below 1/ρ(A-BK0)²)
SYSTEMS = [
    pytest.param(  # open-loop unstable (ρ(A) = 1.2), K0 = 0 leaves it unstable
        np.array([[1.2, 1.0], [0.0, 1.1]]), np.array([[0.0], [1.0]]), np.eye(2), np.eye(1),
        np.zeros((1, 2)), 0.5, id="unstable-2x1",
    ),
    pytest.param(  # slowly unstable, weak actuation: value iteration needs >100 iterations here
        np.array([[1.05, 0.1], [0.0, 1.02]]), np.array([[0.005], [0.1]]), np.eye(2), np.eye(1),
        np.zeros((1, 2)), 0.85, id="slow-unstable-2x1",
    ),
    pytest.param(  # open-loop stable, but K0 is positive feedback: ρ(A - B K0) ≈ 1.87
        np.array([[0.9, 0.2, 0.0], [0.0, 0.8, 0.3], [0.1, 0.0, 0.7]]),
        np.array([[1.0, 0.0], [0.0, 0.5], [0.3, 1.0]]), np.diag([1.0, 2.0, 0.5]), np.diag([0.5, 1.0]),
        np.array([[-0.8, 0.0, 0.0], [0.0, 0.0, -0.9]]), 0.25, id="stable-3x2-bad-K0",
    ),
]


def _rel(P: np.ndarray, P_star: np.ndarray) -> float:
    return float(np.linalg.norm(P - P_star) / np.linalg.norm(P_star))


def _optimal_gain(A, B, R, P):
    return np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)


@pytest.mark.parametrize(("A", "B", "Q", "R", "K0", "lam"), SYSTEMS)
def test_model_based_matches_riccati_from_unstable_gain(A, B, Q, R, K0, lam):
    assert spectral_radius(A - B @ K0) > 1.0
    P_star = solve_discrete_are(A, B, Q, R)
    result = lambda_pi_model_based(A, B, Q, R, K0, lam)
    assert _rel(result.P, P_star) < 1e-6
    assert np.allclose(result.K, _optimal_gain(A, B, R, P_star), rtol=1e-6, atol=1e-9)
    assert spectral_radius(A - B @ result.K) < 1.0


@pytest.mark.parametrize(("A", "B", "Q", "R", "K0", "lam"), SYSTEMS)
def test_model_free_off_policy_matches_riccati_with_probing_noise(A, B, Q, R, K0, lam):
    assert spectral_radius(A - B @ K0) > 1.0
    rng = np.random.default_rng(7)
    n, m = B.shape
    # behaviour policy: K0 itself (unstable) plus probing noise, in short episodes from random starts
    X, U, Xn = collect_transitions(lambda x, u: A @ x + B @ u, n, m, rng, episodes=20, horizon=6,
                                   behaviour_gain=K0, probing_std=1.0)
    result = lambda_pi_model_free(X, U, Xn, Q, R, K0, lam)
    P_star = solve_discrete_are(A, B, Q, R)
    assert _rel(result.P, P_star) < 1e-2
    assert np.allclose(result.K, _optimal_gain(A, B, R, P_star), rtol=1e-2, atol=1e-4)


def test_plain_policy_iteration_needs_a_stabilising_gain_but_small_lambda_does_not():
    A, B, Q, R, K0, _ = SYSTEMS[0].values
    assert spectral_radius(A - B @ K0) > 1.0
    lam_max = max_admissible_lambda(A, B, K0)
    assert lam_max == pytest.approx(1 / 1.2**2)
    with pytest.raises(ValueError, match="choose λ <"):
        lambda_pi_model_based(A, B, Q, R, K0, lam=1.0)  # policy iteration
    lambda_pi_model_based(A, B, Q, R, K0, lam=0.99 * lam_max)  # fine just below the bound


def test_model_free_flags_lambda_beyond_the_bound():
    A, B, Q, R, K0, _ = SYSTEMS[2].values
    rng = np.random.default_rng(3)
    X, U, Xn = collect_transitions(lambda x, u: A @ x + B @ u, 3, 2, rng, episodes=10, horizon=5)
    with pytest.raises(ValueError, match="indefinite"):
        lambda_pi_model_free(X, U, Xn, Q, R, K0, lam=0.9)


def test_larger_lambda_converges_in_fewer_iterations_than_value_iteration():
    """Yang et al. (2023): λ-PI's rate beats VI's; here monotonically in λ."""
    A, B, Q, R, K0, _ = SYSTEMS[1].values
    iterations = [lambda_pi_model_based(A, B, Q, R, K0, lam, tol=1e-10).iterations
                  for lam in (0.0, 0.5, 0.85)]
    assert iterations[0] > iterations[1] > iterations[2]
    assert iterations[0] > 2 * iterations[2]


def test_lambda_outside_unit_interval_is_rejected():
    A, B, Q, R, K0, _ = SYSTEMS[0].values
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        lambda_pi_model_based(A, B, Q, R, K0, lam=1.5)


def test_online_learner_from_unstable_gain_learns_the_optimal_gain():
    A, B, Q, R, K0, lam = SYSTEMS[0].values
    learner = LQRLearner(Q, R, K0, LambdaPISettings(lam=lam), rng=np.random.default_rng(11))
    rng = np.random.default_rng(12)
    solves = 0
    for _ in range(12):  # short episodes: the plant is unstable until the first solve
        x = rng.normal(size=2)
        for _ in range(5):
            u = learner.decide(x)
            x_next = A @ x + B @ u
            solves += learner.learn(x, u, x_next)
            x = x_next
    assert solves >= 2
    P_star = solve_discrete_are(A, B, Q, R)
    assert np.allclose(learner.K, _optimal_gain(A, B, R, P_star), rtol=1e-2)
    assert learner.residual < 1e-6  # a second solve on more data barely moves P
    restored = LQRLearner(Q, R, K0)
    restored.load_state_dict(learner.state_dict())
    assert np.allclose(restored.decide(np.ones(2), explore=False), learner.decide(np.ones(2), explore=False))
