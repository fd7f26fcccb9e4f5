"""Disturbances of a shared cluster: nodes that fail and get repaired, and co-located neighbours.

Failures: each node lives its own plain story (up for an exponential time, down for the repair
time, up again). The pool only marks the node down; whoever held GPUs there is told through the
listeners and must give them back, exactly as a kubelet's pods die with their node and their
controllers recreate them elsewhere.

Interference: GPUs sharing a node also share its PCIe switches, host memory bandwidth and CPUs,
so a tenant runs slower the more other tenants are placed on its node. The model is the simplest
one with a known answer: step time x (1 + slowdown x neighbours), neighbours counted at the start
of a step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import simpy

from simulator.cluster import Allocation, GpuPool

FailureListener = Callable[[str, list[Allocation]], None]
"""Told ``(node, allocations that lost GPUs)`` at the instant a node fails."""


@dataclass(frozen=True)
class FaultSettings:
    """Defaults of the failure model when a scenario enables it without numbers."""

    node_mtbf_hours: float = 24.0 * 30
    """Mean time between failures of one 8-GPU node. Meta's Llama 3 report (Dubey et al., 2024,
    sec. 3.3.4, Table 5) counts 419 unexpected interruptions in 54 days on 16,384 H100s, i.e. 2,048
    8-GPU hosts: 2,048 x 54 x 24 / 419 = about 6,300 h per host (not every interruption is a host
    failure, so the host rate is lower still). 30 days is a deliberately pessimistic round figure
    for a smaller, less curated cluster (about 9x the Llama 3 interruption rate per host)."""

    repair_s: float = 3600.0
    """Time a failed node stays out: a reboot plus health checks and re-admission, the common case
    for GPU/NVLink/driver faults (hardware replacements take longer and are rarer)."""

    slowdown_per_neighbour: float = 0.05
    """Step-time penalty per co-located tenant when a scenario enables interference without a number.
    An assumption, not a measurement: tenants on distinct GPUs of one node share only the host side
    (PCIe, CPU, memory bandwidth), so the penalty is small; scenarios should set their own."""


def node_failures(env: simpy.Environment, pool: GpuPool, rng: np.random.Generator, mtbf_s: float,
                  repair_s: float, on_fail: Sequence[FailureListener]):
    """SimPy process: start one life per node; each fails, is repaired and fails again, for ever.

    ``on_fail`` is read at every failure, so listeners appended after the start are told too.
    """
    if mtbf_s <= 0 or repair_s < 0:
        raise ValueError(f"need mtbf_s > 0 and repair_s >= 0, got {mtbf_s}, {repair_s}")
    for node in pool.nodes:
        env.process(_node_life(env, pool, node.name, rng, mtbf_s, repair_s, on_fail))
    yield env.timeout(0)


def _node_life(env: simpy.Environment, pool: GpuPool, node: str, rng: np.random.Generator, mtbf_s: float,
               repair_s: float, on_fail: Sequence[FailureListener]):
    while True:
        yield env.timeout(float(rng.exponential(mtbf_s)))
        lost = pool.fail_node(node)
        for listener in list(on_fail):
            listener(node, lost)
        yield env.timeout(repair_s)
        pool.repair_node(node)


def neighbours(pool: GpuPool, alloc: Allocation) -> int:
    """Most allocations of other owners sharing one node with ``alloc`` (the slowest worker sets the
    pace of a synchronous multi-node job). Another replica of the same service is another owner."""
    mine = set(alloc.nodes)
    counts = dict.fromkeys(mine, 0)
    for other in pool.grants():
        if other.owner == alloc.owner:
            continue
        for node in other.nodes:
            if node in mine:
                counts[node] += 1
    return max(counts.values(), default=0)


def slowdown_factor(pool: GpuPool, alloc: Allocation, slowdown_per_neighbour: float) -> float:
    """Step-time multiplier ``1 + slowdown x neighbours`` (exactly 1.0 when the slowdown is 0)."""
    if slowdown_per_neighbour <= 0.0:
        return 1.0
    return 1.0 + slowdown_per_neighbour * neighbours(pool, alloc)
