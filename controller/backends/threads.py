"""The in-process backend: every agent is a thread sharing one lock-protected store.

numpy releases the GIL inside its kernels, but most of a sweep on a small table is Python overhead,
so threads interleave rather than run in parallel; that is enough for asynchrony (stale reads,
refused updates) and for one machine. Outgrow it with :func:`controller.backends.run_ray`.
"""

from __future__ import annotations

import threading

import numpy as np

from controller.backends.supervise import supervise
from learners.async_rl import AsyncAgent, AsyncQSettings, AsyncRunResult, AsyncTask, InMemoryValueStore
from learners.convergence import ConvergenceMonitor


def run_threads(task: AsyncTask, settings: AsyncQSettings, seed: int, monitor: ConvergenceMonitor | None = None,
                store: InMemoryValueStore | None = None) -> AsyncRunResult:
    """Run ``settings.agents`` threads against one store until ``total_updates`` are accepted (or the
    verdict is ``converged``). Each agent gets an independent stream spawned from ``seed``; thread
    interleaving is up to the OS, so runs are reproducible in distribution, not bit for bit."""
    store = store or task.store(settings)
    store.snapshot_every = settings.check_every  # a caller's own store is checked on the same versions
    monitor = monitor or ConvergenceMonitor()
    streams = np.random.SeedSequence(seed).spawn(settings.agents)
    agents = [AsyncAgent(store, task.sample, np.random.default_rng(s)) for s in streams]
    stop = threading.Event()

    def work(agent: AsyncAgent) -> None:
        while not stop.is_set() and store.accepted < settings.total_updates:
            agent.step()

    threads = [threading.Thread(target=work, args=(a,), daemon=True, name=f"async-agent-{i}")
               for i, a in enumerate(agents)]
    for t in threads:
        t.start()
    report, checkpoints = supervise(task, settings, monitor, store.take_snapshots,
                                    lambda: any(t.is_alive() for t in threads), stop.set)
    for t in threads:
        t.join()
    version, Q = store.read()
    return AsyncRunResult(Q, version, store.accepted, store.refused, store.update_counts(), report, checkpoints,
                          backend="threads")
