"""A checkpoint is tenant input, and slo-rl's state is what the operator restores from it. Any one field of a
trained state replaced by a hostile value (a string, None, an empty or ragged list, a huge number, NaN, infinity, a
boolean) is either refused at restore (the operator then reports the checkpoint as not used and runs on) or gives a
learner that decides and learns without an exception or a floating-point warning. Before learners/state_checks.py,
an infinite precision entry or a NaN in the forecaster restored fine and then failed every later control step."""

from __future__ import annotations

import random
import warnings

import pytest
from test_learners_hostile_state import _leaves, _mutated
from test_slo_rl import SPACE, make, run

from controller import checkpoint as ckpt

HOSTILE = ["x", None, [], {}, -1, 0, 10**12, float("nan"), float("inf"), True, [["a"]], [1, 2, 3], {"a": 1},
           -1e300, ""]


@pytest.fixture(scope="module")
def trained_state() -> dict:
    src = make(seed=1)
    run(src, 1, intervals=60)
    return ckpt.decode(ckpt.encode("slo-rl", SPACE, src.state_dict())).state  # as the operator reads it


def test_every_hostile_field_is_refused_at_restore_or_harmless_after_it(trained_state):
    paths = [p for p in _leaves(trained_state) if p]
    assert len(paths) > 100  # every model's arrays, entry by entry, and the scalars
    rng = random.Random(20261207)
    refused = ran = 0
    for _ in range(600):
        path, value = rng.choice(paths), rng.choice(HOSTILE)
        learner = make(seed=2)
        try:
            learner.load_state_dict(_mutated(trained_state, path, value))
        except Exception:  # any refusal is what the operator reports as "checkpoint not used"
            refused += 1
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            run(learner, 3, intervals=8)
            learner.state_dict()
            learner.convergence()
        ran += 1
    assert refused > 100 and ran > 100, (refused, ran)  # both branches were exercised


@pytest.mark.parametrize(("path", "value", "words"), [
    (("capacity", "precision", 0, 0), float("inf"), "capacity model precision"),
    (("capacity", "precision", 0, 0), -5.0, "not positive definite"),
    (("capacity", "mean", 0), float("nan"), "capacity model mean"),
    (("demand", "precision", 0, 1), float("nan"), "forecaster precision"),
    (("demand", "noise"), float("inf"), "forecaster noise"),
    (("alarm", "precision"), [], "violation alarm precision"),
    (("cold_start_s",), float("nan"), "cold start"),
])
def test_a_broken_posterior_is_refused_with_the_field_named(trained_state, path, value, words):
    with pytest.raises(ValueError, match=words):
        make(seed=2).load_state_dict(_mutated(trained_state, path, value))


def test_the_trained_state_itself_restores_unchanged(trained_state):
    learner = make(seed=1)  # the same settings (the seed is one of them): the round trip is exact
    learner.load_state_dict(trained_state)
    assert ckpt.decode(ckpt.encode("slo-rl", SPACE, learner.state_dict())).state == trained_state
