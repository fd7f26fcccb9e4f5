"""``--check`` must mean it: inputs at the edges of what the check accepts run to completion, quickly.

Each case is a scenario that passes ``autocm sim --check`` at a boundary (the shortest control interval,
scale to zero, a start that fills the cluster exactly, a request log with zero-token rows, a job as wide
as the cluster, failures, YAML 1.2 floats, ...) and, kept short, must then simulate to a report with
figures in their ranges within a bounded wall time.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest
from corpus_kit import ok, run_cli

from simulator import scenario as sc
from simulator.workloads import TRAINING_SCHEDULERS

HEAD = """\
name: edge
description: a scenario at the edge of what --check accepts
seed: 0
"""
SERVICE = """\
inference:
  - name: svc
    trace: %s
    slo: {ttft_seconds: 2.0, attainment: 0.99}
    knobs: %s
"""


def inference(trace: str = "{kind: azure-code}", knobs: str = "{replicas: {min: 1, max: 4}}", extra: str = "",
              head: str = "duration_s: 60\ncontrol_interval_s: 10\ncluster: {nodes: 2, gpus_per_node: 8}\n",
              policies: str = "[{name: static}, {name: hpa}]") -> str:
    return HEAD + head + SERVICE % (trace, knobs) + extra + f"policies: {policies}\n"


JOBS = "name,time,application,num_replicas,batch_size\nwide,0,cifar10,8,512\nsmall,20,ncf,1,\n"

CASES = [
    ("interval-at-the-minimum", inference(head="duration_s: 30\ncontrol_interval_s: 1\n"
                                               "cluster: {nodes: 2, gpus_per_node: 8}\n"), {}),
    ("scale-to-zero", inference(knobs="{replicas: {min: 0, max: 4}}"), {}),
    ("start-fills-the-cluster", inference(knobs="{replicas: {min: 1, max: 4}, gpus_per_replica: [4, 8]}",
                                          extra="    initial: {replicas: 2, gpus_per_replica: 8}\n"), {}),
    ("request-log-edges", inference(trace="{kind: request-log, path: log.csv, duration_s: 60}"),
     {"log.csv": "t,in,out\n5,100,0\n-1,1,10\n2.5,0,3\n"}),
    ("compressed-trace", inference(trace="{kind: azure-code, rate_scale: 10, duration_s: 60}"), {}),
    ("one-number-load-shape", inference(trace="{kind: load-shape, shape: shape.txt, mean_rate_per_s: 1.5, "
                                              "duration_s: 60}"), {"shape.txt": "7\n"}),
    ("failures-and-interference", inference(extra="failures: {enabled: true, node_mtbf_hours: 0.02, repair_s: 10}\n"
                                                  "interference: {enabled: true, slowdown_per_neighbour: 1}\n"), {}),
    ("yaml-1.2-floats", inference(head="duration_s: 6e1\ncontrol_interval_s: 1e1\n"
                                       "cluster: {nodes: 2, gpus_per_node: 8}\n"), {}),
    ("job-as-wide-as-the-cluster", HEAD + "cluster: {nodes: 2, gpus_per_node: 4}\ntraining: {workload: jobs.csv}\n"
                                          "policies: [{name: tiresias}, {name: goodput-waterfill}]\n",
     {"jobs.csv": JOBS}),
    ("mixed", inference(head="duration_s: 60\ncontrol_interval_s: 10\ncluster: {nodes: 4, gpus_per_node: 4}\n",
                        extra="training: {workload: jobs.csv}\n",
                        knobs="{replicas: {min: 1, max: 4}, gpus_per_replica: [4]}"),
     {"jobs.csv": JOBS.replace(",8,512", ",4,512")}),
]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("text, files", [pytest.param(t, f, id=i) for i, t, f in CASES])
def test_what_passes_check_runs_to_a_report(tmp_path: Path, judge, text, files):
    files = {"s.yaml": text, **files}
    judge(run_cli(tmp_path, files, ["sim", "{d}/s.yaml", "--check"]), ok("ok ("))
    started = time.monotonic()
    result = run_cli(tmp_path, {}, ["sim", "{d}/s.yaml", "--out", "{d}/report", "-q", "--no-sweep"])
    wall = time.monotonic() - started
    judge(result, ok("report:"))
    assert wall < 300, f"{wall:.0f} s for a one-minute scenario"
    runs = json.loads((tmp_path / "report" / "results.json").read_text())["runs"]
    assert runs and all(_sane(r["metrics"]) for r in runs), runs


def _sane(m: dict) -> bool:
    """The figures a run is judged by are numbers in their range (means over nothing may be NaN: a report
    concern of the results writer, not of the inputs)."""
    ok_inference = "slo_attainment" not in m or (
        0.0 <= m["slo_attainment"] <= 1.0 and math.isfinite(m["gpu_hours"]) and m["gpu_hours"] >= 0
        and m["requests"] == m["requests_completed"] + m["requests_rejected"] + m["requests_unfinished"])
    ok_training = "jobs_completed" not in m or (
        m["jobs_completed"] + m["jobs_unfinished"] >= 1 and math.isfinite(m["training_gpu_hours"]))
    return ok_inference and ok_training


def test_the_scenario_module_knows_the_training_schedulers():
    """scenario.py cannot import the runner (it imports scenario.py); the two lists must agree."""
    assert sorted(sc.TRAINING_SCHEDULER_NAMES) == sorted(TRAINING_SCHEDULERS)


def test_every_bundled_scenario_is_within_the_limits():
    for path in sc.bundled().values():
        raw = sc.load(path).raw
        assert sc.implied_duration_s(raw) <= sc.MAX_DURATION_S
