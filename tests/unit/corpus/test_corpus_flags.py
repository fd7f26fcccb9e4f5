"""Bad command lines and bad checkpoints: ``autocm sim``, ``autocm train`` and ``autocm learn-parallel``.

Usage errors are click's (``Error: Invalid value for '--seeds' ...``, exit 2), never an autocm
"internal error"; a path that cannot be written is refused before a long run, not after it; a
checkpoint that is not one is named with its policy; ``--ray`` to an address where nothing listens fails
within seconds.
"""

from __future__ import annotations

import json
import time
import zlib
from pathlib import Path

import pytest
from corpus_kit import error, ok, run_cli

from controller.checkpoint import FORMAT, VERSION, encode
from learners.base import create

SCENARIO = """\
name: tiny
description: a tiny inference scenario
seed: 0
duration_s: 120
control_interval_s: 30
cluster: {nodes: 2, gpus_per_node: 8}
inference:
  - name: svc
    trace: {kind: azure-code}
    slo: {ttft_seconds: 2.0, attainment: 0.99}
    knobs: {replicas: {min: 1, max: 4}}
policies: [{name: static}]
"""
TRAINING = """\
name: tiny-train
description: a tiny training scenario
cluster: {nodes: 2, gpus_per_node: 4}
training: {workload: pollux-1.0/workload-1}
policies: [{name: tiresias}]
"""
BASE = {"s.yaml": SCENARIO, "t.yaml": TRAINING, "a-file": "not a folder\n"}


def sim(*args: str) -> list[str]:
    return ["sim", "{d}/s.yaml", *args]


SIM_CASES = [
    (["sim"], error("SCENARIO")),
    (["sim", "--check"], error("SCENARIO")),
    (sim("--seeds", "0"), error("--seeds")),
    (sim("--seeds", "101"), error("--seeds", "100")),
    (sim("--seeds", "abc"), error("--seeds")),
    (sim("--seeds", "1e9"), error("--seeds")),
    (sim("--seed", "-1"), error("--seed")),
    (sim("--seed", "4294967296"), error("--seed")),
    (sim("--seed", "nan"), error("--seed")),
    (sim("--policies", "nope"), error("policies", "no policy labelled ['nope']", "static")),
    (sim("--policies", ","), error("policies", "no policy labelled")),
    (sim("--policies", "static (a, b),nope"), error("policies", "no policy labelled ['static (a, b)', 'nope']")),
    (sim("--check", "--out", "{d}/a-file/sub"), error("--out", "is a file")),
    (sim("--check", "--out", "{d}/a-file/deeper/still"), error("--out", "is a file")),
    (sim("--check", "--out", "{d}/a-file"), error("--out", "file")),
    (sim("--bogus"), error("No such option", "--bogus")),
    (["sim", "{d}/nope.yaml"], error("nope.yaml", "no such scenario file")),
    (["sim", "{d}"], error("cannot read")),
    (["sim", "no-such-bundled-name"], error("no-such-bundled-name", "bundled")),
    (sim("--check"), ok("ok (1 policies")),
    (sim("--check", "--out", "{d}/new/report/folder"), ok("ok (")),
    (["sim", "--list"], ok("inference-azure-code", "training-pollux-1.0")),
]


def train(*args: str) -> list[str]:
    return ["train", "{d}/s.yaml", *args]


