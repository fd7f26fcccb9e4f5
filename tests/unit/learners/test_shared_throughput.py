"""ClassThroughput: one throughput model per job class, fed by every job, with bounded staleness and an
out-of-sample convergence check."""

from __future__ import annotations

import numpy as np
import pytest

from learners.pollux import PerfParams, predict_accum_time, predict_step_time
from learners.shared_throughput import ClassThroughput, SharedThroughput

TRUE = PerfParams(0.02, 0.001, 0.05, 0.004, 0.01, 0.001, 2.0)
CONFIGS = [(n, r, b) for n in (1, 2, 4) for r in (1, 2, 4, 8, 16) for b in (32, 64, 128) if r >= n and r % n == 0]


def _step(key: tuple[int, int, int], perf: PerfParams = TRUE) -> float:
    n, r, b = key
    return float(predict_step_time(perf, np.array([n]), np.array([r]), np.array([b]), np.array([0]))[0])


def _publish(c: ClassThroughput, key: tuple[int, int, int]) -> None:
    """Report ``key`` as a job would: its step time and the part of it that is not compute (synchronisation)."""
    step = _step(key)
    c.publish(key, step, max(step - float(predict_accum_time(TRUE, np.array([key[2]]))[0]), 0.0))


def test_a_configuration_is_learned_once_and_only_a_replacing_report_changes_it():
    c = ClassThroughput()
    assert c.model() is None and c.max_profiled_replicas == 0
    assert c.publish((1, 1, 64), 0.1, 0.0)
    assert not c.publish((1, 1, 64), 0.5, 0.1)  # another job's report of a known configuration
    assert c.observations[(1, 1, 64)] == (0.1, 0.0)
    assert c.model() is not None and c.fits == 1 and c.max_profiled_replicas == 1
    c.publish((1, 1, 64), 0.12, 0.0, replace=True)  # the operator's clean-window measurement of it
    assert c.observations[(1, 1, 64)] == (0.12, 0.0) and c.model() is not None and c.fits == 2
    c.publish((1, 1, 64), 0.12, 0.0, replace=True)
    c.model()
    assert c.fits == 2  # the same times again: no refit


def test_a_read_refits_only_past_the_staleness_bound():
    c = ClassThroughput(max_staleness=2)
    for i, key in enumerate(CONFIGS[:4]):
        c.publish(key, _step(key), 0.0)
        if i == 0:
            c.model()
    assert c.fitted_on == 1  # the fit after the first report is the one publish() read for predictions ...
    c.observations[(4, 16, 128)] = (_step((4, 16, 128)), 0.0)  # ... until more than 2 reports are missing
    c.model()
    assert c.fitted_on == len(c.observations) and c.fits == 2
    fresh = ClassThroughput(max_staleness=0)
    for key in CONFIGS[:4]:
        fresh.publish(key, _step(key), 0.0)
    fresh.model()
    assert fresh.fitted_on == 4


def test_the_class_model_converges_on_a_curve_it_can_fit_across_orders():
    """From sampled reports only (never the true curve): on 9 of 10 random orders of the configurations the
    model has converged within 16 reports and predicts an unseen configuration within 15%."""
    ok = 0
    for seed in range(10):
        rng = np.random.default_rng(seed)
        order = [CONFIGS[i] for i in rng.permutation(len(CONFIGS))]
        c = ClassThroughput()
        for key in order[:16]:
            _publish(c, key)
        held_out = order[16]
        error = abs(_step(held_out, c.model()) - _step(held_out)) / _step(held_out)
        ok += c.converged and error < 0.15
    assert ok >= 9


def test_reports_the_model_cannot_explain_never_look_converged():
    """Step times that are noise around any curve: the out-of-sample check refuses on 9 of 10 seeds."""
    refused = 0
    for seed in range(10):
        rng = np.random.default_rng(seed)
        c = ClassThroughput()
        for key in CONFIGS[:12]:
            c.publish(key, float(rng.uniform(0.05, 2.0)), 0.0)
        refused += not c.converged
    assert refused >= 9


def test_the_first_gradient_statistics_are_the_class_stand_in():
    c = ClassThroughput()
    c.publish_grad(1.0, 50.0)
    c.publish_grad(9.0, 10.0)
    assert c.early_grad == (1.0, 50.0)


@pytest.mark.parametrize("kwargs", [{"max_staleness": -1}, {"tolerance": 0.0}, {"window": 0}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        ClassThroughput(**kwargs)


@pytest.mark.parametrize("step, sync", [(0.0, 0.0), (0.1, 0.2), (-1.0, 0.0), (float("nan"), 0.0)])
def test_impossible_step_times_are_refused(step, sync):
    with pytest.raises(ValueError, match="step times"):
        ClassThroughput().publish((1, 1, 64), step, sync)


def test_classes_are_separate_and_share_settings():
    s = SharedThroughput(max_staleness=3)
    s.of("bert").publish((1, 1, 64), 0.1, 0.0)
    assert s.of("bert") is s.of("bert") and s.of("cifar10").observations == {}
    assert s.of("cifar10").max_staleness == 3
    report = s.report()
    assert report["bert"]["configs"] == 1 and report["cifar10"]["configs"] == 0


def test_a_contaminated_measurement_is_fitted_at_once_and_scored_only_when_a_clean_one_comes():
    c = ClassThroughput()
    c.publish((1, 1, 64), 1.0, 0.0)
    c.publish((1, 2, 64), 0.6, 0.05)
    assert c.publish((1, 4, 64), 9.0, 0.1, clean=False)  # new: fitted now, not scored
    assert (1, 4, 64) in c.observations and (1, 4, 64) in c.unscored and len(c.errors) == 1
    c.publish((1, 4, 64), 9.0, 0.1, replace=True, clean=False)  # again contaminated: still unscored
    assert len(c.errors) == 1
    c.publish((1, 4, 64), 0.4, 0.1, replace=True)  # the clean one: scored without any 4-GPU data
    assert len(c.errors) == 2 and (1, 4, 64) not in c.unscored and c.observations[(1, 4, 64)] == (0.4, 0.1)
    assert c.errors[-1] < 1.0  # a fit without the contaminated 9 s does not predict anything like it
    c.publish((1, 4, 64), 0.41, 0.1, replace=True)  # a later clean window: replaces, scores nothing new
    assert len(c.errors) == 2 and c.observations[(1, 4, 64)] == (0.41, 0.1)
