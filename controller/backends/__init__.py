"""Execution backends for asynchronous parallel learners: the same agents, run as threads or as Ray actors.

``learners/`` keeps what an agent computes and how a store applies it (:class:`learners.async_rl.AsyncTask`);
a backend only decides where agents and the store live and moves snapshots and updates between them.
Both backends return the same :class:`learners.async_rl.AsyncRunResult` and share one supervisor
(:mod:`controller.backends.supervise`), which feeds the convergence monitor while agents run.

They live in ``controller`` because the controller is the composition root that owns processes and
I/O, and because ``learners`` may import neither ``controller`` nor ``simulator`` (pyproject
``[tool.importlinter]``); the simulator and the CLI may use them. Ray is an optional extra
(``pip install 'autocm[ray]'``) and is imported only inside :func:`run_ray`.
"""

from controller.backends.ray_actors import RayUnavailableError, run_ray
from controller.backends.threads import run_threads

__all__ = ["RayUnavailableError", "run_ray", "run_threads"]
