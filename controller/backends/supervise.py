"""The one supervision loop both backends share: watch the store, feed the monitor, stop on convergence.

The agents never wait for it: it reads a snapshot every ``poll_s`` and, once ``check_every`` more
versions were accepted, feeds the monitor the task's residual and greedy policy. That is the
"each learner reports convergence continuously" of the brief; the verdict is recorded with the
snapshot it was computed from, so a test can check that "converged" is only said when it is true.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from learners.async_rl import Array, AsyncQSettings, AsyncTask
from learners.convergence import ConvergenceMonitor
from learners.types import Convergence, Verdict


def supervise(task: AsyncTask, settings: AsyncQSettings, monitor: ConvergenceMonitor,
              read: Callable[[], tuple[int, Array]], running: Callable[[], bool], stop: Callable[[], None],
              poll_s: float = 0.001) -> tuple[Convergence, list[tuple[int, Array, Convergence]]]:
    """Poll until ``running()`` turns false; call ``stop()`` once the verdict is ``converged``
    (when the settings ask for it). Returns the last report and every checkpoint."""
    checkpoints: list[tuple[int, Array, Convergence]] = []
    next_check, last_checked = settings.check_every, 0
    report = monitor.report()
    stopped = False
    while running():
        version, table = read()
        if version >= next_check:
            next_check = version + settings.check_every
            sampled = (version - last_checked) * task.samples_per_update
            last_checked = version
            report = monitor.update(task.residual(table), task.greedy(table), samples=sampled)
            checkpoints.append((version, table, report))
            if settings.stop_when_converged and report.verdict is Verdict.CONVERGED and not stopped:
                stop()
                stopped = True
        time.sleep(poll_s)
    return report, checkpoints
