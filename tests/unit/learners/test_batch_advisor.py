"""The in-job batch advisor (learners/batch_advisor.py): Pollux's agent without I/O.

On the Pollux profiles (the measured step times and gradient statistics of six applications): it answers
nothing before it has a step and gradient statistics, refuses impossible observations, picks exactly what the
simulator's faithful Pollux agent picks from the same observations, keeps within the job's limits, and asks
for a larger batch late in training than early, as the gradient noise scale grows.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from learners.batch_advisor import BatchAdvisor
from learners.pollux import BatchLimits
from simulator.training.job import BatchConfig
from simulator.training.pollux import PolluxAgent
from simulator.training.profiles import load_profiles

PROFILES = load_profiles()
APPS = ["bert", "cifar10", "deepspeech2", "imagenet", "yolov3"]  # ncf's batch is pinned by the artifact
PLACEMENTS = [(1,), (2,), (4,), (4, 4)]


def fed(app: str, epoch: int) -> tuple[BatchAdvisor, PolluxAgent]:
    """An advisor and the simulator's Pollux agent shown the same steps (each measured placement at its two
    smallest and its largest measured micro-batch) and the gradient statistics of ``epoch``."""
    p = PROFILES[app]
    advisor, agent = BatchAdvisor(p.batch_limits), PolluxAgent(p.batch_limits)
    grad = p.grad_stats(p.init_batch_size, epoch)
    for placement in PLACEMENTS:
        measured = p.measured_local_batches(placement)
        for local in (measured[0], measured[1], measured[-1]):
            st = p.step_time(placement, local)
            job = SimpleNamespace(placement=placement, config=BatchConfig(local, 0, sum(placement)))
            agent.observe(job, st, *grad)
            advisor.observe_step(len(placement), sum(placement), local, st.step_s, st.compute_s)
    advisor.observe_gradient(*grad)
    return advisor, agent


def test_no_advice_before_a_step_and_gradient_statistics():
    p = PROFILES["cifar10"]
    advisor = BatchAdvisor(p.batch_limits)
    assert advisor.advise(1, 4) is None
    st = p.step_time((4,), 64)
    advisor.observe_step(1, 4, 64, st.step_s, st.compute_s)
    assert advisor.advise(1, 4) is None
    advisor.observe_gradient(*p.grad_stats(p.init_batch_size, 0))
    assert advisor.advise(1, 4) is not None


@pytest.mark.parametrize("call", [
    lambda a: a.observe_step(1, 4, 64, math.nan),
    lambda a: a.observe_step(1, 4, 64, 0.0),
    lambda a: a.observe_step(1, 0, 64, 0.1),
    lambda a: a.observe_step(0, 4, 64, 0.1),
    lambda a: a.observe_gradient(math.inf, 1.0),
    lambda a: a.observe_gradient(1.0, -1.0),
])
def test_impossible_observations_are_refused(call):
    with pytest.raises(ValueError):
        call(BatchAdvisor(BatchLimits(128, 4096, 32, 1024)))


def test_limits_out_of_order_are_refused():
    with pytest.raises(ValueError, match="out of order"):
        BatchAdvisor(BatchLimits(128, 64, 32, 1024))


@pytest.mark.parametrize("app", APPS)
def test_it_picks_what_the_simulators_pollux_agent_picks_within_the_limits(app):
    p = PROFILES[app]
    for epoch in (0, p.max_epochs // 2, p.max_epochs - 1):
        advisor, agent = fed(app, epoch)
        for placement in PLACEMENTS:
            advice = advisor.advise(len(placement), sum(placement))
            assert advice is not None
            want = agent.batch_config(SimpleNamespace(profile=p), placement)
            assert (advice.atomic_bsz, advice.accum_steps, advice.num_replicas) == \
                (want.atomic_bsz, want.accum_steps, want.num_replicas), (app, epoch, placement)
            assert advice.atomic_bsz >= 1 and advice.batch_size <= p.max_batch_size


def test_it_asks_for_a_larger_batch_late_in_training_than_early():
    grew = 0
    for app in APPS:
        p = PROFILES[app]
        early, _ = fed(app, 0)
        late, _ = fed(app, p.max_epochs - 1)
        a, b = early.advise(1, 4), late.advise(1, 4)
        assert a is not None and b is not None
        assert b.batch_size >= a.batch_size, app
        grew += b.batch_size > a.batch_size
    assert grew >= 4, grew
