"""The ``Learner`` interface and the registry that scenarios and custom resources name learners by.

One module per learner behind this interface, like KEDA's scalers: a learner module calls
:func:`register` with its name and a settings dataclass; :func:`create` builds one from a name and a
plain mapping of settings (validated against the dataclass, so a typo in a scenario file is an error
that names the field, not a silent default).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from learners.objective import Objective
from learners.space import ConfigSpace
from learners.types import Action, Convergence, Observation


@runtime_checkable
class Learner(Protocol):
    """Anything that sizes a workload.

    ``decide`` sees the latest observation and returns the configuration it wants.
    ``learn`` is told what happened after the previous decision (the reward is computed by the
    control loop from the :class:`Objective`, so every learner is scored the same way).
    Rule-based baselines implement ``learn`` as a no-op and report ``Verdict.NOT_LEARNING``.
    ``uses_guard_rails`` is False for baselines, which keep their own stabilisation and rate
    limits exactly as upstream implements them.
    """

    name: str
    uses_guard_rails: bool

    def decide(self, obs: Observation) -> Action: ...

    def learn(self, prev: Observation, action: Action, reward: float, obs: Observation) -> None: ...

    def convergence(self) -> Convergence: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


class RuleBased:
    """Mixin for baselines: no learning, no state worth saving, no guard rails."""

    uses_guard_rails = False

    def learn(self, prev: Observation, action: Action, reward: float, obs: Observation) -> None:
        return None

    def convergence(self) -> Convergence:
        return Convergence.not_learning()

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        return None


Factory = Callable[[ConfigSpace, Objective, Any], Learner]


@dataclass(frozen=True)
class LearnerSpec:
    """A registered learner: its name, its settings type and how to build it."""

    name: str
    settings: type
    factory: Factory
    summary: str = ""
    kinds: tuple[str, ...] = field(default=("inference", "training"))


_REGISTRY: dict[str, LearnerSpec] = {}


def register(
    name: str, settings: type, summary: str = "", kinds: tuple[str, ...] = ("inference", "training")
) -> Callable[[Factory], Factory]:
    """Decorator: ``@register("hpa", HPASettings, "Kubernetes HPA")`` on a factory function."""

    if not dataclasses.is_dataclass(settings):
        raise TypeError(f"settings for learner {name!r} must be a dataclass")

    def wrap(factory: Factory) -> Factory:
        if name in _REGISTRY:
            raise ValueError(f"learner {name!r} registered twice")
        _REGISTRY[name] = LearnerSpec(name, settings, factory, summary, kinds)
        return factory

    return wrap


def registered() -> dict[str, LearnerSpec]:
    """Every known learner, by name (importing :mod:`learners.catalog` fills the registry)."""
    import learners.catalog  # noqa: F401  (side effect: registration)

    return dict(sorted(_REGISTRY.items()))


def parse_settings(spec: LearnerSpec, raw: Mapping[str, Any] | None) -> Any:
    """Build the settings dataclass from a plain mapping; unknown or ill-typed fields are errors."""
    raw = dict(raw or {})
    fields = {f.name: f for f in dataclasses.fields(spec.settings)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ValueError(
            f"learner {spec.name!r} has no setting(s) {unknown}; known settings: {sorted(fields)}"
        )
    return spec.settings(**raw)


def create(
    name: str, space: ConfigSpace, objective: Objective, settings: Mapping[str, Any] | None = None
) -> Learner:
    """A new learner by registered name."""
    known = registered()
    if name not in known:
        raise ValueError(f"unknown learner {name!r}; known learners: {sorted(known)}")
    spec = known[name]
    return spec.factory(space, objective, parse_settings(spec, settings))
