"""A checkpoint is tenant input, and every learner's state is what the operator restores from one. For each
registered learner that has state (slo-rl has its own, longer test: test_slo_rl_hostile_state.py), any one or two
fields of a trained state replaced by a hostile value (a string, None, an empty or ragged list, a huge number, NaN,
infinity, a boolean) are either refused at restore with a ValueError, leaving the learner as it was, or give a
learner that decides, learns, saves and reports convergence without an exception or a floating-point warning.
Before learners/state_checks.py was used by these learners, a NaN simplex vertex, a pending point of the wrong kind,
a gain of the wrong shape or a reward scale of 0 restored fine and then failed every later control step."""

from __future__ import annotations

import contextlib
import copy
import json
import math
import random
import re
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from test_slo_rl import OBJECTIVE, SPACE, ToyService

from controller import checkpoint as ckpt
from learners.base import create, registered
from learners.types import Action

LEARNERS = ("bayesopt", "independent", "lambda-pi", "unified", "vconf")
"""Every registered learner whose state is not empty on the toy service, except slo-rl (tested on its own)."""
SEARCH = {"bottleneck": False, "load_shift": 10.0}
"""unified and independent on the toy service restart their simplex at every bottleneck move, so their state
is always at the simplex's start; without those moves it is mid-search (reflect, contract, hold), which is
where a restored simplex has the most to get wrong."""
CASES = {"bayesopt": ("bayesopt", {}, 40), "independent": ("independent", {}, 30),
         "independent-search": ("independent", SEARCH, 60), "lambda-pi": ("lambda-pi", {}, 40),
         "unified": ("unified", {}, 30), "unified-search": ("unified", SEARCH, 50), "vconf": ("vconf", {}, 40)}
"""Trained states to fuzz: learner, settings, training intervals."""

HOSTILE = ["x", None, [], {}, -1, 0, 0.5, 10**12, float("nan"), float("inf"), -float("inf"), True, [["a"]],
           [1, 2, 3], {"a": 1}, -1e300, ""]
TRIALS = 300


def _drive(learner: Any, seed: int, intervals: int) -> None:
    env = ToyService(seed, intervals)
    prev = action = None
    for _ in range(intervals):
        obs = env.observe()
        if prev is not None and action is not None:
            learner.learn(prev, action, OBJECTIVE.reward(obs), obs)
        action = learner.decide(obs)
        env.apply(action.target)
        action = Action(dict(env.config), action.reason)  # what ran, as the control loop reports it
        prev = obs
        env.advance()


def _leaves(node: Any, path: tuple = ()) -> Iterator[tuple]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node[:4]):
            yield from _leaves(v, (*path, i))
    yield path


def _mutated(state: dict, path: tuple, value: Any) -> dict:
    out = copy.deepcopy(state)
    node = out
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = copy.deepcopy(value)
    return out


def _canonical(state: Any) -> str:
    """A state as comparable text (arrays as lists, NaN as NaN), to tell whether a learner changed."""
    def plain(v: Any) -> Any:
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [plain(x) for x in v]
        if isinstance(v, np.ndarray):
            return [str(v.dtype), plain(v.tolist())]
        return v
    return json.dumps(plain(state), sort_keys=True)


_TRAINED: dict[str, dict] = {}


def trained_state(case: str) -> dict:
    """The state of ``case`` after training on the toy service, as the operator reads it from a ConfigMap."""
    if case not in _TRAINED:
        name, settings, intervals = CASES[case]
        src = create(name, SPACE, OBJECTIVE, settings)
        _drive(src, 1, intervals)
        _TRAINED[case] = ckpt.decode(ckpt.encode(name, SPACE, src.state_dict())).state
    return _TRAINED[case]


def fresh(case: str) -> Any:
    name, settings, _ = CASES[case]
    return create(name, SPACE, OBJECTIVE, settings)


def test_the_list_covers_every_registered_learner_with_state():
    """A learner added later with state on this space is fuzzed here too (or gets its own test, like slo-rl)."""
    stateful = set()
    for name in registered():
        try:
            learner = create(name, SPACE, OBJECTIVE)
        except ValueError:  # not for this space (vpa needs a cpu or memory knob)
            continue
        _drive(learner, 1, 3)
        if learner.state_dict():
            stateful.add(name)
    assert stateful == {*LEARNERS, "slo-rl"}


@pytest.mark.parametrize("case", CASES)
def test_every_hostile_field_is_refused_at_restore_or_harmless_after_it(case):
    name, state = CASES[case][0], trained_state(case)
    rng = random.Random(f"hostile-{case}")
    refused = ran = 0
    for _ in range(TRIALS):
        bad = state
        for _ in range(rng.choice((1, 1, 1, 2))):  # now and then two fields at once
            bad = _mutated(bad, rng.choice([p for p in _leaves(bad) if p]), rng.choice(HOSTILE))
        learner = fresh(case)
        before = _canonical(learner.state_dict())
        try:
            learner.load_state_dict(bad)
        except ValueError:  # the operator reports "checkpoint not used" and runs on
            assert _canonical(learner.state_dict()) == before, "a refused checkpoint changed the learner"
            refused += 1
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            _drive(learner, 3, 6)
            learner.convergence()
            ckpt.encode(name, SPACE, learner.state_dict())  # the operator saves it again
        ran += 1
    assert refused > 50 and ran > 50, (refused, ran)  # both branches were exercised


