"""Quantile-regression Q-learning learns the quantiles of a return distribution known exactly."""

from __future__ import annotations

import numpy as np
import pytest

from learners.async_rl import AsyncAgent, AsyncQSettings, greedy_policy, value_iteration
from learners.quantile_rl import (
    EXAMPLE_TERMINAL,
    QuantileBatch,
    TransitionRewardMDP,
    apply_quantile_td,
    cvar,
    episodic_example,
    exact_quantiles,
    greedy_by_mean,
    projected_quantiles,
    quantile_bellman_residual,
    quantile_midpoints,
    quantile_task,
    return_distribution,
    sample_quantile_sweep,
)

N = 10
TERMINAL = EXAMPLE_TERMINAL
TOLERANCE = 0.05


def true_quantiles(mdp: TransitionRewardMDP, state: int) -> np.ndarray:
    policy = greedy_policy(value_iteration(mdp.expected()))
    _, probs = return_distribution(mdp, policy, state, TERMINAL)
    levels = np.cumsum(probs)
    assert np.min(np.abs(levels[:, None] - quantile_midpoints(N)[None, :])) > 1e-3  # each quantile is unique
    return exact_quantiles(mdp, policy, state, TERMINAL, N)


def test_interleaved_agents_sharing_the_store_learn_the_true_quantiles():
    mdp = episodic_example()
    task = quantile_task(mdp, N, step_scale=6.0)
    store = task.store(AsyncQSettings(max_staleness=4))
    agents = [AsyncAgent(store, task.sample, np.random.default_rng(seed)) for seed in range(3)]
    for _ in range(3000):  # round-robin: each agent reads, then the others submit before it does
        snapshots = [(store.read(), agent) for agent in agents]
        for (version, theta), agent in snapshots:
            assert store.submit(agent.sample(theta, agent.rng), version)
    _, theta = store.read()
    pi = greedy_by_mean(theta)
    assert np.array_equal(pi[:3], greedy_policy(value_iteration(mdp.expected()))[:3])
    for s in (0, 1, 2):
        assert np.max(np.abs(theta[s, pi[s]] - true_quantiles(mdp, s))) < TOLERANCE
    # the mean of the quantiles is the expected return: Q* of the same MDP
    assert np.max(np.abs(theta.mean(axis=2)[:3, 0] - value_iteration(mdp.expected())[:3, 0])) < TOLERANCE
    assert quantile_bellman_residual(mdp, theta) < (1 - mdp.gamma) * TOLERANCE
    assert store.accepted == 9000 and store.refused == 0


def test_true_quantiles_of_the_test_mdp_by_hand():
    mdp = episodic_example()
    # state 1 under the greedy action 0: 2.0 with 0.3, 0.0 with 0.7 -> 7 quantiles at 0, 3 at 2
    assert np.array_equal(true_quantiles(mdp, 1), [0.0] * 7 + [2.0] * 3)
    # state 2: 1.0 with 0.6, -1.0 with 0.4
    assert np.array_equal(true_quantiles(mdp, 2), [-1.0] * 4 + [1.0] * 6)


def test_projected_fixed_point_has_zero_residual():
    mdp = episodic_example()
    theta = np.zeros((5, 2, N))
    for s in (0, 1, 2):  # build the exact fixed point by hand for every action: one-step lookups of the next
        for a in (0, 1):
            policy = greedy_policy(value_iteration(mdp.expected())).copy()
            policy[s] = a
            atoms, probs = return_distribution(mdp, policy, s, TERMINAL)
            theta[s, a] = projected_quantiles(atoms, probs, quantile_midpoints(N))
    assert quantile_bellman_residual(mdp, theta) < 1e-12
    theta[1, 0, 0] += 0.3
    assert quantile_bellman_residual(mdp, theta) == pytest.approx(0.3)


def test_one_quantile_step_follows_the_pinball_subgradient():
    theta, counts = np.zeros((1, 1, 2)), np.zeros((1, 1), dtype=np.int64)
    # target: atoms -1 (weight 0.5) and +1 (0.5); τ̂ = 0.25, 0.75; at θ = 0 both see F = 0.5
    batch = QuantileBatch(np.array([0]), np.array([0]), np.array([[-1.0, 1.0]]), np.array([[0.5, 0.5]]))
    apply_quantile_td(theta, counts, batch, exponent=0.8)
    assert np.allclose(theta[0, 0], [0.25 - 0.5, 0.75 - 0.5]) and counts[0, 0] == 1
    # a quantile sitting on an atom of its target with τ̂ inside the jump does not move
    theta[0, 0] = [-1.0, 1.0]
    apply_quantile_td(theta, counts, batch, exponent=0.8)
    assert np.allclose(theta[0, 0], [-1.0, 1.0])


def test_sampled_sweep_is_an_unbiased_target_cdf():
    mdp = episodic_example()
    theta = np.random.default_rng(0).normal(size=(5, 2, N))
    batch = sample_quantile_sweep(mdp, theta, np.random.default_rng(1), transitions_per_pair=100_000)
    assert np.allclose(batch.weights.sum(axis=1), 1.0)
    exact = (mdp.P[:, :, :, None] / N).repeat(N, axis=3).reshape(10, -1)
    assert np.max(np.abs(batch.weights - exact)) < 0.01


def test_cvar_and_validation():
    theta = np.arange(10.0).reshape(1, 1, 10)
    assert cvar(theta, 0.2)[0, 0] == pytest.approx(0.5) and cvar(theta, 1.0)[0, 0] == pytest.approx(4.5)
    with pytest.raises(ValueError, match="alpha"):
        cvar(theta, 0.0)
    with pytest.raises(ValueError, match="quantile"):
        quantile_midpoints(0)
    with pytest.raises(ValueError, match="shape"):
        TransitionRewardMDP(np.full((2, 1, 2), 0.5), np.zeros((2, 1)), 0.9)
