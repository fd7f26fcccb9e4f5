"""`autocm bench inference --quick` end to end (on a subset, to keep CI short), the suite's policy list,
the rules' sweep grids, a user's own scenario, and the training split command."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from controller.cli import main
from simulator.bench.suite import FORECAST, RULE_SWEEPS, SWEEPS, _choose, _on_training, inference_policies, plans
from simulator.results import RunResult


def test_every_registered_inference_policy_is_in_the_suite_and_rules_are_swept_finely():
    names = inference_policies()
    assert {"static", "hpa", "kpa"} <= set(names)
    full = plans(quick=False)
    for group, sw in SWEEPS.items():
        assert len(sw.grid) >= 8 and list(sw.grid) == sorted(sw.grid), group
        if sw.learner in names:
            runs = [p for p in full if p.group == group]
            assert len(runs) == len(sw.grid) and {p.learner for p in runs} == {sw.learner}
            assert [p.settings[sw.key] for p in runs] == list(sw.grid)
            assert all(p.settings.items() >= sw.base.items() and p.profiled == sw.profiled for p in runs)
    assert {p.learner for p in full} == set(names)
    assert {p.group for p in full} == set(names) | set(SWEEPS)
    # both KEDA forms its users write; the forecast scaler is swept and profiled but is not a reactive rule
    assert RULE_SWEEPS["keda-rw"].base == {"query": "running+waiting"} and RULE_SWEEPS["keda"].base == {}
    assert RULE_SWEEPS["keda-rate"].base == {"query": "rate"}  # and the load-proportional form (session 24)
    assert FORECAST not in RULE_SWEEPS and SWEEPS[FORECAST].profiled


def test_policies_can_name_a_learner_or_one_swept_group():
    assert {p.group for p in plans(quick=True, only=["keda"])} == {"keda", "keda-rw", "keda-rate"}
    assert {p.group for p in plans(quick=True, only=["keda-rw"])} == {"keda-rw"}
    assert {p.group for p in plans(quick=True, only=["forecast", "static"])} == {"forecast", "static"}
    res = CliRunner().invoke(main, ["bench", "inference", "--policies", "keda-rx", "--out", "/tmp/x", "-q"])
    assert res.exit_code != 0 and "keda-rw" in res.output and "Traceback" not in res.output


def test_quick_suite_writes_the_table_json_and_plots(tmp_path):
    out = tmp_path / "bench"
    res = CliRunner().invoke(main, ["bench", "inference", "--quick", "--seeds", "2", "--scenarios", "code-trace",
                                    "--policies", "static,hpa", "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    suite = json.loads((out / "suite.json").read_text())
    scn = suite["scenarios"]["code-trace"]
    assert suite["seeds"] == [101, 102]
    hpa, static = scn["policies"]["hpa"], scn["policies"]["static"]
    assert len(hpa["attainment_per_seed"]) == 2 and hpa["attainment_worst"] <= hpa["attainment_mean"]
    assert hpa["hindsight_tuned"] and len(hpa["swept"]) == 3
    assert hpa["on_oracle_grid"] is False and hpa["x_oracle_bound"] is None  # HPA acts every 15 s
    assert static["on_oracle_grid"] is True
    o = scn["oracle"]
    assert o["feasible"] is True and o["lower_bound_gpu_hours"] > 0
    assert len(o["per_seed"]) == 2
    for s in o["per_seed"]:
        if s["replay_gpu_hours"] is not None:
            assert s["lower_bound_gpu_hours"] <= s["replay_gpu_hours"]
    if static["meets_slo_every_seed"]:
        assert static["x_oracle_bound"] >= 1.0  # a fixed grid schedule that meets the SLO is above the bound
    if scn["best_rule"] == "hpa":
        assert hpa["x_best_rule"] == 1.0
    text = (out / "summary.md").read_text()
    assert "hindsight-tuned" in text and "x oracle bound" in text and "off-grid" in text
    assert (out / "code-trace.png").exists()


def test_a_users_scenario_gets_the_same_columns(tmp_path):
    raw = {"name": "mine", "description": "My service.", "seed": 3, "duration_s": 300,
           "cluster": {"nodes": 2, "gpus_per_node": 8},
           "inference": [{"name": "svc", "trace": {"kind": "load-shape", "shape": "noisy", "mean_rate_per_s": 1.0,
                                                   "duration_s": 300},
                          "slo": {"ttft_seconds": 10.0, "attainment": 0.99},
                          "knobs": {"replicas": {"min": 1, "max": 2}, "gpus_per_replica": [8]},
                          "initial": {"replicas": 1, "gpus_per_replica": 8}}],
           "policies": [{"name": "static"}]}
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = tmp_path / "b"
    res = CliRunner().invoke(main, ["bench", "inference", "--quick", "--seeds", "1", "--scenarios", "none",
                                    "--scenario", str(path), "--policies", "static", "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    scn = json.loads((out / "suite.json").read_text())["scenarios"]["mine"]
    assert set(scn["policies"]["static"]) >= {"attainment_mean", "attainment_worst", "gpu_hours", "x_best_rule",
                                              "x_forecast", "x_oracle_replay", "x_oracle_bound", "wall_s_per_run"}


def test_bad_arguments_are_one_line_errors(tmp_path):
    r = CliRunner().invoke(main, ["bench", "inference", "--scenarios", "nope", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "unknown ['nope']" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(main, ["bench", "inference", "--policies", "nope", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "not registered" in r.output


def test_split_command_writes_training_scenarios_autocm_train_reads(tmp_path):
    from simulator.scenario import load

    r = CliRunner().invoke(main, ["bench", "split", "--quick", "--seeds", "1", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    files = sorted(tmp_path.glob("*.yaml"))
    assert any("code-trace-train-1" in f.name for f in files)
    for f in files:
        s = load(f)
        assert s.seed < 101 and "train" in s.name


def _run(label: str, group: str, attainment: float, gpu_hours: float, seed: int = 1) -> RunResult:
    return RunResult(label, group, {}, seed, {"slo_attainment": attainment, "gpu_hours": gpu_hours},
                     meets_slo=attainment >= 0.99, group=group)


def test_a_rule_tuned_on_training_is_judged_by_its_evaluation_runs_of_that_setting():
    """The setting comes from the training runs only (cheapest passing there); the figures from the evaluation
    runs of that setting, even when another setting would have been cheaper on evaluation."""
    training = {"hpa": {"hpa (0.9)": [_run("hpa (0.9)", "hpa", 0.999, 30.0), _run("hpa (0.9)", "hpa", 0.98, 29.0)],
                        "hpa (0.7)": [_run("hpa (0.7)", "hpa", 1.0, 40.0), _run("hpa (0.7)", "hpa", 0.995, 41.0)]},
                "kpa": {"kpa (1)": [_run("kpa (1)", "kpa", 0.95, 20.0)],
                        "kpa (2)": [_run("kpa (2)", "kpa", 0.9, 10.0)]}}
    tuned = {g: _choose(by_label) for g, by_label in training.items()}
    evaluation = {"hpa": {"hpa (0.9)": [_run("hpa (0.9)", "hpa", 1.0, 25.0, 101)],
                          "hpa (0.7)": [_run("hpa (0.7)", "hpa", 0.97, 35.0, 101)]},
                  "kpa": {"kpa (1)": [_run("kpa (1)", "kpa", 0.999, 22.0, 101)],
                          "kpa (2)": [_run("kpa (2)", "kpa", 0.999, 12.0, 101)]}}
    got = _on_training(evaluation, tuned)
    assert got["rules"]["hpa"]["setting"] == "hpa (0.7)"  # 0.9 missed on a training file
    assert got["rules"]["hpa"]["gpu_hours"] == 35.0 and got["rules"]["hpa"]["meets_slo_every_seed"] is False
    assert got["rules"]["kpa"]["setting"] == "kpa (1)"  # none passed: the most attaining, not the cheapest
    assert got["best"] == "hpa"  # the only rule that met on every training file
    assert _on_training(evaluation, {"kpa": tuned["kpa"]})["best"] is None
    assert _on_training(evaluation, {}) is None
    # the forecast scaler is tuned on training too and listed, but 'best rule' stays a reactive rule
    fc = {"forecast (0.3)": [_run("forecast (0.3)", "forecast", 0.999, 5.0)]}
    both = _on_training({**evaluation, "forecast": {"forecast (0.3)": [_run("forecast (0.3)", "forecast", 1.0, 6.0,
                                                                            101)]}},
                        {**tuned, "forecast": _choose(fc)})
    assert both["rules"]["forecast"]["gpu_hours"] == 6.0 and both["best"] == "hpa"


def test_the_hindsight_pick_carries_its_training_record_and_a_lucky_best_rule_is_called_out():
    """The setting picked on the evaluation seeds is looked up in the training runs already made; when the best
    rule's pick missed there, the summary says 'x best rule' divides by a setting training would have rejected."""
    from simulator.bench.summary import training_tuned

    training = {"hpa": {"hpa (0.95)": [_run("hpa (0.95)", "hpa", 0.49, 38.0), _run("hpa (0.95)", "hpa", 0.999, 40.0)],
                        "hpa (0.9)": [_run("hpa (0.9)", "hpa", 0.995, 55.0), _run("hpa (0.9)", "hpa", 0.999, 56.0)]}}
    evaluation = {"hpa": {"hpa (0.95)": [_run("hpa (0.95)", "hpa", 0.9999, 42.4, 101)],
                          "hpa (0.9)": [_run("hpa (0.9)", "hpa", 1.0, 53.5, 101)]}}
    tuned = {g: _choose(by_label) for g, by_label in training.items()}
    got = _on_training(evaluation, tuned, {"hpa": "hpa (0.95)"})
    row = got["rules"]["hpa"]
    assert row["setting"] == "hpa (0.9)" and row["hindsight_setting"] == "hpa (0.95)"
    assert row["hindsight_on_training"]["meets_slo_all_seeds"] is False
    assert row["hindsight_on_training"]["slo_attainment_worst"] == 0.49
    text = "\n".join(training_tuned({"best_rule": "hpa", "rules_tuned_on_training": got}))
    assert "The hindsight-tuned best rule, **hpa (0.95)**, **missed** the SLO on the training files (worst 0.4900)" \
        in text
    # a hindsight pick that also met on training: no sentence, the column still shows it
    fine = _on_training(evaluation, tuned, {"hpa": "hpa (0.9)"})
    text = "\n".join(training_tuned({"best_rule": "hpa", "rules_tuned_on_training": fine}))
    assert "missed** the SLO on the training" not in text and "| hpa (0.9) | yes, 0.9950, 55.50 |" in text
    # without a hindsight pick (an unswept group) the row says so, and nothing fails
    none = _on_training(evaluation, tuned)
    assert none["rules"]["hpa"]["hindsight_on_training"] is None
    assert "| - | - |" in "\n".join(training_tuned({"best_rule": "hpa", "rules_tuned_on_training": none}))


