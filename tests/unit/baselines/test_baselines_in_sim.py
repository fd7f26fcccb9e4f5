"""The four LLM-serving baselines on a small simulated service: each runs, scales up when the load steps
up, scales back down after its cooldown, and its decisions respect its own period.

A step load (0.2 -> 3 -> 0.2 requests/s, 10 minutes each) of code-trace-sized requests on a llama2-70b
TP8 service with 1..4 replicas, starting at 1.
"""

from __future__ import annotations

import json

import pytest

from simulator import scenario as sc
from simulator.workloads import PolicyRun, simulate

TABLE = ('{"8": [[128, 0.0651], [256, 0.0671], [512, 0.094], [1024, 0.1546], [2048, 0.2742], '
         '[4096, 0.6513], [8192, 1.5444]]}')

SCENARIO = """
name: step
description: a load step up and down
seed: 5
control_interval_s: 60
cluster: {{nodes: 4, gpus_per_node: 8}}
inference:
  - name: svc
    trace: {{kind: load-shape, shape: {shape}, mean_rate_per_s: 1.1333, duration_s: 1800}}
    slo: {{ttft_seconds: 10.0, attainment: 0.99}}
    knobs: {{replicas: {{min: 1, max: 4}}, gpus_per_replica: [8], max_batch_size: {{min: 64, max: 64}}}}
    initial: {{replicas: 1, gpus_per_replica: 8}}
    cold_start_s: 60
policies:
  - {{name: static}}
"""

POLICIES = {
    "keda": {"threshold": 2},
    "aibrix-kpa": {"metric": "num_requests_waiting", "target": 2},
    "aibrix-apa": {"metric": "num_requests_waiting", "target": 2},
    "forecast": {"utilization": 0.5},
}


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    d = tmp_path_factory.mktemp("step")
    shape = d / "step.txt"
    shape.write_text("\n".join(["0.2"] * 600 + ["3.0"] * 600 + ["0.2"] * 600) + "\n")
    path = d / "step.yaml"
    path.write_text(SCENARIO.format(shape=shape))
    return sc.load(path)


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_scales_up_under_the_step_and_back_down(scenario, name):
    settings = POLICIES[name]
    if name == "forecast":
        settings = {**settings, "prefill_seconds": json.loads(TABLE)}
    r = simulate(scenario, PolicyRun(name, name, settings), scenario.seed)
    series = {t: g / 8 for t, g in r.series["gpus"]}  # TP8 only: GPUs held / 8 = replicas
    during = [n for t, n in series.items() if 700 <= t <= 1200]
    after = [n for t, n in series.items() if t >= 1500]
    before = [n for t, n in series.items() if t <= 590]
    assert max(during) > max(before), (name, before, during)
    assert after[-1] < max(during), (name, during, after)
    assert r.metrics["slo_attainment"] > 0.5
