"""Static sizing: the allocation the workload asks for, held forever.

This is what a cluster does without any autoscaler, and the anchor every learner must beat on cost
without losing on the SLO.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from learners.base import RuleBased, register
from learners.objective import Objective
from learners.space import Config, ConfigSpace
from learners.types import Action, Observation


@dataclass(frozen=True)
class StaticSettings:
    """``config``: knob values to hold; knobs not named keep the space's default."""

    config: Mapping[str, float] = field(default_factory=dict)


class Static(RuleBased):
    name = "static"

    def __init__(self, space: ConfigSpace, settings: StaticSettings) -> None:
        unknown = sorted(set(settings.config) - set(space.names))
        if unknown:
            raise ValueError(f"static config names unknown knob(s) {unknown}")
        self.target: Config = space.clip({**space.default(), **settings.config})

    def decide(self, obs: Observation) -> Action:
        return Action(dict(self.target), "static allocation")


@register("static", StaticSettings, "hold the requested allocation (no autoscaling)")
def _make(space: ConfigSpace, objective: Objective, settings: StaticSettings) -> Static:
    return Static(space, settings)
