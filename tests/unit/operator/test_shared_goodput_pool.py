"""The operator's shared-goodput pool: jobs of one autocm.io/job-class learn one throughput model together;
the class name is tenant input (validated, bounded), and sharing stays inside the policy's pool."""

from __future__ import annotations

import numpy as np
import pytest
from test_pool_runner import job

from controller import pool_runner as pr
from controller import training_pool as tp
from learners import training_scheduler as ts
from learners.pollux import BatchLimits, PerfParams, predict_step_time
from learners.shared_throughput import SharedThroughput

TRUE = PerfParams(0.02, 0.001, 0.05, 0.004, 0.01, 0.001, 2.0)
LIMITS = BatchLimits(128, 4096, 16, 256)
NODES = {"slot-0": 4, "slot-1": 4, "slot-2": 4, "slot-3": 4}


def _sample(n: int, r: int, b: int) -> ts.StepSample:
    step = float(predict_step_time(TRUE, np.array([n]), np.array([r]), np.array([b]), np.array([0]))[0])
    return ts.StepSample(n, r, b, step)


def _veteran(job_class: str | None) -> ts.JobObservation:
    """A job of the class that has run on up to 8 GPUs and reported its gradient statistics."""
    samples = tuple(_sample(*k) for k in [(1, 1, 64), (1, 2, 64), (1, 4, 64), (2, 8, 64)])
    return ts.JobObservation("veteran", LIMITS, (("slot-0", 4), ("slot-1", 4)), samples, 1.0, 50.0,
                             age_s=3600.0, attained_gpu_s=8 * 3600.0, job_class=job_class)


def _newcomer(job_class: str | None) -> ts.JobObservation:
    return ts.JobObservation("newcomer", LIMITS, age_s=60.0, job_class=job_class)


def test_a_newcomer_of_a_known_class_is_sized_from_the_class_model_across_seeds():
    grown = 0
    for seed in range(10):
        pool = ts.make("shared-goodput", seed=seed)
        answer = pool.allocate([_veteran("bert"), _newcomer("bert")], NODES, 0.0)
        ts.check_allocations(answer, NODES)
        grown += answer["newcomer"].gpus > 1
        assert answer["newcomer"].batch_size is not None
    assert grown >= 9


def test_without_a_class_a_job_is_scheduled_as_by_pollux():
    for seed in range(3):
        shared = ts.make("shared-goodput", seed=seed).allocate([_veteran(None), _newcomer(None)], NODES, 0.0)
        pollux = ts.make("pollux", seed=seed).allocate([_veteran(None), _newcomer(None)], NODES, 0.0)
        assert shared == pollux
        assert shared["newcomer"].gpus <= 1


def test_another_class_learns_nothing_from_this_one():
    pool = ts.make("shared-goodput", seed=0)
    answer = pool.allocate([_veteran("bert"), _newcomer("yolov3")], NODES, 0.0)
    assert answer["newcomer"].gpus <= 1


def test_garbage_samples_are_not_believed_and_do_not_break_the_round():
    bad = ts.StepSample(1, 2, 64, 0.1, accum_step_s=5.0)  # accumulation longer than the whole step
    veteran = _veteran("bert")
    hostile = ts.JobObservation("hostile", LIMITS, (), (bad,), 1.0, 50.0, job_class="bert")
    pool = ts.make("shared-goodput", seed=0)
    answer = pool.allocate([veteran, hostile], NODES, 0.0)
    ts.check_allocations(answer, NODES)
    assert set(answer) == {"veteran", "hostile"}


def test_the_operator_keeps_a_bounded_number_of_classes_and_configurations():
    s = SharedThroughput(max_classes=3)
    for i in range(10):
        s.of(f"c{i}")
    assert list(s.classes) == ["c7", "c8", "c9"]
    c = s.of("c9")
    c.max_observations = 2
    assert c.publish((1, 1, 8), 0.1, 0.0) and c.publish((1, 2, 8), 0.1, 0.0)
    assert not c.publish((1, 4, 8), 0.1, 0.0) and len(c.observations) == 2
    with pytest.raises(ValueError):
        SharedThroughput(max_classes=0)


def test_the_job_class_annotation_is_read_and_validated():
    j = pr.read_job(job("a", annotations={"autocm.io/max-batch-size": "1024", "autocm.io/job-class": "bert-v1.2"}),
                    "ml")
    assert j.job_class == "bert-v1.2"
    assert pr.read_job(job("b"), "ml").job_class is None
    for bad in ["", "-x", "a" * 64, "x/y", "has space", "Ünïcode"]:
        with pytest.raises(pr.JobSpecError, match="job-class"):
            pr.read_job(job("c", annotations={"autocm.io/max-batch-size": "1024", "autocm.io/job-class": bad}), "ml")


def test_the_observation_carries_the_class_and_the_pool_spec_passes_the_restart_cost():
    rec = tp.JobRecord("a", LIMITS, 0.0, {}, job_class="bert")
    obs = tp.observe(rec, {"step_s": 0.2, "gpus": 2.0, "local_batch_size": 64.0, "grad_sqr": 1.0,
                           "grad_var": 5.0}, (("slot-0", 2),), 10.0)
    assert obs.job_class == "bert" and obs.samples[0].replicas == 2
    spec = tp.PoolSpec("ml", "shared-goodput", 16, 4, (("autocm.io/pool", "v"),), restart_s=45.0)
    assert spec.scheduler_kwargs()["settings"].restart_delay_s == 45.0
    assert ts.make("shared-goodput", **spec.scheduler_kwargs()).settings.restart_delay_s == 45.0


