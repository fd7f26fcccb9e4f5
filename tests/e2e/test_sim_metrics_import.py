"""A simulated run can be watched like a real one: its OpenMetrics file imports into a real Prometheus
with promtool, and every default query the operator runs for an inference service returns data."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.parse
from pathlib import Path

from click.testing import CliRunner

from controller.cli import main
from controller.prometheus import DEFAULT_QUERIES, render_shared
from simulator.metrics import read_openmetrics_strictly

from .conftest import Component, free_port, http_get, wait_until

SCENARIO = """
name: import-check
description: ten minutes of the Azure code trace, for the metrics import test
seed: 1
control_interval_s: 60
cluster: {nodes: 2, gpus_per_node: 8}
inference:
  - name: svc
    namespace: serving
    trace: {kind: azure-code, duration_s: 600}
    slo: {ttft_seconds: 10.0, attainment: 0.99}
    knobs: {replicas: {min: 1, max: 2}, gpus_per_replica: [8], max_batch_size: {min: 64, max: 64}}
    initial: {replicas: 2, gpus_per_replica: 8}
policies: [{name: static}]
"""

INFERENCE_METRICS = ("ttft_p99_seconds", "tbt_p99_seconds", "e2e_p99_seconds", "request_rate_per_second",
                     "queue_length", "concurrency_per_replica", "kv_cache_usage", "gpu_utilization")


def test_simulated_metrics_import_and_answer_the_operators_queries(e2e_tools, tmp_path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SCENARIO)
    out = tmp_path / "report"
    result = CliRunner().invoke(main, ["sim", str(scenario), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    om = out / "metrics" / "static.om.txt"
    read_openmetrics_strictly(om.read_text())  # and a strict parser accepts it too
    data = tmp_path / "tsdb"
    # Debian's prometheus package ships promtool beside the server
    promtool = Path(os.path.realpath(e2e_tools.path("prometheus"))).with_name("promtool")
    imported = subprocess.run([str(promtool), "tsdb", "create-blocks-from", "openmetrics", str(om), str(data)],
                              capture_output=True, text=True, timeout=120)
    assert imported.returncode == 0, imported.stderr
    port = free_port()
    (tmp_path / "prometheus.yml").write_text("global: {scrape_interval: 15s}\n")
    prom = Component("prometheus-import", [str(e2e_tools.path("prometheus")),
                                           f"--config.file={tmp_path / 'prometheus.yml'}",
                                           f"--storage.tsdb.path={data}", "--storage.tsdb.retention.time=100y",
                                           f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                     tmp_path / "prometheus.log")
    prom.start()
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_get(f"{url}/-/ready")[0] == 200, what="Prometheus ready", timeout_s=60,
                   watch=[prom])
        for metric in INFERENCE_METRICS:
            promql = render_shared(DEFAULT_QUERIES[metric].template, ["serving"], 60.0)
            params = urllib.parse.urlencode({"query": promql, "start": 60, "end": 600, "step": 30})
            status, body = http_get(f"{url}/api/v1/query_range?{params}", timeout_s=10)
            payload = json.loads(body)
            assert status == 200 and payload["status"] == "success", (metric, payload)
            points = [v for series in payload["data"]["result"] for v in series["values"]]
            assert points, f"{metric}: {promql} returned no data from the imported simulation"
    finally:
        prom.stop()
