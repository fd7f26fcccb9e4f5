"""The Grafana dashboards against real components: Grafana's own linter, and every panel query answered
by a real Prometheus.

No Grafana server can run here, so this test does what Grafana would do with each panel: pick the
variables' values the way Grafana's variable editor does (``label_values`` through the HTTP API, the
variable's regex applied to the answer), interpolate them into each target's PromQL with Grafana's
rules (multi-values as a regex alternation, "All" as the variable's allValue, ``$__rate_interval``
as max(4 x scrape interval, step + scrape interval)), and run the range query. Every target must
return data.

- autocm / workloads: a simulated run with an inference service and a training job stream, exported
  as OpenMetrics and imported with promtool (as tests/e2e/test_sim_metrics_import.py does).
- autocm / operator: the real ``autocm run`` process, driving a Deployment on the test control plane
  from an emulated vLLM service's metrics, its own ``/metrics`` scraped by the real Prometheus.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner

from controller.cli import main
from controller.prometheus import escape_regex
from controller.telemetry import LOOP_BUCKETS_S

from .conftest import Component, ControlPlane, E2ETools, PrometheusServer, free_port, http_get, wait_until
from .test_operator_e2e import (
    EMULATOR,
    GROUP,
    PLURAL,
    VERSION,
    crd,  # noqa: F401 (fixture)
    custom,
    make_deployment,
    operator_argv,
    policy,
    process,
)

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = REPO / "dashboards"
FILES = ("autocm-operator.json", "autocm-workloads.json")

SCENARIO = """
name: dashboards-check
description: ten minutes of a service beside a training job stream, for the dashboards e2e test
seed: 1
control_interval_s: 60
cluster: {nodes: 4, gpus_per_node: 4, gpu_type: a100-80gb}
inference:
  - name: svc
    namespace: serving
    trace: {kind: azure-code, duration_s: 600}
    slo: {ttft_seconds: 10.0, attainment: 0.99}
    knobs: {replicas: {min: 1, max: 2}, gpus_per_replica: [4], max_batch_size: {min: 64, max: 64}}
    initial: {replicas: 2, gpus_per_replica: 4}
training:
  workload: pollux-1.0/workload-1
  scheduler: tiresias
  namespace: training
policies: [{name: static}]
"""

SIM_SCRAPE_S = 15.0
"""simulator/inference/service.py samples its exporters every 15 s, like a default Prometheus scrape."""


# --- what Grafana does with a dashboard -------------------------------------------------------------


def load(name: str) -> dict:
    return json.loads((DASHBOARDS / name).read_text())


def targets(dash: dict) -> list[tuple[str, str, str]]:
    """(panel title, refId, PromQL) of every target of every panel."""
    return [(p["title"], t["refId"], t["expr"]) for p in dash["panels"] for t in p.get("targets", [])]


def rate_interval(step_s: float, scrape_s: float) -> str:
    """Grafana's ``$__rate_interval``: max(4 x scrape interval, step + scrape interval)."""
    return f"{round(max(4 * scrape_s, step_s + scrape_s) * 1000)}ms"


Values = Mapping[str, Sequence[str] | str]


def interpolate(expr: str, values: Values, rate_interval_text: str) -> str:
    """Grafana's interpolation into a Prometheus query: a list value becomes a regex alternation of its
    escaped items (one item: the item alone), a text-box value is inserted as is, and names Grafana
    does not know (label_replace's ``$1``) are left alone."""

    def substitute(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name == "__rate_interval":
            return rate_interval_text
        if name not in values:
            return m.group(0)
        value = values[name]
        if isinstance(value, str):
            return value
        escaped = [escape_regex(v) for v in value]
        return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", substitute, expr)


def all_values(dash: dict) -> dict[str, Sequence[str] | str]:
    """Every variable at its default: "All" (the allValue regex) for query variables, text boxes' text."""
    out: dict[str, Sequence[str] | str] = {}
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            out[var["name"]] = var["allValue"]  # inserted raw, as Grafana does with a custom all value
        elif var["type"] == "textbox":
            out[var["name"]] = var["query"]
    return out


def variable_options(url: str, dash: dict, name: str, values: Values, start: float, end: float) -> list[str]:
    """What Grafana's variable dropdown offers: ``label_values(selector, label)`` then the regex."""
    var = next(v for v in dash["templating"]["list"] if v["name"] == name)
    m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", var["query"])
    assert m, var["query"]
    selector = interpolate(m.group(1), values, "1m")
    params = urllib.parse.urlencode({"match[]": selector, "start": start, "end": end})
    status, body = http_get(f"{url}/api/v1/label/{m.group(2)}/values?{params}", timeout_s=10)
    payload = json.loads(body)
    assert status == 200 and payload["status"] == "success", payload
    options = set()
    pattern = re.compile(var["regex"].strip("/")) if var.get("regex") else None
    for value in payload["data"]:
        if pattern is None:
            options.add(value)
        elif hit := pattern.search(value):
            options.add(hit.group(1) if hit.groups() else hit.group(0))
    return sorted(options)


def query_range(url: str, promql: str, start: float, end: float, step_s: float) -> list[dict]:
    params = urllib.parse.urlencode({"query": promql, "start": start, "end": end, "step": step_s})
    status, body = http_get(f"{url}/api/v1/query_range?{params}", timeout_s=30)
    payload = json.loads(body)
    assert status == 200 and payload["status"] == "success", (promql, payload)
    return [s for s in payload["data"]["result"] if s["values"]]


def answers(url: str, dash: dict, values: Values, start: float, end: float, step_s: float,
            scrape_s: float) -> dict[tuple[str, str], list[dict]]:
    """Every target's series, keyed by (panel title, refId)."""
    ri = rate_interval(step_s, scrape_s)
    return {(title, ref): query_range(url, interpolate(expr, values, ri), start, end, step_s)
            for title, ref, expr in targets(dash)}


def assert_all_answer(got: Mapping[tuple[str, str], list[dict]], context: str) -> None:
    empty = [f"{title} [{ref}]" for (title, ref), series in got.items() if not series]
    assert not empty, f"{context}: no data for {empty}"


# --- the linter ---------------------------------------------------------------------------------------


def linter(e2e_tools: E2ETools) -> Path:
    path = e2e_tools.path("dashboard-linter")
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} missing: build it with `make e2e-tools` (scripts/e2e-tools.sh)", pytrace=False)
    return path