@pytest.mark.parametrize("case", CASES)
def test_the_trained_state_itself_restores_unchanged(case):
    learner = fresh(case)
    learner.load_state_dict(trained_state(case))
    saved = ckpt.decode(ckpt.encode(CASES[case][0], SPACE, learner.state_dict())).state
    assert _canonical(saved) == _canonical(trained_state(case))
    _drive(learner, 3, 6)


def test_the_toy_training_reaches_the_states_worth_fuzzing():
    assert trained_state("bayesopt")["settled"] is not None
    assert trained_state("lambda-pi")["K"] is not None
    assert trained_state("vconf")["trained"] is True
    phases = {trained_state("unified-search")["simplex"]["phase"],
              *(t["simplex"]["phase"] for t in trained_state("independent-search")["tuners"].values())}
    assert phases - {"init"}, phases  # a simplex mid-search
    assert trained_state("unified")["cache"] and trained_state("unified-search")["cache"]


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(("case", "path", "value", "words"), [
    ("bayesopt", ("trials", 0, "cost"), NAN, "trial 0 cost"),
    ("bayesopt", ("trials", 1, "constraint"), 0, "trial 1 constraint"),
    ("bayesopt", ("trials", 2, "config", "replicas"), "x", "trial 2 config replicas"),
    ("bayesopt", ("trials",), {"a": 1}, "trials in the checkpoint is not a list"),
    ("bayesopt", ("settled", "replicas"), INF, "settled configuration replicas"),
    ("bayesopt", ("trials",), [], "settled configuration in the checkpoint is none of its trials"),
    ("bayesopt", ("knobs",), -1e300, "knobs"),
    ("lambda-pi", ("K",), [[1.0, 0.0]], "scales the wrong way"),
    ("lambda-pi", ("K",), -1e300, "gain K"),
    ("lambda-pi", ("K", 0), [NAN, 0.0], "gain K"),
    ("lambda-pi", ("P", 0, 1), INF, "value matrix P"),
    ("lambda-pi", ("last_decision",), INF, "last decision"),
    ("lambda-pi", ("last_decision",), 2.5, "last decision"),
    ("lambda-pi", ("data", 0, 1), [], "transition 0 change"),
    ("lambda-pi", ("data", 3), 0, "transition 3"),
    ("unified", ("pending_kind",), {"a": 1}, "pending kind"),
    ("unified", ("pending",), None, "no pending point"),
    ("unified", ("pending", 0), 3.5, "pending point replicas"),
    ("unified", ("simplex", "vertices", 0, 2), NAN, "simplex vertex 0"),
    ("unified", ("simplex", "vertices", 1), [0.5, 0.5], "simplex vertices"),
    ("unified", ("simplex", "phase"), "x", "simplex phase"),
    ("unified-search", ("simplex", "values", 0), None, "do not fit its phase"),
    ("unified", ("simplex", "phase"), "reflect", "do not fit its phase"),
    ("unified", ("simplex", "fr"), INF, "simplex reflected value"),
    ("unified-search", ("simplex", "fr"), NAN, "simplex reflected value"),
    ("unified", ("cache", 0, 1, 0), NAN, "cache entry 0 value"),
    ("unified", ("load_ewma",), INF, "load_ewma"),
    ("unified", ("need",), -1, "need"),
    ("unified", ("decisions", 0), [1, 2, 3], "decision 0"),
    ("independent", ("tuners", "resources", "pending_kind"), NAN, "resources tuner pending kind"),
    ("independent", ("tuners", "application", "simplex", "vertices", 0, 0), None, "simplex vertex 0"),
    ("independent", ("tuners",), {"resources": {}}, "lack ['application']"),
    ("independent", ("intervals",), INF, "independent intervals"),
    ("vconf", ("reward_scale",), 0, "reward scale"),
    ("vconf", ("epsilon",), None, "epsilon"),
    ("vconf", ("scale", "request_rate_per_second"), "x", "load scale request_rate_per_second"),
    ("vconf", ("scale",), 10**12, "load scale"),
    ("vconf", ("loads",), [["a"]], "remembered load 0"),
    ("vconf", ("loads", 1), {"request_rate_per_second": NAN}, "remembered load 1"),
    ("vconf", ("nets", "q", "p4"), {"a": 1}, "Q-network layer p4"),
    ("vconf", ("nets", "model", "p1"), [1, 2, 3], "layer of shape"),
    ("vconf", ("nets", "model"), -1, "performance model"),
    ("vconf", ("trained",), "yes", "trained flag"),
])
def test_a_hostile_field_is_refused_with_the_field_named_and_the_learner_kept(case, path, value, words):
    bad = _mutated(trained_state(case), path, value)
    with pytest.raises(ValueError, match=re.escape(words)):
        fresh(case).load_state_dict(bad)
    learner = fresh(case)  # one that runs from a checkpoint already
    learner.load_state_dict(trained_state(case))
    before = _canonical(learner.state_dict())
    with contextlib.suppress(ValueError):  # (bayesopt adds trials: the empty list is fine on top of its own)
        learner.load_state_dict(bad)
    assert _canonical(learner.state_dict()) == before


def test_a_network_layer_with_a_nan_is_refused():
    state = trained_state("vconf")
    layer = np.array(state["nets"]["q"]["p0"], copy=True)
    layer[0, 0] = math.nan
    with pytest.raises(ValueError, match="Q-network layer p0"):
        create("vconf", SPACE, OBJECTIVE).load_state_dict(_mutated(state, ("nets", "q", "p0"), layer))
