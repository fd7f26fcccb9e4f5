"""`autocm bench pretrain` trains on the training side only, and `autocm bench inference --pretrained DIR`
adds a row that runs from the checkpoint, records its hash, and refuses one that does not fit."""

from __future__ import annotations

import hashlib
import json
import shutil

from click.testing import CliRunner

from controller.checkpoint import decode
from controller.cli import main
from simulator.bench.pretrain import checkpoint_name, pretrain_suite, sources_digest
from simulator.bench.scenarios import SCENARIOS, by_name
from simulator.bench.split import EVAL, EVAL_SEED0, TRAIN, TRAIN_SEED0


def test_pretraining_reads_only_training_side_files(tmp_path):
    trained = pretrain_suite(tmp_path / "ckpt", "slo-rl", seeds=2, names=["code-trace", "knob-tp"], quick=True)
    eval_sources: set[str] = set()
    for b in SCENARIOS:
        for seed in (EVAL_SEED0, EVAL_SEED0 + 1):
            eval_sources |= b.write(tmp_path / "eval", EVAL, seed, quick=True)[1]
    for t in trained:
        b = by_name([t.scenario])[0]
        assert t.path.name == checkpoint_name("slo-rl", t.scenario)
        assert t.sources and not t.sources & eval_sources
        # exactly what the split's training side is made of, seed by seed
        expected = frozenset().union(*(b.write(tmp_path / "again", TRAIN, s, quick=True)[1]
                                       for s in (TRAIN_SEED0, TRAIN_SEED0 + 1)))
        assert t.sources == expected
        assert all(f.name.startswith(f"{t.scenario}-{TRAIN}-") for f in t.files)
        prov = decode(t.path.read_bytes(), "slo-rl").state["provenance"]
        assert prov["side"] == TRAIN and prov["bench_scenario"] == t.scenario
        assert prov["sources_sha256"] == sources_digest(t.sources)
        assert [e["seed"] for e in prov["episodes"]] == [1, 2]
        assert all(e["seed"] < EVAL_SEED0 and "-train-" in e["file"] for e in prov["episodes"])


def _bench(out, ckpt, scenario="step", policies="slo-rl"):
    return CliRunner().invoke(main, ["bench", "inference", "--quick", "--seeds", "2", "--scenarios", scenario,
                                     "--policies", policies, "--no-oracle", "--pretrained", str(ckpt),
                                     "--out", str(out), "-q"])


def test_pretrained_row_runs_from_the_checkpoint_and_records_its_hash(tmp_path):
    ckpt = tmp_path / "ckpt"
    r = CliRunner().invoke(main, ["bench", "pretrain", "--quick", "--seeds", "2", "--scenarios", "step",
                                  "--out", str(ckpt), "-q"])
    assert r.exit_code == 0, r.output
    res = _bench(tmp_path / "b", ckpt, policies="slo-rl,static")
    assert res.exit_code == 0, res.output
    suite = json.loads((tmp_path / "b" / "suite.json").read_text())
    pols = suite["scenarios"]["step"]["policies"]
    assert {"slo-rl", "slo-rl (pretrained)", "static"} == set(pols)  # static has no checkpoint: no extra row
    path = ckpt / "slo-rl-step.ckpt"
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert pols["slo-rl (pretrained)"]["checkpoint"] == {"path": str(path.resolve()), "sha256": sha,
                                                        "settings": {}}
    assert suite["pretrained"]["checkpoints"]["step"]["slo-rl (pretrained)"]["sha256"] == sha
    assert "checkpoint" not in pols["slo-rl"]
    scratch, pre = pols["slo-rl"], pols["slo-rl (pretrained)"]
    # the learned state changes what the policy does on at least one of the two seeds
    assert (scratch["gpu_hours_per_seed"], scratch["attainment_per_seed"]) != \
        (pre["gpu_hours_per_seed"], pre["attainment_per_seed"])
    assert "slo-rl (pretrained)" in (tmp_path / "b" / "summary.md").read_text()


def test_the_pretrained_row_runs_with_the_settings_it_was_trained_with(tmp_path):
    ckpt = tmp_path / "ckpt"
    r = CliRunner().invoke(main, ["bench", "pretrain", "--quick", "--seeds", "1", "--scenarios", "knob-tp",
                                  "--set", "risk=0.1", "--out", str(ckpt), "-q"])
    assert r.exit_code == 0, r.output
    assert decode((ckpt / "slo-rl-knob-tp.ckpt").read_bytes()).state["provenance"]["settings"] == {"risk": 0.1}
    res = _bench(tmp_path / "b", ckpt, scenario="knob-tp")
    assert res.exit_code == 0, res.output
    pols = json.loads((tmp_path / "b" / "suite.json").read_text())["scenarios"]["knob-tp"]["policies"]
    assert pols["slo-rl (pretrained)"]["checkpoint"]["settings"] == {"risk": 0.1}


