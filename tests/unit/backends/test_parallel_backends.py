"""The execution backends: threads and Ray actors run the same agents and reach the same Q*."""

from __future__ import annotations

import numpy as np
import pytest

from controller.backends import run_ray, run_threads
from learners.async_rl import (
    AsyncQSettings,
    FiniteMDP,
    InMemoryValueStore,
    greedy_policy,
    q_learning_task,
    value_iteration,
)
from learners.convergence import ConvergenceMonitor, ConvergenceSettings
from learners.quantile_rl import EXAMPLE_TERMINAL, episodic_example, exact_quantiles, greedy_by_mean, quantile_task
from learners.types import Verdict

ERROR_TARGET = 1e-3
QUANTILE_TOLERANCE = 0.05


@pytest.fixture(scope="module")
def mdp() -> FiniteMDP:
    return FiniteMDP.random(states=8, actions=3, gamma=0.6, rng=np.random.default_rng(2024))


def _monitor(mdp: FiniteMDP) -> ConvergenceMonitor:
    # tol = (1 - γ) ε: with the exact residual, "converged" certifies ‖Q - Q*‖∞ < ε
    return ConvergenceMonitor(ConvergenceSettings(tol=(1 - mdp.gamma) * ERROR_TARGET, window=5))


def test_parallel_agents_reach_q_star_and_the_verdict_waits_for_the_error(mdp):
    Q_star = value_iteration(mdp)
    settings = AsyncQSettings(agents=4, max_staleness=8, total_updates=40_000, check_every=250)
    result = run_threads(q_learning_task(mdp, settings.transitions_per_pair), settings, seed=5,
                         monitor=_monitor(mdp))

    final_error = np.max(np.abs(result.Q - Q_star))
    assert final_error < ERROR_TARGET
    assert result.convergence.verdict is Verdict.CONVERGED
    assert np.array_equal(greedy_policy(result.Q), greedy_policy(Q_star))
    assert (result.updates_per_pair > 0).all()

    versions = [v for v, _, _ in result.checkpoints]
    assert versions == list(range(settings.check_every, versions[-1] + 1, settings.check_every))
    errors = [np.max(np.abs(Q - Q_star)) for _, Q, _ in result.checkpoints]
    verdicts = [c.verdict for _, _, c in result.checkpoints]
    assert errors[0] > 10 * ERROR_TARGET and verdicts[0] is not Verdict.CONVERGED
    for err, verdict in zip(errors, verdicts, strict=True):
        if verdict is Verdict.CONVERGED:
            assert err < ERROR_TARGET
    first_converged = verdicts.index(Verdict.CONVERGED)
    assert any(err >= ERROR_TARGET for err in errors[:first_converged])


def test_threaded_run_refuses_only_what_the_bound_says(mdp):
    """With a zero bound, every update whose base was overtaken must be refused, yet learning goes on."""
    store = InMemoryValueStore(mdp.shape, max_staleness=0, step_exponent=0.8)
    settings = AsyncQSettings(agents=4, max_staleness=0, total_updates=600, check_every=100,
                              stop_when_converged=False)
    result = run_threads(q_learning_task(mdp), settings, seed=1, store=store)
    assert result.accepted >= 600 and result.version == result.accepted
    assert result.refused == store.refused


@pytest.fixture(scope="module")
def ray_head():
    """A local Ray head for this module: 2 CPUs, no dashboard (about 20-30 s to start on a busy 2-core box)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_actors_reach_the_same_q_star_as_threads(mdp, ray_head):
    """Agents and the store are Ray actors; same rule, same seeds, same Q* as the threaded run."""
    Q_star = value_iteration(mdp)
    settings = AsyncQSettings(agents=2, max_staleness=4, total_updates=40_000, check_every=250)
    task = q_learning_task(mdp, settings.transitions_per_pair)
    threaded = run_threads(task, settings, seed=5, monitor=_monitor(mdp))
    remote = run_ray(task, settings, seed=5, monitor=_monitor(mdp))
    assert remote.backend == "ray" and remote.version == remote.accepted
    assert remote.convergence.verdict is Verdict.CONVERGED
    assert np.max(np.abs(remote.Q - Q_star)) < ERROR_TARGET
    assert np.max(np.abs(remote.Q - threaded.Q)) < ERROR_TARGET
    assert np.array_equal(greedy_policy(remote.Q), greedy_policy(Q_star))
    assert all(c.verdict is not Verdict.CONVERGED or np.max(np.abs(Q - Q_star)) < ERROR_TARGET
               for _, Q, c in remote.checkpoints)


N = 10


def true_quantiles(mdp, state):
    return exact_quantiles(mdp, greedy_policy(value_iteration(mdp.expected())), state, EXAMPLE_TERMINAL, N)


def _quantile_run(backend, **kwargs):
    mdp = episodic_example()
    settings = AsyncQSettings(agents=kwargs.pop("agents", 4), max_staleness=8, total_updates=20_000,
                              check_every=100)
    monitor = ConvergenceMonitor(ConvergenceSettings(tol=(1 - mdp.gamma) * QUANTILE_TOLERANCE, window=5))
    return mdp, backend(quantile_task(mdp, N, step_scale=6.0), settings, seed=3, monitor=monitor, **kwargs)


def _assert_true_quantiles(mdp, result):
    assert result.convergence.verdict is Verdict.CONVERGED and result.Q.shape == (5, 2, N)
    pi = greedy_by_mean(result.Q)
    for s in (0, 1, 2):
        assert np.max(np.abs(result.Q[s, pi[s]] - true_quantiles(mdp, s))) < QUANTILE_TOLERANCE


def test_threaded_agents_share_quantiles_through_the_store():
    mdp, result = _quantile_run(run_threads)
    _assert_true_quantiles(mdp, result)


@pytest.mark.slow
def test_ray_agents_share_quantiles_through_the_store_actor(ray_head):
    mdp, result = _quantile_run(run_ray, agents=2)
    assert result.backend == "ray"
    _assert_true_quantiles(mdp, result)
