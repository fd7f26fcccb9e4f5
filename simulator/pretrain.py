"""Pretraining a learner in the simulator (``autocm train``): VCONF's model-based initialisation.

The learner runs the scenario's first inference service for several episodes, each a different
seed (so a load-shape trace differs every episode), keeping everything it learned between episodes.
The result is a checkpoint in the operator's format (``controller.checkpoint``), stamped with the
scenario, its hash, the seeds and the settings it came from, which ``autocm sim`` (policy field
``checkpoint``) and the operator (``autocm push-checkpoint``) start from.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import simpy

from controller.checkpoint import encode
from controller.loop import ControlLoop
from learners.base import create
from learners.objective import Objective
from learners.space import ConfigSpace
from simulator.inference import InferenceService
from simulator.report import versions
from simulator.scenario import Scenario, ScenarioError
from simulator.workloads import (
    _build_service,
    _drain,
    _drive,
    _pool,
    _ticker,
    drain_grace_s,
    duration_of,
    service_settings,
)


@dataclass
class Episode:
    seed: int
    slo_attainment: float
    gpu_hours: float
    changes: int
    verdict: str
    wall_s: float


@dataclass
class Pretrained:
    learner_name: str
    blob: bytes
    episodes: list[Episode] = field(default_factory=list)


def run_episode(scenario: Scenario, learner: Any, learner_name: str, seed: int,
                tick: Callable[[float], None] | None = None) -> dict[str, Any]:
    """One episode of the scenario's first inference service with ``learner`` in the loop (it keeps
    what it learns); the service's summary (SLO attainment, GPU-hours, config changes). Like an
    ``autocm sim`` run it drains after the last arrival (``drain_grace_s``), the loop still deciding."""
    spec = scenario.inference[0]
    env = simpy.Environment()
    svc = _build_service(scenario, spec, seed)
    service = InferenceService(env, _pool(scenario), svc.perf, svc.trace,
                               service_settings(spec, svc.space, learner_name), seed)
    loop = ControlLoop(spec["name"], learner, svc.objective, svc.space, service, service)
    env.process(_drive(env, loop, float(getattr(learner, "period_s", scenario.control_interval_s))))
    if tick is not None:
        env.process(_ticker(env, tick, scenario.control_interval_s))
    end = duration_of(scenario)
    env.run(until=end)
    # drain as every evaluation run does (simulator.workloads.simulate): a request that arrived in the
    # last seconds is judged when it finishes, not counted as a miss because the clock stopped
    svc.service = service
    _drain(env, [svc], end + drain_grace_s(scenario))
    return service.summary()


def make_learner(scenario: Scenario, learner_name: str, settings: Mapping[str, Any] | None,
                 seed: int) -> tuple[Any, ConfigSpace, Objective]:
    """A fresh learner for the scenario's first inference service, with that service's space and objective."""
    if not scenario.inference:
        raise ScenarioError(f"{scenario.path}: autocm train needs an inference service to train on")
    svc = _build_service(scenario, scenario.inference[0], seed)
    try:
        return create(learner_name, svc.space, svc.objective, settings), svc.space, svc.objective
    except (TypeError, ValueError) as exc:
        raise ScenarioError(f"learner {learner_name!r}: {exc}") from None
    except Exception as exc:  # e.g. a negative layer width or learning rate: the settings are at fault
        raise ScenarioError(f"learner {learner_name!r} cannot be built with settings "
                            f"{dict(settings or {})}: {type(exc).__name__}: {exc}") from None


def provenance(scenario: Scenario, learner_name: str, settings: Mapping[str, Any] | None,
               episodes: list[Episode]) -> dict[str, Any]:
    return {"scenario": scenario.name, "scenario_sha256": scenario.digest, "seeds": [e.seed for e in episodes],
            "learner": learner_name, "settings": dict(settings or {}), "versions": versions(),
            "episodes": [e.__dict__ for e in episodes]}


def pretrain(scenario: Scenario, learner_name: str, settings: Mapping[str, Any] | None, episodes: int,
             first_seed: int, tick: Callable[[float], None] | None = None) -> Pretrained:
    learner, space, _ = make_learner(scenario, learner_name, settings, first_seed)
    done: list[Episode] = []
    for k in range(episodes):
        seed = first_seed + k
        t0 = time.perf_counter()
        s = run_episode(scenario, learner, learner_name, seed, tick)
        done.append(Episode(seed, s["slo_attainment"], s["gpu_hours"], s["config_changes"],
                            learner.convergence().verdict.value, time.perf_counter() - t0))
    state = dict(learner.state_dict())
    state["provenance"] = provenance(scenario, learner_name, settings, done)
    return Pretrained(learner_name, encode(learner_name, space, state, samples=len(done)), done)


def save(result: Pretrained, path: Path) -> int:
    """Write the checkpoint, creating missing folders; the file appears whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(result.blob)
    partial.replace(path)
    return len(result.blob)