TRAIN_CASES = [
    (train("--out", "{d}/a-file/v.ckpt"), error("--out", "is a file")),
    (train("--out", "{d}"), error("--out")),
    (train(), error("--out")),
    (train("--out", "{d}/v.ckpt", "--episodes", "0"), error("--episodes")),
    (train("--out", "{d}/v.ckpt", "--episodes", "1001"), error("--episodes")),
    (train("--out", "{d}/v.ckpt", "--seed", "-5"), error("--seed")),
    (train("--out", "{d}/v.ckpt", "--set", "novalue"), error("--set", "KEY=VALUE")),
    (train("--out", "{d}/v.ckpt", "--set", "=3"), error("--set", "KEY=VALUE")),
    (train("--out", "{d}/v.ckpt", "--set", "hidden=.nan"), error("--set", "hidden", "finite")),
    (train("--out", "{d}/v.ckpt", "--set", "hidden=[unclosed"), error("--set", "hidden", "YAML")),
    (train("--out", "{d}/v.ckpt", "--set", "no_such_setting=1"), error("vconf", "no_such_setting")),
    (train("--out", "{d}/v.ckpt", "--set", "hidden=-1"), error("vconf", "hidden")),
    (train("--out", "{d}/v.ckpt", "--learner", "nope"), error("nope")),
    (["train", "{d}/t.yaml", "--out", "{d}/v.ckpt"], error("t.yaml", "needs an inference service")),
    (["train", "{d}/nope.yaml", "--out", "{d}/v.ckpt"], error("nope.yaml")),
]

LEARN_CASES = [
    (["--ray", "127.0.0.1:1"], error("--ray 127.0.0.1:1", "cannot connect")),
    (["--ray", "ray://127.0.0.1:1"], error("--ray ray://127.0.0.1:1", "cannot connect")),
    (["--ray", "127.0.0.1:70000"], error("--ray", "not a TCP port")),
    (["--ray", ""], error("--ray", "expected an address")),
    (["--agents", "0"], error("--agents")),
    (["--agents", "100000"], error("--agents", "256")),
    (["--gamma", "1"], error("--gamma")),
    (["--gamma", "nan"], error("--gamma", "finite")),
    (["--gamma", "-0.1"], error("--gamma")),
    (["--error", "0"], error("--error")),
    (["--error", "nan"], error("--error", "finite")),
    (["--error", "inf"], error("--error", "finite")),
    (["--states", "100000"], error("--states", "transition probabilities")),
    (["--states", "abc"], error("--states")),
    (["--actions", "0"], error("--actions")),
    (["--quantiles", "-1"], error("--quantiles")),
    (["--quantiles", "1000000"], error("--quantiles")),
    (["--max-updates", "0"], error("--max-updates")),
    (["--max-staleness", "-1"], error("--max-staleness")),
    (["--mdp-seed", "x"], error("--mdp-seed")),
    (["--agents", "2", "-q"], ok("verdict converged")),
]


@pytest.mark.parametrize("argv, expect", [pytest.param(a, e, id=" ".join(a)) for a, e in SIM_CASES])
def test_sim_flag_corpus(tmp_path: Path, judge, argv, expect):
    judge(run_cli(tmp_path, BASE, argv), expect)


@pytest.mark.parametrize("argv, expect", [pytest.param(a, e, id=" ".join(a[2:])) for a, e in TRAIN_CASES])
def test_train_flag_corpus(tmp_path: Path, judge, argv, expect):
    started = time.monotonic()
    judge(run_cli(tmp_path, BASE, argv), expect)
    assert time.monotonic() - started < 60, "a bad command line must fail before training"
    assert not (tmp_path / "v.ckpt").exists()


@pytest.mark.parametrize("argv, expect", [pytest.param(a, e, id=" ".join(a)) for a, e in LEARN_CASES])
def test_learn_parallel_flag_corpus(tmp_path: Path, judge, argv, expect):
    started = time.monotonic()
    judge(run_cli(tmp_path, {}, ["learn-parallel", *argv]), expect)
    assert time.monotonic() - started < 60  # --ray to a closed port: seconds, not minutes


