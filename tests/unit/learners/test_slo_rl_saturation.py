"""slo-rl's ``saturation_guard``: under a standing queue, a scale-up is sized from the throughput a ready
replica delivered, so the replicas asked for serve the arrivals and drain the backlog expected when they
are ready; outside saturation, and for an objective it cannot read as a wait, it asks for nothing."""

from __future__ import annotations

import math

import numpy as np

from learners import ConfigSpace, Knob, Objective, Observation, ReplicaSample
from learners.slo_rl import SloRl, SloRlSettings

SPACE = ConfigSpace.of(Knob("replicas", 1, 64, 1, default=2), Knob("gpus_per_replica", choices=(4, 8), default=4))
OBJECTIVE = Objective(metric="ttft_p99_seconds", target=10.0, attainment=0.99)


def _obs(rate: float, served: float, queue: float, ready: int, interval_s: float = 60.0,
         completed: bool = True) -> Observation:
    return Observation(0.0, {"replicas": float(ready), "gpus_per_replica": 4.0},
                       {"request_rate_per_second": rate, "queue_length": queue}, interval_s,
                       tuple(ReplicaSample(True, None, 600.0) for _ in range(ready)),
                       {"completed": served * interval_s} if completed else {})


def test_after_a_step_the_ask_serves_the_arrivals_and_drains_the_backlog_at_readiness():
    """The training step of seed 14 in numbers: 2 TP4 replicas serving 1.4 req/s, 4.35 req/s arriving, 46
    queued. With a 60 s cold start the backlog at readiness is 46 + 2.95 x 60 = 223, and 0.7 req/s per
    replica must serve 4.35 + 223 / 60 req/s: 12 replicas (the capacity model's plan had asked for 8)."""
    learner = SloRl(SPACE, OBJECTIVE, SloRlSettings(saturation_guard=True))
    assert learner._saturated_need(_obs(4.35, 1.4, 46.0, 2)) == math.ceil((4.35 + (46 + 2.95 * 60) / 60) / 0.7)


def test_random_saturated_intervals_get_enough_and_calm_ones_get_nothing():
    rng = np.random.default_rng(0)
    learner = SloRl(SPACE, OBJECTIVE, SloRlSettings(saturation_guard=True))
    acted = 0
    for _ in range(500):
        ready = int(rng.integers(1, 9))
        per_replica = rng.uniform(0.3, 2.0)
        served = per_replica * ready
        rate = served * rng.uniform(0.5, 4.0)
        queue = float(rng.choice([0.0, rng.uniform(0, 400)]))
        n = learner._saturated_need(_obs(rate, served, queue, ready))
        backlog = queue + max(rate - served, 0.0) * learner.cold_start_s
        if queue == 0 or backlog / served < 0.5 * OBJECTIVE.target:
            assert n == 0.0
        else:
            acted += 1
            assert n * per_replica >= rate + backlog / 60.0 - 1e-9
            assert (n - 1) * per_replica < rate + backlog / 60.0  # and not more than that
    assert acted > 100


def test_the_guard_is_off_by_default_and_silent_without_the_signals_it_needs():
    assert SloRl(SPACE, OBJECTIVE)._saturated_need(_obs(4.35, 1.4, 46.0, 2)) > 0  # the arithmetic exists...
    assert SloRlSettings().saturation_guard is False  # ...but decide() uses it only when asked
    learner = SloRl(SPACE, OBJECTIVE, SloRlSettings(saturation_guard=True))
    assert learner._saturated_need(_obs(4.35, 1.4, 46.0, 2, completed=False)) == 0.0  # no throughput counter
    assert learner._saturated_need(_obs(4.35, 0.0, 46.0, 2)) == 0.0  # nothing served: no per-replica rate
    assert learner._saturated_need(_obs(4.35, 1.4, 46.0, 0)) == 0.0  # nothing ready
    throughput = Objective(metric="throughput_samples_per_second", target=100.0, higher_is_better=True)
    assert SloRl(SPACE, throughput, SloRlSettings(saturation_guard=True))._saturated_need(
        _obs(4.35, 1.4, 46.0, 2)) == 0.0


def test_decide_asks_for_the_guards_count_under_saturation():
    """A capacity model that (wrongly) believes a replica serves far more than it does asks for 1 replica;
    with the guard, decide() asks for what the measured throughput says (12), and without it does not."""
    learners = {}
    for guard in (True, False):
        learner = SloRl(SPACE, OBJECTIVE, SloRlSettings(saturation_guard=guard, learn=False))
        state = learner.capacity.state_dict()
        state["mean"] = [-30.0] + [0.0] * (len(state["mean"]) - 1)  # "no load ever misses", with certainty
        state["precision"] = (np.eye(len(state["mean"])) * 1e6).tolist()
        learner.capacity.load_state_dict(state)
        learners[guard] = learner
    obs = _obs(4.35, 1.4, 46.0, 2)
    assert learners[False].decide(obs).target["replicas"] <= 2
    assert learners[True].decide(obs).target["replicas"] == 12


def test_a_calm_interval_of_lagging_completions_triggers_nothing_past_a_few_sd():
    """Step, evaluation seed 101, interval 81, in numbers: 4 TP4 replicas, 3.63 req/s arriving, 3.3 finishing
    (LLM requests finish many seconds after they arrive), a queue of 1, a 180 s cold start. Extrapolated, the
    backlog at readiness is 1 + 0.33 x 180 = 60 requests (18 s at 3.3 req/s), so the guard asked for 6
    replicas. The lag is 1.3 Poisson standard deviations of a minute at 3.63 req/s: past 2 of them, or on the
    standing queue alone (0.3 s of work), it asks for nothing. After a real step (the seed-14 numbers above:
    an excess of 11 standard deviations) every trigger acts and sizes alike."""
    calm, step = _obs(3.63, 3.3, 1.0, 4), _obs(4.35, 1.4, 46.0, 2)
    for sd in (0.0, 2.0, 3.0, math.inf):
        learner = SloRl(SPACE, OBJECTIVE, SloRlSettings(saturation_guard=True, saturation_trigger_sd=sd))
        learner.cold_start_s = 180.0
        assert (learner._saturated_need(calm) > 4) is (sd == 0.0)
        learner.cold_start_s = 60.0
        assert learner._saturated_need(step) == math.ceil((4.35 + (46 + 2.95 * 60) / 60) / 0.7)


def test_on_queue_alone_random_intervals_act_exactly_when_the_standing_queue_waits_too_long():
    rng = np.random.default_rng(1)
    learner = SloRl(SPACE, OBJECTIVE, SloRlSettings(saturation_guard=True, saturation_trigger_sd=math.inf))
    acted = 0
    for _ in range(500):
        ready = int(rng.integers(1, 9))
        served = rng.uniform(0.3, 2.0) * ready
        rate = served * rng.uniform(0.5, 4.0)
        queue = float(rng.choice([0.0, rng.uniform(0, 60)]))
        n = learner._saturated_need(_obs(rate, served, queue, ready))
        acts = queue > 0 and queue / served >= 0.5 * OBJECTIVE.target
        assert (n > 0) is acts
        acted += acts
    assert acted > 50
