"""Learner checkpoints: exact round trips, the ConfigMap budget, and refusal of mismatched knobs."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from controller import checkpoint as ckpt
from learners.base import create
from learners.objective import Objective
from learners.space import ConfigSpace, Knob
from learners.types import Action, Observation

SPACE = ConfigSpace.of(Knob("replicas", 1, 8), Knob("gpus_per_replica", choices=(1, 2, 4), restarts=True))


def test_round_trip_of_awkward_values_is_exact():
    state = {
        "array": np.arange(12, dtype=np.float32).reshape(3, 4),
        "nets": {"q": {"p0": np.linspace(0, 1, 5, dtype=np.float64)}},
        "weights": b"\x00\xffbinary",
        "tuple_keys": {(1, 2): "a", (3, 4): "b"},
        "nested": [1, 2.5, None, {"x": np.float64(0.25)}],
        "flag": True,
    }
    blob = ckpt.encode("vconf", SPACE, state, samples=7, loop={"last_change_s": 12.0})
    got = ckpt.decode(blob, "vconf", SPACE)
    assert np.array_equal(got.state["array"], state["array"]) and got.state["array"].dtype == np.float32
    assert np.array_equal(got.state["nets"]["q"]["p0"], state["nets"]["q"]["p0"])
    assert got.state["weights"] == state["weights"]
    assert got.state["tuple_keys"] == state["tuple_keys"]
    assert got.state["nested"] == [1, 2.5, None, {"x": 0.25}]
    assert got.samples == 7 and got.loop == {"last_change_s": 12.0}


def test_a_real_learner_continues_from_its_checkpoint():
    objective = Objective()
    a = create("vconf", SPACE, objective, {"seed": 3, "retrain_every": 2, "model_batches": 5,
                                            "imagined_per_load": 4})
    cfg = {"replicas": 2.0, "gpus_per_replica": 1.0}
    prev = Observation(0.0, cfg, {"ttft_p99_seconds": 0.9, "request_rate_per_second": 10.0})
    for t in range(1, 6):
        act = a.decide(prev)
        obs = Observation(60.0 * t, act.target, {"ttft_p99_seconds": 0.4, "request_rate_per_second": 10.0})
        a.learn(prev, act, objective.reward(obs), obs)
        prev = obs
    b = create("vconf", SPACE, objective, {"seed": 99, "retrain_every": 2, "model_batches": 5,
                                            "imagined_per_load": 4})
    b.load_state_dict(ckpt.decode(ckpt.encode("vconf", SPACE, a.state_dict()), "vconf", SPACE).state)
    probe = Observation(999.0, cfg, {"ttft_p99_seconds": 0.7, "request_rate_per_second": 10.0})
    # Same networks and exploration state: the restored learner's greedy choice is the original's.
    sa, sb = a.state_dict(), b.state_dict()
    assert sa["nets"].keys() == sb["nets"].keys() and sa["epsilon"] == sb["epsilon"]
    for net in sa["nets"]:
        assert all(np.array_equal(sa["nets"][net][k], sb["nets"][net][k]) for k in sa["nets"][net])
    a.epsilon = b.epsilon = 0.0
    assert a.decide(probe).target == b.decide(probe).target
    assert isinstance(a.decide(probe), Action)


@pytest.mark.parametrize(
    ("learner", "space", "words"),
    [
        ("hpa", SPACE, "learner 'vconf', the policy uses 'hpa'"),
        ("vconf", ConfigSpace.of(Knob("replicas", 1, 16)), "trained for knobs"),
        ("vconf", ConfigSpace.of(Knob("replicas", 1, 8), Knob("gpus_per_replica", choices=(1, 2, 8))),
         "trained for knobs"),
    ],
)
def test_mismatched_checkpoints_are_refused(learner, space, words):
    blob = ckpt.encode("vconf", SPACE, {})
    with pytest.raises(ckpt.CheckpointError) as err:
        ckpt.decode(blob, learner, space)
    assert words in str(err.value)


def test_garbage_and_future_versions_are_refused():
    with pytest.raises(ckpt.CheckpointError, match="not an autocm checkpoint"):
        ckpt.decode(b"not zlib")
    future = zlib.compress(b'{"format": "autocm-checkpoint", "version": 99, "learner": "x", "knobs": []}')
    with pytest.raises(ckpt.CheckpointError, match="version 99 is not supported"):
        ckpt.decode(future)


def test_state_above_the_configmap_budget_is_refused_with_its_size():
    rng = np.random.default_rng(0)
    big = {"noise": rng.random(200_000)}  # 1.6 MB of incompressible float64
    with pytest.raises(ckpt.CheckpointError, match="above the 1000000-byte ConfigMap budget"):
        ckpt.encode("vconf", SPACE, big)


def test_configmap_body_carries_readable_metadata_and_an_owner():
    blob = ckpt.encode("vconf", SPACE, {"x": 1})
    owner = {"apiVersion": "autocm.io/v1alpha1", "kind": "SizingPolicy",
             "metadata": {"name": "p", "uid": "u-1"}}
    cm = ckpt.configmap_body(ckpt.configmap_name("p"), "ml", blob, "vconf", SPACE, owner)
    assert cm["metadata"]["name"] == "autocm-checkpoint-p"
    assert cm["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert cm["data"]["knobs"] == "replicas,gpus_per_replica" and cm["data"]["learner"] == "vconf"
    assert ckpt.blob_of(cm) == blob
