"""Ray tasks as a ``concurrent.futures.Executor``, so ``autocm train --workers N --ray ADDRESS`` runs
its simulator episodes on a Ray cluster through the same coordinator as the process pool
(simulator/parallel_pretrain.py): the coordinator keeps at most N episodes in flight, Ray places them.

Each ``submit`` becomes one Ray task (``num_cpus=1``) whose ``ObjectRef.future()`` is the
``concurrent.futures.Future`` the coordinator waits on. The episode callable and the learner snapshot
travel by pickle, so a remote cluster needs autocm installed on its nodes (as for
controller/backends/ray_actors.py); a local head started with ``local`` inherits this environment.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

from controller.backends.ray_actors import ray_session


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


class RayExecutor(Executor):
    """Submit callables as Ray tasks on the cluster at ``address`` (see :func:`ray_session`)."""

    def __init__(self, address: str | None) -> None:
        self._session = ray_session(address)
        self._ray = self._session.__enter__()
        self._task = self._ray.remote(num_cpus=1)(_call)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if kwargs:
            raise TypeError("RayExecutor.submit takes positional arguments only")
        return self._task.remote(fn, *args).future()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if self._session is not None:
            self._session.__exit__(None, None, None)
            self._session = None
