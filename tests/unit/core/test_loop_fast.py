"""The control loop's fast timescale (``ControlLoop.fast_step``): a learner with ``fast_period_s`` and ``react``,
over a source that can ``peek``, may add replicas between two intervals; nothing else goes through it."""

from __future__ import annotations

import pytest
from test_loop import Scripted

from controller.loop import ControlLoop, Mode, fast_period_s
from learners import Action, ConfigSpace, Knob, Objective, Observation

SPACE = ConfigSpace.of(Knob("replicas", 1, 16, 1, default=2),
                       Knob("gpus_per_replica", choices=(4, 8), default=4, restarts=True))
OBJECTIVE = Objective(metric="ttft_p99_seconds", target=10.0, attainment=0.99)


class Reacting(Scripted):
    """A learner whose fast reaction is scripted; it records what the fast path showed it."""

    name = "reacting"
    uses_guard_rails = False

    def __init__(self, reactions, period=15.0):
        super().__init__([])
        self.reactions = list(reactions)
        self.fast_period_s = period
        self.seen = []

    def react(self, obs):
        self.seen.append(obs)
        return self.reactions.pop(0) if self.reactions else None


class World:
    def __init__(self, peeks=True):
        self.config = {"replicas": 2.0, "gpus_per_replica": 4.0}
        self.applied = []
        if not peeks:
            self.peek = None

    def observe(self, workload, now):
        return Observation(now, dict(self.config), {"slo_attainment": 1.0}, interval_s=60)

    def peek(self, workload, now):
        return Observation(now, dict(self.config), {"queue_length": 40.0}, interval_s=15)

    def apply(self, workload, config, reason):
        self.applied.append((dict(config), reason))
        self.config = dict(config)


def _loop(learner, world, mode=Mode.APPLY):
    return ControlLoop("svc", learner, OBJECTIVE, SPACE, world, world, mode=mode)


def test_a_fast_step_adds_replicas_at_once_and_learns_nothing():
    learner, world = Reacting([Action({"replicas": 6.0}, "backlog")]), World()
    loop = _loop(learner, world)
    loop.step(60.0)
    rec = loop.fast_step(75.0)
    assert world.applied == [({"replicas": 6.0, "gpus_per_replica": 4.0}, "backlog")]
    assert rec is not None and rec.applied == {"replicas": 6.0, "gpus_per_replica": 4.0} and rec.reward is None
    assert learner.seen[0].interval_s == 15 and learner.seen[0].metrics["queue_length"] == 40.0
    assert learner.learned == [] and loop.fast_changes == 1
    assert loop.history == []  # history keeps one record per interval; fast steps are not intervals
    loop.step(120.0)  # the slow transition that the fast step fell inside is still learned, once
    assert len(learner.learned) == 1


def test_the_fast_path_never_removes_replicas_nor_restarts_pods():
    learner = Reacting([Action({"replicas": 1.0}, "down"), Action({"gpus_per_replica": 8.0}, "switch"),
                        Action({"replicas": 4.0, "gpus_per_replica": 8.0}, "up and switch")])
    world = World()
    loop = _loop(learner, world)
    assert [loop.fast_step(t) for t in (15.0, 30.0, 45.0)] == [None, None, None]
    assert world.applied == [] and loop.fast_changes == 0


def test_recommend_mode_records_the_fast_decision_without_acting():
    world = World()
    loop = _loop(Reacting([Action({"replicas": 6.0}, "backlog")]), world, Mode.RECOMMEND)
    rec = loop.fast_step(15.0)
    assert rec is not None and rec.recommended["replicas"] == 6.0 and rec.applied is None
    assert world.applied == []


def test_without_react_or_peek_there_is_no_fast_step():
    class Plain(Reacting):
        react = None

    assert _loop(Plain([Action({"replicas": 6.0}, "x")]), World()).fast_step(15.0) is None
    world = World(peeks=False)
    assert _loop(Reacting([Action({"replicas": 6.0}, "x")]), world).fast_step(15.0) is None
    assert world.applied == []


@pytest.mark.parametrize(("period", "interval", "expected"), [
    (15.0, 60.0, 15.0), (25.0, 60.0, 20.0), (7.0, 30.0, 6.0), (0.0, 60.0, 0.0), (60.0, 60.0, 0.0),
    (90.0, 60.0, 0.0), (-5.0, 60.0, 0.0),
])
def test_the_fast_period_fills_the_interval_a_whole_number_of_times(period, interval, expected):
    assert fast_period_s(Reacting([], period), interval) == pytest.approx(expected)


def test_a_learner_without_react_has_no_fast_period_whatever_it_claims():
    class Claims:
        fast_period_s = 15.0

    assert fast_period_s(Claims(), 60.0) == 0.0
