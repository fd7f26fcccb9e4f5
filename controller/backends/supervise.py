"""The one supervision loop both backends share: watch the store, feed the monitor, stop on convergence.

The agents never wait for it. The store copies its table each time ``check_every`` more versions
were accepted (:meth:`learners.async_rl.InMemoryValueStore.take_snapshots`); this loop collects the
copies every ``poll_s`` and feeds the monitor each one's residual and greedy policy, oldest first.
That is the "each learner reports convergence continuously" of the brief. The verdict is recorded
with the snapshot it was computed from, so a test can check that "converged" is only said when it is
true, and checks fall on exact versions however late the CPU lets this loop wake.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from learners.async_rl import Array, AsyncQSettings, AsyncTask
from learners.convergence import ConvergenceMonitor
from learners.types import Convergence, Verdict


def supervise(task: AsyncTask, settings: AsyncQSettings, monitor: ConvergenceMonitor,
              take_snapshots: Callable[[], list[tuple[int, Array]]], running: Callable[[], bool],
              stop: Callable[[], None], poll_s: float = 0.001,
              ) -> tuple[Convergence, list[tuple[int, Array, Convergence]]]:
    """Poll until ``running()`` turns false; call ``stop()`` once the verdict is ``converged``
    (when the settings ask for it). Returns the last report and every checkpoint."""
    checkpoints: list[tuple[int, Array, Convergence]] = []
    last_checked = 0
    report = monitor.report()
    stopped = False
    while True:
        alive = running()  # read before the snapshots, so none taken before the agents stopped is missed
        for version, table in take_snapshots():
            sampled = (version - last_checked) * task.samples_per_update
            last_checked = version
            report = monitor.update(task.residual(table), task.greedy(table), samples=sampled)
            checkpoints.append((version, table, report))
            if settings.stop_when_converged and report.verdict is Verdict.CONVERGED and not stopped:
                stop()
                stopped = True
        if not alive:
            return report, checkpoints
        time.sleep(poll_s)
