"""`autocm sim` runs a checkpoint with the settings its provenance records, as the operator and
`autocm bench inference --pretrained` do; the scenario's own settings win, and bad ones are refused naming
the checkpoint. Before session 22 a scenario policy ``{name: slo-rl, checkpoint: x.ckpt}`` ran the
checkpoint with the learner's defaults whatever it was chosen with."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import pytest

from controller.checkpoint import inflate
from simulator.scenario import load
from simulator.workloads import PolicyRun, ScenarioError, _learner, build_services

CKPT = str(Path(__file__).resolve().parents[3] / "simulator" / "checkpoints" / "slo-rl-diurnal.ckpt")


def with_settings(tmp_path, settings: dict) -> str:
    doc = json.loads(inflate(Path(CKPT).read_bytes()))
    doc["state"]["provenance"]["settings"] = settings
    path = tmp_path / "chosen.ckpt"
    path.write_bytes(zlib.compress(json.dumps(doc).encode()))
    return str(path)


def test_the_checkpoints_settings_apply_and_the_scenarios_win(tmp_path):
    scenario = load("inference-diurnal-eval")
    svc = build_services(scenario)[0]
    path = with_settings(tmp_path, {"risk": 0.05, "demand_noise_clip": 3.0, "fast_period_s": 15.0})
    learner = _learner(scenario, PolicyRun("rl", "slo-rl", {"fast_period_s": 0.0}, checkpoint=path), svc)
    assert (learner.s.risk, learner.s.demand_noise_clip, learner.s.fast_period_s) == (0.05, 3.0, 0.0)
    plain = _learner(scenario, PolicyRun("rl", "slo-rl", {}, checkpoint=CKPT), svc)  # records down_evidence only
    assert (plain.s.risk, plain.s.demand_noise_clip, plain.s.down_evidence) == (0.2, 0.0, 1.0)


@pytest.mark.parametrize(("settings", "words"), [({"risk": "x"}, "provenance.settings.risk"),
                                                  ({"bogus": 1}, "no setting(s) ['bogus']")])
def test_bad_recorded_settings_are_refused_naming_the_checkpoint(tmp_path, settings, words):
    scenario = load("inference-diurnal-eval")
    svc = build_services(scenario)[0]
    path = with_settings(tmp_path, settings)
    with pytest.raises(ScenarioError, match="policy rl") as err:
        _learner(scenario, PolicyRun("rl", "slo-rl", {}, checkpoint=path), svc)
    assert words in str(err.value) and "chosen.ckpt" in str(err.value)


def test_autocm_train_says_which_settings_travel_and_sim_runs_with_them(tmp_path):
    """The round trip a user makes: ``autocm train --set`` (it says the settings travel), then a scenario
    naming the checkpoint runs with them."""
    from click.testing import CliRunner

    from controller.cli import main

    out = tmp_path / "t.ckpt"
    result = CliRunner().invoke(main, ["train", "inference-diurnal-train", "--learner", "slo-rl", "--episodes", "1",
                                       "--set", "risk=0.1", "-q", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert 'it runs with {"risk": 0.1} wherever it is used' in result.output
    scenario = load("inference-diurnal-eval")
    learner = _learner(scenario, PolicyRun("rl", "slo-rl", {}, checkpoint=str(out)), build_services(scenario)[0])
    assert learner.s.risk == 0.1


def test_the_sharp_label_checkpoint_runs_with_the_label_it_was_trained_with():
    """A training setting (``capacity_sharpness``, session 29) travels in the provenance like the deployment ones:
    the posterior was fitted to labels of sharpness 8, so the online updates must keep labelling at 8."""
    scenario = load("inference-diurnal-eval")
    policy = next(p for p in scenario.policies if p.get("label") == "slo-rl (pretrained sharp label)")
    path = str((scenario.path.parent / policy["checkpoint"]).resolve())
    learner = _learner(scenario, PolicyRun("rl", "slo-rl", {}, checkpoint=path), build_services(scenario)[0])
    assert learner.s.capacity_sharpness == 8 and learner.capacity.s.sharpness == 8
    assert (learner.s.risk, learner.s.switch_mean, learner.s.down_evidence) == (0.2, True, 0)
    plain = _learner(scenario, PolicyRun("rl", "slo-rl", {}, checkpoint=CKPT), build_services(scenario)[0])
    assert plain.capacity.s.sharpness == 4  # the bundled checkpoint records none: the default it was trained with
