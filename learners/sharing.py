"""Sharing experience within a workload class: asynchronous, bounded-staleness, in process, no I/O.

Workloads that serve the same model on the same hardware with the same knob space learn the same
capacity curve (P(tail miss | load per GPU, TP, batch, burst)); each one alone sees only its own
trace. Here every member of a CLASS periodically publishes the experience
its learner gathered since its last publish (``SloRl.take_experience``) to a :class:`ShareBoard`, and
absorbs the batches its peers published since it last looked (``SloRl.absorb``), so a service that has
never seen a load level can still have evidence about it. Only the capacity rows cross
(:data:`SHARED_FIELDS`); the demand forecast, burst state, alarm and cold start stay each workload's own
(``absorb(..., demand=False)``).

Asynchronous with bounded staleness (as in :mod:`simulator.parallel_pretrain`): nobody waits for
anybody; a member absorbs a peer's batch only while it is at most ``max_age_s`` old (older batches are
dropped, and counted), and never its own. The board is thread-safe: the operator steps policies on a
thread pool.

Safety (the class key is hostile input, see :func:`class_key`): a class is always scoped to the
policy's namespace unless the operator enables cross-namespace classes, and it includes the learner
name and the exact knob space, so a tenant can neither read nor poison another tenant's learner by
choosing a label, and experience never crosses learners whose features differ.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from learners.space import ConfigSpace

CLASS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$")
"""A class label is a DNS-1123-style name (63 characters at most): it goes into keys and status text."""

SHARED_FIELDS = ("capacity_x", "capacity_y")
"""What crosses between members: the capacity model's rows (P(tail miss | load per GPU, TP, batch,
burst) is a property of the model on the hardware). Not the request rates (a peer's traffic is not this
workload's), the burst state, the violation alarm's rows (trends of one workload's own metrics) nor the
observed cold start: on inference-shared-class (32 nodes), sharing the cold start as well made the SLO
hold later (mean 76 vs 43 intervals on 10 seeds) and adding the alarm rows made no clear difference
(54 vs 43; docs/learned-autoscaler.md)."""


class ShareError(ValueError):
    """A sharing request that is refused (bad label, or a class outside the policy's namespace)."""


class Sharing(Protocol):
    """A learner that can share: slo-rl's experience interface."""

    name: str

    def record_experience(self) -> None: ...
    def take_experience(self) -> dict[str, Any]: ...
    def absorb(self, batches: list[Mapping[str, Any]], *, demand: bool = True) -> None: ...


def space_signature(space: ConfigSpace) -> tuple:
    """The knob space exactly (names, values, order): learners with other knobs have other features."""
    return tuple((k.name, tuple(float(v) for v in k.values)) for k in space.knobs)


def class_key(label: Any, namespace: str, learner: str, space: ConfigSpace, identity: str = "",
              cross_namespace: bool = False) -> tuple:
    """The class a member shares in, from a tenant-supplied ``label``.

    ``label`` is the tenant's claim that these workloads serve one model on one hardware type (the
    simulator also adds ``identity``: ``model/hardware`` of the service). A label ``ns/name`` names a
    class of another namespace and is refused unless ``cross_namespace`` (an operator chart setting)
    is on; without a slash, the class is the policy's own namespace's. The key also holds the learner
    name and the knob space, so two policies with one label but other learners or knobs never share.
    """
    if not isinstance(label, str):
        raise ShareError(f"expected a class name (a string), got {label!r}")
    scope, sep, name = label.partition("/")
    if not sep:
        scope, name = namespace, label
    elif not cross_namespace and scope != namespace:
        raise ShareError(f"class {label!r} is in namespace {scope!r}: a policy shares only within its own "
                         f"namespace ({namespace!r}) unless the operator enables cross-namespace classes")
    if not CLASS_LABEL.fullmatch(name) or (sep and not CLASS_LABEL.fullmatch(scope)):
        raise ShareError(f"class {label!r}: expected a DNS-1123 name (lower case, digits, '-', '.'; 63 at most)")
    if not cross_namespace:
        scope = namespace
    return (scope, name, identity, learner, space_signature(space))


@dataclass
class _Batch:
    seq: int
    member: str
    time_s: float
    rows: dict[str, Any]


@dataclass
class ShareBoard:
    """Batches published per class, kept ``max_age_s``; a member reads those newer than it last saw."""

    max_age_s: float = 600.0
    _batches: dict[tuple, list[_Batch]] = field(default_factory=dict)
    _seq: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def publish(self, key: tuple, member: str, now: float, rows: Mapping[str, Any]) -> bool:
        """Post ``member``'s new rows to its class; False when there was nothing to share."""
        shared: dict[str, Any] = {"capacity_x": [], "capacity_y": [], "alarm_x": [], "alarm_y": []}
        shared.update({k: rows[k] for k in SHARED_FIELDS if k in rows})
        if not shared["capacity_x"] and not shared["alarm_x"]:
            return False
        with self._lock:
            self._seq += 1
            self._batches.setdefault(key, []).append(_Batch(self._seq, member, now, shared))
            self._prune(key, now)
        return True

    def _prune(self, key: tuple, now: float) -> None:
        kept = [b for b in self._batches.get(key, []) if now - b.time_s <= self.max_age_s]
        if kept:
            self._batches[key] = kept
        else:
            self._batches.pop(key, None)

    def since(self, key: tuple, member: str, after_seq: int, now: float) -> tuple[list[_Batch], int, int]:
        """Peers' batches newer than ``after_seq`` and at most ``max_age_s`` old; the newest sequence
        number seen; and how many newer batches were too stale to use."""
        with self._lock:
            fresh, stale, last = [], 0, after_seq
            for b in self._batches.get(key, []):
                if b.seq <= after_seq:
                    continue
                last = max(last, b.seq)
                if b.member == member:
                    continue
                if now - b.time_s > self.max_age_s:
                    stale += 1
                else:
                    fresh.append(b)
            return fresh, last, stale

    def forget(self, member: str) -> None:
        """Drop a removed member's batches (a deleted policy's experience leaves with it)."""
        with self._lock:
            for key in list(self._batches):
                self._batches[key] = [b for b in self._batches[key] if b.member != member]
                if not self._batches[key]:
                    del self._batches[key]


@dataclass
class ShareMember:
    """One learner in one class: publishes every ``every_s`` and absorbs its peers' fresh batches."""

    board: ShareBoard
    key: tuple
    member: str
    learner: Sharing
    every_s: float = 300.0
    peer_fraction: float = 1.0
    """Absorb this fraction of each peer batch's rows (every k-th row): peers' rows are evidence about the
    class, not about this workload, so counting each fully can make the posterior over-confident."""
    last_s: float | None = None
    seen: int = 0
    published_batches: int = 0
    absorbed_batches: int = 0
    absorbed_rows: int = 0
    dropped_stale: int = 0

    def __post_init__(self) -> None:
        self.learner.record_experience()

    def step(self, now: float) -> None:
        """Called after the loop's ``learn``: nothing until ``every_s`` has passed since the last exchange."""
        if self.last_s is None:
            self.last_s = now
            return
        if now - self.last_s < self.every_s:
            return
        self.last_s = now
        if self.board.publish(self.key, self.member, now, self.learner.take_experience()):
            self.published_batches += 1
        fresh, self.seen, stale = self.board.since(self.key, self.member, self.seen, now)
        self.dropped_stale += stale
        if fresh:
            self.learner.absorb([thin(b.rows, self.peer_fraction) for b in fresh], demand=False)
            self.absorbed_batches += len(fresh)
            self.absorbed_rows += sum(len(thin(b.rows, self.peer_fraction).get("capacity_x", [])) for b in fresh)


    def carry_from(self, old: ShareMember) -> None:
        """Continue ``old``'s membership (a spec change rebuilt the policy's runner): absorb nothing twice and
        keep counting where it left off."""
        self.seen, self.last_s = old.seen, old.last_s
        self.published_batches, self.absorbed_batches = old.published_batches, old.absorbed_batches
        self.absorbed_rows, self.dropped_stale = old.absorbed_rows, old.dropped_stale

    def report(self) -> dict[str, Any]:
        """What a policy's status shows of its membership: the class and the exchange so far."""
        scope, name = self.key[0], self.key[1]
        return {"class": f"{scope}/{name}", "everySeconds": self.every_s, "published": self.published_batches,
                "absorbed": self.absorbed_batches, "absorbedRows": self.absorbed_rows,
                "droppedStale": self.dropped_stale}


def thin(rows: Mapping[str, Any], fraction: float) -> dict[str, Any]:
    """Every ``round(1 / fraction)``-th row of the capacity and alarm experience (deterministic)."""
    if fraction >= 1.0:
        return dict(rows)
    step = max(1, round(1.0 / max(fraction, 1e-9)))
    out = dict(rows)
    for k in ("capacity_x", "capacity_y", "alarm_x", "alarm_y"):
        if k in rows:
            out[k] = list(rows[k])[::step]
    return out


def can_share(learner: Any) -> bool:
    return all(hasattr(learner, m) for m in ("record_experience", "take_experience", "absorb"))


