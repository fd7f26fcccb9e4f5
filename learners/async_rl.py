"""Asynchronous parallel Q-learning against a versioned value store with bounded staleness.

Several agents sample transitions, compute TD targets from the table *as they last read it*, and
submit updates without waiting for one another. The store applies an update only when the table it
was computed from is at most ``max_staleness`` versions old, the bounded-staleness rule of the
stale-synchronous-parallel parameter server (Ho et al., "More effective distributed ML via a stale
synchronous parallel parameter server", NIPS 2013). Bounded delays are what asynchronous Q-learning's
convergence proof needs (Tsitsiklis, "Asynchronous stochastic approximation and Q-learning",
Machine Learning 16, 1994: outdated values in the max term are fine when delays are bounded and
every (s, a) is updated infinitely often with Robbins-Monro step sizes).

Step sizes are per (s, a): ``α = n(s, a)^-ω`` with ``n`` the number of updates applied to the pair,
``ω ∈ (1/2, 1]`` so that Σα = ∞ and Σα² < ∞ (Robbins & Monro 1951). We default to ω = 0.8: with
ω = 1 Q-learning's error decays only like n^-(1-γ) when γ > 1/2 (Szepesvári, "The asymptotic
convergence-rate of Q-learning", NIPS 1997), while polynomial rates ω ∈ (1/2, 1) converge
polynomially for every γ (Even-Dar & Mansour, "Learning rates for Q-learning", JMLR 2003); a 1/n run
on the test MDP stalls at 1e-2 error where ω = 0.8 reaches 1e-3.

Everything here is pure: the update rules, the store interface (and a lock-protected in-process
store), and :class:`AsyncTask`, the picklable bundle an execution backend runs. The backends
themselves (threads, Ray actors) live in ``controller/backends/``.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from learners.types import Convergence

Array = np.ndarray


# --- the MDP and its exact solution -------------------------------------------------------------


@dataclass(frozen=True)
class FiniteMDP:
    """``P[s, a, s']`` transition probabilities, ``R[s, a]`` expected rewards (maximised), ``gamma``."""

    P: Array
    R: Array
    gamma: float

    def __post_init__(self) -> None:
        S, A = self.R.shape
        if self.P.shape != (S, A, S):
            raise ValueError(f"P must have shape {(S, A, S)}, got {self.P.shape}")
        if not np.allclose(self.P.sum(axis=2), 1.0) or (self.P < 0).any():
            raise ValueError("each P[s, a, :] must be a probability distribution")
        if not 0.0 <= self.gamma < 1.0:
            raise ValueError(f"gamma must lie in [0, 1), got {self.gamma}")

    @property
    def shape(self) -> tuple[int, int]:
        return self.R.shape  # type: ignore[return-value]

    @classmethod
    def random(cls, states: int, actions: int, gamma: float, rng: np.random.Generator,
               concentration: float = 0.5) -> FiniteMDP:
        """A seeded random MDP: Dirichlet rows (sparse-ish for concentration < 1), rewards in [0, 1)."""
        P = rng.dirichlet(np.full(states, concentration), size=(states, actions))
        return cls(P, rng.uniform(0.0, 1.0, (states, actions)), gamma)


def bellman_q(mdp: FiniteMDP, Q: Array) -> Array:
    """``(TQ)(s, a) = R(s, a) + γ Σ_s' P(s, a, s') max_a' Q(s', a')``."""
    return mdp.R + mdp.gamma * mdp.P @ Q.max(axis=1)


def bellman_residual(mdp: FiniteMDP, Q: Array) -> float:
    """``‖TQ - Q‖∞``; bounds the error: ``‖Q - Q*‖∞ ≤ residual / (1 - γ)``."""
    return float(np.max(np.abs(bellman_q(mdp, Q) - Q)))


def value_iteration(mdp: FiniteMDP, tol: float = 1e-12, max_iters: int = 100_000) -> Array:
    """Serial reference ``Q*``: iterate T until the residual certifies an error below ``tol``."""
    Q = np.zeros(mdp.shape)
    for _ in range(max_iters):
        Q_next = bellman_q(mdp, Q)
        if np.max(np.abs(Q_next - Q)) * mdp.gamma / (1.0 - mdp.gamma) < tol:
            return Q_next
        Q = Q_next
    raise RuntimeError(f"value iteration did not reach {tol} in {max_iters} iterations")


def greedy_policy(Q: Array) -> Array:
    return np.argmax(Q, axis=1)


# --- pure update rules ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TDBatch:
    """An agent's update: a TD target for each listed (s, a), computed from one table version.

    ``transitions[i]`` counts the sampled transitions averaged into ``targets[i]`` (statistics only:
    the store applies one stochastic-approximation step per entry whatever the count).
    """

    states: Array
    actions: Array
    targets: Array
    transitions: int = 1


def step_size(count: Array, exponent: float) -> Array:
    """Robbins-Monro ``α = n^-ω`` for the n-th update of a pair (n ≥ 1)."""
    return np.power(np.maximum(count, 1).astype(float), -exponent)


def td_targets(Q: Array, R: Array, gamma: float, states: Array, actions: Array, next_states: Array) -> Array:
    """One-transition targets ``r + γ max_a' Q(s', a')`` (rewards taken as ``R[s, a]``)."""
    return R[states, actions] + gamma * Q[next_states].max(axis=1)


def sample_sweep(mdp: FiniteMDP, Q: Array, rng: np.random.Generator, transitions_per_pair: int) -> TDBatch:
    """Synchronous-sweep sampling: for every (s, a), average the TD targets of ``k`` sampled transitions.

    The ``k`` next states enter the average only through their counts, so we draw the counts
    directly (a multinomial draw is distributed exactly as the counts of ``k`` independent
    transitions); this keeps a sweep O(S²A) whatever ``k`` is.
    """
    S, A = mdp.shape
    k = transitions_per_pair
    counts = rng.multinomial(k, mdp.P.reshape(S * A, S))
    targets = mdp.R.ravel() + mdp.gamma * (counts @ Q.max(axis=1)) / k
    s, a = np.divmod(np.arange(S * A), A)
    return TDBatch(s, a, targets, transitions=k * S * A)


def apply_td(Q: Array, counts: Array, batch: TDBatch, exponent: float) -> None:
    """In place: ``n(s,a) += 1; Q(s,a) += n^-ω (target - Q(s,a))`` for each entry, in order."""
    flat = batch.states * Q.shape[1] + batch.actions
    if np.unique(flat).size == flat.size:  # the common sweep case: vectorise
        counts.ravel()[flat] += 1
        alpha = step_size(counts.ravel()[flat], exponent)
        Q.ravel()[flat] += alpha * (batch.targets - Q.ravel()[flat])
        return
    for i, target in zip(flat, batch.targets, strict=True):
        counts.ravel()[i] += 1
        Q.ravel()[i] += step_size(counts.ravel()[i], exponent) * (target - Q.ravel()[i])


# --- the store ------------------------------------------------------------------------------------


class UpdateRule(Protocol):
    """How a store folds one accepted update into its table: in place, one Robbins-Monro step per entry,
    ``counts[s, a]`` being the number of steps already applied to the pair (incremented by the rule)."""

    def __call__(self, table: Array, counts: Array, update: Any, exponent: float) -> None: ...


class ValueStore(Protocol):
    """A shared, versioned Q-table. ``read`` gives a snapshot and its version; ``submit`` applies an
    update computed from version ``based_on_version`` and says whether it was accepted."""

    def read(self) -> tuple[int, Array]: ...

    def submit(self, update: Any, based_on_version: int) -> bool: ...


class InMemoryValueStore:
    """Thread-safe :class:`ValueStore`; refuses updates more than ``max_staleness`` versions old.

    Each accepted update bumps the version by one, so staleness counts updates applied by others
    since the submitter's read. ``rule`` is the update rule (default :func:`apply_td`; the
    distributional learner passes :func:`learners.quantile_rl.apply_quantile_td` and a table of shape
    ``(S, A, N)``); counts are kept per (s, a), the table's first two axes. The lock makes it safe for
    threads; an execution backend that serialises calls itself (a Ray actor) wraps it unchanged.

    With ``snapshot_every`` > 0 the store also keeps a copy of the table each time the version reaches
    a multiple of it, for :meth:`take_snapshots`. Why here and not in whoever polls: a poller that
    the agents starve of the CPU (four threads on two busy cores) wakes hundreds of versions late, so
    its checks would land wherever the scheduler put them; copies taken under the submit lock land
    on exact versions whatever the load.
    """

    def __init__(self, shape: tuple[int, ...], max_staleness: int, step_exponent: float,
                 initial: Array | None = None, rule: UpdateRule = apply_td, snapshot_every: int = 0) -> None:
        if max_staleness < 0:
            raise ValueError(f"max_staleness must be non-negative, got {max_staleness}")
        if not 0.5 < step_exponent <= 1.0:
            raise ValueError(f"step exponent must lie in (1/2, 1] (Robbins-Monro), got {step_exponent}")
        if len(shape) < 2:
            raise ValueError(f"a value table has at least (states, actions) axes, got shape {shape}")
        if snapshot_every < 0:
            raise ValueError(f"snapshot_every must be non-negative (0: none), got {snapshot_every}")
        self.max_staleness = max_staleness
        self.snapshot_every = snapshot_every
        self._snapshots: list[tuple[int, Array]] = []
        self.step_exponent = step_exponent
        self.rule = rule
        self._table = np.zeros(shape) if initial is None else np.array(initial, dtype=float)
        self._counts = np.zeros(shape[:2], dtype=np.int64)
        self._version = 0
        self._lock = threading.Lock()
        self.accepted = 0
        self.refused = 0

    def read(self) -> tuple[int, Array]:
        with self._lock:
            return self._version, self._table.copy()

    def submit(self, update: Any, based_on_version: int) -> bool:
        with self._lock:
            if self._version - based_on_version > self.max_staleness:
                self.refused += 1
                return False
            self.rule(self._table, self._counts, update, self.step_exponent)
            self._version += 1
            self.accepted += 1
            if self.snapshot_every and self._version % self.snapshot_every == 0:
                self._snapshots.append((self._version, self._table.copy()))
            return True

    def take_snapshots(self) -> list[tuple[int, Array]]:
        """The (version, table) copies taken since the last call, oldest first (see the class docstring)."""
        with self._lock:
            taken, self._snapshots = self._snapshots, []
            return taken

    def update_counts(self) -> Array:
        with self._lock:
            return self._counts.copy()


# --- what an execution backend runs ------------------------------------------------------------------


@dataclass(frozen=True)
class AsyncQSettings:
    agents: int = 4
    """Concurrent agents (threads or Ray actors); the brief's minimum for the parallel test."""

    max_staleness: int = 8
    """Refuse updates computed from a table more than this many versions old. Twice the agent count:
    an agent is normally at most (agents - 1) versions behind; the slack absorbs scheduler hiccups
    while still bounding the delay, as Tsitsiklis (1994) requires."""

    step_exponent: float = 0.8
    """ω in α = n(s,a)^-ω; why 0.8 and not 1 is in the module docstring."""

    transitions_per_pair: int = 256
    """Transitions averaged into each (s, a) target per sweep: a minibatch that cuts variance per
    submission 256-fold, so ~10^4 sweeps reach 1e-3 on an 8x3 MDP in about a second."""

    total_updates: int = 20_000
    """Accepted updates after which the runner stops (it may stop earlier on ``converged``)."""

    check_every: int = 250
    """Versions between convergence checks (residual + greedy snapshot fed to the monitor)."""

    stop_when_converged: bool = True

    def __post_init__(self) -> None:
        if self.agents < 1:
            raise ValueError(f"agents must be at least 1, got {self.agents}")
        if self.transitions_per_pair < 1 or self.total_updates < 1 or self.check_every < 1:
            raise ValueError("transitions_per_pair, total_updates and check_every must be positive")


@dataclass(frozen=True)
class AsyncTask:
    """Everything an execution backend needs to run agents against a store, as pure picklable parts.

    A backend (threads, Ray actors: ``controller/backends/``) only moves tables and updates around;
    what an update is and how it is applied stay here, so every backend runs the same rule.
    """

    shape: tuple[int, ...]
    """The store's table shape: ``(S, A)`` for expected values, ``(S, A, N)`` for N quantiles."""
    sample: Callable[[Array, np.random.Generator], Any]
    """Snapshot + the agent's random stream -> one update (pure)."""
    rule: UpdateRule
    residual: Callable[[Array], float]
    """What the supervisor feeds the convergence monitor for a snapshot (0 at the fixed point)."""
    greedy: Callable[[Array], Array]
    """The snapshot's greedy policy, for the monitor's policy-stability check."""
    samples_per_update: int
    """Transitions consumed by one update (statistics only)."""

    def store(self, settings: AsyncQSettings) -> InMemoryValueStore:
        return InMemoryValueStore(self.shape, settings.max_staleness, settings.step_exponent, rule=self.rule,
                                  snapshot_every=settings.check_every)


def _sweep(Q: Array, rng: np.random.Generator, mdp: FiniteMDP, transitions_per_pair: int) -> TDBatch:
    return sample_sweep(mdp, Q, rng, transitions_per_pair)


def _exact_residual(Q: Array, mdp: FiniteMDP) -> float:
    return bellman_residual(mdp, Q)


def q_learning_task(mdp: FiniteMDP, transitions_per_pair: int = 256) -> AsyncTask:
    """Expected-value Q-learning by sampled sweeps; the residual is the exact Bellman residual (the
    simulator owns the MDP; a deployment would pass a sampled estimate instead)."""
    S, A = mdp.shape
    return AsyncTask((S, A), functools.partial(_sweep, mdp=mdp, transitions_per_pair=transitions_per_pair),
                     apply_td, functools.partial(_exact_residual, mdp=mdp), greedy_policy,
                     transitions_per_pair * S * A)


@dataclass
class AsyncRunResult:
    Q: Array
    version: int
    accepted: int
    refused: int
    updates_per_pair: Array
    convergence: Convergence
    checkpoints: list[tuple[int, Array, Convergence]] = field(default_factory=list)
    """(version, Q snapshot, verdict after feeding it) at each check, oldest first."""
    backend: str = "threads"


class AsyncAgent:
    """One asynchronous worker: read a snapshot, compute an update from it, submit, repeat."""

    def __init__(self, store: ValueStore, sample: Callable[[Array, np.random.Generator], Any],
                 rng: np.random.Generator) -> None:
        self.store, self.sample, self.rng = store, sample, rng
        self.submitted = 0
        self.refused = 0

    def step(self) -> bool:
        version, Q = self.store.read()
        update = self.sample(Q, self.rng)
        self.submitted += 1
        ok = self.store.submit(update, version)
        self.refused += not ok
        return ok


class QAgent(AsyncAgent):
    """An :class:`AsyncAgent` doing sampled Q-learning sweeps on ``mdp``."""

    def __init__(self, mdp: FiniteMDP, store: ValueStore, rng: np.random.Generator,
                 transitions_per_pair: int) -> None:
        super().__init__(store, functools.partial(_sweep, mdp=mdp, transitions_per_pair=transitions_per_pair), rng)
        self.mdp, self.k = mdp, transitions_per_pair
