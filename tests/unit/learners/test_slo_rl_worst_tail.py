"""slo-rl's ``worst_tail_label`` and the SLO's further targets (``Objective.also``).

An SLO with a lax TTFT target (10 s) and a tight TBT target (65 ms), as the bench's knob-batch has: the
TBT tail is what capacity controls there, and the headline (TTFT) label cannot see it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from learners import Action, ConfigSpace, Knob, Objective, Observation, ReplicaSample
from learners.slo_rl import SloRl, SloRlSettings

SPACE = ConfigSpace.of(
    Knob("replicas", 1, 16, 1, default=4),
    Knob("gpus_per_replica", choices=(2, 4), restarts=True, default=4),
    Knob("max_batch_size", 16, 32, 16, restarts=True, default=32),
)
OBJECTIVE = Objective(metric="ttft_p99_seconds", target=10.0, attainment=0.99,
                      also={"tbt_p99_seconds": 0.065}).scaled_to(64.0, 60.0)
CFG = {"replicas": 4.0, "gpus_per_replica": 4.0, "max_batch_size": 32.0}


def _obs(t: int, ttft: float, tbt: float | None, attainment: float = 1.0, rate: float = 2.0) -> Observation:
    metrics = {"request_rate_per_second": rate, "request_rate_peak_per_second": 1.2 * rate,
               "ttft_p99_seconds": ttft, "slo_attainment": attainment, "queue_length": 0.0,
               "gpu_utilization": 0.4, "kv_cache_usage": 0.3}
    if tbt is not None:
        metrics["tbt_p99_seconds"] = tbt
    return Observation(60.0 * t, dict(CFG), metrics,
                       replicas=tuple(ReplicaSample(True, 0.4, 600.0) for _ in range(4)))


def _labels(learner: SloRl, tails: list[tuple[float, float | None]]) -> list[float]:
    """The capacity model's labels of a run of intervals with these (TTFT, TBT) tails."""
    learner.record_experience()
    prev = _obs(0, 1.0, 0.046)
    for t, (ttft, tbt) in enumerate(tails, start=1):
        obs = _obs(t, ttft, tbt)
        learner.learn(prev, Action(dict(CFG), "hold"), 0.0, obs)
        prev = obs
    return learner.take_experience()["capacity_y"]


def make(**settings) -> SloRl:
    return SloRl(SPACE, OBJECTIVE, SloRlSettings(**settings))


def test_the_objective_lists_every_target_headline_first_and_refuses_a_bad_one():
    assert list(OBJECTIVE.targets().items()) == [("ttft_p99_seconds", 10.0), ("tbt_p99_seconds", 0.065)]
    assert Objective().targets() == {"ttft_p99_seconds": 0.5}
    for bad in (0.0, -1.0, math.nan, math.inf, "fast"):
        with pytest.raises(ValueError, match="tbt_p99_seconds"):
            Objective(also={"tbt_p99_seconds": bad})


def test_the_simulator_hands_every_slo_target_to_the_objective():
    from simulator.workloads import objective_of

    spec = {"slo": {"ttft_seconds": 10.0, "tbt_seconds": 0.065, "attainment": 0.99}}
    objective = objective_of(spec, SPACE, 60.0)
    assert (objective.metric, objective.target) == ("ttft_p99_seconds", 10.0)
    assert dict(objective.also) == {"tbt_p99_seconds": 0.065}
    assert objective_of({"slo": {"ttft_seconds": 2.0, "attainment": 0.99}}, SPACE, 60.0).also == {}


def test_a_tbt_tail_over_its_target_labels_the_interval_only_with_the_worst_tail_label():
    """A 10 s TTFT target met by a 1 s tail, TBT 90 ms against 65 ms: the headline label reads the interval
    as idle; the worst-tail label reads it as over capacity."""
    tails = [(1.0, 0.09)] * 3
    headline = _labels(make(tail_floor=True), tails)
    worst = _labels(make(tail_floor=True, worst_tail_label=True), tails)
    assert max(headline) < 0.01
    assert min(worst) > 0.75 and worst[0] == pytest.approx(make().capacity.label(0.09, 0.065))


def test_the_tbt_label_is_taken_over_its_own_floor():
    """After ``floor_intervals`` quiet intervals at 46 ms, a 55 ms tail is about half way from the floor to
    the target: a low label, where the plain ratio 55/65 would give about 0.34."""
    learner = make(tail_floor=True, worst_tail_label=True)
    labels = _labels(learner, [(1.0, 0.046)] * learner.s.floor_intervals + [(1.0, 0.055)])
    assert learner.also_floors["tbt_p99_seconds"][(4.0, 32.0)] == (0.046, learner.s.floor_intervals + 1)
    assert labels[-1] == pytest.approx(learner.capacity.label(0.055 - 0.046, 0.065 - 0.046))
    assert labels[-1] < learner.capacity.label(0.055, 0.065)


def test_an_unreported_further_target_is_no_evidence():
    """An operator without a TBT query: the interval is labelled by the headline tail alone, never as a miss."""
    tails = [(1.0, None)] * 3
    assert _labels(make(tail_floor=True, worst_tail_label=True), tails) == _labels(make(tail_floor=True), tails)


def test_a_template_whose_tbt_floor_misses_its_target_is_hopeless():
    learner = make(tail_floor=True, worst_tail_label=True)
    _labels(learner, [(1.0, 0.08)] * learner.s.hopeless_intervals)
    assert learner.hopeless((4.0, 32.0))
    plain = make(tail_floor=True)
    _labels(plain, [(1.0, 0.08)] * plain.s.hopeless_intervals)
    assert not plain.hopeless((4.0, 32.0))


def test_the_tbt_floors_travel_in_the_checkpoint():
    learner = make(tail_floor=True, worst_tail_label=True)
    _labels(learner, [(1.0, 0.05)] * 4)
    restored = make(tail_floor=True, worst_tail_label=True)
    restored.load_state_dict(learner.state_dict())
    assert restored.also_floors == learner.also_floors == {"tbt_p99_seconds": {(4.0, 32.0): (0.05, 4)}}
    older = learner.state_dict()
    del older["also_floors"]  # a checkpoint from before the setting existed
    restored.load_state_dict(older)
    assert restored.also_floors == {}


@pytest.mark.parametrize("seed", range(3))
def test_with_one_target_the_setting_changes_nothing(seed: int):
    single = Objective(metric="ttft_p99_seconds", target=2.0, attainment=0.99).scaled_to(64.0, 60.0)
    rng = np.random.default_rng(seed)
    tails = [(float(x), None) for x in rng.uniform(0.5, 3.0, 20)]
    a, b = (SloRl(SPACE, single, SloRlSettings(tail_floor=True, worst_tail_label=w, seed=seed)) for w in (False, True))
    assert _labels(a, tails) == _labels(b, tails)
    assert np.array_equal(a.capacity.mean, b.capacity.mean)

