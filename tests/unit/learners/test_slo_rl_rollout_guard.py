"""slo-rl's ``rollout_guard``: no capacity row from an interval in which replicas of the template before a
switch still served.

Why it exists: in the diurnal checkpoint's training, the interval after the one switch to TP 4 attained 0.942
at 0.058 requests/s per GPU (old replicas leaving, new ones booting). Labelled as TP 4's, that one miss gave TP
4 a logit offset of +1.9, so the posterior asked 2-2.5x TP 8's GPUs of TP 4 and never tried it again
(docs/learned-autoscaler.md, session 24). Only the switch's own interval was skipped before.
"""

from __future__ import annotations

import numpy as np

from learners import Action, ConfigSpace, Knob, Objective, Observation, ReplicaSample
from learners.slo_rl import SloRl, SloRlSettings

SPACE = ConfigSpace.of(
    Knob("replicas", 1, 16, 1, default=2),
    Knob("gpus_per_replica", choices=(4, 8), restarts=True, default=8),
)
OBJECTIVE = Objective(metric="ttft_p99_seconds", target=5.0, attainment=0.99)


def obs(t: float, tp: int, ages: list[float], ttft: float = 1.0) -> Observation:
    """Replicas of the given ages (seconds), all ready, at time ``t``."""
    return Observation(t, {"replicas": float(len(ages)), "gpus_per_replica": float(tp)},
                       {"request_rate_per_second": 2.0, "ttft_p99_seconds": ttft, "queue_length": 0.0,
                        "slo_attainment": 1.0 if ttft <= 5.0 else 0.94}, interval_s=60.0,
                       replicas=tuple(ReplicaSample(True, 0.5, a) for a in ages))


def keep(tp: int, n: int) -> Action:
    return Action({"replicas": float(n), "gpus_per_replica": float(tp)}, "keep")


def rows_after_a_switch(guard: bool) -> list[int]:
    """Capacity rows learnt after each interval: the switch to TP 4 at t=600, one interval in which two old
    TP 8 replicas (created long before) still serve beside two new ones, then new replicas only."""
    lr = SloRl(SPACE, OBJECTIVE, SloRlSettings(rollout_guard=guard))
    seen = []
    lr.learn(obs(600.0, 8, [3000.0, 3000.0]), keep(4, 4), 0.0, obs(660.0, 4, [3060.0, 3060.0, 60.0, 60.0]))
    seen.append(len(lr.errors))
    lr.learn(obs(660.0, 4, [3060.0, 3060.0, 60.0, 60.0]), keep(4, 4), 0.0,
             obs(720.0, 4, [3120.0, 120.0, 120.0, 61.0], ttft=9.0))  # the rollout's miss
    seen.append(len(lr.errors))
    lr.learn(obs(720.0, 4, [3120.0, 120.0, 120.0, 61.0]), keep(4, 4), 0.0, obs(780.0, 4, [180.0, 180.0, 121.0, 60.0]))
    seen.append(len(lr.errors))
    lr.learn(obs(780.0, 4, [180.0, 180.0, 121.0, 60.0]), keep(4, 4), 0.0, obs(840.0, 4, [240.0, 240.0, 181.0, 120.0]))
    seen.append(len(lr.errors))
    assert lr.switched_s is None or guard is False  # cleared once the old replicas are gone
    return seen


def test_no_capacity_row_while_replicas_from_before_the_switch_serve():
    # the switch's own interval teaches nothing either way; then, with the guard, nothing until the old ones
    # are gone (the interval whose start still had one); without it every interval after the switch counts
    assert rows_after_a_switch(guard=True) == [0, 0, 0, 1]
    assert rows_after_a_switch(guard=False) == [0, 1, 2, 3]


def test_the_rollouts_miss_is_not_charged_to_the_new_template():
    for guard in (True, False):
        lr = SloRl(SPACE, OBJECTIVE, SloRlSettings(rollout_guard=guard))

        def p_miss(lr=lr) -> float:  # 2 requests/s on 2 x TP 4, where the misses below happened
            x = lr.features(np.array([2.0]), np.array([8.0]), np.array([4.0]), np.array([0.0]), 0.0)
            return float(lr.capacity.predict(x)[0])

        before = p_miss()
        lr.learn(obs(600.0, 8, [3000.0, 3000.0]), keep(4, 4), 0.0, obs(660.0, 4, [3060.0, 3060.0, 60.0, 60.0]))
        for k in range(6):  # the miss repeated while an old replica serves: a rollout that drags on
            t = 660.0 + 60 * k
            lr.learn(obs(t, 4, [3000.0 + t - 600, 60.0 + 60 * k]), keep(4, 2), 0.0,
                     obs(t + 60, 4, [3060.0 + t - 600, 120.0 + 60 * k], ttft=9.0))
        if guard:
            assert p_miss() == before  # nothing learnt
        else:
            assert p_miss() > before + 0.1  # charged to TP 4