def _one_error_line(res) -> str:
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and "Traceback" not in res.output, res.output
    return lines[0]


def test_a_checkpoint_for_other_knobs_is_refused_naming_the_file(tmp_path):
    ckpt = tmp_path / "ckpt"
    pretrain_suite(ckpt, "slo-rl", seeds=1, names=["knob-tp"], quick=True)  # TP 2/4/8; code-trace has 4/8
    shutil.copy(ckpt / "slo-rl-knob-tp.ckpt", ckpt / "slo-rl-code-trace.ckpt")
    line = _one_error_line(_bench(tmp_path / "b", ckpt, scenario="code-trace"))
    assert "slo-rl-code-trace.ckpt" in line and "knobs" in line
    assert not (tmp_path / "b" / "suite.json").exists()


def test_a_missing_or_empty_folder_is_refused(tmp_path):
    line = _one_error_line(_bench(tmp_path / "b", tmp_path / "nope"))
    assert "--pretrained" in line and "nope" in line
    (tmp_path / "empty").mkdir()
    line = _one_error_line(_bench(tmp_path / "b", tmp_path / "empty"))
    assert "--pretrained" in line and "slo-rl-step.ckpt" not in line and "<policy>-<scenario>.ckpt" in line


def test_choose_validates_on_later_training_seeds_and_keeps_the_checkpoint_of_seed_k(tmp_path):
    from simulator.bench.pretrain import choose

    seen = []
    t = choose(by_name(["knob-tp"])[0], tmp_path, "slo-rl", 2, [("risk", [0.2, 0.05])], validate=2, quick=True,
               say=seen.append)
    assert [e["seed"] for e in t.episodes] == [1, 2] and [e["seed"] for e in t.validation] == [3, 4]
    prov = decode(t.path.read_bytes(), "slo-rl").state["provenance"]
    assert [e["seed"] for e in prov["episodes"]] == [1, 2]  # the checkpoint is taken before validation
    assert prov["sources_sha256"] == sources_digest(t.sources)
    assert t.path == tmp_path / "slo-rl-knob-tp.ckpt"
    verdicts = [line for line in seen if ": validation (" in line]
    assert len(verdicts) == 2  # every value is tried: the cheapest passing one is wanted, not the first
    kept = prov["settings"]["risk"]
    assert any(line.startswith("knob-tp: kept {'risk': " + str(kept)) for line in seen)


def test_choose_keeps_the_cheapest_combination_that_meets_and_else_the_one_meeting_on_most_seeds(tmp_path,
                                                                                               monkeypatch):
    """The rule, on a grid of two settings, with the episodes faked (each combination's validation result
    is given): cheapest among those meeting on every seed; none meeting: most seeds met, then worst seed."""
    import simulator.bench.pretrain as pt

    outcomes = {(0.2, False): ([0.995, 0.98], 10.0), (0.2, True): ([0.995, 0.996], 14.0),
                (0.1, False): ([0.999, 0.999], 12.0), (0.1, True): ([0.999, 0.9999], 13.0)}

    def fake_pretrain_one(b, out, learner_name, seeds, quick, settings, say, validate):
        att, gpu_h = outcomes[(settings["risk"], settings["saturation_guard"])]
        out.mkdir(parents=True, exist_ok=True)
        path = out / "ckpt"
        path.write_text(repr(settings))
        files = tuple(b.write(out / "train", "train", s, True)[0] for s in (1,))
        val = tuple({"seed": 2 + i, "slo_attainment": a, "gpu_hours": gpu_h} for i, a in enumerate(att))
        return pt.Trained(b.name, path, files, frozenset(), (), val)

    monkeypatch.setattr(pt, "pretrain_one", fake_pretrain_one)
    grid = [("risk", [0.2, 0.1]), ("saturation_guard", [False, True])]
    t = pt.choose(by_name(["step"])[0], tmp_path / "a", "slo-rl", 1, grid, validate=2, quick=True)
    assert t.path.read_text() == repr({"risk": 0.1, "saturation_guard": False})  # 12 GPU-h beats 13 and 14
    outcomes.update({(0.2, False): ([0.98, 0.985], 10.0), (0.2, True): ([0.98, 0.985], 14.0),
                     (0.1, False): ([0.999, 0.97], 12.0), (0.1, True): ([0.999, 0.96], 13.0)})
    t = pt.choose(by_name(["step"])[0], tmp_path / "b", "slo-rl", 1, grid, validate=2, quick=True)
    assert t.path.read_text() == repr({"risk": 0.1, "saturation_guard": False})  # 1 seed met, worst 0.97 beats 0.96


