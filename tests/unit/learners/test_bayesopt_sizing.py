"""The bayesopt learner on a toy service whose cheapest feasible configuration is known by enumeration."""

from __future__ import annotations

import math

import pytest

from controller.loop import ControlLoop
from learners import Action, ConfigSpace, Knob, Objective, Observation, Verdict, create

SPACE = ConfigSpace.of(Knob("replicas", 1, 12, 1, default=1), Knob("gpus_per_replica", choices=(1, 2, 4)),
                       Knob("max_batch_size", 8, 64, 8, default=8))
OBJ = Objective(attainment=0.99).scaled_to(max_cost_per_hour=48, interval_s=60)
LOAD = 9.0


def capacity(cfg):
    """Requests/s a configuration serves: sub-linear in GPUs per replica (TP scales imperfectly),
    saturating in batch size."""
    b = cfg["max_batch_size"]
    return cfg["replicas"] * cfg["gpus_per_replica"] ** 0.7 * b / (b + 16.0)


def ttft_p99(cfg):
    """An M/M/1-like delay: grows as utilisation nears 1, and keeps growing past it."""
    rho = LOAD / capacity(cfg)
    return 0.1 / (1.0 - rho) if rho < 0.95 else 2.0 + 10.0 * (rho - 0.95)


def feasible(cfg):
    return ttft_p99(cfg) <= OBJ.target


class ToyService:
    def __init__(self):
        self.config = SPACE.default()

    def observe(self, workload, now):
        return Observation(now, dict(self.config), {"ttft_p99_seconds": ttft_p99(self.config),
                                                    "slo_attainment": 1.0 if feasible(self.config) else 0.9,
                                                    "request_rate_per_second": LOAD})

    def apply(self, workload, config, reason):
        self.config = dict(config)


def cheapest_feasible():
    ok = [c for c in SPACE.enumerate() if feasible(c)]
    best = min(OBJ.cost_per_hour(c) for c in ok)
    return best, [c for c in ok if OBJ.cost_per_hour(c) == best]


@pytest.mark.parametrize("seed", range(5))
def test_bayesopt_settles_on_the_cheapest_feasible_configuration(seed):
    best_cost, _ = cheapest_feasible()
    learner = create("bayesopt", SPACE, OBJ, {"max_trials": 15, "trial_intervals": 2, "settle_intervals": 0,
                                             "seed": seed})
    svc = ToyService()
    loop = ControlLoop("toy", learner, OBJ, SPACE, svc, svc)
    steps = 15 * 2 + 5
    for i in range(steps):
        loop.step(60.0 * i)
    assert learner.convergence().verdict is Verdict.CONVERGED
    assert len(learner.state_dict()["trials"]) == 15 and SPACE.size() == 288  # about 5% of the space
    held = svc.config
    assert feasible(held), held
    assert math.isclose(OBJ.cost_per_hour(held), best_cost), (held, best_cost)


def test_a_trial_is_scored_only_on_the_configuration_it_asked_for():
    learner = create("bayesopt", SPACE, OBJ, {"trial_intervals": 2, "settle_intervals": 0})
    obs = Observation(0.0, SPACE.default(), {"slo_attainment": 1.0})
    action = learner.decide(obs)
    other = dict(action.target, replicas=12 if action.target["replicas"] != 12 else 1)
    learner.learn(obs, Action(other), 0.0, obs)
    assert learner.intervals == 0 and not learner.state_dict()["trials"]


def test_settings_are_validated():
    with pytest.raises(ValueError, match="trial_intervals"):
        create("bayesopt", SPACE, OBJ, {"trial_intervals": 1, "settle_intervals": 1})
    with pytest.raises(ValueError, match="max_candidates"):
        create("bayesopt", SPACE, OBJ, {"max_candidates": 10})
