"""Guard rails between a learner's decision and the workload.

Each rail is a small function of (proposal, context) -> (proposal, note), composed in a fixed order
by :class:`GuardRails`, in the spirit of the VPA recommender's composable estimators. Every default
lives in :class:`GuardSettings` with the reason for its value. Baselines bypass these rails: they
keep their own stabilisation exactly as upstream implements it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from learners.space import Config, ConfigSpace
from learners.types import Observation


@dataclass(frozen=True)
class GuardSettings:
    max_steps_per_interval: int = 2
    """Largest move of any knob per interval, in knob steps. Two steps lets a learner react to a
    doubling of load within two intervals while bounding the damage of one bad decision."""

    cooldown_s: float = 60.0
    """No further change for this long after one. One control interval by default: long enough
    for new replicas' metrics to appear (cold starts are shorter than a minute in our scenarios)."""

    rollback_drop: float = 0.5
    """Roll back a change when the reward of the interval after it falls by more than this
    fraction of the reward scale (|reward before| + 1). Sharp drops only; learning handles the rest."""

    stale_after_s: float = 180.0
    """Metrics older than three default intervals are stale: freeze instead of acting on them."""

    required_metrics: tuple[str, ...] = ()
    """Metrics that must be present and finite before any decision is acted on."""


@dataclass
class GuardState:
    """What the rails remember between intervals."""

    last_change_s: float = -math.inf
    before_change: Config | None = None
    reward_before_change: float | None = None
    awaiting_verdict: bool = False
    notes: list[str] = field(default_factory=list)


def freeze_reason(obs: Observation | None, now: float, settings: GuardSettings) -> str | None:
    """Why the loop must not act on ``obs``, or None when it may."""
    if obs is None:
        return "no metrics for this workload"
    if now - obs.time_s > settings.stale_after_s:
        return f"metrics are stale ({now - obs.time_s:.0f}s old, limit {settings.stale_after_s:.0f}s)"
    missing = [m for m in settings.required_metrics if m not in obs.metrics]
    if missing:
        return f"metrics missing: {', '.join(missing)}"
    bad = [m for m, v in obs.metrics.items() if not math.isfinite(v)]
    if bad:
        return f"metrics not finite: {', '.join(sorted(bad))}"
    return None


def limit_steps(space: ConfigSpace, current: Mapping[str, float], target: Mapping[str, float],
                max_steps: int) -> tuple[Config, list[str]]:
    """Move each knob at most ``max_steps`` positions toward its target."""
    out: Config = {}
    notes = []
    for knob in space.knobs:
        cur_i = knob.index(current[knob.name])
        tgt_i = knob.index(target.get(knob.name, current[knob.name]))
        delta = max(-max_steps, min(max_steps, tgt_i - cur_i))
        if delta != tgt_i - cur_i:
            notes.append(f"{knob.name}: step limited to {delta:+d}")
        out[knob.name] = knob.move(current[knob.name], delta)
    return out, notes


class GuardRails:
    """Bounds, step limits, cooldown, freeze on bad metrics and rollback on a sharp reward drop."""

    def __init__(self, space: ConfigSpace, settings: GuardSettings | None = None) -> None:
        self.space = space
        self.settings = settings or GuardSettings()
        self.state = GuardState()

    def rollback_target(self, reward: float) -> Config | None:
        """After a change, compare the new interval's reward with the one before; maybe undo."""
        st = self.state
        if not st.awaiting_verdict:
            return None
        st.awaiting_verdict = False
        before = st.reward_before_change
        if before is None or st.before_change is None:
            return None
        if before - reward > self.settings.rollback_drop * (abs(before) + 1.0):
            return dict(st.before_change)
        return None

    def check(self, current: Config, target: Config, now: float,
              reward_now: float | None) -> tuple[Config, list[str]]:
        """The configuration the loop may apply, and notes explaining every adjustment."""
        s = self.settings
        notes: list[str] = []
        bounded = self.space.clip(target)
        if bounded != {**current, **target} and bounded != target:
            notes.append("clipped to bounds")
        if bounded == current:
            return dict(current), notes
        if now - self.state.last_change_s < s.cooldown_s:
            left = s.cooldown_s - (now - self.state.last_change_s)
            return dict(current), [*notes, f"cooldown: {left:.0f}s left since last change"]
        limited, step_notes = limit_steps(self.space, current, bounded, s.max_steps_per_interval)
        return limited, notes + step_notes

    def record_change(self, before: Config, now: float, reward_before: float | None) -> None:
        self.state.last_change_s = now
        self.state.before_change = dict(before)
        self.state.reward_before_change = reward_before
        self.state.awaiting_verdict = True
