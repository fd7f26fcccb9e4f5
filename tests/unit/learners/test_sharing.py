"""Sharing within a workload class (learners/sharing.py): the class key is hostile input, the board
keeps staleness bounded and never echoes a member's own batches, and on the toy service of
test_slo_rl.py two slo-rl learners of one class that share hold the SLO with fewer GPU-hours and
predict a third, held-out service's tail misses better than when each learns alone (across seeds)."""

from __future__ import annotations

import numpy as np
import pytest
from test_slo_rl import OBJECTIVE, SPACE, ToyService, make, run

from controller.policy import PolicyError, parse
from learners.sharing import ShareBoard, ShareError, ShareMember, class_key
from learners.slo_rl import SloRl
from learners.space import ConfigSpace, Knob

SEEDS = range(10)


# --- the class key --------------------------------------------------------------------------------
def test_a_class_is_scoped_to_the_policy_namespace():
    assert class_key("llama", "ml", "slo-rl", SPACE)[0] == "ml"
    assert class_key("ml/llama", "ml", "slo-rl", SPACE) == class_key("llama", "ml", "slo-rl", SPACE)
    assert class_key("llama", "ml", "slo-rl", SPACE) != class_key("llama", "other", "slo-rl", SPACE)
    with pytest.raises(ShareError, match="own namespace"):
        class_key("other/llama", "ml", "slo-rl", SPACE)
    # only when the operator enables cross-namespace classes
    assert class_key("team/llama", "ml", "slo-rl", SPACE, cross_namespace=True) == \
        class_key("llama", "team", "slo-rl", SPACE, cross_namespace=True)


@pytest.mark.parametrize("label", ["", "Llama", "a/b/c", "-x", "x-", "a" * 64, "ml/", "/x", "x y", "ml/ab_c",
                                   "../x", 7, None, ["x"]])
def test_bad_class_labels_are_refused(label):
    with pytest.raises(ShareError):
        class_key(label, "ml", "slo-rl", SPACE, cross_namespace=True)


def test_other_learners_or_knobs_make_other_classes():
    other = ConfigSpace.of(Knob("replicas", 1, 8, 1, default=4))
    base = class_key("llama", "ml", "slo-rl", SPACE)
    assert class_key("llama", "ml", "other", SPACE) != base
    assert class_key("llama", "ml", "slo-rl", other) != base
    assert class_key("llama", "ml", "slo-rl", SPACE, identity="llama2-70b/a100") != base


def _spec(**learner):
    return {"targetRef": {"kind": "Deployment", "name": "web"},
            "objective": {"metric": "ttft_p99_seconds", "target": 0.5},
            "knobs": {"replicas": {"min": 1, "max": 8}}, "learner": {"name": "slo-rl", **learner}}


def test_share_with_is_validated_when_the_policy_is_parsed():
    assert parse(_spec(shareWith="llama-70b"), "ml", "p").share_with == "llama-70b"
    assert parse(_spec(), "ml", "p").share_with is None
    for bad in ("LLAMA", "a/b/c", "x" * 200, 3, {"name": "x"}, ""):
        with pytest.raises(PolicyError, match="shareWith"):
            parse(_spec(shareWith=bad), "ml", "p")
    spec = _spec(shareWith="llama")
    spec["learner"] = {"name": "hpa", "shareWith": "llama"}
    with pytest.raises(PolicyError, match="cannot share"):
        parse(spec, "ml", "p")


# --- the board --------------------------------------------------------------------------------------
def _rows(n: int) -> dict:
    return {"capacity_x": [[0.0, 0.0, 0.0, 0.0]] * n, "capacity_y": [0.0] * n, "alarm_x": [], "alarm_y": [],
            "rates": [1.0] * n, "log_burst": 9.0, "cold_start_s": 90.0}


def test_board_drops_stale_batches_never_echoes_and_forgets():
    board = ShareBoard(max_age_s=100.0)
    key = ("ml", "llama")
    board.publish(key, "a", 0.0, _rows(3))
    board.publish(key, "b", 50.0, _rows(2))
    fresh, seen, stale = board.since(key, "a", 0, 120.0)  # a's own batch is never returned
    assert [b.member for b in fresh] == ["b"] and stale == 0 and "rates" not in fresh[0].rows
    fresh, _, stale = board.since(key, "c", 0, 160.0)
    assert [b.member for b in fresh] == [] and stale == 2  # both older than 100 s: dropped
    assert board.since(key, "a", seen, 120.0)[0] == []  # nothing twice
    board.forget("b")
    assert board.since(key, "a", 0, 60.0)[0] == []


