"""One control loop per managed workload: observe -> decide -> guard -> actuate -> reward -> learn.

The loop does no I/O itself: it talks to the world through two small ports, :class:`MetricsSource`
and :class:`Actuator`. The simulator and the operator plug in their own adapters, so a policy that
was evaluated in ``autocm sim`` is exactly the policy the operator runs.

Order within one interval (``step(now)``):

1. observe the interval that just ended; freeze (do nothing, learn nothing) when the metrics are
   missing, stale or not finite;
2. score the previous action with the :class:`~learners.Objective` and let the learner learn from
   that transition (the loop computes rewards so every learner is scored alike);
3. maybe roll back the previous change if its reward fell sharply (guarded learners only);
4. decide, guard (learners only; baselines keep their own stabilisation), and actuate in ``apply``
   mode, or only record the recommendation in ``recommend`` mode.

A second, faster timescale (optional, ``fast_step(now)``): a learner with ``fast_period_s > 0`` and a
``react`` method, over a source that can ``peek``, is shown the last few seconds between two intervals
and may add replicas at once (a backlog must not wait a whole interval). The fast path never learns,
never restarts pods and never removes replicas: the slow path keeps every other decision.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from controller.guards import GuardRails, GuardSettings, freeze_reason
from learners.base import Learner
from learners.objective import Objective
from learners.sharing import ShareMember
from learners.space import Config, ConfigSpace
from learners.types import Action, Convergence, Observation


class MetricsSource(Protocol):
    """Reads the latest interval's metrics of a workload (simulator state or PromQL)."""

    def observe(self, workload: str, now: float) -> Observation | None: ...


class PeekingSource(Protocol):
    """A source that can also show the last seconds without closing the interval (the fast timescale)."""

    def peek(self, workload: str, now: float) -> Observation | None: ...


def fast_period_s(learner: object, interval_s: float) -> float:
    """Seconds between fast steps of ``learner`` under a control interval of ``interval_s``: its
    ``fast_period_s`` when it has one and a ``react`` method, shortened so a whole number of fast steps
    fills an interval; 0 when it has no fast timescale (or one as slow as the interval)."""
    period = float(getattr(learner, "fast_period_s", 0.0) or 0.0)
    if period <= 0 or not callable(getattr(learner, "react", None)) or period >= interval_s:
        return 0.0
    return interval_s / math.ceil(interval_s / period - 1e-9)


class Actuator(Protocol):
    """Changes a workload's allocation (simulated allocation or Kubernetes patches)."""

    def apply(self, workload: str, config: Config, reason: str) -> None: ...


class Mode(StrEnum):
    RECOMMEND = "recommend"
    APPLY = "apply"


@dataclass(frozen=True)
class StepRecord:
    """Everything one interval did, for status, events, reports and tests."""

    time_s: float
    observation: Observation | None
    reward: float | None
    recommended: Config | None
    applied: Config | None
    frozen: str | None
    reason: str
    notes: tuple[str, ...]
    convergence: Convergence
    restarted: bool = False


def restarts_pods(space: ConfigSpace, before: Mapping[str, float], after: Mapping[str, float]) -> bool:
    """True when any knob that restarts pods changes between ``before`` and ``after``."""
    return any(k.restarts and before.get(k.name) != after.get(k.name) for k in space.knobs)


