"""Managed workloads read once per namespace per interval (one LIST), not once per policy (one GET each).

Every control step reads its workload's configuration. With 1,000 policies that was 1,000 GETs per
interval, each costing the operator ~1.5 ms of CPU in the HTTP client (header parsing, TLS) and the
apiserver a request; one LIST per (namespace, kind) costs one request and one JSON parse. The
listing is reused for ``cache_fraction`` of the shortest interval of the policies in that namespace
(as the shared Prometheus result is), so every step still sees a configuration younger than its
own interval.

Only the *observation* reads through this cache. Actuation reads its workload with a fresh GET
before it patches (a patch must start from the live object), and a policy that changed its
workload drops that workload from the listing, so its next observation GETs it afresh. A workload
missing from the listing (created since, or deleted) is also read with a GET: a deleted one then
raises the apiserver's 404 exactly as before.

A namespace with a single managed workload of a kind keeps its GET: listing could return many
unmanaged objects for one managed one.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from controller.kube import Kube, check_is_target, collection_path, workload_path
from controller.policy import TargetRef


@dataclass(frozen=True)
class WorkloadCacheSettings:
    cache_fraction: float = 0.9
    """A listing is reused for 0.9 of the shortest interval among the namespace's policies (the
    shared Prometheus cache's rule), so each interval lists at most once."""

    min_cache_s: float = 0.5
    """Floor of a listing's lifetime: never list a namespace more than twice a second."""

    min_targets_to_list: int = 2
    """LIST only where at least this many managed workloads of one kind share a namespace."""


@dataclass
class _Listing:
    at_s: float
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)


class WorkloadCache:
    """Workload objects by (namespace, kind), listed at most once per lifetime for all their policies.

    Callers must treat returned objects as read-only: they are shared between policies.
    """

    def __init__(self, kube: Kube, settings: WorkloadCacheSettings | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.kube = kube
        self.settings = settings or WorkloadCacheSettings()
        self.clock = clock
        self._lock = threading.Lock()
        self._group_locks: dict[str, threading.Lock] = {}
        self._intervals: dict[str, dict[str, float]] = {}  # collection -> policy key -> interval
        self._listings: dict[str, _Listing] = {}
        self.lists = 0

    # registration ----------------------------------------------------------------------------------
    def register(self, key: str, target: TargetRef, interval_s: float) -> None:
        with self._lock:
            self._unregister(key)
            self._intervals.setdefault(collection_path(target), {})[key] = interval_s

    def unregister(self, key: str) -> None:
        with self._lock:
            self._unregister(key)

    def _unregister(self, key: str) -> None:
        for collection, keys in list(self._intervals.items()):
            if keys.pop(key, None) is not None and not keys:
                del self._intervals[collection]
                self._listings.pop(collection, None)

    # reading ----------------------------------------------------------------------------------------
    def get(self, target: TargetRef) -> dict[str, Any]:
        """The workload object: from the collection's current listing, else a GET (which may 404)."""
        collection = collection_path(target)
        with self._lock:
            policies = self._intervals.get(collection, {})
            listed = len(policies) >= self.settings.min_targets_to_list
            ttl = max(self.settings.min_cache_s,
                      self.settings.cache_fraction * min(policies.values(), default=math.inf))
            group_lock = self._group_locks.setdefault(collection, threading.Lock())
        if listed:
            with group_lock:  # one policy lists, the others of that collection wait for its answer
                got = self._listings.get(collection)
                now = self.clock()
                if got is None or now - got.at_s >= ttl:
                    items = self.kube.get(collection).get("items", [])
                    self.lists += 1
                    # List items carry no apiVersion/kind (the list does); a GET's object has them.
                    got = _Listing(now, {o["metadata"]["name"]: {"apiVersion": target.api_version,
                                                                 "kind": target.kind, **o} for o in items})
                    self._listings[collection] = got
                obj = got.objects.get(target.name)
            if obj is not None:
                return dict(check_is_target(obj, target))
        return dict(check_is_target(self.kube.get(workload_path(target)), target))

    def invalidate(self, target: TargetRef) -> None:
        """Forget ``target``'s listed object (it was just changed): its next read is a fresh GET."""
        with self._lock:
            got = self._listings.get(collection_path(target))
            if got is not None:
                got.objects.pop(target.name, None)