def test_an_empty_publication_is_not_counted_and_a_rebuilt_member_keeps_its_counts():
    board = ShareBoard(max_age_s=100.0)
    assert board.publish(("ml", "llama"), "a", 0.0, {}) is False
    assert board.publish(("ml", "llama"), "a", 0.0, _rows(2)) is True
    old = ShareMember(board, ("ml", "llama", "", "slo-rl", ()), "ml/a", make(), every_s=10.0)
    old.seen, old.last_s, old.published_batches, old.absorbed_batches, old.absorbed_rows = 4, 30.0, 2, 3, 40
    new = ShareMember(board, old.key, "ml/a", make(), every_s=10.0)
    new.carry_from(old)
    assert (new.seen, new.last_s, new.published_batches, new.absorbed_batches, new.absorbed_rows) == (4, 30.0, 2, 3, 40)
    assert new.report() == {"class": "ml/llama", "everySeconds": 10.0, "published": 2, "absorbed": 3,
                            "absorbedRows": 40, "droppedStale": 0}


def test_absorbing_peers_keeps_the_own_demand_forecast_and_burst_state():
    learner = make()
    for r in (1.0, 2.0, 3.0):
        learner.demand.observe(r)
    learner.log_burst = 0.3
    history = list(learner.demand.history)
    before = learner.capacity.samples
    learner.absorb([_rows(5)], demand=False)
    assert list(learner.demand.history) == history and learner.log_burst == 0.3
    assert learner.capacity.samples == before + 5 and learner.cold_start_s >= 90.0


# --- learner properties across seeds -----------------------------------------------------------------
def _run_class(seed: int, share: bool, intervals: int = 120) -> tuple[list[SloRl], list[ToyService]]:
    """Two services of one class (other traffic: other seeds and phases of the day) in lockstep."""
    board = ShareBoard(max_age_s=600.0)
    learners = [make(seed=seed), make(seed=seed + 100)]
    envs = [ToyService(seed, intervals, phase=0.0), ToyService(seed + 100, intervals, phase=0.5)]
    sharing = [ShareMember(board, ("ns", "toy"), f"s{i}", lr, every_s=300.0) for i, lr in enumerate(learners)] \
        if share else []
    prev: list = [None, None]
    act: list = [None, None]
    for _ in range(intervals):
        for i, (lr, env) in enumerate(zip(learners, envs, strict=True)):
            obs = env.observe()
            if prev[i] is not None:
                lr.learn(prev[i], act[i], OBJECTIVE.reward(obs), obs)
            if sharing:
                sharing[i].step(obs.time_s)
            a = lr.decide(obs)
            env.apply(a.target)
            act[i], prev[i] = type(a)(dict(env.config), a.reason), obs
            env.advance()
    return learners, envs


def _held_out_rows(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """What a third service of the class (another seed, phase and a busier day) saw."""
    learner = make(seed=seed + 500)
    learner.record_experience()
    run(learner, seed + 500, 240, mean=6.0, phase=0.25)
    exp = learner.take_experience()
    return np.asarray(exp["capacity_x"], float), np.asarray(exp["capacity_y"], float)


def _log_loss(learner: SloRl, X: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(learner.capacity.predict(X), 1e-6, 1 - 1e-6)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def test_sharing_learners_hold_the_slo_with_fewer_gpu_hours_on_9_of_10_seeds():
    ok = 0
    for seed in SEEDS:
        _, alone = _run_class(seed, share=False)
        _, shared = _run_class(seed, share=True)
        held = all(env.attainment() >= OBJECTIVE.attainment for env in shared)
        ok += held and sum(e.gpu_hours for e in shared) < sum(e.gpu_hours for e in alone)
    assert ok >= 9, ok


def test_shared_capacity_models_predict_a_held_out_service_better_on_9_of_10_seeds():
    better = 0
    for seed in SEEDS:
        X, y = _held_out_rows(seed)
        alone, _ = _run_class(seed, share=False)
        shared, _ = _run_class(seed, share=True)
        better += np.mean([_log_loss(s, X, y) for s in shared]) < np.mean([_log_loss(a, X, y) for a in alone])
    assert better >= 9, better

