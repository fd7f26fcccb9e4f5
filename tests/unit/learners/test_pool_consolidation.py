"""learners.pool_consolidation: which split job the pool moves onto one node, and where."""

from __future__ import annotations

import numpy as np
import pytest

from learners.pool_consolidation import consolidation


def test_the_job_over_most_nodes_goes_to_the_fullest_node_with_room_counting_what_it_holds_there():
    running = {"a": (("n1", 2), ("n2", 2)), "b": (("n1", 1), ("n2", 1), ("n3", 1)), "c": (("n4", 4),)}
    free = {"n1": 0, "n2": 1, "n3": 5, "n4": 0}
    # b is over 3 nodes; room for its 3 GPUs: n1 0+1, n2 1+1, n3 5+1 -> n3.
    assert consolidation(running, free) == ("b", "n3")
    # Without b: a (4 GPUs) has room on n3 (5) only; n2 holds 2 of a's and 1 free: 3 < 4.
    assert consolidation({k: v for k, v in running.items() if k != "b"}, free) == ("a", "n3")
    # Where its own GPUs make the room: n2 with 2 free and 2 of a's.
    assert consolidation({"a": running["a"]}, {"n1": 0, "n2": 2, "n3": 1}) == ("a", "n2")


def test_nothing_moves_when_no_job_is_split_or_no_node_has_room():
    assert consolidation({"c": (("n4", 4),)}, {"n1": 8, "n4": 0}) is None
    assert consolidation({"a": (("n1", 2), ("n2", 2))}, {"n1": 1, "n2": 1, "n3": 3}) is None
    assert consolidation({}, {"n1": 8}) is None


@pytest.mark.parametrize("seed", range(10))
def test_a_move_always_fits_and_puts_the_job_on_one_node(seed):
    """Random clusters: the chosen node has room for the whole job, counting its own GPUs there, and no other
    node with room is fuller; the job chosen is split."""
    rng = np.random.default_rng(seed)
    nodes = [f"n{i}" for i in range(int(rng.integers(2, 8)))]
    free = {n: int(rng.integers(0, 9)) for n in nodes}
    running = {}
    for j in range(int(rng.integers(1, 6))):
        parts = rng.choice(nodes, size=int(rng.integers(1, len(nodes) + 1)), replace=False)
        running[f"j{j}"] = tuple((str(n), int(rng.integers(1, 4))) for n in sorted(parts))
    move = consolidation(running, free)
    if move is None:
        for share in running.values():
            held, gpus = dict(share), sum(c for _, c in share)
            assert len(share) < 2 or all(free[n] + held.get(n, 0) < gpus for n in nodes)
        return
    job, node = move
    held, gpus = dict(running[job]), sum(c for _, c in running[job])
    assert len(running[job]) >= 2 and free[node] + held.get(node, 0) >= gpus
    assert all(free[n] + held.get(n, 0) >= free[node] + held.get(node, 0)
               for n in nodes if free[n] + held.get(n, 0) >= gpus)
