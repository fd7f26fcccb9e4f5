"""Chart values cannot inject YAML into the rendered manifests.

Every string value that lands in a manifest is pattern-checked by values.schema.json or quoted in
the templates (or both); maps and lists go through ``toYaml``. Each case below is rendered by the real
``helm template`` (built by scripts/e2e-tools.sh, as in tests/unit/operator/test_helm_chart.py) and must
end one of two ways: helm refuses it naming the value's path, or it renders manifests in which the
injected text is only ever a string (no ``hostNetwork``, ``privileged``, extra flag or extra key).
Before the fix ``priorityClassName: "x\\n      hostNetwork: true"`` rendered a pod with host networking.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.e2e

CHART = Path(__file__).resolve().parents[3] / "manifests" / "autocm"
INJECTED_KEYS = {"hostNetwork", "hostPID", "privileged", "injected"}
INJECTED_FLAGS = {"--pause", "--injected"}


def helm_binary() -> Path:
    """$AUTOCM_E2E_BIN, $AUTOCM_CACHE/bin or ~/.cache/autocm/bin, as tests/e2e/conftest.py looks."""
    explicit = os.environ.get("AUTOCM_E2E_BIN")
    cache = Path(os.environ.get("AUTOCM_CACHE", str(Path.home() / ".cache" / "autocm")))
    path = Path(explicit) / "helm" if explicit else cache / "bin" / "helm"
    if not os.access(path, os.X_OK):
        pytest.fail(f"helm missing at {path}: build it with `make e2e-tools`", pytrace=False)
    return path


def helm_template(tmp_path: Path, values: dict) -> subprocess.CompletedProcess[str]:
    file = tmp_path / "values.yaml"
    file.write_text(yaml.safe_dump(values))
    env = {**os.environ, "HELM_CACHE_HOME": "/tmp/autocm-helm-cache", "HELM_CONFIG_HOME": "/tmp/autocm-helm-config"}
    return subprocess.run([str(helm_binary()), "template", "ops", str(CHART), "--namespace", "autocm-system",
                           "-f", str(file)], capture_output=True, text=True, timeout=60, env=env)


def keys(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield str(k)
            yield from keys(v)
    elif isinstance(node, list):
        for v in node:
            yield from keys(v)


NL = "\n      hostNetwork: true"
CASES: list[tuple[str, dict, str | None]] = [
    # (case, values, path helm must name when it refuses; None: must render safely)
    ("priorityClassName", {"priorityClassName": "x" + NL}, "/priorityClassName"),
    ("priorityClassName flush", {"priorityClassName": "x\nhostNetwork: true"}, "/priorityClassName"),
    ("priorityClassName flow", {"priorityClassName": "x, hostNetwork: true}"}, "/priorityClassName"),
    ("nameOverride", {"nameOverride": "x\n    hostNetwork: true"}, "/nameOverride"),
    ("fullnameOverride", {"fullnameOverride": "a\ninjected: c"}, "/fullnameOverride"),
    ("serviceAccount.name", {"serviceAccount": {"name": "sa" + NL}}, "/serviceAccount/name"),
    ("image.repository", {"image": {"repository": "autocm\n          securityContext: {privileged: true}"}},
     "/image/repository"),
    ("image.tag", {"image": {"tag": "1\n          securityContext:\n            privileged: true"}}, "/image/tag"),
    ("image.pullPolicy", {"image": {"pullPolicy": "Always\n  hostPID: true"}}, "/image/pullPolicy"),
    ("prometheus.url newline flag", {"prometheus": {"url": "http://x\n            - --pause"}}, "/prometheus/url"),
    ("prometheus.url space", {"prometheus": {"url": "http://x --pause"}}, "/prometheus/url"),
    ("prometheus.url quote", {"prometheus": {"url": 'http://x"' + NL}}, "/prometheus/url"),
    ("watchNamespaces", {"operator": {"watchNamespaces": ["ns" + NL]}}, "/operator/watchNamespaces/0"),
    ("extraArgs newline", {"operator": {"extraArgs": ["--checkpoint-every=30\n- --pause"]}}, "/operator/extraArgs/0"),
    ("extraArgs not a flag", {"operator": {"extraArgs": ["--pause", "hostNetwork: true"]}}, "/operator/extraArgs/1"),
    ("extraEnv name", {"operator": {"extraEnv": [{"name": "X" + NL, "value": "v"}]}}, "/operator/extraEnv/0/name"),
    ("serviceMonitor.namespace", {"metrics": {"serviceMonitor": {"enabled": True, "namespace": "mon" + NL}}},
     "/metrics/serviceMonitor/namespace"),
    ("serviceMonitor.interval", {"metrics": {"serviceMonitor": {"enabled": True, "interval": "30s\n  injected: y"}}},
     "/metrics/serviceMonitor/interval"),
    ("service.type", {"metrics": {"service": {"type": "ClusterIP\n  injected: y"}}}, "/metrics/service/type"),
    ("peering.name", {"peering": {"name": "p\n  injected: y"}}, "/peering/name"),
    ("imagePullSecrets", {"imagePullSecrets": [{"name": "s" + NL}]}, "/imagePullSecrets/0/name"),
    ("podLabels value", {"podLabels": {"team": "a" + NL}}, "/podLabels/team"),
    ("replicaCount string", {"replicaCount": "1" + NL}, "/replicaCount"),
    ("intervalSeconds string", {"operator": {"intervalSeconds": "5\n- --pause"}}, "/operator/intervalSeconds"),
    ("metricsPort string", {"operator": {"metricsPort": "8080" + NL}}, "/operator/metricsPort"),
    ("priority string", {"peering": {"priority": "0\n- --pause"}}, "/peering/priority"),
    # maps and lists go through toYaml: the text stays a string value
    ("podAnnotations", {"podAnnotations": {"a": "b" + NL}}, None),
    ("service annotations", {"metrics": {"service": {"annotations": {"x": "1" + NL}}}}, None),
    ("serviceAccount annotations", {"serviceAccount": {"annotations": {"x": "1" + NL}}}, None),
    ("extraEnv value", {"operator": {"extraEnv": [{"name": "X", "value": "v" + NL}]}}, None),
    ("nodeSelector", {"nodeSelector": {"pool": "gpu" + NL}}, None),
    ("extraArgs value with spaces", {"operator": {"extraArgs": ["--prometheus=http://x #hostNetwork: true"]}}, None),
]


@pytest.mark.parametrize(("values", "path"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_injection_attempts_are_refused_or_stay_strings(tmp_path: Path, values: dict, path: str | None) -> None:
    got = helm_template(tmp_path, values)
    if path is not None:
        assert got.returncode != 0, f"rendered:\n{got.stdout[:3000]}"
        assert f"at '{path}'" in got.stderr, got.stderr
        return
    assert got.returncode == 0, got.stderr
    docs = [d for d in yaml.safe_load_all(got.stdout) if d]
    assert not INJECTED_KEYS & set(keys(docs))
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    assert not INJECTED_FLAGS & set(args), args
    assert "hostNetwork" not in pod


def test_every_case_that_renders_carries_the_text_as_a_string(tmp_path: Path) -> None:
    got = helm_template(tmp_path, {"podAnnotations": {"a": "b" + NL}, "operator": {"extraEnv": [
        {"name": "X", "value": "v" + NL}]}})
    assert got.returncode == 0, got.stderr
    deployment = next(d for d in yaml.safe_load_all(got.stdout) if d and d["kind"] == "Deployment")
    assert deployment["spec"]["template"]["metadata"]["annotations"] == {"a": "b" + NL}
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["X"] == "v" + NL


def test_valid_values_still_render(tmp_path: Path) -> None:
    got = helm_template(tmp_path, {"priorityClassName": "system-cluster-critical", "image": {
        "repository": "registry.example.com:5000/team/autocm", "tag": "0.1.0-rc.1"},
        "prometheus": {"url": "https://prom.monitoring.svc:9090/prefix?x=1"},
        "serviceAccount": {"name": "autocm-sa"}, "operator": {"extraArgs": ["--checkpoint-every=30"]}})
    assert got.returncode == 0, got.stderr
    deployment = next(d for d in yaml.safe_load_all(got.stdout) if d and d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert pod["containers"][0]["image"] == "registry.example.com:5000/team/autocm:0.1.0-rc.1"
    assert "--prometheus=https://prom.monitoring.svc:9090/prefix?x=1" in pod["containers"][0]["args"]


def cluster_roles(tmp_path: Path, values: dict) -> dict[str, dict]:
    got = helm_template(tmp_path, values)
    assert got.returncode == 0, got.stderr
    return {d["metadata"]["name"]: d for d in yaml.safe_load_all(got.stdout) if d and d["kind"] == "ClusterRole"}


def test_user_roles_aggregate_to_edit_and_view_and_grant_only_sizingpolicies(tmp_path: Path) -> None:
    roles = cluster_roles(tmp_path, {})
    editor, viewer = roles["ops-autocm-sizingpolicy-editor"], roles["ops-autocm-sizingpolicy-viewer"]
    assert editor["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert editor["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-admin"] == "true"
    assert viewer["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert "rbac.authorization.k8s.io/aggregate-to-edit" not in viewer["metadata"]["labels"]
    for role in (editor, viewer):
        assert {g for r in role["rules"] for g in r["apiGroups"]} == {"autocm.io"}
        assert {x for r in role["rules"] for x in r["resources"]} <= {"sizingpolicies", "sizingpolicies/status"}
    assert {v for r in viewer["rules"] for v in r["verbs"]} == {"get", "list", "watch"}
    # status is the operator's to write, never a user's
    status_rules = [r for r in editor["rules"] if "sizingpolicies/status" in r["resources"]]
    assert status_rules and all(r["verbs"] == ["get", "list", "watch"] for r in status_rules)


def test_user_roles_can_be_bound_explicitly_or_left_out(tmp_path: Path) -> None:
    roles = cluster_roles(tmp_path, {"rbac": {"userRoles": {"aggregate": False}}})
    editor = roles["ops-autocm-sizingpolicy-editor"]
    assert not any(k.startswith("rbac.authorization.k8s.io/aggregate") for k in editor["metadata"]["labels"])
    assert "ops-autocm-sizingpolicy-editor" not in cluster_roles(tmp_path, {"rbac": {"userRoles": {"create": False}}})