def test_train_into_a_missing_folder_creates_it(tmp_path: Path, judge):
    """``train --out`` into a folder that does not exist yet: made, and the checkpoint loads in ``sim``."""
    files = {**BASE, "s.yaml": SCENARIO.replace("duration_s: 120", "duration_s: 60")}
    result = run_cli(tmp_path, files, ["train", "{d}/s.yaml", "--episodes", "1", "-q", "--out",
                                       "{d}/new/folder/v.ckpt"])
    judge(result, ok("checkpoint:", "learner vconf"))
    assert (tmp_path / "new" / "folder" / "v.ckpt").stat().st_size > 0
    policy = "[{name: vconf, checkpoint: new/folder/v.ckpt}]"
    (tmp_path / "s2.yaml").write_text(files["s.yaml"].replace("[{name: static}]", policy))
    judge(run_cli(tmp_path, {}, ["sim", "{d}/s2.yaml", "--check"]), ok("ok ("))


# --- checkpoints named by a sim scenario


def _space():
    from simulator import scenario as sc
    from simulator.workloads import build_services

    return build_services(sc.load(_space.path))[0]


def _valid_checkpoint(tmp_path: Path, learner: str = "vconf") -> bytes:
    (tmp_path / "probe.yaml").write_text(SCENARIO)
    _space.path = tmp_path / "probe.yaml"
    svc = _space()
    made = create(learner, svc.space, svc.objective, {})
    return encode(learner, svc.space, dict(made.state_dict()))


def _zjson(doc) -> bytes:
    return zlib.compress(json.dumps(doc).encode())


CHECKPOINT_CASES = [
    ("missing", None, error("policies[0].checkpoint", "does not exist", "autocm train")),
    ("json-list", json.dumps([1, 2, 3]).encode(), error("policies[0].checkpoint", "not an autocm checkpoint")),
    ("compressed-json-list", _zjson([1, 2, 3]), error("policies[0].checkpoint", "not an autocm checkpoint")),
    ("compressed-json-string", _zjson("hello"), error("policies[0].checkpoint", "not an autocm checkpoint")),
    ("no-state", _zjson({"format": FORMAT, "version": VERSION, "learner": "vconf"}),
     error("policies[0].checkpoint")),
    ("other-format", _zjson({"format": "pickle"}), error("policies[0].checkpoint", "not an autocm checkpoint")),
    ("future-version", _zjson({"format": FORMAT, "version": 99}), error("policies[0].checkpoint", "version")),
    ("garbage", b"\x00\xffnot zlib at all", error("policies[0].checkpoint", "not an autocm checkpoint")),
    ("empty", b"", error("policies[0].checkpoint", "not an autocm checkpoint")),
    ("yaml-text", b"learner: vconf\n", error("policies[0].checkpoint", "not an autocm checkpoint")),
    ("other-learner", "hpa", error("policies[0].checkpoint", "learner 'hpa'")),
    ("a-folder", "folder", error("policies[0].checkpoint", "folder")),
    ("valid", "vconf", ok("ok (")),
]


@pytest.mark.parametrize("content, expect", [pytest.param(c, e, id=i) for i, c, e in CHECKPOINT_CASES])
def test_checkpoint_corpus(tmp_path: Path, judge, content, expect):
    files = {"s.yaml": SCENARIO.replace("[{name: static}]", "[{name: vconf, checkpoint: v.ckpt}]")}
    if content == "folder":
        files["v.ckpt/"] = ""
    elif isinstance(content, str):
        files["v.ckpt"] = _valid_checkpoint(tmp_path, content)
    elif content is not None:
        files["v.ckpt"] = content
    judge(run_cli(tmp_path, files, ["sim", "{d}/s.yaml", "--check"]), expect)


def test_policy_labels_split_on_commas_outside_parentheses_only():
    from controller.cli import split_labels

    assert split_labels("hpa, slo-rl (pretrained, bundled),kpa") == ["hpa", "slo-rl (pretrained, bundled)", "kpa"]
    assert split_labels("a (b (c, d), e), f") == ["a (b (c, d), e)", "f"]
    assert split_labels("a), b") == ["a)", "b"]  # a stray ")" does not swallow the rest
    assert split_labels(",") == ["", ""]  # reported as unknown labels, as before
