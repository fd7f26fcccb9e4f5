"""`autocm sim` reports what ran: unreachable configurations, seeds that change nothing, the last requests of
a recorded log, extrapolated latencies, sweeps at the wall, the best static in hindsight, the oracle as a
bound, and numbers that are not rounded into a different claim."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from controller.cli import main
from simulator import scenario as sc
from simulator.report import write_report
from simulator.results import Estimate, RunResult
from simulator.runner import run_scenario


def _strict_loads(text: str):
    def refuse(name: str):
        raise ValueError(f"not JSON: bare {name}")

    return json.loads(text, parse_constant=refuse)


def _scenario(tmp_path, text: str, name: str = "s.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return sc.load(str(path))


TINY = """
name: tiny
description: five minutes of a small bursty load.
seed: 2
control_interval_s: 60
cluster: {{nodes: {nodes}, gpus_per_node: 8}}
inference:
  - name: svc
    trace: {trace}
    slo: {{ttft_seconds: 10.0, attainment: 0.9}}
    knobs: {{replicas: {{min: 1, max: {max_replicas}}}, gpus_per_replica: [4, 8], max_batch_size: {{min: 64, max: 64}}}}
    initial: {{replicas: {initial}, gpus_per_replica: 8}}
policies:
{policies}
"""
LOAD = "{kind: load-shape, shape: bursty, mean_rate_per_s: 1.5, duration_s: 300}"


def tiny(tmp_path, policies: str, nodes: int = 2, max_replicas: int = 4, trace: str = LOAD, initial: int = 2):
    return _scenario(tmp_path, TINY.format(nodes=nodes, max_replicas=max_replicas, trace=trace, policies=policies,
                                           initial=initial))


def test_results_json_is_strict_json_even_with_nan(tmp_path):
    scen = tiny(tmp_path, "  - {name: static}")
    run = RunResult("static", "static", {}, 2, {"slo_attainment": 0.5, "tbt_p99_seconds": math.nan,
                                                 "gpu_hours": math.inf}, False)
    write_report(tmp_path / "out", scen, [run], [2])
    data = _strict_loads((tmp_path / "out" / "results.json").read_text())
    assert data["runs"][0]["metrics"]["tbt_p99_seconds"] is None
    assert data["table"]["static"]["tbt_p99_seconds"]["mean"] is None


def test_an_attainment_just_below_one_is_not_printed_as_one():
    assert Estimate(0.99998, math.nan, 1).format() == "0.99998"
    assert Estimate(1.0, math.nan, 1).format() == "1"
    assert Estimate(0.123456, math.nan, 1).format() == "0.123"


def test_the_oracle_row_shows_no_measured_attainment_and_tables_have_p50(tmp_path):
    scen = tiny(tmp_path, "  - {name: static}\n  - {name: oracle}")
    out = tmp_path / "out"
    report = run_scenario(scen, out, [2], progress=False, metrics=False, hindsight=False)
    oracle_line = next(line for line in report.table_text.splitlines() if line.startswith("oracle"))
    header = report.table_text.splitlines()[0]
    assert "TTFT p50 s" in header and "E2E p50 s" in header
    cells = oracle_line.split()
    assert "0.9" not in cells  # the target is not shown as if measured
    oracle = next(r for r in _strict_loads((out / "results.json").read_text())["runs"] if r["learner"] == "oracle")
    assert "slo_attainment" not in oracle["metrics"] and oracle["meets_slo"] is None
    with (out / "runs.csv").open() as f:
        names = next(csv.reader(f))
    assert {"ttft_p50_seconds", "tbt_p50_seconds", "e2e_p50_seconds"} <= set(names)


def test_an_unreachable_static_configuration_is_reported_as_what_really_ran(tmp_path):
    # 16 GPUs held by 2 x TP8; asking for 4 x TP4 leaves new pods Pending (nothing can be freed first)
    policy = "  - {name: static, label: static 4xTP4, settings: {config: {replicas: 4, gpus_per_replica: 4}}}"
    scen = tiny(tmp_path, policy)
    report = run_scenario(scen, tmp_path / "out", [2], progress=False, metrics=False, hindsight=False)
    run = report.runs[0]
    assert run.metrics["pending_pods_mean"] >= 1.5
    assert "pending pods" in report.table_text.splitlines()[0]
    warning = next(n for n in run.notes if "Pending" in n)
    assert "2.0 x TP8" in warning and "4 x TP4" in warning and "did not all run" in warning
    assert warning in report.table_text and warning in (tmp_path / "out" / "summary.md").read_text()


def test_a_recorded_log_counts_its_last_request_and_drains(tmp_path):
    log = tmp_path / "log.csv"
    rows = [(f"{t:.1f}", 2000, 200) for t in range(0, 120, 4)]
    log.write_text("timestamp,input,output\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    scen = tiny(tmp_path, "  - {name: static}", trace="{kind: request-log, path: log.csv}")
    report = run_scenario(scen, tmp_path / "out", [2], progress=False, metrics=False, hindsight=False)
    m = report.runs[0].metrics
    assert m["requests"] == len(rows)  # the one arriving at the very end too
    assert m["requests_completed"] == len(rows) and m["requests_unfinished"] == 0


def _tail_log(tmp_path, grace: str) -> Path:
    """A recorded log whose last requests are long (2,000 tokens out) and a scenario draining ``grace`` s."""
    rows = [f"{t},2000,200" for t in range(0, 60, 4)] + ["60,2000,2000" for _ in range(8)]
    (tmp_path / "log.csv").write_text("timestamp,input,output\n" + "\n".join(rows) + "\n")
    path = tmp_path / "tail.yaml"
    text = TINY.format(nodes=2, max_replicas=4, trace="{kind: request-log, path: log.csv}",
                       policies="  - {name: static}", initial=2)
    path.write_text(text.replace("control_interval_s: 60", f"control_interval_s: 60{grace}"))
    return path


def test_requests_left_when_the_drain_grace_period_ends_are_counted_apart_and_named(tmp_path):
    report = run_scenario(sc.load(_tail_log(tmp_path, "\ndrain_grace_s: 5")), tmp_path / "out", [2], progress=False,
                          metrics=False, hindsight=False)
    m = report.runs[0].metrics
    assert m["requests"] == 23 and m["requests_unfinished"] >= 8  # the long tail cannot finish in 5 s
    assert m["requests_completed"] + m["requests_rejected"] + m["requests_unfinished"] == m["requests"]
    assert m["slo_attainment"] <= (m["requests"] - m["requests_unfinished"]) / m["requests"]  # they are misses
    warning = next(n for n in report.runs[0].notes if "unfinished" in n)
    assert "drain_grace_s: 5 s" in warning and warning in report.table_text
    # the default grace (600 s) lets the same tail finish: the key is honoured, not just accepted
    default = run_scenario(sc.load(_tail_log(tmp_path, "")), tmp_path / "d", [2], progress=False, metrics=False,
                           hindsight=False)
    assert default.runs[0].metrics["requests_unfinished"] == 0


@pytest.mark.parametrize(("grace", "error"), [("-1", "less than the minimum of 0"),
                                              ("100000", "greater than the maximum of 86400")])
def test_a_drain_grace_period_out_of_range_is_one_clear_line(tmp_path, grace, error):
    path = _tail_log(tmp_path, f"\ndrain_grace_s: {grace}")
    res = CliRunner().invoke(main, ["sim", str(path), "--check"])
    assert res.exit_code == 2 and f"drain_grace_s: {grace} is {error}" in res.output
    assert len(res.output.strip().splitlines()) == 1 and "Traceback" not in res.output


def test_seeds_that_change_nothing_are_refused(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("0,100,10\n1,100,10\n2,100,10\n")
    path = tmp_path / "log.yaml"
    path.write_text(TINY.format(nodes=2, max_replicas=4, trace="{kind: request-log, path: log.csv}",
                                policies="  - {name: static}", initial=2))
    runner = CliRunner()
    res = runner.invoke(main, ["sim", str(path), "--seeds", "3", "-q", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "--seeds 3" in res.output and "Traceback" not in res.output
    assert "request logs replay as recorded" in res.output
    # a load shape draws a new sample per seed: allowed, and the seeds differ
    scen = tiny(tmp_path, "  - {name: static}")
    report = run_scenario(scen, tmp_path / "ok", [2, 3], progress=False, metrics=False, hindsight=False)
    assert report.runs[0].metrics["requests"] != report.runs[1].metrics["requests"]


def _training(tmp_path, policies: str):
    """A training-only scenario of the first 18 jobs of Pollux's 1.0x workload 1 that fit 2 nodes x 4 GPUs
    (a few seconds per run; Pollux's search gives different JCTs on seeds 0 and 1 here)."""
    src = (sc.DATA_DIR / "pollux" / "workloads-1.0" / "workload-1.csv").read_text().splitlines()
    rows = [line for line in src[1:30] if int(line.split(",")[3]) <= 8]
    (tmp_path / "jobs.csv").write_text("\n".join([src[0], *rows]) + "\n")
    path = tmp_path / "train.yaml"
    path.write_text("name: train\ndescription: d\ncluster: {nodes: 2, gpus_per_node: 4, node_choice: most-free}\n"
                    f"training: {{workload: jobs.csv}}\npolicies: [{policies}]\n")
    return path


def test_a_deterministic_training_scheduler_refuses_seeds_and_names_itself(tmp_path):
    path = _training(tmp_path, "{name: tiresias}")
    res = CliRunner().invoke(main, ["sim", str(path), "--seeds", "2", "-q", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "(tiresias) draws nothing from the seed" in res.output
    assert "the training model is deterministic" not in res.output  # the old, false, blanket claim


@pytest.mark.parametrize("scheduler", ["pollux", "goodput-las"])
def test_a_randomised_training_scheduler_runs_every_seed_and_the_seeds_differ(tmp_path, scheduler):
    scen = sc.load(_training(tmp_path, f"{{name: {scheduler}}}"))
    report = run_scenario(scen, tmp_path / "out", [0, 1], progress=False, metrics=False)
    jct = [r.metrics["avg_jct_s"] for r in report.runs]
    assert len(jct) == 2 and jct[0] != jct[1]


def test_seed_sensitivity_follows_the_schedulers_that_run():
    from simulator.runner import expand, seed_sensitive

    scen = sc.load("training-pollux-1.0")
    assert seed_sensitive(scen)  # pollux runs
    assert not seed_sensitive(scen, expand(scen, ["tiresias", "goodput-waterfill"], sweep=True))
    assert seed_sensitive(scen, expand(scen, ["pollux"], sweep=True))


def test_the_seeded_scheduler_list_matches_the_schedulers_that_hold_a_random_generator():
    import numpy as np

    from simulator.workloads import SEEDED_SCHEDULERS, TRAINING_SCHEDULERS

    for name, make in TRAINING_SCHEDULERS.items():
        holds = any(isinstance(v, np.random.Generator) for v in vars(make(seed=0)).values())
        assert holds == (name in SEEDED_SCHEDULERS), name


def test_extrapolation_warnings_reach_the_cli_and_the_summary(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(TINY.format(nodes=2, max_replicas=4, trace=LOAD, policies="  - {name: static}", initial=2))
    res = CliRunner().invoke(main, ["sim", str(path), "-q", "--out", str(tmp_path / "o"), "--no-metrics"])
    assert res.exit_code == 0, res.output
    assert "outside the measured latency table" in res.output
    assert "outside the measured latency table" in (tmp_path / "o" / "summary.md").read_text()


def test_a_sweep_whose_every_setting_ends_at_the_maximum_says_so(tmp_path):
    heavy = "{kind: load-shape, shape: bursty, mean_rate_per_s: 20, duration_s: 300}"
    scen = tiny(tmp_path, "  - {name: hpa, sweep: {target: [0.5, 0.8]}}", nodes=1, max_replicas=2, trace=heavy,
                initial=1)  # one node holds one TP8 replica: a bigger start is refused as unreachable
    report = run_scenario(scen, tmp_path / "out", [2], progress=False, metrics=False, hindsight=False)
    assert all(r.metrics["time_at_max"] == 1.0 for r in json_runs(tmp_path / "out"))  # 1 x TP8 fills the node
    assert "hpa: the sweep " in report.table_text and "for 100%-100% of the run" in report.table_text


def json_runs(out):
    return [RunResult(r["policy"], r["learner"], r["settings"], r["seed"], r["metrics"], r["meets_slo"])
            for r in _strict_loads((out / "all_runs.json").read_text())]


def test_settings_that_only_end_at_the_maximum_are_not_said_to_hit_the_wall(tmp_path):
    # quiet for 270 s, then a burst: both settings end asking for the maximum, after running differently
    rows = [f"{t},500,50" for t in range(0, 270, 10)] + [f"{270 + i / 10:.1f},4000,400" for i in range(300)]
    (tmp_path / "burst.csv").write_text("timestamp,input,output\n" + "\n".join(rows) + "\n")
    scen = tiny(tmp_path, "  - {name: hpa, sweep: {target: [0.3, 0.9]}}", trace="{kind: request-log, path: burst.csv}",
                initial=1, nodes=4)
    report = run_scenario(scen, tmp_path / "out", [2], progress=False, metrics=False, hindsight=False)
    runs = json_runs(tmp_path / "out")
    assert len(runs) == 2 and all(r.metrics["ended_at_max"] == 1.0 for r in runs)
    assert all(r.metrics["time_at_max"] < 0.5 for r in runs)
    hours = sorted(r.metrics["gpu_hours"] for r in runs)
    assert hours[1] / hours[0] > 1.01
    assert "wall" not in report.table_text and "apart" not in report.table_text


def _swept(gpu_hours: list[float], time_at_max: list[float]) -> dict[str, list[RunResult]]:
    return {f"s{i}": [RunResult(f"s{i}", "hpa", {}, 0, {"gpu_hours": g, "time_at_max": f, "ended_at_max": 1.0,
                                                         "slo_attainment": 0.99}, True)]
            for i, (g, f) in enumerate(zip(gpu_hours, time_at_max, strict=True))}


def test_the_wall_note_says_what_was_measured():
    from simulator.runner import wall_note

    assert wall_note("hpa", _swept([53.1, 59.6], [0.1, 0.2])) is None  # ended at the maximum only
    pinned = wall_note("hpa", _swept([53.1, 59.6], [0.62, 0.91]))
    assert pinned and "for 62%-91% of the run" in pinned and "GPU-hours 53.1-59.6" in pinned
    assert "apart" not in pinned  # they cost different amounts: they can be told apart
    same = wall_note("hpa", _swept([50.0, 50.4], [0.1, 0.2]))
    assert same and "cannot tell its 2 settings apart" in same and "within 1%" in same


def test_every_inference_report_has_the_best_static_in_hindsight(tmp_path):
    scen = tiny(tmp_path, "  - {name: static, label: static 2xTP8}")
    report = run_scenario(scen, tmp_path / "out", [2], progress=False, metrics=False)
    rows = [r for r in report.runs if r.learner == "hindsight-static"]
    assert rows and rows[0].policy.startswith("best static in hindsight") and rows[0].meets_slo
    static = next(r for r in report.runs if r.learner == "static")
    if static.meets_slo:
        assert rows[0].metrics["gpu_hours"] <= static.metrics["gpu_hours"] * 1.001
    assert "a reference, not a policy" in report.table_text
    summary = _strict_loads((tmp_path / "out" / "results.json").read_text())
    assert summary["hindsight"]["config"]["gpus_per_replica"] in (4.0, 8.0)


def test_the_best_static_in_hindsight_names_the_space_it_searched(tmp_path):
    # batch knob 16..64 by 16: the search tries 16 and 64 (bounds) and the initial 64, not 32 or 48
    scen = tiny(tmp_path, "  - {name: static, label: static 2xTP8}")
    raw = scen.raw["inference"][0]
    raw["knobs"]["max_batch_size"] = {"min": 16, "max": 64, "step": 16}
    raw["initial"]["max_batch_size"] = 64
    report = run_scenario(scen, tmp_path / "out", [2], progress=False, metrics=False)
    note = next(line for line in report.table_text.splitlines() if line.startswith("best static in hindsight:"))
    assert "among replicas 1-4 (as many as the cluster fits) x TP {4, 8} x batch {16, 64}" in note
    assert "its 2 other values were not tried" in note
    summary = _strict_loads((tmp_path / "out" / "results.json").read_text())
    assert summary["hindsight"]["searched"] == {"replicas": [1, 4], "gpus_per_replica": [4, 8],
                                                "max_batch_size": [16, 64]}


def test_the_best_static_in_hindsight_rows_carry_their_wall_time(tmp_path):
    report = run_scenario(tiny(tmp_path, "  - {name: static}"), tmp_path / "out", [2], progress=False, metrics=False)
    rows = [r for r in report.runs if r.learner == "hindsight-static"]
    assert rows and all(r.wall_s > 0 for r in rows)
    with (tmp_path / "out" / "runs.csv").open() as f:
        wall = [float(r["wall_s"]) for r in csv.DictReader(f) if r["learner"] == "hindsight-static"]
    assert wall and all(w > 0 for w in wall)


def test_a_hindsight_search_over_every_batch_does_not_claim_untried_ones(tmp_path):
    scen = tiny(tmp_path, "  - {name: static}")  # batch knob 64..64: every value is tried
    report = run_scenario(scen, tmp_path / "out", [2], progress=False, metrics=False)
    note = next(line for line in report.table_text.splitlines() if line.startswith("best static in hindsight:"))
    assert "x batch {64}" in note and "not tried" not in note


@pytest.mark.parametrize("value", [0.5, 0.999, 0.9999])
def test_format_keeps_ordinary_values(value):
    assert float(Estimate(value, math.nan, 1).format()) == pytest.approx(value, rel=1e-3)


def test_a_swept_pick_is_called_hindsight_tuned_and_a_pick_at_the_grids_edge_says_so(tmp_path):
    scen = tiny(tmp_path, "  - {name: hpa, sweep: {target: [0.3, 0.5, 0.9]}}", initial=1, nodes=4)
    report = run_scenario(scen, tmp_path / "out", [2], progress=False, metrics=False, hindsight=False)
    chosen = report.chosen["hpa"]
    assert "hindsight-tuned best case" in report.table_text, report.table_text  # 0.3 meets: 1 replica is plenty
    edge = "is at the edge of the swept grid" in report.table_text
    runs = {r.policy: [r] for r in json_runs(tmp_path / "out")}
    cheapest = min(runs, key=lambda lb: runs[lb][0].metrics["gpu_hours"])
    # a light load: every target meets, so the cheapest end (0.9) is the pick, and cheaper may lie beyond
    assert chosen == cheapest == "hpa (target=0.9)" and edge, report.table_text


def test_a_pick_at_an_end_is_cut_off_only_where_further_out_could_be_better():
    from simulator.results import beyond_grid

    def grid(*cells):  # (gpu_hours, meets) per value, in grid order
        return {f"s{i}": [RunResult(f"s{i}", "hpa", {}, 0, {"gpu_hours": g}, m)] for i, (g, m) in enumerate(cells)}

    assert beyond_grid("s2", grid((9, True), (7, True), (5, True)))  # cheapest end, still meeting
    assert not beyond_grid("s0", grid((9, True), (7, False), (5, False)))  # cheaper neighbours miss: bracketed
    assert beyond_grid("s0", grid((9, False), (7, False), (5, False)))  # none met: further out might
    assert not beyond_grid("s1", grid((9, True), (7, True), (5, False)))  # inside the grid
    assert not beyond_grid("s0", grid((9, True)))  # nothing swept


def test_shared_goodput_reports_how_many_class_models_passed_their_convergence_check(tmp_path):
    """The class models' out-of-sample convergence check is shown (a share, 0-1) for shared-goodput only: a
    scheduler without class models has no such column value, rather than a made-up 0."""
    from simulator.report import COLUMNS, table_rows
    from simulator.results import aggregate

    scen = sc.load(_training(tmp_path, "{name: shared-goodput}, {name: pollux}"))
    report = run_scenario(scen, tmp_path / "out", [0], progress=False, metrics=False)
    by = {r.learner: r.metrics for r in report.runs}
    assert 0.0 <= by["shared-goodput"]["class_models_converged"] <= 1.0
    assert "class_models_converged" not in by["pollux"]
    header, rows = table_rows(aggregate(report.runs))
    col = header.index(COLUMNS["class_models_converged"][0])
    assert {r[0]: r[col] for r in rows}["pollux"] == "-"
