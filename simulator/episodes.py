"""Record what a control loop saw, interval by interval, in one simulated run of an inference scenario.

:func:`simulator.workloads.simulate` returns totals; predictors and diagnostics need the sequence of
observations itself (and the learner, to read what it learned). This builds the same run as
``simulate`` does for inference services (same seeded trace, GPU pool, node failures and
interference) with each service's :class:`~controller.loop.ControlLoop` keeping its history.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import simpy

from controller.loop import ControlLoop, StepRecord
from learners.base import Learner
from simulator.faults import FailureListener, FaultSettings, node_failures
from simulator.inference import InferenceService
from simulator.scenario import Scenario, ScenarioError
from simulator.workloads import PolicyRun, _build_service, _drive, _learner, _pool, duration_of, service_settings


@dataclass
class Episode:
    """One service's loop history in one run, with the learner as it ended."""

    service: str
    seed: int
    history: list[StepRecord]
    learner: Learner
    period_s: float
    failure_times_s: list[float]


def record(scenario: Scenario, prun: PolicyRun, seed: int, duration_s: float | None = None) -> list[Episode]:
    """Run ``prun`` on every inference service of ``scenario`` at ``seed``; one Episode per service."""
    if scenario.training:
        raise ScenarioError(f"{scenario.path}: episodes are recorded for inference-only scenarios")
    env = simpy.Environment()
    pool = _pool(scenario)
    defaults, fail = FaultSettings(), scenario.raw.get("failures", {})
    interference = scenario.raw.get("interference", {})
    slowdown = float(interference.get("slowdown_per_neighbour", defaults.slowdown_per_neighbour)) \
        if interference.get("enabled") else 0.0
    failure_times: list[float] = []
    listeners: list[FailureListener] = [lambda node, lost: failure_times.append(env.now)]
    if fail.get("enabled"):
        # the same stream simulate() uses for its first pool, so the failures are the same
        env.process(node_failures(env, pool, np.random.default_rng([seed, 0xFA, 0]),
                                  3600.0 * float(fail.get("node_mtbf_hours", defaults.node_mtbf_hours)),
                                  float(fail.get("repair_s", defaults.repair_s)), listeners))
    out: list[tuple[ControlLoop, Learner, float]] = []
    for spec in scenario.inference:
        svc = _build_service(scenario, spec, seed)
        learner = _learner(scenario, prun, svc)
        service = InferenceService(env, pool, svc.perf, svc.trace,
                                   service_settings(spec, svc.space, prun.learner, slowdown), seed)
        listeners.append(service.node_failed)
        loop = ControlLoop(spec["name"], learner, svc.objective, svc.space, service, service, history_limit=10**7)
        period = float(getattr(learner, "period_s", scenario.control_interval_s))
        env.process(_drive(env, loop, period))
        out.append((loop, learner, period))
    env.run(until=duration_s if duration_s is not None else duration_of(scenario))
    return [Episode(loop.workload, seed, loop.history, learner, period, failure_times)
            for loop, learner, period in out]

