"""``autocm learn-parallel``: run asynchronous parallel learners on a known-answer problem, on threads or Ray.

It is the check a user runs before trusting a backend (a laptop, or a Ray cluster they already have):
the same agents, update rule and staleness bound as everywhere else, on a problem whose answer is
computed exactly, with the convergence verdict reported as it evolves and the final error measured
against the exact answer.
"""

from __future__ import annotations

import math
import socket
import sys
import time

import click

EXIT_NOT_CONVERGED = 1
EXIT_USAGE = 2
MAX_AGENTS = 256
"""Threads or Ray actors; more would only queue on the store's lock."""
MAX_MDP_ENTRIES = 5_000_000
"""states x actions x states transition probabilities the random MDP may hold (40 MB of float64)."""
RAY_CONNECT_TIMEOUT_S = 5.0
"""How long --ray HOST:PORT may take to accept a TCP connection before we say nothing is there (ray.init
itself retries for minutes)."""


def _finite(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """click's FloatRange lets NaN through (every comparison with NaN is false)."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"expected a finite number, got {value}")
    return value


def _ray_endpoint(address: str) -> tuple[str, int] | None:
    """HOST:PORT or ray://HOST:PORT -> (host, port); None for 'auto', 'local' and anything Ray resolves itself."""
    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def _probe_ray(address: str, timeout_s: float = RAY_CONNECT_TIMEOUT_S) -> str | None:
    """Why nothing answers at ``address`` within ``timeout_s``, or None if a TCP connection opens."""
    endpoint = _ray_endpoint(address)
    if endpoint is None:
        return None
    host, port = endpoint
    if not 0 < port < 65536:
        return f"port {port} is not a TCP port (1-65535)"
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except TimeoutError:
        return f"no answer from {host}:{port} within {timeout_s:g} s"
    except OSError as exc:
        return f"cannot connect to {host}:{port}: {exc.strerror or exc}"


@click.command("learn-parallel")
@click.option("--agents", type=click.IntRange(1, MAX_AGENTS), default=4, show_default=True,
              help="Asynchronous agents (threads, or Ray actors with --ray).")
@click.option("--ray", "ray_address", default=None, metavar="ADDRESS",
              help="Run agents and the value store as Ray actors on the cluster at ADDRESS: 'auto' (the "
                   "cluster this machine belongs to), HOST:PORT of a head started with 'ray start --head', "
                   "ray://HOST:10001 (Ray client), or 'local' for a fresh single-machine instance. "
                   "Without it agents are threads. Needs pip install 'autocm[ray]'.")
@click.option("--quantiles", type=click.IntRange(0, 1000), default=0, show_default=True,
              help="0: learn expected returns (Q-learning) on a seeded random MDP. N > 0: learn N quantiles of "
                   "the return (quantile-regression TD) on a two-stage MDP whose return distribution is known.")
@click.option("--states", type=click.IntRange(min=1), default=8, show_default=True, help="Random MDP: states.")
@click.option("--actions", type=click.IntRange(min=1), default=3, show_default=True, help="Random MDP: actions.")
@click.option("--gamma", type=click.FloatRange(0.0, 1.0, max_open=True), default=0.6, show_default=True,
              callback=_finite,
              help="Random MDP: discount.")
@click.option("--mdp-seed", type=int, default=2024, show_default=True, help="Random MDP: seed of P and R.")
@click.option("--seed", type=int, default=5, show_default=True, help="Seed of the agents' sampling streams.")
@click.option("--max-staleness", type=click.IntRange(min=0), default=8, show_default=True,
              help="The store refuses updates computed from a table more than this many versions old.")
@click.option("--max-updates", type=click.IntRange(1, 100_000_000), default=40_000, show_default=True,
              help="Stop after this many accepted updates even if not converged.")
@click.option("--error", "target_error", type=click.FloatRange(min=0.0, min_open=True), default=None,
              callback=_finite,
              help="Max-norm error the 'converged' verdict must certify [default: 1e-3; 0.05 with --quantiles].")
@click.option("--quiet", "-q", is_flag=True, help="Only the summary, not the verdict at each check.")
def learn_parallel(agents: int, ray_address: str | None, quantiles: int, states: int, actions: int, gamma: float,
                   mdp_seed: int, seed: int, max_staleness: int, max_updates: int, target_error: float | None,
                   quiet: bool) -> None:
    """Asynchronous parallel RL with bounded staleness and convergence checks, on threads or Ray actors.

    \b
    Agents read a versioned value table, compute updates from what they read, and submit without
    waiting for each other; the store refuses updates older than --max-staleness versions; step
    sizes are n^-0.8 per (state, action) (Robbins-Monro). Every 250 versions (100 with
    --quantiles) the residual and greedy policy go to the convergence monitor, whose 'converged'
    certifies an error below --error. Exit status 1 if it never said 'converged'.

    \b
    Examples:
      autocm learn-parallel                                threads, 4 agents
      ray start --head --num-cpus 4                        (once, on the head machine)
      autocm learn-parallel --ray auto --agents 8          the same agents as Ray actors
      autocm learn-parallel --quantiles 10 --ray local     return quantiles, a fresh local Ray
    """
    if not quantiles and states * actions * states > MAX_MDP_ENTRIES:
        raise click.BadParameter(f"{states} states x {actions} actions x {states} states is "
                                 f"{states * actions * states} transition probabilities, above the limit of "
                                 f"{MAX_MDP_ENTRIES}", param_hint="--states/--actions")
    if ray_address is not None:
        if not ray_address.strip():
            raise click.BadParameter("expected an address: auto, local, HOST:PORT or ray://HOST:PORT",
                                     param_hint="--ray")
        why = _probe_ray(ray_address)
        if why:
            click.echo(f"error: --ray {ray_address}: {why}; start a head with 'ray start --head' or pass "
                       "--ray local", err=True)
            sys.exit(EXIT_USAGE)
    import numpy as np

    from controller.backends import RayUnavailableError, run_ray, run_threads
    from learners.async_rl import AsyncQSettings, FiniteMDP, greedy_policy, q_learning_task, value_iteration
    from learners.convergence import ConvergenceMonitor, ConvergenceSettings
    from learners.quantile_rl import EXAMPLE_TERMINAL, episodic_example, exact_quantiles, quantile_task

    if quantiles:
        dmdp = episodic_example()
        discount = dmdp.gamma
        task = quantile_task(dmdp, quantiles, step_scale=6.0)
        policy = greedy_policy(value_iteration(dmdp.expected()))
        exact = np.zeros(task.shape)
        for s in range(task.shape[0]):
            if s not in EXAMPLE_TERMINAL:
                exact[s, policy[s]] = exact_quantiles(dmdp, policy, s, EXAMPLE_TERMINAL, quantiles)
        target = target_error or 0.05
        check_every = 100
        what = f"{quantiles} return quantiles, two-stage MDP with a known return distribution"
    else:
        mdp = FiniteMDP.random(states, actions, gamma, np.random.default_rng(mdp_seed))
        discount = gamma
        task = q_learning_task(mdp)
        exact = value_iteration(mdp)
        policy = greedy_policy(exact)
        target = target_error or 1e-3
        check_every = 250
        what = f"Q-learning, random MDP {states}x{actions}, gamma {gamma}"

    def error_of(table: np.ndarray) -> float:
        if not quantiles:
            return float(np.max(np.abs(table - exact)))
        rows = [s for s in range(task.shape[0]) if s not in EXAMPLE_TERMINAL]
        return float(max(np.max(np.abs(table[s, policy[s]] - exact[s, policy[s]])) for s in rows))

    settings = AsyncQSettings(agents=agents, max_staleness=max_staleness, total_updates=max_updates,
                              check_every=check_every)
    monitor = ConvergenceMonitor(ConvergenceSettings(tol=(1 - discount) * target))
    backend = f"Ray at {ray_address}" if ray_address else "threads"
    click.echo(f"{what}; {agents} agents on {backend}; staleness bound {max_staleness}")
    started = time.monotonic()
    try:
        if ray_address:
            result = run_ray(task, settings, seed, address=ray_address, monitor=monitor)
        else:
            result = run_threads(task, settings, seed, monitor=monitor)
    except RayUnavailableError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    wall = time.monotonic() - started
    if not quiet:
        click.echo(" version   residual  error vs exact  verdict")
        for version, table, report in result.checkpoints:
            click.echo(f"{version:8d}  {report.residual:9.2e}  {error_of(table):14.2e}  {report.verdict}")
    err = error_of(result.Q)
    click.echo(f"backend {result.backend}: {result.accepted} updates accepted, {result.refused} refused as stale, "
               f"{wall:.1f} s")
    click.echo(f"verdict {result.convergence.verdict}; max-norm error vs the exact answer {err:.2e} "
               f"(target {target:g})")
    if result.convergence.verdict != "converged":
        sys.exit(EXIT_NOT_CONVERGED)