def test_each_validation_episode_starts_from_the_checkpoint_as_an_evaluation_seed_does(tmp_path):
    """Validation must measure what evaluation will: every evaluation seed runs from the checkpoint, so a
    validation seed's result may not depend on which validation seeds ran before it."""
    from simulator.bench.pretrain import pretrain_one
    from simulator.pretrain import make_learner, run_episode
    from simulator.scenario import load

    t = pretrain_one(by_name(["step"])[0], tmp_path, "slo-rl", 1, quick=True, validate=3)
    assert [e["seed"] for e in t.validation] == [2, 3, 4]
    blob = t.path.read_bytes()
    for ep in reversed(t.validation):  # alone, in another order: the same episodes
        scen = load(tmp_path / "train" / ep["file"])
        learner, space, _ = make_learner(scen, "slo-rl", None, ep["seed"])
        learner.load_state_dict(decode(blob, "slo-rl", space).state)
        alone = run_episode(scen, learner, "slo-rl", ep["seed"])
        assert (alone["slo_attainment"], alone["gpu_hours"]) == (ep["slo_attainment"], ep["gpu_hours"])


def test_a_training_episode_drains_like_an_evaluation_run(tmp_path):
    """Requests that arrive in the last seconds of an episode are judged when they finish, as in every
    ``autocm sim`` run, not counted as misses because the clock stopped: before, training seed 14 of
    code-trace ended with 369 requests in flight and read 0.966 where the same run drained reads 0.994."""
    from simulator.pretrain import make_learner, run_episode
    from simulator.scenario import load

    path, _ = by_name(["code-trace"])[0].write(tmp_path, TRAIN, 14, quick=True)  # ends in a burst
    scen = load(path)
    learner, _, _ = make_learner(scen, "hpa", None, 14)
    s = run_episode(scen, learner, "hpa", 14)  # undrained: 176 requests in flight, attainment 0.942
    assert s["requests_in_service"] == 0 and s["requests_queued"] == 0
    assert s["requests_completed"] == s["requests_arrived"] > 0


def test_settings_chosen_at_deployment_share_one_training_and_are_recorded_with_the_checkpoint(tmp_path):
    """``--choose-deployed``: each value is validated from the same trained checkpoint (no retraining), and
    the kept checkpoint is that checkpoint with its settings, the deployed ones named as such."""
    from simulator.bench.pretrain import choose

    seen = []
    t = choose(by_name(["step"])[0], tmp_path, "slo-rl", 1, [("risk", [0.2])], validate=1, quick=True,
               say=seen.append, deployed=[("fast_period_s", [0.0, 15.0])])
    trained = [line for line in seen if "step-train-1.yaml" in line]
    verdicts = [line for line in seen if ": validation (" in line]
    assert len(trained) == 1 and len(verdicts) == 2  # one training, two validations from its checkpoint
    assert "deployed fast_period_s=0.0" in verdicts[0] and "deployed fast_period_s=15.0" in verdicts[1]
    prov = decode(t.path.read_bytes(), "slo-rl").state["provenance"]
    kept = prov["settings"]["fast_period_s"]
    assert prov["settings"]["risk"] == 0.2 and prov["deployed"] == {"fast_period_s": kept}
    candidate = tmp_path / "candidates" / "step-risk=0.2" / checkpoint_name("slo-rl", "step")
    original = decode(candidate.read_bytes(), "slo-rl").state
    assert "deployed" not in original["provenance"] and original["provenance"]["settings"] == {"risk": 0.2}
    mine = decode(t.path.read_bytes(), "slo-rl").state
    assert {k: v for k, v in mine.items() if k != "provenance"} == \
        {k: v for k, v in original.items() if k != "provenance"}  # the same learned state


def test_a_setting_cannot_be_chosen_both_while_training_and_at_deployment(tmp_path):
    result = CliRunner().invoke(main, ["bench", "pretrain", "--out", str(tmp_path), "--quick", "--seeds", "1",
                                       "--scenarios", "step", "--choose", "risk=0.2,0.1",
                                       "--choose-deployed", "risk=0.05"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "risk" in result.output and "deployment" in result.output


def test_quiet_choice_still_says_what_it_kept_and_why(tmp_path):
    """-q drops the per-episode lines only: each combination's validation summary and the choice still print
    (before, a quiet --choose run printed the checkpoint's path and nothing about the grid)."""
    r = CliRunner().invoke(main, ["bench", "pretrain", "--quick", "--seeds", "1", "--scenarios", "knob-tp",
                                  "--choose", "risk=0.2,0.1", "--validate", "1", "--out", str(tmp_path), "-q"])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert sum(": validation (training seeds [2])" in line for line in lines) == 2
    assert sum(line.startswith("knob-tp: kept ") or "no combination met" in line for line in lines) == 1
    assert not any(" GPU-h, " in line and line.endswith(" s") for line in lines)  # no per-episode line
