"""Asynchronous parallel training of slo-rl (simulator/parallel_pretrain.py) on the toy inference
service of test_slo_rl.py: bounded staleness holds, two worker processes reach a converged verdict
from held-out checks, the trained policy holds the SLO on held-out seeds, and the verdict travels
through the checkpoint into ``convergence()``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any

import pytest
from click.testing import CliRunner
from test_slo_rl import OBJECTIVE, SPACE, make, run

from controller import checkpoint as ckpt
from learners.types import Verdict
from simulator.parallel_pretrain import Check, EpisodeResult, ParallelSettings, best_index, train_parallel, verdict

HELD_OUT = range(2000, 2010)


@dataclass(frozen=True)
class ToyJob:
    """One toy episode from a snapshot (picklable: worker processes run it)."""

    intervals: int = 240
    delay_s: float = 0.0

    def __call__(self, state: dict[str, Any], seed: int) -> EpisodeResult:
        learner = make(seed=seed)
        learner.load_state_dict(state)
        learner.record_experience()
        if self.delay_s and seed % 3 == 0:  # an uneven worker, so some results arrive late
            time.sleep(self.delay_s)
        env = run(learner, seed, self.intervals)
        return EpisodeResult(seed, env.attainment(), env.gpu_hours, learner.take_experience())


def _attainment_on_held_out(state: dict[str, Any]) -> list[float]:
    out = []
    for s in HELD_OUT:
        learner = make(seed=s)
        learner.load_state_dict(state)
        out.append(run(learner, s).attainment())
    return out


def test_two_workers_converge_to_a_policy_that_holds_the_slo_on_held_out_seeds():
    learner = make(seed=0)
    settings = ParallelSettings(workers=2, staleness=1, max_episodes=24, check_every=2, patience=3,
                                eval_seeds=(1001, 1002, 1003))
    record = train_parallel(learner, ToyJob(), range(24), settings, OBJECTIVE.attainment)
    assert record.verdict == "converged", [(c.attainment, c.gpu_hours, c.residual) for c in record.checks]
    assert record.max_staleness <= 1 and len(record.merged) < 24
    atts = _attainment_on_held_out(learner.state_dict())
    assert sum(a >= OBJECTIVE.attainment for a in atts) >= 9, atts


@pytest.mark.parametrize("bound", [0, 1, 2])
def test_staleness_never_exceeds_the_bound(bound):
    learner = make(seed=0)
    settings = ParallelSettings(workers=3, staleness=bound, max_episodes=9, until_converged=False,
                                check_every=100, eval_seeds=(1001,), backend="thread")
    record = train_parallel(learner, ToyJob(intervals=60, delay_s=0.3), range(9), settings, OBJECTIVE.attainment)
    assert len(record.merged) == 9
    assert all(m.staleness <= bound for m in record.merged), [(m.seed, m.snapshot, m.merged_as) for m in record.merged]
    if bound == 0:  # synchronous: every round's results merge together, from the same snapshot
        assert {m.merged_as - m.snapshot for m in record.merged} == {1}
    else:  # the slow worker lets the others run ahead, up to the bound
        assert max(m.staleness for m in record.merged) >= 1


def test_verdict_is_early_stopping_on_held_out_checks():
    s = ParallelSettings(patience=2, tol_attainment=0.002, tol_gpu=0.03, tol_residual=0.05)

    def c(met, att, gpu, res=0.05):
        return Check(0, 0, att, gpu, res, met, 3, 0.0)

    assert verdict([c(3, 0.99, 10)], s) == "exploring"
    assert verdict([c(3, 0.99, 10), c(3, 0.99, 9.0), c(3, 0.99, 9.0)], s) == "converging"  # -10% GPU-h: better
    assert verdict([c(3, 0.99, 9), c(3, 0.991, 8.9), c(3, 0.99, 9.0)], s) == "converged"  # within tolerances
    assert verdict([c(2, 0.98, 9), c(2, 0.98, 9), c(3, 0.99, 9.5)], s) == "converging"  # SLO on more seeds
    assert verdict([c(3, 0.99, 9), c(1, 0.95, 8), c(0, 0.9, 8, 0.2)], s) == "diverging"  # worse, residual grew
    assert best_index([c(2, 0.98, 9), c(3, 0.99, 12), c(3, 0.99, 11.9), c(2, 0.97, 5)], s) == 1


EVALUATED: list[dict[str, Any]] = []  # snapshots the held-out episodes ran from (thread backend)


@dataclass(frozen=True)
class RecordingToyJob(ToyJob):
    def __call__(self, state: dict[str, Any], seed: int) -> EpisodeResult:
        if seed >= 1000:
            EVALUATED.append(state)
        return super().__call__(state, seed)


def test_training_keeps_the_policy_of_the_best_check():
    EVALUATED.clear()
    learner = make(seed=0)
    settings = ParallelSettings(workers=2, max_episodes=8, until_converged=False, check_every=2,
                                eval_seeds=(1001,), backend="thread")
    record = train_parallel(learner, RecordingToyJob(intervals=60), range(8), settings, OBJECTIVE.attainment)
    assert len(record.checks) == len(EVALUATED) == 4
    assert record.residual == record.checks[record.best_check].residual
    assert learner.state_dict()["capacity"] == EVALUATED[record.best_check]["capacity"]


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="--workers"):
        ParallelSettings(workers=0).validate(range(3))
    with pytest.raises(ValueError, match="--staleness"):
        ParallelSettings(staleness=-1).validate(range(3))
    with pytest.raises(ValueError, match="disjoint"):
        ParallelSettings(eval_seeds=(2,)).validate(range(3))


def test_the_verdict_is_written_to_and_read_from_the_checkpoint():
    learner = make(seed=0)
    settings = ParallelSettings(workers=2, max_episodes=4, until_converged=False, check_every=2,
                                eval_seeds=(1001,), backend="thread")
    record = train_parallel(learner, ToyJob(intervals=60), range(4), settings, OBJECTIVE.attainment)
    learner.training = record.summary()
    blob = ckpt.encode("slo-rl", SPACE, learner.state_dict(), samples=4)
    restored = make(seed=1)
    restored.load_state_dict(ckpt.decode(blob).state)
    assert restored.training["verdict"] == record.verdict and len(restored.training["checks"]) == len(record.checks)
    conv = restored.convergence()  # before live evidence: the recorded verdict and held-out residual
    assert conv.verdict == Verdict(record.verdict) and conv.residual == pytest.approx(record.residual)
    run(restored, 5, 30)  # live evidence takes over
    assert restored.convergence().residual == pytest.approx(float(sum(restored.errors) / len(restored.errors)))


@pytest.mark.parametrize("bad", ["0", "-2", "x"])
def test_autocm_train_rejects_bad_worker_counts_in_one_line(bad):
    from controller.cli import main

    res = CliRunner().invoke(main, ["train", "inference-code-train", "--learner", "slo-rl", "--workers", bad,
                                    "--out", "/tmp/never.ckpt"])
    errors = [line for line in res.output.splitlines() if line.startswith("Error")]
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert len(errors) == 1 and "--workers" in errors[0], res.output


def test_ray_tasks_train_through_the_same_coordinator_on_a_local_head():
    ray = pytest.importorskip("ray")
    import test_slo_rl
    from ray import cloudpickle  # the pickler Ray ships tasks with

    # the Ray workers do not have the test directory on their path: ship the toy by value
    for mod in (sys.modules[__name__], test_slo_rl):
        cloudpickle.register_pickle_by_value(mod)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        learner = make(seed=0)
        settings = ParallelSettings(workers=2, staleness=1, max_episodes=4, until_converged=False, check_every=2,
                                    eval_seeds=(1001,), backend="ray", keep_best=False)
        record = train_parallel(learner, ToyJob(intervals=60), range(4), settings, OBJECTIVE.attainment)
    finally:
        ray.shutdown()
        for mod in (sys.modules[__name__], test_slo_rl):
            cloudpickle.unregister_pickle_by_value(mod)
    assert len(record.merged) == 4 and record.max_staleness <= 1 and len(record.checks) == 2
    assert learner.capacity.samples >= 4 * 40  # the shared posterior absorbed every episode's intervals


def test_autocm_train_workers_with_a_learner_that_cannot_merge_is_one_line():
    from controller.cli import main

    res = CliRunner().invoke(main, ["train", "inference-code-train", "--learner", "vconf", "--workers", "2",
                                    "--out", "/tmp/never.ckpt", "-q"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert res.output.strip().splitlines() == ["error: learner 'vconf' cannot merge experience from workers; "
                                               "--workers works with slo-rl"]
