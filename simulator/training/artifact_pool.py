"""The Pollux artifact's node choice, for fidelity checks: each part goes to the node with most free GPUs.

The project's :class:`~simulator.cluster.GpuPool` packs (fullest node that fits first), like
Kubernetes' bin-packing score. The artifact's Tiresias instead fills a new job from the node with
the most free GPUs (``simulator/tiresias.py``: ``free_gpus.most_common(1)``, ties to the first
node). Which node a part lands on changes later jobs' shapes, hence their step times, so the
fidelity check can run on this pool to compare like with like. Grants still go through the pool's
own checked path, so it can never oversubscribe either.
"""

from __future__ import annotations

from collections.abc import Iterable

from simulator.cluster import Allocation, GpuPool


class MostFreeFirstPool(GpuPool):
    """A :class:`GpuPool` whose ``allocate_placement`` spreads like the artifact's Tiresias."""

    def allocate_placement(self, owner: str, placement: Iterable[int]) -> Allocation | None:
        parts = sorted((int(p) for p in placement), reverse=True)
        taken: set[str] = set()
        share: list[tuple[str, int]] = []
        for part in parts:
            options = [n for n in self.nodes if n.up and n.name not in taken and self.free_on(n.name) >= part]
            if not options:
                return None
            best = max(options, key=lambda n: self.free_on(n.name))  # max() keeps the first of ties
            taken.add(best.name)
            share.append((best.name, part))
        # The pool offers no public "grant on these nodes"; _grant is its own oversubscription-checked path.
        return self._grant(owner, tuple(share))


def grant_on_nodes(pool: GpuPool, owner: str, share: Iterable[tuple[str, int]]) -> Allocation | None:
    """Grant exactly ``share`` (node, GPUs), or None if a node is down, unknown or short of free GPUs.

    For schedulers that choose nodes themselves (Pollux's search places replicas on nodes). Goes through
    the pool's own oversubscription-checked grant, like :class:`MostFreeFirstPool`.
    """
    share = tuple((str(node), int(n)) for node, n in share if n)
    up = {n.name for n in pool.nodes if n.up}
    if len({node for node, _ in share}) != len(share):
        return None
    if not share or any(node not in up or pool.free_on(node) < n for node, n in share):
        return None
    return pool._grant(owner, share)
