"""slo-rl's fast guard (``fast_period_s``): between two intervals, a standing queue that would wait more than
``fast_wait`` of the target at the rate replicas serve gets the replicas that serve the arrivals and drain it
within one interval, at once; it adds only, does not compound while replicas boot, and is off by default."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from learners import ConfigSpace, Knob, Objective, Observation, ReplicaSample
from learners.slo_rl import SloRl, SloRlSettings

SPACE = ConfigSpace.of(Knob("replicas", 1, 16, 1, default=2), Knob("gpus_per_replica", choices=(4, 8), default=4))
OBJECTIVE = Objective(metric="ttft_p99_seconds", target=10.0, attainment=0.99)


def _obs(rate: float, completed: float, queue: float, ready: int, booting: int = 0, interval_s: float = 15.0,
         replicas: float | None = None) -> Observation:
    samples = tuple(ReplicaSample(True, None, 600.0) for _ in range(ready)) + \
        tuple(ReplicaSample(False, None, 30.0) for _ in range(booting))
    return Observation(0.0, {"replicas": float(replicas or ready + booting), "gpus_per_replica": 4.0},
                       {"request_rate_per_second": rate, "queue_length": queue}, interval_s, samples,
                       {"completed": completed})


def _guard(**kw) -> SloRl:
    learner = SloRl(SPACE, OBJECTIVE, SloRlSettings(fast_period_s=15.0, **kw))
    learner.decide(_obs(1.2, 72.0, 0.0, 1, interval_s=60.0))  # last interval: 1.2 req/s per ready replica
    return learner


def test_a_backlog_gets_the_replicas_that_serve_it_within_one_interval():
    learner = _guard()
    a = learner.react(_obs(4.0, 18.0, 60.0, 1))  # 1.2 req/s per replica, 60 queued: a 50 s wait
    assert a is not None and a.target["replicas"] == math.ceil((4.0 + 60.0 / 60.0) / 1.2) == 5
    assert a.target["gpus_per_replica"] == 4.0  # the template stays: the fast path never restarts pods
    assert learner.last_up == learner.intervals and learner.wanted[-1] == 5  # the slow path holds them


def test_random_windows_act_exactly_when_the_queue_would_wait_too_long_and_only_upwards():
    rng = np.random.default_rng(0)
    acted = 0
    for _ in range(400):
        learner = _guard()
        ready = int(rng.integers(1, 9))
        per = rng.uniform(0.3, 2.0)
        queue = float(rng.choice([0.0, rng.uniform(0, 200)]))
        rate = per * ready * rng.uniform(0.5, 3.0)
        a = learner.react(_obs(rate, per * ready * 15.0, queue, ready))
        per_replica = max(per, 1.2)
        if queue / (per_replica * ready) <= 0.5 * OBJECTIVE.target:
            assert a is None
            continue
        acted += 1
        want = max(math.ceil((rate + queue / 60.0) / per_replica), math.ceil(ready * 1.5))
        if min(want, 16) <= ready:
            assert a is None
        else:
            assert a is not None and a.target["replicas"] == min(want, 16) > ready
    assert acted > 100


def test_a_window_with_few_completions_does_not_read_a_busy_replica_as_idle():
    """One completion of a long request in 15 s is 0.07 req/s: alone that asked for the whole grid (16
    replicas for 1.3 req/s, seen on training seed 11); the last interval's rate per replica bounds it."""
    a = _guard().react(_obs(1.3, 1.0, 8.0, 1))
    assert a is not None and a.target["replicas"] == 2


def test_while_replicas_boot_the_step_does_not_compound():
    learner = _guard()
    assert learner.react(_obs(1.0, 15.0, 7.0, 1, booting=3)) is None  # 4 asked for already serve it
    a = learner.react(_obs(6.0, 18.0, 30.0, 1, booting=3))
    assert a is not None and a.target["replicas"] == math.ceil((6.0 + 30.0 / 60.0) / 1.2) == 6  # not 4 x 1.5


def test_off_by_default_and_silent_without_its_signals():
    assert SloRlSettings().fast_period_s == 0.0
    assert SloRl(SPACE, OBJECTIVE).react(_obs(4.0, 18.0, 60.0, 1)) is None
    learner = _guard()
    assert learner.react(_obs(4.0, 18.0, 0.0, 1)) is None  # no queue
    assert learner.react(_obs(4.0, 18.0, 60.0, 0, booting=1)) is None  # nothing ready to measure
    stuck = Observation(0.0, {"replicas": 2.0, "gpus_per_replica": 4.0},
                        {"request_rate_per_second": 4.0, "queue_length": 60.0}, 15.0,
                        (ReplicaSample(True, None, 600.0), ReplicaSample(False, None, 3600.0)), {"completed": 18.0})
    assert learner.react(stuck) is None  # an unplaceable replica: the cluster is full, asking more only queues
    top = learner.react(_obs(40.0, 18.0, 900.0, 1))
    assert top is not None and top.target["replicas"] == 16  # never beyond the grid


def test_across_ten_step_seeds_the_guard_misses_the_slo_less_and_never_costs_attainment(tmp_path: Path):
    """From scratch on the training step scenario (an unannounced step in load), seeds 1-10: with the
    guard no seed loses more than 0.01 of attainment and most gain (measured: 8 of 10 better, the SLO met
    on 8 instead of 3)."""
    from simulator.bench.scenarios import by_name
    from simulator.bench.split import TRAIN
    from simulator.pretrain import make_learner, run_episode
    from simulator.scenario import load

    better = met = met_without = 0
    for seed in range(1, 11):
        scen = load(by_name(["step"])[0].write(tmp_path, TRAIN, seed)[0])
        att = []
        for period in (0.0, 15.0):
            learner, _space, _ = make_learner(scen, "slo-rl", {"fast_period_s": period, "tail_floor": True}, seed)
            att.append(run_episode(scen, learner, "slo-rl", seed)["slo_attainment"])
        assert att[1] >= att[0] - 0.01, (seed, att)
        better += att[1] > att[0]
        met += att[1] >= 0.99
        met_without += att[0] >= 0.99
    assert better >= 7 and met >= met_without + 3


def test_settings_that_are_no_period_or_share_are_refused_with_the_reason():
    import pytest

    for bad in (-1.0, math.nan, math.inf, "15"):
        with pytest.raises(ValueError, match="fast_period_s"):
            SloRlSettings(fast_period_s=bad)
    with pytest.raises(ValueError, match="fast_wait"):
        SloRlSettings(fast_wait=0.0)
    with pytest.raises(ValueError, match="fast_step"):
        SloRlSettings(fast_step=-0.5)
    assert SloRlSettings(fast_period_s=15).fast_period_s == 15  # an int from YAML is a number of seconds
