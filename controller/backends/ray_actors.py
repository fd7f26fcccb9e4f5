"""The Ray backend: every agent is a Ray actor, and so is the versioned store.

Same agents, same update rule, same staleness bound as the threads backend: the store actor wraps an
unchanged :class:`learners.async_rl.InMemoryValueStore` (an actor runs one method at a time, so the
store's lock is never contended), and each agent actor drives an unchanged
:class:`learners.async_rl.AsyncAgent` through :class:`_RemoteStore`, which speaks the
:class:`learners.async_rl.ValueStore` protocol over Ray calls. A submit returns the table as it is
after the submit, which the agent's next read reuses: one round trip per update instead of two,
and still a faithful read (nothing it returns is older than what a separate read would have given).

The actors import ``learners`` and this module on the Ray workers, so a remote cluster needs autocm
installed on its nodes (or a ``runtime_env``); a local head started by ``ray.init`` inherits this
process's environment.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from controller.backends.supervise import supervise
from learners.async_rl import Array, AsyncAgent, AsyncQSettings, AsyncRunResult, AsyncTask, InMemoryValueStore
from learners.convergence import ConvergenceMonitor


class RayUnavailableError(RuntimeError):
    """Ray is not installed, or the cluster at the given address cannot be reached."""


class StoreActor:
    """The versioned store behind a Ray actor; also the global stop flag the agents read."""

    def __init__(self, task: AsyncTask, settings: AsyncQSettings) -> None:
        self.store: InMemoryValueStore = task.store(settings)
        self.total_updates = settings.total_updates
        self.stopped = False

    def _done(self) -> bool:
        return self.stopped or self.store.accepted >= self.total_updates

    def read(self) -> tuple[int, Array, bool]:
        version, table = self.store.read()
        return version, table, self._done()

    def submit_and_read(self, update: Any, based_on_version: int) -> tuple[bool, int, Array, bool]:
        ok = self.store.submit(update, based_on_version)
        version, table = self.store.read()
        return ok, version, table, self._done()

    def take_snapshots(self) -> list[tuple[int, Array]]:
        return self.store.take_snapshots()

    def stop(self) -> None:
        self.stopped = True

    def stats(self) -> tuple[int, int, Array]:
        return self.store.accepted, self.store.refused, self.store.update_counts()


class _RemoteStore:
    """:class:`learners.async_rl.ValueStore` over a store actor handle (used inside an agent actor)."""

    def __init__(self, handle: Any, ray: Any) -> None:
        self.handle, self.ray = handle, ray
        self.done = False
        self._fresh: tuple[int, Array] | None = None

    def read(self) -> tuple[int, Array]:
        if self._fresh is not None:
            fresh, self._fresh = self._fresh, None
            return fresh
        version, table, self.done = self.ray.get(self.handle.read.remote())
        return version, table

    def submit(self, update: Any, based_on_version: int) -> bool:
        ok, version, table, self.done = self.ray.get(self.handle.submit_and_read.remote(update, based_on_version))
        self._fresh = (version, table)
        return ok


class AgentActor:
    """One asynchronous agent on a Ray worker; :meth:`run` returns (submitted, refused) when the store says stop."""

    def __init__(self, task: AsyncTask, store: Any, seed: np.random.SeedSequence) -> None:
        import ray

        self.remote = _RemoteStore(store, ray)
        self.agent = AsyncAgent(self.remote, task.sample, np.random.default_rng(seed))

    def run(self) -> tuple[int, int]:
        while True:
            self.agent.step()
            if self.remote.done:
                return self.agent.submitted, self.agent.refused


def _import_ray() -> Any:
    try:
        import ray
    except ModuleNotFoundError:
        raise RayUnavailableError("Ray is not installed: pip install 'autocm[ray]' (or pip install ray)") from None
    return ray


@contextlib.contextmanager
def ray_session(address: str | None) -> Iterator[Any]:
    """Connect to Ray at ``address`` (``auto``, ``host:port``, ``ray://host:10001``, or ``local`` for a new
    local instance), unless this process is already connected; disconnect only what we connected."""
    ray = _import_ray()
    if ray.is_initialized():
        yield ray
        return
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise RayUnavailableError(f"cannot connect to Ray at {address!r}: {exc}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def run_ray(task: AsyncTask, settings: AsyncQSettings, seed: int, address: str | None = None,
            monitor: ConvergenceMonitor | None = None, agent_cpus: float = 0.0,
            poll_s: float = 0.01) -> AsyncRunResult:
    """Run ``settings.agents`` agent actors and one store actor on the Ray cluster at ``address``.

    ``agent_cpus``: the CPU share each agent reserves (0: placement ignores CPUs, so any number of
    agents fits on a small head; set 1 on a real cluster to spread them one per core). Seeds are
    spawned from ``seed`` exactly as the threads backend does, so the two differ only in interleaving.
    """
    monitor = monitor or ConvergenceMonitor()
    with ray_session(address) as ray:
        store_cls = ray.remote(num_cpus=0)(StoreActor)
        agent_cls = ray.remote(num_cpus=agent_cpus)(AgentActor)
        store = store_cls.remote(task, settings)
        streams = np.random.SeedSequence(seed).spawn(settings.agents)
        agents = [agent_cls.remote(task, store, s) for s in streams]
        runs = [a.run.remote() for a in agents]

        def read() -> tuple[int, Array]:
            version, table, _ = ray.get(store.read.remote())
            return version, table

        def running() -> bool:
            done, _ = ray.wait(runs, num_returns=len(runs), timeout=0)
            return len(done) < len(runs)

        report, checkpoints = supervise(task, settings, monitor, lambda: ray.get(store.take_snapshots.remote()),
                                        running, lambda: ray.get(store.stop.remote()),
                                        poll_s=poll_s)
        ray.get(runs)  # surface an agent's exception here rather than losing it
        version, Q = read()
        accepted, refused, counts = ray.get(store.stats.remote())
        for handle in [*agents, store]:
            ray.kill(handle)
    return AsyncRunResult(Q, version, accepted, refused, counts, report, checkpoints, backend="ray")
