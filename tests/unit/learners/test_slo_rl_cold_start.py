"""slo-rl's ``placed_cold_start``: the cold start is read off pods that boot, not pods that wait for GPUs. Where
the source says which pods are placed (the simulator), an unready pod still waiting for placement teaches nothing
and a placed one teaches its time since placement; where it does not say (the operator), the age of unready
pods, as without the setting. In the simulator itself, a plan larger than the pool then no longer teaches a cold
start three times the real one; without the setting (the default) it still does."""

from __future__ import annotations

import math

from learners import ConfigSpace, Knob, Objective, Observation, ReplicaSample
from learners.slo_rl import SloRl, SloRlSettings
from simulator.bench.scenarios import by_name
from simulator.pretrain import make_learner, run_episode
from simulator.scenario import load

SPACE = ConfigSpace.of(Knob("replicas", 1, 64, 1, default=2), Knob("gpus_per_replica", choices=(4, 8), default=4))
OBJECTIVE = Objective(metric="ttft_p99_seconds", target=10.0, attainment=0.99)


def _obs(replicas: tuple[ReplicaSample, ...]) -> Observation:
    return Observation(0.0, {"replicas": float(len(replicas)), "gpus_per_replica": 4.0},
                       {"request_rate_per_second": 1.0, "queue_length": 0.0, "ttft_p99_seconds": 1.0,
                        "slo_attainment": 1.0}, 60.0, replicas, {"completed": 60.0})


def _learned(replicas: tuple[ReplicaSample, ...], placed: bool = True) -> float:
    learner = SloRl(SPACE, OBJECTIVE, SloRlSettings(cold_start_s=60.0, placed_cold_start=placed))
    prev = _obs(replicas)
    learner.learn(prev, learner.decide(prev), 0.0, _obs(replicas))
    return learner.cold_start_s


def test_pods_waiting_for_gpus_teach_no_cold_start():
    ready = (ReplicaSample(True, 0.5, 600.0, True, 540.0),) * 8
    waiting = (ReplicaSample(False, None, 170.0, False),) * 8  # pending 170 s: the pool is full
    booting = (ReplicaSample(False, None, 170.0, True, 50.0),)  # placed after 120 s pending, booting 50 s
    assert _learned(ready + waiting) == 60.0
    assert _learned(ready + waiting + booting) == 60.0
    assert _learned((*ready, ReplicaSample(False, None, 170.0, True, 90.0))) == 90.0  # a slow boot is learned
    assert _learned(ready + waiting, placed=False) == 170.0  # the default: every unready pod's age


def test_without_placement_the_age_of_unready_pods_as_before():
    """The operator's samples say nothing of placement: an unready pod of 120 s reads as a 120 s cold start,
    and one older than three assumed cold starts as stuck, not booting."""
    assert _learned((ReplicaSample(False, None, 120.0),)) == 120.0
    assert _learned((ReplicaSample(False, None, 500.0),)) == 60.0


def test_a_plan_larger_than_the_pool_does_not_teach_a_long_cold_start(tmp_path):
    """The step scenario's first training episode from scratch asks for 16 TP8 replicas on a 64-GPU pool;
    every simulated pod boots in 60 s. Before, the pods waiting for GPUs taught 180 s."""
    path, _ = by_name(["step"])[0].write(tmp_path, "train", 1, quick=True)
    scen = load(path)
    learned = {}
    for placed in (True, False):
        learner, _, _ = make_learner(scen, "slo-rl", {"tail_floor": True, "placed_cold_start": placed}, 1)
        run_episode(scen, learner, "slo-rl", 1)
        learned[placed] = learner.cold_start_s
    assert math.isclose(learned[True], 60.0) and learned[False] >= 120.0
