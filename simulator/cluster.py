"""Nodes, GPUs and the pool that hands them out.

The pool is the one place GPUs are granted, and it can never oversubscribe: every grant is checked
against what each node has free, and :meth:`GpuPool.check` re-derives the books from the grants so
tests can assert the invariant at any instant. Placement is "pack first" (fill the fullest node that
fits), which is what both Kubernetes' bin-packing scoring for extended resources and the Pollux
artifact's placement heuristic aim for: fewer nodes per job means less cross-node synchronisation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class Node:
    name: str
    gpus: int
    gpu_type: str = "a100-80gb"
    cpu_cores: float = 64.0
    memory_bytes: float = 512 * 2**30
    up: bool = True


@dataclass(frozen=True)
class Allocation:
    """GPUs granted to one owner: node name -> GPU count on that node."""

    owner: str
    per_node: tuple[tuple[str, int], ...]

    @property
    def gpus(self) -> int:
        return sum(n for _, n in self.per_node)

    @property
    def placement(self) -> str:
        """Pollux's placement string: GPUs per node, largest first (``"22"`` = 2 nodes x 2 GPUs)."""
        return "".join(str(n) for n in sorted((n for _, n in self.per_node), reverse=True))

    @property
    def nodes(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.per_node)


@dataclass
class GpuPool:
    """The cluster's GPUs: grants, releases and the never-oversubscribed invariant."""

    nodes: list[Node]
    _used: dict[str, int] = field(default_factory=dict)
    _grants: dict[int, Allocation] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [n.name for n in self.nodes]
        if len(set(names)) != len(names):
            raise ValueError("node names must be unique")
        self._by_name = {n.name: n for n in self.nodes}
        for n in self.nodes:
            self._used.setdefault(n.name, 0)

    @classmethod
    def uniform(cls, count: int, gpus_per_node: int, gpu_type: str = "a100-80gb") -> GpuPool:
        return cls([Node(f"node-{i:03d}", gpus_per_node, gpu_type) for i in range(count)])

    @property
    def capacity(self) -> int:
        return sum(n.gpus for n in self.nodes if n.up)

    @property
    def used(self) -> int:
        return sum(self._used.values())

    @property
    def free(self) -> int:
        return sum(self.free_on(n.name) for n in self.nodes)

    def free_on(self, node: str) -> int:
        n = self._by_name[node]
        return n.gpus - self._used[node] if n.up else 0

    def allocate(self, owner: str, gpus: int, gpu_type: str | None = None,
                 max_nodes: int | None = None, whole_node_multiple: int | None = None) -> Allocation | None:
        """Grant ``gpus`` GPUs, packed onto as few nodes as possible, or None if they do not fit.

        ``whole_node_multiple``: every node share must be a multiple of this (tensor-parallel replicas
        need all their GPUs on one node: pass the replica size and ``max_nodes=1``).
        """
        if gpus <= 0:
            raise ValueError(f"cannot allocate {gpus} GPUs")
        candidates = [n for n in self.nodes if n.up and (gpu_type is None or n.gpu_type == gpu_type)]
        # Fullest node that still fits everything first; else spread over the freest nodes.
        fitting = [n for n in candidates if self.free_on(n.name) >= gpus]
        if fitting:
            best = min(fitting, key=lambda n: (self.free_on(n.name), n.name))
            return self._grant(owner, ((best.name, gpus),))
        if max_nodes == 1:
            return None
        share: list[tuple[str, int]] = []
        left = gpus
        for n in sorted(candidates, key=lambda n: (-self.free_on(n.name), n.name)):
            take = min(self.free_on(n.name), left)
            if whole_node_multiple:
                take -= take % whole_node_multiple
            if take > 0:
                share.append((n.name, take))
                left -= take
            if left == 0:
                break
        if left > 0 or (max_nodes is not None and len(share) > max_nodes):
            return None
        return self._grant(owner, tuple(share))

    def allocate_placement(self, owner: str, placement: Iterable[int]) -> Allocation | None:
        """Grant a given shape (GPUs per node), each part on a distinct node, or None."""
        parts = sorted((int(p) for p in placement), reverse=True)
        taken: set[str] = set()
        share = []
        for part in parts:
            options = [n for n in self.nodes if n.up and n.name not in taken and self.free_on(n.name) >= part]
            if not options:
                return None
            best = min(options, key=lambda n: (self.free_on(n.name), n.name))
            taken.add(best.name)
            share.append((best.name, part))
        return self._grant(owner, tuple(share))

    def _grant(self, owner: str, share: tuple[tuple[str, int], ...]) -> Allocation:
        for name, n in share:
            if self.free_on(name) < n:
                raise AssertionError(f"oversubscription of {name}: {n} asked, {self.free_on(name)} free")
        for name, n in share:
            self._used[name] += n
        alloc = Allocation(owner, share)
        self._grants[id(alloc)] = alloc
        return alloc

    def release(self, alloc: Allocation) -> None:
        if self._grants.pop(id(alloc), None) is None:
            raise ValueError(f"allocation of {alloc.owner} released twice or never granted")
        for name, n in alloc.per_node:
            self._used[name] -= n

    def grants(self) -> list[Allocation]:
        return list(self._grants.values())

    def fail_node(self, node: str) -> list[Allocation]:
        """Mark a node down; return the grants that lost GPUs (their owners must release them)."""
        self._by_name[node].up = False
        return [a for a in self._grants.values() if node in a.nodes]

    def repair_node(self, node: str) -> None:
        self._by_name[node].up = True

    def check(self) -> None:
        """Re-derive usage from the grants and assert no GPU was ever given twice."""
        derived = {n.name: 0 for n in self.nodes}
        for a in self._grants.values():
            for name, n in a.per_node:
                derived[name] += n
        for n in self.nodes:
            if derived[n.name] != self._used[n.name]:
                raise AssertionError(f"books disagree on {n.name}: {derived[n.name]} vs {self._used[n.name]}")
            if derived[n.name] > n.gpus:
                raise AssertionError(f"{n.name} oversubscribed: {derived[n.name]} > {n.gpus}")
