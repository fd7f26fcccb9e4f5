"""The committed dashboard JSON is exactly what dashboards/ builds, and every query names real metrics."""

from __future__ import annotations

import json
import re

import pytest

from controller.prometheus import DEFAULT_QUERIES
from controller.telemetry import Telemetry
from dashboards import build

DASHBOARDS = build.HERE
FILES = ("autocm-operator.json", "autocm-workloads.json")


def load(name: str) -> dict:
    return json.loads((DASHBOARDS / name).read_text())


def targets(dash: dict) -> list[tuple[dict, dict]]:
    return [(p, t) for p in dash["panels"] for t in p.get("targets", [])]


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression, by the exporters' prefixes (label names never carry them)."""
    return set(re.findall(r"\b((?:autocm_|vllm:|DCGM_|container_)[a-zA-Z0-9_:]*)", expr))


def test_committed_json_is_what_the_code_builds():
    rendered = build.render_all()
    assert sorted(rendered) == sorted(FILES)
    for name, text in rendered.items():
        committed = (DASHBOARDS / name).read_text()
        assert committed == text, f"dashboards/{name} is stale: run `python -m dashboards.build` and commit it"


def test_check_mode_reports_a_stale_file(tmp_path, capsys):
    assert build.main(["--out", str(tmp_path)]) == 0
    assert build.main(["--out", str(tmp_path), "--check"]) == 0
    (tmp_path / FILES[0]).write_text("{}\n")
    assert build.main(["--out", str(tmp_path), "--check"]) == 1
    assert FILES[0] in capsys.readouterr().err


@pytest.mark.parametrize("name", FILES)
def test_every_panel_is_self_explaining_and_uses_the_datasource_variable(name):
    dash = load(name)
    variables = {v["name"] for v in dash["templating"]["list"]}
    assert "datasource" in variables
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    data_panels = [p for p in dash["panels"] if p["type"] != "row"]
    assert data_panels
    for panel in data_panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["description"].strip(), panel["title"]
        assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]
        assert panel["targets"], panel["title"]
    for panel, target in targets(dash):
        used = set(re.findall(r"\$\{?([a-zA-Z_]\w*)", target["expr"])) - {"__rate_interval"}
        assert used <= variables, (panel["title"], used - variables)
        assert target["datasource"]["uid"] == "${datasource}"
        # one refId per target in a panel, or Grafana drops all but one
    for panel in data_panels:
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]


def test_operator_dashboard_reads_only_metrics_the_operator_exports():
    exported = set()
    for family in Telemetry().registry.collect():
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}.get(family.type, ("",))
        exported |= {family.name + s for s in suffixes}
    used = set().union(*(metric_names(t["expr"]) for _, t in targets(load("autocm-operator.json"))))
    assert used, "no metric found in the operator dashboard"
    assert used <= exported, used - exported
    # every family the operator exports has a panel
    families = {f.name for f in Telemetry().registry.collect()}
    assert {n for n in families if not any(u.startswith(n) for u in used)} == set()


def test_workload_dashboard_reads_the_metrics_the_operator_reads():
    used = set().union(*(metric_names(t["expr"]) for _, t in targets(load("autocm-workloads.json"))))
    read_by_operator = set().union(*(metric_names(q.template.replace("{{{selector}}}", "{x}"))
                                     for q in DEFAULT_QUERIES.values()))
    # the latency, load, KV cache, GPU and training metrics the operator reads all have a panel
    missing = {m for m in read_by_operator if m not in used and not m.startswith("container_")}
    # vllm:prompt_tokens_total feeds the forecast scaler's demand and has no panel yet.
    assert missing == {"vllm:time_per_output_token_seconds_bucket", "vllm:e2e_request_latency_seconds_bucket",
                       "vllm:prompt_tokens_total"}


def test_error_counters_exist_at_zero_before_the_first_error():
    """The "Errors by stage" panel shows 0, not "No data", and rate() counts the first error."""
    from controller.telemetry import ERROR_STAGES

    registry = Telemetry().registry
    for stage in ERROR_STAGES:
        assert registry.get_sample_value("autocm_operator_errors_total", {"stage": stage}) == 0.0


def test_configmaps_carry_each_dashboard_verbatim_with_the_sidecar_label(capsys):
    import yaml

    assert build.main(["--configmap", "monitoring"]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    assert [d["metadata"]["name"] for d in docs] == ["autocm-operator-dashboard", "autocm-workloads-dashboard"]
    for doc, name in zip(docs, FILES, strict=True):
        assert doc["metadata"]["namespace"] == "monitoring"
        assert doc["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert json.loads(doc["data"][name]) == load(name)


@pytest.mark.parametrize(("pod", "owner"), [
    ("web-7d9f8b6c5-x7k2p", "web"),  # Deployment: <name>-<pod-template-hash>-<5>
    ("my-app-7d9f8b6c5-x7k2p", "my-app"),
    ("resnet-finetune-x7k2p", "resnet-finetune"),  # Job: a word is not a hash (it has vowels)
    ("svc-0", "svc"),  # StatefulSet, and the simulator's replicas
    ("api-server-12", "api-server"),
    ("cifar10-0-worker-3", "cifar10-0"),  # PyTorchJob, and the simulator's training workers
    ("bert-master-0", "bert"),
])
def test_workload_variable_names_a_pod_by_its_owner(pod, owner):
    """The variable's regex as Grafana applies it (JavaScript and Python agree on this syntax), and the
    RE2 the panels' label_replace uses, give the same owner; the panels' pod matcher accepts the pod."""
    from dashboards import workloads

    var = next(v for v in load("autocm-workloads.json")["templating"]["list"] if v["name"] == "workload")
    assert re.search(var["regex"].strip("/"), pod).group(1) == owner
    assert re.fullmatch(workloads.OWNER_RE2, pod).group(1) == owner
    assert re.fullmatch(f"{re.escape(owner)}-{workloads.POD_SUFFIX}", pod)
