"""Asynchronous Q-learning with bounded staleness reaches Q* of value iteration on a seeded MDP."""

from __future__ import annotations

import numpy as np
import pytest

from learners.async_rl import (
    AsyncQSettings,
    FiniteMDP,
    InMemoryValueStore,
    QAgent,
    TDBatch,
    apply_td,
    bellman_residual,
    greedy_policy,
    q_learning_task,
    sample_sweep,
    step_size,
    td_targets,
    value_iteration,
)


@pytest.fixture(scope="module")
def mdp() -> FiniteMDP:
    return FiniteMDP.random(states=8, actions=3, gamma=0.6, rng=np.random.default_rng(2024))


def test_value_iteration_is_a_fixed_point_of_the_bellman_operator(mdp):
    Q_star = value_iteration(mdp)
    assert bellman_residual(mdp, Q_star) < 1e-12
    # Q* also solves the policy-evaluation linear system of its greedy policy
    pi = greedy_policy(Q_star)
    S = mdp.shape[0]
    P_pi = mdp.P[np.arange(S), pi]
    V = np.linalg.solve(np.eye(S) - mdp.gamma * P_pi, mdp.R[np.arange(S), pi])
    assert np.allclose(Q_star.max(axis=1), V, atol=1e-10)


def test_store_refuses_updates_older_than_the_staleness_bound():
    store = InMemoryValueStore((2, 2), max_staleness=2, step_exponent=0.8)
    stale_version, _ = store.read()
    batch = TDBatch(np.array([0]), np.array([1]), np.array([1.0]))
    for _ in range(2):  # two updates by others: the stale reader is exactly at the bound
        version, _ = store.read()
        assert store.submit(batch, version)
    assert store.submit(batch, stale_version)  # 2 versions behind: allowed
    before = store.read()
    assert not store.submit(batch, stale_version)  # now 3 behind: refused, nothing changes
    after = store.read()
    assert after[0] == before[0] and np.array_equal(after[1], before[1])
    assert (store.accepted, store.refused) == (3, 1)
    assert store.update_counts()[0, 1] == 3


class _LaggingStore(InMemoryValueStore):
    """Hands out snapshots labelled ``lag`` versions old, as a slow network link would."""

    lag = 3

    def read(self):
        version, table = super().read()
        return version - self.lag, table


def test_agent_counts_refusals_from_a_lagging_view():
    mdp = FiniteMDP.random(3, 2, 0.5, np.random.default_rng(0))
    tolerant = QAgent(mdp, _LaggingStore(mdp.shape, 3, 1.0), np.random.default_rng(1), 4)
    strict = QAgent(mdp, _LaggingStore(mdp.shape, 2, 1.0), np.random.default_rng(1), 4)
    assert all(tolerant.step() for _ in range(3)) and tolerant.refused == 0
    assert not any(strict.step() for _ in range(3)) and strict.refused == 3


def test_step_sizes_satisfy_robbins_monro_partial_sums():
    """α_n = n^-ω is a p-series: Σα ≥ ∫ grows without bound, Σα² tail ≤ N^(1-2ω)/(2ω-1) vanishes."""
    n = np.arange(1, 100_001)
    for omega in (0.6, 0.8, 1.0):
        alpha = step_size(n, omega)
        assert np.allclose(alpha, n**-omega) and alpha[0] == 1.0
        partial = np.cumsum(alpha)
        lower = np.log(n + 1) if omega == 1.0 else ((n + 1) ** (1 - omega) - 1) / (1 - omega)
        assert np.all(partial >= lower - 1e-9)  # unbounded lower bound: Σα = ∞
        N = 1_000
        assert (alpha[N:] ** 2).sum() <= N ** (1 - 2 * omega) / (2 * omega - 1)  # Σα² < ∞
    with pytest.raises(ValueError, match="Robbins-Monro"):
        InMemoryValueStore((2, 2), max_staleness=1, step_exponent=0.5)


def test_apply_td_with_unit_steps_averages_targets():
    """With ω = 1 the n-th step is 1/n, so repeated updates of one pair give the running mean."""
    Q, counts = np.zeros((1, 1)), np.zeros((1, 1), dtype=np.int64)
    targets = np.array([3.0, 5.0, 10.0])
    apply_td(Q, counts, TDBatch(np.zeros(3, int), np.zeros(3, int), targets), exponent=1.0)
    assert Q[0, 0] == pytest.approx(targets.mean()) and counts[0, 0] == 3


def test_sweep_targets_are_unbiased_bellman_backups(mdp):
    Q = np.random.default_rng(3).normal(size=mdp.shape)
    batch = sample_sweep(mdp, Q, np.random.default_rng(4), transitions_per_pair=200_000)
    expected = (mdp.R + mdp.gamma * mdp.P @ Q.max(axis=1)).ravel()
    assert np.max(np.abs(batch.targets - expected)) < 0.02
    one = td_targets(Q, mdp.R, mdp.gamma, np.array([0]), np.array([1]), np.array([2]))
    assert one[0] == pytest.approx(mdp.R[0, 1] + mdp.gamma * Q[2].max())


def test_mdp_validation_rejects_bad_inputs():
    with pytest.raises(ValueError, match="probability"):
        FiniteMDP(np.ones((2, 1, 2)), np.zeros((2, 1)), 0.9)
    with pytest.raises(ValueError, match="gamma"):
        FiniteMDP(np.full((2, 1, 2), 0.5), np.zeros((2, 1)), 1.0)


def test_q_learning_task_bundles_the_same_rule_the_store_applies(mdp):
    """A backend runs exactly this: sample from a snapshot, submit, residual and greedy of the table."""
    task = q_learning_task(mdp, transitions_per_pair=64)
    assert task.shape == mdp.shape and task.samples_per_update == 64 * mdp.shape[0] * mdp.shape[1]
    Q_star = value_iteration(mdp)
    assert task.residual(Q_star) < 1e-12 and np.array_equal(task.greedy(Q_star), greedy_policy(Q_star))
    store = task.store(AsyncQSettings(max_staleness=3))
    version, Q = store.read()
    assert store.submit(task.sample(Q, np.random.default_rng(0)), version)
    assert store.max_staleness == 3 and (store.update_counts() == 1).all()