def test_tune_rules_on_training_reads_only_training_files_and_reports_both_rows(tmp_path):
    out = tmp_path / "bench"
    res = CliRunner().invoke(main, ["bench", "inference", "--quick", "--seeds", "1", "--scenarios", "step",
                                    "--policies", "hpa,static", "--no-oracle", "--tune-rules-on-training", "2",
                                    "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    suite = json.loads((out / "suite.json").read_text())
    assert suite["rules_tuned_on_training_seeds"] == [1, 2]
    t = suite["scenarios"]["step"]["rules_tuned_on_training"]
    hpa = t["rules"]["hpa"]
    assert hpa["setting"] in suite["scenarios"]["step"]["policies"]["hpa"]["swept"]
    assert set(hpa["training"]) >= {"meets_slo_all_seeds", "gpu_hours", "slo_attainment_worst"}
    written = sorted(p.name for p in (out / "scenarios").glob("*.yaml"))
    assert written == ["step-eval-101.yaml", "step-train-1.yaml", "step-train-2.yaml"]
    assert "Rules tuned on the training side" in (out / "summary.md").read_text()
    assert hpa["hindsight_setting"] == suite["scenarios"]["step"]["policies"]["hpa"]["setting"]
    assert hpa["hindsight_on_training"]["gpu_hours"] > 0  # every grid setting ran on the training files
    assert "hindsight pick | its training" in (out / "summary.md").read_text()
    r = CliRunner().invoke(main, ["bench", "inference", "--tune-rules-on-training", "-1", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "Traceback" not in r.output


def test_the_bound_divides_by_the_resolved_figure_where_the_premise_failed_and_says_what_it_rests_on():
    from simulator.bench.suite import bound_with_premises

    raw = [11.56, 12.0, 12.4]
    ok = {"tp": {"violations": 0, "slack_misses": 0, "lower_bound_gpu_hours": 11.56}}
    same, why = bound_with_premises(raw, ok, checked=True)
    assert same == raw and "held" in why and "unchecked" in why
    bad = {"tp": {"violations": 19, "slack_misses": 40, "lower_bound_gpu_hours": 11.56,
                  "repaired_lower_bound_gpu_hours": 10.31}}
    fixed, why = bound_with_premises(raw, bad, checked=True)
    assert fixed[0] == pytest.approx(10.31) and fixed[1:] == raw[1:] and "19 pair(s)" in why
    # two services, one repaired: only its excess comes off the seed's total
    two = {**bad, "code": {"violations": 0, "slack_misses": 0, "lower_bound_gpu_hours": 5.0}}
    assert bound_with_premises([16.56], two, checked=True)[0] == [pytest.approx(15.31)]
    lost = {"tp": {**bad["tp"], "repaired_lower_bound_gpu_hours": None}}
    nan, why = bound_with_premises(raw, lost, checked=True)
    assert nan[0] != nan[0] and "no bound" in why
    assert "not checked" in bound_with_premises(raw, None, checked=False)[1]
    assert bound_with_premises(raw, None, checked=False)[0] == raw


def test_an_infeasible_oracle_prints_no_bound_in_the_summary():
    from simulator.bench.summary import oracle_line

    line = oracle_line({"oracle": {"feasible": False, "lower_bound_gpu_hours": None, "per_seed": []}})
    assert "infeasible" in line and "no bound is printed" in line and "GPU-h" not in line
    assert oracle_line({"oracle": {"feasible": None}}) == "Oracle: not run."


def test_the_plot_numbers_points_keeps_the_deciding_region_readable_and_its_legend_outside(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from simulator.bench import summary

    def pol(gh, att, meets):
        return {"gpu_hours": gh, "attainment_mean": att, "meets_slo_every_seed": meets}

    scn = {"policies": {"a": pol(30, 0.25, False), "b": pol(20, 0.995, True), "c": pol(25, 0.98, False)},
           "oracle": {"lower_bound_gpu_hours": 10.0, "replay_gpu_hours": 15.0}}
    figs = []
    monkeypatch.setattr(plt, "close", lambda fig: figs.append(fig))
    assert summary._plot(tmp_path, "s", scn) == "s.png" and (tmp_path / "s.png").exists()
    ax = figs[0].axes[0]
    labels = ax.get_legend().get_texts()
    # cheapest first; a floored point shows its value
    assert [t.get_text() for t in labels][:3] == ["1: b", "2: c", "3: a (0.250)"]
    assert ax.get_ylim()[0] > 0.85  # one policy at 0.25 does not squash the rest
    figs[0].canvas.draw()
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= ax.get_window_extent().x1  # outside the axes: it hides no point


def test_the_oracle_has_rows_its_replay_with_measured_attainment_and_its_bound_with_none():
    from simulator.bench.summary import HEADER, oracle_rows

    replay = {"schedule": "fixed", "headroom": {"svc": 1}, "gpu_hours": 20.0, "slo_attainment": 0.998,
              "meets_slo": True}
    miss = {**replay, "headroom": {"svc": 0}, "slo_attainment": 0.95, "meets_slo": False}
    seed = {"replays": [miss, replay], "passing_schedule": "fixed", "passing_headroom": {"svc": 1}}
    scn = {"oracle": {"feasible": True, "replay_gpu_hours": 20.0, "lower_bound_gpu_hours": 12.0,
                      "per_seed": [seed, seed]}, "rules_tuned_on_training": None}
    rep, bound = oracle_rows(scn)
    assert rep[:6] == ["oracle (replayed)", rep[1], "0.9980", "0.9980", "yes", "20.00"]
    assert bound[2:5] == ["-", "-", "-"] and bound[5] == "12.00"  # a bound has no attainment to show
    assert len(rep) == len(bound) == len(HEADER)
    assert oracle_rows({"oracle": {"feasible": False}}) == [] and oracle_rows({"oracle": {"feasible": None}}) == []