def test_a_shared_goodput_pool_reports_what_each_class_model_learned_in_status():
    from operator_fakes import fake_prometheus
    from test_engine import Clock, engine_for
    from test_pool_runner import JOBS, POLICY, cluster, held, pool_policy, step, training_metrics

    def classed(name: str) -> dict:
        return job(name, annotations={"autocm.io/max-batch-size": "1024", "autocm.io/job-class": "resnet"})

    kube = cluster(classed("s-0"), classed("s-1"), job("s-2"), policy=pool_policy("shared-goodput", restartSeconds=1))
    clock = Clock()
    with fake_prometheus(training_metrics(kube)) as prom:
        eng = engine_for(prom.url, kube, clock)
        for round_ in range(6):
            if round_ == 3:
                kube.put(f"{JOBS}/s-3", classed("s-3"))
            assert step(eng, kube).outcome in ("applied", "unchanged")
            assert held(kube) <= 8
            clock.t += 5
    st = kube.objects[POLICY]["status"]["trainingPool"]
    assert st["scheduler"] == "shared-goodput" and set(st["classes"]) == {"resnet"}  # s-2 has no class
    resnet = st["classes"]["resnet"]
    assert resnet["configs"] >= 1 and isinstance(resnet["converged"], bool)
    assert st["jobs"]["s-3"]["gpus"] >= 1


def test_a_first_sample_is_replaced_once_a_whole_window_ran_its_configuration():
    """The first step time after a restart may mix in the configuration before it (a rate window straddles
    the restart); the scheduler gets it at once, and the clean one once the window held only this config."""
    rec = tp.JobRecord("a", LIMITS, 0.0, {})

    def seen(step: float, gpus: float, now: float) -> float:
        obs = tp.observe(rec, {"step_s": step, "gpus": gpus, "local_batch_size": 64.0}, (("slot-0", int(gpus)),),
                         now, window_s=10.0)
        return {s.replicas: s.step_s for s in obs.samples}[int(gpus)]

    assert seen(0.5, 2, 0.0) == 0.5  # mixed with the 1-GPU steps before the restart
    assert seen(0.3, 2, 5.0) == 0.5  # the window still reaches back before the restart
    assert seen(0.25, 2, 10.0) == 0.25  # a whole window on 2 GPUs: the clean sample replaces it
    assert seen(0.9, 4, 12.0) == 0.9 and seen(0.26, 2, 14.0) == 0.25  # back on 2 GPUs: the window restarts
    assert seen(0.24, 2, 24.0) == 0.24


def test_a_first_sample_joins_the_class_at_once_but_only_a_whole_window_is_scored():
    """A configuration's first sample may mix in the configuration before the restart: it joins the class
    model at once (a newcomer of the class gets a model from it), but the convergence check scores the
    configuration only when a whole window measured it, against a fit without that configuration."""
    rec = tp.JobRecord("a", LIMITS, 0.0, {}, job_class="resnet")

    def observed(step: float, gpus: int, now: float) -> ts.JobObservation:
        return tp.observe(rec, {"step_s": step, "gpus": float(gpus), "local_batch_size": 64.0},
                          (("slot-0", gpus),), now, window_s=10.0)

    pool = ts.make("shared-goodput", seed=0)
    cls = pool.estimates.of("resnet")
    first = observed(_sample(1, 1, 64).step_s, 1, 0.0)
    assert [s.clean for s in first.samples] == [False]
    pool.allocate([first], NODES, 0.0)
    assert set(cls.observations) == {(1, 1, 64)} and cls.unscored == {(1, 1, 64)}  # in the model, unscored
    pool.allocate([observed(_sample(1, 1, 64).step_s, 1, 10.0)], NODES, 10.0)  # clean, but nothing else known
    assert cls.unscored == set() and len(cls.errors) == 0
    mixed = observed(3.0 * _sample(1, 2, 64).step_s, 2, 12.0)  # 2 GPUs, a window mixing in the restart
    pool.allocate([mixed], NODES, 12.0)
    assert (1, 2, 64) in cls.observations and len(cls.errors) == 0  # the mixed sample is not scored
    pool.allocate([observed(_sample(1, 2, 64).step_s, 2, 22.0)], NODES, 22.0)
    assert len(cls.errors) == 1  # scored once, when clean, against a fit of the 1-GPU data only
    assert cls.observations[(1, 2, 64)][0] == pytest.approx(_sample(1, 2, 64).step_s)  # and it replaced the mix
    # With no window (callers that do not measure over one) every sample counts as clean, as before.
    rec2 = tp.JobRecord("b", LIMITS, 0.0, {})
    obs = tp.observe(rec2, {"step_s": 0.5, "gpus": 2.0, "local_batch_size": 64.0}, (("slot-0", 2),), 0.0)
    assert [s.clean for s in obs.samples] == [True]
