"""Which training job of a pool to move onto one node: a rule the operator's pool and its simulator share.

The operator's pool changes a job only when its GPU count changes; Kubernetes places the pods. A job placed
while the cluster was busy can stay split over nodes long after a node frees up, and the step times it then
reports (measured split, where gradients cross the network) tell the scheduler that more GPUs buy it little,
so it is never given the count change that would move it. In the simulator, on the Pollux paper's workloads,
such yolov3 jobs ran 4 GPUs over 2 nodes for 96% of their lives (docs/training-operator.md, session 28).
Pollux's own search moves a job between nodes whenever that pays for the restart; this rule is the pool's
version of the one move that needs no search: all of a split job onto one node that has room for it.

Pure: the caller says which jobs run where and what is free.
"""

from __future__ import annotations

from collections.abc import Mapping

SETTLE_ROUNDS = 10
"""A job is moved only after this many rounds since the pool last recreated it (or first saw it), so a job
just placed is not moved again at once, and one move is paid for by what it runs after."""


def consolidation(running: Mapping[str, tuple[tuple[str, int], ...]],
                  free: Mapping[str, int]) -> tuple[str, str] | None:
    """The one job to move onto one node this round, and the node; None if there is none.

    ``running``: per job that may move, its GPUs per node now. ``free``: GPUs free per node, not counting the
    moving job's own. Among jobs over two nodes or more, the one over the most nodes (then the most GPUs, then
    by name) for which some node has room for all its GPUs, counting what the job holds there; onto the fullest
    such node (then by name), to keep the larger holes for others.
    """
    best: tuple[tuple[int, int, str], str, str] | None = None
    for name, share in running.items():
        if len(share) < 2:
            continue
        gpus = sum(c for _, c in share)
        held = dict(share)
        room = [(free[n] + held.get(n, 0), n) for n in free if free[n] + held.get(n, 0) >= gpus]
        if not room:
            continue
        key = (-len(share), -gpus, name)
        if best is None or key < best[0]:
            best = (key, name, min(room)[1])
    return None if best is None else (best[1], best[2])
