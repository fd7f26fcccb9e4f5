"""The control loop and its guard rails, with fake ports (the loop itself does no I/O)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.guards import GuardSettings
from controller.loop import ControlLoop, Mode
from learners import Action, ConfigSpace, Convergence, Knob, Objective, Observation
from learners.base import RuleBased


class Scripted:
    """A learner that proposes whatever the test scripted, and remembers what it was taught."""

    name = "scripted"
    uses_guard_rails = True

    def __init__(self, targets):
        self.targets = list(targets)
        self.learned = []

    def decide(self, obs):
        return Action(self.targets.pop(0) if self.targets else dict(obs.config), "scripted")

    def learn(self, prev, action, reward, obs):
        self.learned.append((prev.time_s, dict(action.target), reward, obs.time_s))

    def convergence(self):
        return Convergence.not_learning()

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


class Baseline(RuleBased, Scripted):
    uses_guard_rails = False


class World:
    """Both ports: metrics come from a script, applied configs are recorded."""

    def __init__(self, config, metrics_seq):
        self.config = dict(config)
        self.metrics_seq = list(metrics_seq)
        self.applied = []

    def observe(self, workload, now):
        m = self.metrics_seq.pop(0) if self.metrics_seq else {"slo_attainment": 1.0}
        if m is None:
            return None
        return Observation(now, dict(self.config), m, interval_s=60)

    def apply(self, workload, config, reason):
        self.applied.append(dict(config))
        self.config = dict(config)


SPACE = ConfigSpace.of(Knob("replicas", 1, 10, 1), Knob("max_batch_size", 8, 64, 8, restarts=True))


def loop(learner, world, mode=Mode.APPLY, **gs):
    return ControlLoop("w", learner, Objective(), SPACE, world, world, mode,
                       GuardSettings(**{"cooldown_s": 0, **gs}))


def test_step_limit_and_bounds():
    w = World({"replicas": 2, "max_batch_size": 8}, [])
    lp = loop(Scripted([{"replicas": 50, "max_batch_size": 8}]), w, max_steps_per_interval=2)
    rec = lp.step(0)
    assert w.config["replicas"] == 4
    assert any("step limited" in n for n in rec.notes)


def test_baselines_bypass_guard_rails_but_not_bounds():
    w = World({"replicas": 2, "max_batch_size": 8}, [])
    loop(Baseline([{"replicas": 50}]), w, max_steps_per_interval=1).step(0)
    assert w.config["replicas"] == 10


def test_cooldown_holds_changes():
    w = World({"replicas": 2, "max_batch_size": 8}, [])
    lp = loop(Scripted([{"replicas": 3}, {"replicas": 4}, {"replicas": 5}]), w, cooldown_s=120)
    lp.step(0)
    rec = lp.step(60)
    assert w.config["replicas"] == 3 and any("cooldown" in n for n in rec.notes)
    lp.step(120)
    assert w.config["replicas"] == 5


def test_freeze_on_missing_stale_or_nonfinite_metrics_and_no_learning_across_gap():
    w = World({"replicas": 2, "max_batch_size": 8},
              [{"slo_attainment": 1.0}, None, {"slo_attainment": math.nan}, {"slo_attainment": 1.0},
               {"slo_attainment": 1.0}])
    learner = Scripted([{"replicas": 3}, {"replicas": 4}, {"replicas": 5}])
    lp = loop(learner, w)
    assert lp.step(0).frozen is None
    assert "no metrics" in lp.step(60).frozen
    assert "not finite" in lp.step(120).frozen
    assert w.applied == [{"replicas": 3, "max_batch_size": 8}]
    lp.step(180)
    assert learner.learned == []  # the transition across the gap was dropped
    lp.step(240)
    assert learner.learned[0][0] == 180


def test_recommend_mode_changes_nothing():
    w = World({"replicas": 2, "max_batch_size": 8}, [])
    rec = loop(Scripted([{"replicas": 5}]), w, mode=Mode.RECOMMEND).step(0)
    assert w.applied == [] and rec.recommended["replicas"] == 4 and rec.applied is None


def test_rollback_after_sharp_reward_drop():
    w = World({"replicas": 2, "max_batch_size": 8}, [{"slo_attainment": 1.0}, {"slo_attainment": 0.0}])
    lp = loop(Scripted([{"replicas": 1}]), w, rollback_drop=0.5)
    lp.step(0)
    assert w.config["replicas"] == 1
    rec = lp.step(60)
    assert w.config["replicas"] == 2 and rec.reason.startswith("rollback")


def test_restart_is_charged_in_next_reward():
    w = World({"replicas": 2, "max_batch_size": 8}, [])
    learner = Scripted([{"max_batch_size": 16}])
    lp = loop(learner, w)
    assert lp.step(0).restarted
    lp.step(60)
    plain = Objective().reward(Observation(60, w.config, {"slo_attainment": 1.0}, 60))
    assert learner.learned[0][2] == plain - Objective().restart_penalty


metric_values = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.none())


@settings(max_examples=60, deadline=None)
@given(
    targets=st.lists(st.fixed_dictionaries({"replicas": st.integers(-50, 50),
                                            "max_batch_size": st.integers(-100, 200)}),
                     min_size=1, max_size=25),
    metrics=st.lists(metric_values, min_size=1, max_size=25),
    max_steps=st.integers(1, 3),
    cooldown=st.sampled_from([0, 60, 150]),
)
def test_property_every_action_respects_bounds_steps_and_cooldown(targets, metrics, max_steps, cooldown):
    seq = [None if v is None else {"slo_attainment": v} for v in metrics]
    w = World({"replicas": 5, "max_batch_size": 32}, seq)
    lp = loop(Scripted(targets), w, max_steps_per_interval=max_steps, cooldown_s=cooldown,
              rollback_drop=1e9)
    last_change = -math.inf
    prev = dict(w.config)
    for i in range(len(targets)):
        now = 60.0 * i
        n_before = len(w.applied)
        lp.step(now)
        if len(w.applied) > n_before:
            new = w.applied[-1]
            assert SPACE.contains(new)
            for k in SPACE.knobs:
                assert abs(k.index(new[k.name]) - k.index(prev[k.name])) <= max_steps
            assert now - last_change >= cooldown
            last_change = now
            prev = dict(new)


def test_a_failed_actuation_is_not_learned_twice_nor_credited():
    """The operator's actuator raises on an API error; the step fails and the next one goes on."""

    class Failing(World):
        fail = 0

        def apply(self, workload, config, reason):
            if self.fail:
                self.fail -= 1
                raise ConnectionError("apiserver unavailable")
            super().apply(workload, config, reason)

    w = Failing({"replicas": 2, "max_batch_size": 8}, [])
    learner = Scripted([{"replicas": 3}, {"replicas": 4}, {"replicas": 5}, {"replicas": 6}])
    lp = loop(learner, w)
    lp.step(0)  # acts: replicas 3
    w.fail = 1
    with pytest.raises(ConnectionError):
        lp.step(60)  # learns (0 -> 60), then acting fails
    lp.step(120)  # nothing to learn: the transition was learned, the failed action never ran
    lp.step(180)
    assert [(t0, a["replicas"], t1) for t0, a, _, t1 in learner.learned] == [(0, 3, 60), (120, 5, 180)]
    assert [c["replicas"] for c in w.applied] == [3, 5, 6]
