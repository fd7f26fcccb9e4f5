"""`autocm sim` as a user runs it: table on stdout, a complete report folder, every bundled scenario valid."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from controller.cli import main
from simulator import scenario as sc
from simulator.workloads import PolicyRun, simulate

SMALL = """
name: small
description: ten minutes of the bursty load shape at the Azure code trace's rate on a small cluster
seed: 3
control_interval_s: 60
cluster: {nodes: 2, gpus_per_node: 8}
inference:
  - name: svc
    trace: {kind: load-shape, shape: bursty, mean_rate_per_s: 2.6, duration_s: 600}
    slo: {ttft_seconds: 10.0, attainment: 0.99}
    knobs: {replicas: {min: 1, max: 2}, gpus_per_replica: [8], max_batch_size: {min: 64, max: 64}}
    initial: {replicas: 2, gpus_per_replica: 8}
policies:
  - {name: static}
  - {name: hpa, sweep: {target: [0.6, 0.9]}}
  - {name: oracle}
"""


def test_sim_writes_a_complete_report(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text(SMALL)
    out = tmp_path / "report"
    result = CliRunner().invoke(main, ["sim", str(path), "--out", str(out), "--seeds", "2", "-q"])
    assert result.exit_code == 0, result.output
    assert "SLO attain." in result.output and "oracle (lower bound)" in result.output
    for name in ("summary.md", "results.json", "runs.csv", "table.csv", "all_runs.json", "gpus_over_time.png",
                 "cost_vs_slo.png"):
        assert (out / name).stat().st_size > 0, name
    assert list((out / "metrics").glob("*.om.txt"))
    res = json.loads((out / "results.json").read_text())
    assert res["seeds"] == [3, 4] and len(res["scenario_sha256"]) == 64 and res["versions"]["simpy"]
    # every swept HPA target ran on both seeds; the table keeps the chosen one
    all_runs = json.loads((out / "all_runs.json").read_text())
    assert {r["policy"] for r in all_runs if r["learner"] == "hpa"} == {"hpa (target=0.6)", "hpa (target=0.9)"}
    assert len(all_runs) == 2 * 4
    static = [r for r in all_runs if r["learner"] == "static"]
    assert all(r["metrics"]["gpu_hours_vs_oracle"] >= 1.0 for r in static)  # the oracle is a lower bound
    text = (out / "metrics" / "static.om.txt").read_text()
    assert "vllm:request_success_total" in text and text.endswith("# EOF\n")


@pytest.mark.parametrize("name", sorted(sc.bundled()))
def test_every_bundled_scenario_validates(name):
    result = CliRunner().invoke(main, ["sim", name, "--check"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("name", [n for n, p in sorted(sc.bundled().items()) if sc.load(p).inference])
def test_bundled_slo_is_feasible_for_the_largest_static_configuration(name):
    """Every scenario's SLO must be met by its best static configuration (all knobs at their upper bound
    that the cluster can hold), otherwise comparing policies on it means nothing."""
    scen = sc.load(name)
    top = {}
    for spec in scen.inference:
        gpus = scen.raw["cluster"]["nodes"] * scen.raw["cluster"]["gpus_per_node"]
        tp = max(spec["knobs"].get("gpus_per_replica", [8]))
        top = {"replicas": min(spec["knobs"]["replicas"]["max"], gpus // tp), "gpus_per_replica": tp}
    run = simulate(scen, PolicyRun("static-top", "static", {"config": top}), scen.seed)
    assert run.meets_slo, run.metrics