@dataclass
class ControlLoop:
    workload: str
    learner: Learner
    objective: Objective
    space: ConfigSpace
    source: MetricsSource
    actuator: Actuator
    mode: Mode = Mode.APPLY
    guard_settings: GuardSettings = field(default_factory=GuardSettings)
    history_limit: int = 0
    """Keep at most this many StepRecords in :attr:`history` (0 keeps none)."""
    sharing: ShareMember | None = None
    """Membership in a workload class (:mod:`learners.sharing`): after learning, exchange experience."""

    def __post_init__(self) -> None:
        self.guards = GuardRails(self.space, self.guard_settings)
        self._prev_obs: Observation | None = None
        self._prev_action: Action | None = None
        self._prev_restarted = False
        self.history: list[StepRecord] = []
        self.last: StepRecord | None = None
        self.fast_changes = 0
        """Changes the fast timescale made (:meth:`fast_step`)."""

    def _remember(self, rec: StepRecord) -> StepRecord:
        self.last = rec
        if self.history_limit:
            self.history.append(rec)
            if len(self.history) > self.history_limit:
                del self.history[0]
        return rec

    def step(self, now: float) -> StepRecord:
        obs = self.source.observe(self.workload, now)
        frozen = freeze_reason(obs, now, self.guard_settings)
        if frozen is not None:
            # Forget the pending transition: learning across a gap would credit the wrong action.
            self._prev_obs = None
            self._prev_action = None
            return self._remember(StepRecord(now, obs, None, None, None, frozen,
                                             f"frozen: {frozen}", (), self.learner.convergence()))
        assert obs is not None
        current = self.space.clip(obs.config)
        reward = self.objective.reward(obs, restarted=self._prev_restarted, config=current)
        if self._prev_obs is not None and self._prev_action is not None:
            self.learner.learn(self._prev_obs, self._prev_action, reward, obs)
        # That transition is consumed: if acting below fails (an API error), the next step must not
        # learn it a second time, nor credit this step's unexecuted action.
        self._prev_obs = self._prev_action = None
        if self.sharing is not None:
            self.sharing.step(now)

        notes: list[str] = []
        guarded = self.learner.uses_guard_rails
        rollback = self.guards.rollback_target(reward) if guarded else None
        if rollback is not None:
            action = Action(rollback, f"rollback: reward fell to {reward:.2f} after the last change")
            target = rollback
        else:
            action = self.learner.decide(obs)
            if guarded:
                target, notes = self.guards.check(current, action.target, now, reward)
            else:
                target = self.space.clip({**current, **action.target})

        restarted = restarts_pods(self.space, current, target)
        applied: Config | None = None
        if self.mode is Mode.APPLY:
            if target != current:
                reason = action.reason or "learner decision"
                self.actuator.apply(self.workload, target, reason)
                if guarded:
                    self.guards.record_change(current, now, reward)
            applied = target
            executed = Action(target, action.reason)
        else:
            restarted = False
            executed = Action(current, action.reason)
        self._prev_obs, self._prev_action, self._prev_restarted = obs, executed, restarted
        return self._remember(StepRecord(now, obs, reward, target, applied, None, action.reason,
                                         tuple(notes), self.learner.convergence(), restarted))

    def fast_step(self, now: float) -> StepRecord | None:
        """One step of the fast timescale (see the module docstring): None when the learner or the source
        has none, or when nothing was observed. Up only, no restart; the slow transition it falls
        inside is learned as usual (its observation measures the replicas that actually ran)."""
        react = getattr(self.learner, "react", None)
        peek = getattr(self.source, "peek", None)
        if react is None or peek is None:
            return None
        obs = peek(self.workload, now)
        if obs is None or freeze_reason(obs, now, GuardSettings()) is not None:
            return None
        action = react(obs)
        if action is None:
            return None
        current = self.space.clip(obs.config)
        target = self.space.clip({**current, **action.target})
        if restarts_pods(self.space, current, target) or any(target[k] < current[k] for k in target):
            return None  # the fast path adds replicas only; anything else is the slow path's decision
        applied: Config | None = None
        if self.mode is Mode.APPLY:
            if target != current:
                self.actuator.apply(self.workload, target, action.reason or "fast guard")
            applied = target
        if target != current:
            self.fast_changes += 1
        # not in ``history``: that holds one record per interval (reports and predictors read it so)
        return StepRecord(now, obs, None, target, applied, None, action.reason, ("fast",), self.learner.convergence())