def lint(binary: Path, dashboard: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary), "lint", "--strict", "--config", str(DASHBOARDS / ".lint"), str(dashboard)],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("name", FILES)
def test_dashboard_passes_grafana_dashboard_linter_strict(e2e_tools, name, tmp_path):
    binary = linter(e2e_tools)
    result = lint(binary, DASHBOARDS / name)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    assert "❌" not in report and "⚠" not in report, report
    # The same run on a copy with one panel's unit and another's description removed fails:
    # the linter really checks these files (it did not, say, skip them as unparsable).
    broken = load(name)
    data_panels = [p for p in broken["panels"] if p["type"] == "timeseries"]
    data_panels[0]["fieldConfig"]["defaults"]["unit"] = ""
    data_panels[1]["description"] = ""
    (tmp_path / name).write_text(json.dumps(broken))
    result = lint(binary, tmp_path / name)
    report = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"panel '{data_panels[0]['title']}' has no or invalid units" in report, report
    assert f"panel '{data_panels[1]['title']}' has missing title or description" in report, report


# --- autocm / workloads on a simulated run -------------------------------------------------------------


def test_every_workloads_panel_answers_from_a_simulated_run(e2e_tools, tmp_path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SCENARIO)
    out = tmp_path / "report"
    result = CliRunner().invoke(main, ["sim", str(scenario), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    promtool = Path(os.path.realpath(e2e_tools.path("prometheus"))).with_name("promtool")
    data = tmp_path / "tsdb"
    imported = subprocess.run([str(promtool), "tsdb", "create-blocks-from", "openmetrics",
                               str(out / "metrics" / "static.om.txt"), str(data)],
                              capture_output=True, text=True, timeout=300)
    assert imported.returncode == 0, imported.stderr
    port = free_port()
    (tmp_path / "prometheus.yml").write_text("global: {scrape_interval: 15s}\n")
    prom = Component("prometheus-dashboards", [str(e2e_tools.path("prometheus")),
                                               f"--config.file={tmp_path / 'prometheus.yml'}",
                                               f"--storage.tsdb.path={data}", "--storage.tsdb.retention.time=100y",
                                               f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                     tmp_path / "prometheus.log")
    prom.start()
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_get(f"{url}/-/ready")[0] == 200, what="Prometheus ready", timeout_s=60,
                   watch=[prom])
        dash = load("autocm-workloads.json")
        start, end, step = 0.0, 600.0, SIM_SCRAPE_S
        values = all_values(dash)

        # The dropdowns offer what a user expects: both namespaces, and workloads named as their owners
        # (the service, and the training jobs whose pods are <job>-worker-<n>), never raw pod names.
        namespaces = variable_options(url, dash, "namespace", values, start, end)
        assert namespaces == ["serving", "training"]
        workloads = variable_options(url, dash, "workload", values, start, end)
        assert "svc" in workloads and "svc-0" not in workloads
        training_jobs = set(variable_options(url, dash, "workload", {**values, "namespace": ["training"]},
                                             start, end))
        assert training_jobs and all("-worker-" not in w for w in training_jobs)
        assert set(workloads) == {"svc"} | training_jobs

        # With every variable at "All", every target of every panel returns data.
        assert_all_answer(answers(url, dash, values, start, end, step, SIM_SCRAPE_S), "workloads, All")

        # One workload picked: the inference panels answer for the service alone, the training panels
        # for a training job; the workload label the panels group by is the owner's name.
        svc = answers(url, dash, {**values, "namespace": ["serving"], "workload": ["svc"]}, start, end, step,
                      SIM_SCRAPE_S)
        inference_panels = {k: v for k, v in svc.items() if not k[0].startswith("Training")}
        assert_all_answer(inference_panels, "workloads, svc")
        labelled = {s["metric"].get("workload") for series in inference_panels.values() for s in series}
        assert labelled <= {"svc", None}  # None: the SLO line
        assert all(not series for k, series in svc.items() if k[0].startswith("Training"))
        job = sorted(training_jobs)[0]
        trained = answers(url, dash, {**values, "namespace": ["training"], "workload": [job]}, start, end, step,
                          SIM_SCRAPE_S)
        training_panels = {k: v for k, v in trained.items() if k[0].startswith("Training")}
        assert_all_answer(training_panels, f"workloads, {job}")
        assert {s["metric"]["job"] for series in training_panels.values() for s in series} == {job}

        # Latency comes out in seconds and the SLO line sits at the text box's value.
        ttft = svc[("TTFT p99 vs SLO", "A")][0]["values"]
        assert all(0 < float(v) <= 80 for _, v in ttft if v != "NaN")
        slo = svc[("TTFT p99 vs SLO", "B")][0]["values"]
        assert {float(v) for _, v in slo} == {float(values["ttft_slo_seconds"])}
    finally:
        prom.stop()


# --- autocm / operator on a running operator ----------------------------------------------------------


def test_every_operator_panel_answers_from_a_running_operator(
    crd,  # noqa: F811 (fixture)
    control_plane: ControlPlane,
    namespace: str,
    prometheus: PrometheusServer,
    prometheus_scrape,
    tmp_path: Path,
) -> None:
    plane = control_plane
    make_deployment(plane, namespace, replicas=2)
    emu_port, metrics_port = free_port(), free_port()
    started = time.time()
    emulator = [sys.executable, str(EMULATOR), "--kubeconfig", str(plane.kubeconfig), "--namespace", namespace,
                "--deployment", "web", "--port", str(emu_port)]
    with process(emulator, tmp_path / "emulator.log"):
        prometheus_scrape([f"127.0.0.1:{emu_port}"])
        prometheus.wait_for(f'emulator_running_pods{{namespace="{namespace}"}}', timeout_s=90)
        # A learning policy (VCONF reports a TD residual; rule-based baselines report none), applied.
        body = policy("web", mode="apply", learner={"name": "vconf", "settings": {"model_batches": 20}})
        custom(plane).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
        log = tmp_path / "operator.log"
        with process(operator_argv(plane, prometheus.url, metrics_port), log):
            prometheus_scrape([f"127.0.0.1:{metrics_port}"])
            # VCONF reports its residual after 5 transitions: ~6 control intervals of 2 s.
            try:
                prometheus.wait_for(f'autocm_operator_convergence_residual{{namespace="{namespace}"}}',
                                    timeout_s=180)
            except Exception as exc:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
                raise AssertionError(f"{exc}\noperator log:\n{tail}") from exc
            time.sleep(5)  # a few more scrapes, so every rate() has two samples in its window

            dash = load("autocm-operator.json")
            end = time.time()
            scrape_s = float(prometheus.scrape_interval.rstrip("s"))
            step = 2.0
            values = all_values(dash)
            namespaces = variable_options(prometheus.url, dash, "namespace", values, started, end)
            assert namespace in namespaces
            mine = {**values, "namespace": [namespace]}
            assert variable_options(prometheus.url, dash, "policy", mine, started, end) == ["web"]
            got = answers(prometheus.url, dash, {**mine, "policy": ["web"]}, started, end, step, scrape_s)
            assert_all_answer(got, f"operator, {namespace}/web")

            # The panels show what happened: the replicas knob is both recommended and applied, the
            # loop latency is within the histogram's buckets (a quantile in the +Inf bucket reads as the top
            # bound: VCONF's first steps build and train its networks), and every error stage is shown.
            knobs = {(s["metric"]["knob"], ref) for (title, ref), series in got.items()
                     if title == "Recommended vs applied configuration" for s in series}
            assert {("replicas", "A"), ("replicas", "B")} <= knobs
            p99 = [float(v) for _, v in got[("Control-loop latency", "B")][0]["values"] if v != "NaN"]
            assert p99 and all(0 < v <= LOOP_BUCKETS_S[-1] for v in p99)
            stages = {s["metric"]["stage"] for s in got[("Errors by stage", "A")]}
            assert stages == {"prometheus", "kubernetes", "workload", "learner", "status", "checkpoint"}
