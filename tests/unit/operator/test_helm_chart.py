"""The Helm chart (manifests/autocm): its CRD is the operator's, its RBAC is exactly what the code calls.

``OPERATOR_CALLS`` is the table of every Kubernetes call site in the operator (found with ``ast``, so a
new call without a row fails ``test_every_kube_call_site_is_in_the_rbac_table``) and the permissions
it needs; ``KOPF_NEEDS`` adds what kopf itself does. The chart's rendered ClusterRole/Roles must grant
all of it and nothing else. Tests that run the real ``helm`` binary (built by scripts/e2e-tools.sh)
carry the ``e2e`` marker and fail, never skip, when it is missing, as tests/e2e does.
tests/e2e/test_helm_e2e.py proves the same RBAC against a real apiserver.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
from collections.abc import Iterable
from pathlib import Path

import pytest
import yaml

from controller import policy as policy_mod
from controller.kube import workload_path
from controller.policy import TargetRef

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "manifests" / "autocm"
CRD_SOURCE = REPO / "controller" / "crd" / "sizingpolicy.yaml"
CRD_COPY = CHART / "crds" / "sizingpolicy.yaml"

Need = tuple[str, str, str]  # (apiGroup, resource[/subresource], verb)

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job", "PyTorchJob")

# Every call the operator makes through controller.kube.Kube, by (module, function, Kube method).
# Server-side apply is a PATCH; when the object does not exist yet the apiserver creates it and
# authorizes `create` too (checkpoint ConfigMaps; a Job re-applied after its deletion).
OPERATOR_CALLS: dict[tuple[str, str, str], list[Need]] = {
    ("kube", "post_event", "request"): [("", "events", "create")],
    ("kube", "WorkloadActuator.read", "get"): [
        ("apps", "deployments", "get"), ("apps", "statefulsets", "get"), ("batch", "jobs", "get"),
        ("kubeflow.org", "pytorchjobs", "get")],
    # One LIST per namespace and kind per interval, shared by that namespace's policies.
    ("workload_cache", "WorkloadCache.get", "get"): [
        ("apps", "deployments", "list"), ("apps", "statefulsets", "list"), ("batch", "jobs", "list"),
        ("kubeflow.org", "pytorchjobs", "list"), ("apps", "deployments", "get"), ("apps", "statefulsets", "get"),
        ("batch", "jobs", "get"), ("kubeflow.org", "pytorchjobs", "get")],
    ("kube", "WorkloadActuator._actuate_pytorchjob", "apply"): [
        ("kubeflow.org", "pytorchjobs", "patch"), ("kubeflow.org", "pytorchjobs", "create")],
    # A count alone (Worker.replicas, a Job's parallelism) is a JSON merge patch: see Kube.merge_patch.
    ("kube", "WorkloadActuator._actuate_pytorchjob", "merge_patch"): [("kubeflow.org", "pytorchjobs", "patch")],
    ("kube", "WorkloadActuator._actuate", "merge_patch"): [("batch", "jobs", "patch")],
    ("pool_runner", "PoolRunner._apply", "merge_patch"): [("kubeflow.org", "pytorchjobs", "patch")],
    # The checkpoint-aware recreation's delete-and-wait, shared by a policy's actuator and the training pool.
    ("kube", "delete_and_wait", "get"): [("batch", "jobs", "get"), ("kubeflow.org", "pytorchjobs", "get")],
    ("kube", "delete_and_wait", "request"): [("batch", "jobs", "delete"), ("kubeflow.org", "pytorchjobs", "delete")],
    # A training pool lists its jobs by selector in its own namespace, and applies them resized or recreated.
    ("pool_runner", "PoolRunner._list_jobs", "get"): [
        ("batch", "jobs", "list"), ("kubeflow.org", "pytorchjobs", "list")],
    ("pool_runner", "PoolRunner._apply", "apply"): [
        ("batch", "jobs", "create"), ("batch", "jobs", "patch"),
        ("kubeflow.org", "pytorchjobs", "create"), ("kubeflow.org", "pytorchjobs", "patch")],
    # After a 404 from pods/resize: is the pod gone (skip it) or is in-place resize unsupported?
    ("kube", "WorkloadActuator._resize_in_place", "get"): [("", "pods", "get")],
    # Discovery (GET /apis/kubeflow.org/v1) is a non-resource URL every authenticated user may read.
    ("operator", "Engine._crd_missing", "get"): [],
    ("kube", "WorkloadActuator._room", "get"): [
        ("", "pods", "list"), ("", "resourcequotas", "list"), ("", "nodes", "list")],
    ("kube", "WorkloadActuator._actuate", "apply"): [
        ("batch", "jobs", "patch"), ("apps", "deployments/scale", "patch"), ("apps", "statefulsets/scale", "patch"),
        ("apps", "deployments", "patch"), ("apps", "statefulsets", "patch")],
    ("kube", "WorkloadActuator._resize_in_place", "strategic_patch"): [("", "pods/resize", "patch")],
    ("kube", "WorkloadActuator._resize_in_place", "apply"): [
        ("apps", "deployments", "patch"), ("apps", "statefulsets", "patch"), ("batch", "jobs", "patch")],
    ("kube", "WorkloadActuator._recreate_job", "apply"): [("batch", "jobs", "create"), ("batch", "jobs", "patch")],
    ("kube", "WorkloadActuator.pods", "get"): [("", "pods", "list")],
    ("pool_runner", "PoolRunner.lingering", "get"): [("", "pods", "list")],
    # The pool's consolidation: its jobs' pods in its namespace, then free GPUs per node (as the capacity check).
    ("pool_runner", "PoolRunner._consolidate", "get"): [("", "pods", "list"), ("", "nodes", "list")],
    ("kube", "_list_autoscalers.listing", "get"): [
        ("autoscaling", "horizontalpodautoscalers", "list"), ("autoscaling.k8s.io", "verticalpodautoscalers", "list"),
        ("keda.sh", "scaledobjects", "list")],
    ("operator", "checkpoint_configmaps", "get"): [("", "configmaps", "get")],
    ("operator", "PolicyRunner.save", "apply"): [("", "configmaps", "create"), ("", "configmaps", "patch")],
    # GET /version is a non-resource URL every authenticated user may read (system:public-info-viewer).
    ("operator", "Engine._resize_supported", "server_minor_version"): [],
    ("operator", "Engine._write", "apply"): [("autocm.io", "sizingpolicies/status", "patch")],
}
OPERATOR_MODULES = (
    "kube", "workload_cache", "pytorchjob", "operator", "checkpoint", "prometheus", "policy", "loop", "guards",
    "telemetry", "pool_runner",
)
KUBE_METHODS = {"get", "apply", "request", "merge_patch", "strategic_patch", "server_minor_version"}

# kopf (docs "Deployment: RBAC"): watch the served resource and patch it (finalizer, progress
# annotations), post events, follow CRDs; peering objects; namespaces when serving a list of them.
KOPF_NEEDS: list[Need] = [
    ("autocm.io", "sizingpolicies", "list"), ("autocm.io", "sizingpolicies", "watch"),
    ("autocm.io", "sizingpolicies", "patch"), ("", "events", "create"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
]
KOPF_CLUSTER_PEERING = [("kopf.dev", "clusterkopfpeerings", v) for v in ("get", "list", "watch", "patch")]
KOPF_NAMESPACED_PEERING = [("kopf.dev", "kopfpeerings", v) for v in ("get", "list", "watch", "patch")]
KOPF_NAMESPACES = [("", "namespaces", "list"), ("", "namespaces", "watch")]

# What cannot be granted per namespace: nodes, CRDs, namespaces, cluster peering, and pods across the
# cluster (the capacity check lists every pod).
CLUSTER_SCOPED = {"nodes", "customresourcedefinitions", "namespaces", "clusterkopfpeerings"}
CLUSTER_WIDE_LISTS = {("", "pods", "list")}


# --- the call-site table against the code --------------------------------------------------------------


def _kube_call_sites() -> dict[tuple[str, str, str], list[str]]:
    """(module, function, Kube method) -> the path strings (literal or f-string) used in that function."""
    sites: dict[tuple[str, str, str], list[str]] = {}
    for mod in OPERATOR_MODULES:
        tree = ast.parse((REPO / "controller" / f"{mod}.py").read_text())

        def visit(node: ast.AST, scope: list[str], mod: str = mod) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    visit(child, [*scope, child.name])
                    if not isinstance(child, ast.ClassDef):
                        fn = ".".join([*scope, child.name])
                        nodes = list(ast.walk(child))
                        pieces = {id(v) for n in nodes if isinstance(n, ast.JoinedStr) for v in n.values}
                        paths = [_unparse_path(s) for s in nodes if _is_path_string(s) and id(s) not in pieces]
                        for key in sites:  # a nested function also sees its enclosing function's paths
                            if key[0] == mod and (key[1] == fn or key[1].startswith(fn + ".")):
                                sites[key] = paths
                    continue
                if (isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute)
                        and child.func.attr in KUBE_METHODS
                        and ast.unparse(child.func.value).split(".")[-1] == "kube"):
                    sites.setdefault((mod, ".".join(scope), child.func.attr), [])
                visit(child, scope)

        visit(tree, [])
    return sites


def _is_path_string(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.startswith(("/api/", "/apis/"))
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        return str(node.values[0].value).startswith(("/api/", "/apis/"))
    return False


def _unparse_path(node: ast.AST) -> str:
    """An f-string path with the policy module's constants filled in and every other field as ``{x}``."""
    if isinstance(node, ast.Constant):
        return str(node.value)
    out = []
    for part in node.values:  # type: ignore[attr-defined]
        if isinstance(part, ast.Constant):
            out.append(str(part.value))
        else:
            name = ast.unparse(part.value)
            out.append(str(getattr(policy_mod, name)) if name in ("GROUP", "VERSION", "PLURAL") else "{x}")
    return "".join(out)


def resource_of(path: str) -> tuple[str, str]:
    """(apiGroup, resource[/subresource]) of an API path such as /apis/apps/v1/namespaces/x/deployments/y/scale."""
    parts = [p for p in path.split("/") if p]
    group, rest = ("", parts[2:]) if parts[0] == "api" else (parts[1], parts[3:])
    if rest[:1] == ["namespaces"] and len(rest) > 2:
        rest = rest[2:]
    if not rest:  # a discovery URL such as /apis/kubeflow.org/v1: no resource
        return group, ""
    resource = rest[0]
    return group, resource + (f"/{rest[2]}" if len(rest) > 2 else "")


def test_every_kube_call_site_is_in_the_rbac_table() -> None:
    found = set(_kube_call_sites())
    assert found == set(OPERATOR_CALLS), (
        f"new call sites {sorted(found - set(OPERATOR_CALLS))}, gone {sorted(set(OPERATOR_CALLS) - found)}: "
        "update OPERATOR_CALLS and the chart's RBAC (manifests/autocm/templates/_helpers.tpl)")


def test_paths_written_in_the_code_match_the_table() -> None:
    """Every API path a function spells out is a resource the table lists for that function's calls."""
    sites = _kube_call_sites()
    checked = 0
    for (mod, fn, _), paths in sites.items():
        table = {(g, r) for (m, f, _), needs in OPERATOR_CALLS.items() if (m, f) == (mod, fn) for g, r, _ in needs}
        for path in paths:
            if resource_of(path)[1] == "":  # discovery: a non-resource URL every authenticated user may read
                continue
            assert resource_of(path) in table, f"{mod}.{fn}: {path} -> {resource_of(path)} not in {table}"
            checked += 1
    assert checked >= 10  # the literal paths really were found


def test_workload_paths_of_every_kind_are_in_the_table() -> None:
    """workload_path builds its paths from a dict: check each kind the CRD allows, and their scale."""
    crd = yaml.safe_load(CRD_SOURCE.read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    kinds = spec["properties"]["targetRef"]["properties"]["kind"]["enum"]
    assert set(kinds) == set(WORKLOAD_KINDS)
    reads = OPERATOR_CALLS[("kube", "WorkloadActuator.read", "get")]
    changes = OPERATOR_CALLS[("kube", "WorkloadActuator._actuate", "apply")]
    for kind in kinds:
        group, resource = resource_of(workload_path(TargetRef(kind, "w", "ns", "")))
        assert (group, resource, "get") in reads
        if kind == "PyTorchJob":  # replicas and template both through its own apply (no scale subresource)
            own = OPERATOR_CALLS[("kube", "WorkloadActuator._actuate_pytorchjob", "apply")]
            assert (group, resource, "patch") in own
            continue
        assert (group, resource, "patch") in changes
        if kind != "Job":  # replicas of a Job are spec.parallelism, of the others the scale subresource
            assert (group, f"{resource}/scale", "patch") in changes


def test_resource_of_parses_core_group_and_subresources() -> None:
    assert resource_of("/api/v1/nodes") == ("", "nodes")
    assert resource_of("/api/v1/namespaces/ml/pods/p-1/resize") == ("", "pods/resize")
    assert resource_of("/apis/apps/v1/namespaces/ml/deployments/web/scale") == ("apps", "deployments/scale")
    assert resource_of("/apis/autocm.io/v1alpha1/namespaces/ml/sizingpolicies/p/status") == (
        "autocm.io", "sizingpolicies/status")
    assert resource_of("/api/v1/namespaces/ml/events") == ("", "events")


# --- the CRD -------------------------------------------------------------------------------------------


def test_chart_crd_is_the_controller_crd() -> None:
    assert CRD_COPY.read_bytes() == CRD_SOURCE.read_bytes(), (
        "manifests/autocm/crds/sizingpolicy.yaml differs from controller/crd/sizingpolicy.yaml; "
        "after `python -m controller.policy --sync-crd` run: "
        "cp controller/crd/sizingpolicy.yaml manifests/autocm/crds/sizingpolicy.yaml")


def test_dockerfile_user_is_the_charts_non_root_user() -> None:
    docker = (REPO / "Dockerfile").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    uid = values["podSecurityContext"]["runAsUser"]
    assert re.search(rf"^USER {uid}:{values['podSecurityContext']['runAsGroup']}$", docker, re.M)
    assert 'ENTRYPOINT ["autocm"]' in docker
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = (REPO / "pyproject.toml").read_text()
    assert f'version = "{chart["appVersion"]}"' in project  # the default tag is the package's version


# --- the real helm ---------------------------------------------------------------------------------------


def helm_binary() -> Path:
    """$AUTOCM_E2E_BIN, $AUTOCM_CACHE/bin or ~/.cache/autocm/bin, as tests/e2e/conftest.py looks."""
    explicit = os.environ.get("AUTOCM_E2E_BIN")
    cache = Path(os.environ.get("AUTOCM_CACHE", str(Path.home() / ".cache" / "autocm")))
    path = Path(explicit) / "helm" if explicit else cache / "bin" / "helm"
    if not os.access(path, os.X_OK):
        pytest.fail(f"helm missing at {path}: build it with `make e2e-tools`", pytrace=False)
    return path


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HELM_CACHE_HOME": "/tmp/autocm-helm-cache", "HELM_CONFIG_HOME": "/tmp/autocm-helm-config"}
    return subprocess.run([str(helm_binary()), *args], capture_output=True, text=True, timeout=60, env=env)


def render(tmp_path: Path, values: dict | None = None, *extra: str) -> list[dict]:
    file = tmp_path / "values.yaml"
    file.write_text(yaml.safe_dump(values or {}))
    got = helm("template", "ops", str(CHART), "--namespace", "autocm-system", "-f", str(file), *extra)
    assert got.returncode == 0, got.stderr
    return [d for d in yaml.safe_load_all(got.stdout) if d]


def of_kind(docs: Iterable[dict], kind: str) -> list[dict]:
    """Documents of ``kind``; ClusterRoles less the SizingPolicy user roles (templates/user-roles.yaml)."""
    return [d for d in docs if d["kind"] == kind
            and d["metadata"].get("labels", {}).get("app.kubernetes.io/component") != "user-role"]


def granted(rules: list[dict]) -> set[Need]:
    out: set[Need] = set()
    for rule in rules:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule
        out |= {(g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    return out


def operator_needs() -> set[Need]:
    return {n for needs in OPERATOR_CALLS.values() for n in needs} | set(KOPF_NEEDS)


def cluster_part(needs: set[Need]) -> set[Need]:
    return {n for n in needs if n[1] in CLUSTER_SCOPED or n in CLUSTER_WIDE_LISTS}


VALUE_SETS = {
    "defaults": {},
    "namespaced": {"operator": {"watchNamespaces": ["team-a", "team-b"]}},
    "standalone": {"peering": {"enabled": False}},
    "everything": {"replicaCount": 3, "operator": {"pause": True, "logLevel": "debug", "intervalSeconds": 5,
                                                    "extraArgs": ["--checkpoint-every=30"]},
                   "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}},
                   "image": {"repository": "registry.example.com/autocm", "tag": "dev"}},
}


@pytest.mark.e2e
@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_helm_lint_strict_passes(tmp_path: Path, name: str) -> None:
    file = tmp_path / "values.yaml"
    file.write_text(yaml.safe_dump(VALUE_SETS[name]))
    got = helm("lint", "--strict", str(CHART), "-f", str(file))
    assert got.returncode == 0, got.stdout + got.stderr
    assert "0 chart(s) failed" in got.stdout


@pytest.mark.e2e
def test_cluster_wide_rbac_is_exactly_what_the_operator_and_kopf_call(tmp_path: Path) -> None:
    docs = render(tmp_path)
    (role,) = of_kind(docs, "ClusterRole")
    assert granted(role["rules"]) == operator_needs() | set(KOPF_CLUSTER_PEERING)
    assert not of_kind(docs, "Role")
    (binding,) = of_kind(docs, "ClusterRoleBinding")
    (sa,) = of_kind(docs, "ServiceAccount")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                                    "namespace": "autocm-system"}]
    (deployment,) = of_kind(docs, "Deployment")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]


@pytest.mark.e2e
def test_namespaced_rbac_grants_namespaced_rights_only_in_the_watched_namespaces(tmp_path: Path) -> None:
    docs = render(tmp_path, VALUE_SETS["namespaced"])
    needs = operator_needs() | set(KOPF_NAMESPACES) | set(KOPF_NAMESPACED_PEERING)
    (role,) = of_kind(docs, "ClusterRole")
    assert granted(role["rules"]) == cluster_part(needs)
    roles = of_kind(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    for r in roles:
        assert granted(r["rules"]) == needs - cluster_part(needs)
    bindings = of_kind(docs, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    peerings = of_kind(docs, "KopfPeering")
    assert sorted(p["metadata"]["namespace"] for p in peerings) == ["team-a", "team-b"]
    assert not of_kind(docs, "ClusterKopfPeering")
    args = of_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=team-a" in args and "--namespace=team-b" in args and "--all-namespaces" not in args


@pytest.mark.e2e
def test_standalone_needs_no_peering_rights_and_no_peering_object(tmp_path: Path) -> None:
    docs = render(tmp_path, VALUE_SETS["standalone"])
    (role,) = of_kind(docs, "ClusterRole")
    assert granted(role["rules"]) == operator_needs()
    assert not of_kind(docs, "ClusterKopfPeering") and not of_kind(docs, "KopfPeering")
    args = of_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--standalone" in args and "--peering" not in args


@pytest.mark.e2e
def test_rbac_and_service_account_can_be_left_to_the_user(tmp_path: Path) -> None:
    docs = render(tmp_path, {"rbac": {"create": False}, "serviceAccount": {"create": False, "name": "mine"}})
    kinds = {d["kind"] for d in docs}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount"}
    assert of_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["serviceAccountName"] == "mine"


@pytest.mark.e2e
@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_rendered_args_are_accepted_by_autocm_run(tmp_path: Path, name: str) -> None:
    """The Deployment's args parse with the real ``autocm run`` command, to the values they came from."""
    from controller import run_cmd

    docs = render(tmp_path, VALUE_SETS[name])
    container = of_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    assert args[0] == "run"
    ctx = run_cmd.run.make_context("run", list(args[1:]))
    p = ctx.params
    values = VALUE_SETS[name]
    op = values.get("operator", {})
    assert p["prometheus_url"] == "http://prometheus-operated.monitoring.svc:9090"
    assert p["metrics_port"] == 8080 == container["ports"][0]["containerPort"]
    assert p["namespaces"] == tuple(op.get("watchNamespaces", ()))
    assert p["pause"] is op.get("pause", False)
    assert p["verbose"] is (op.get("logLevel") == "debug")
    assert p["interval"] == op.get("intervalSeconds")
    peering = values.get("peering", {}).get("enabled", True)
    assert p["standalone"] is not peering
    if peering:
        assert p["peering_name"] == "ops-autocm"
        assert p["priority_spread"] == (1000 if values.get("replicaCount", 1) > 1 else 0)
    assert p["checkpoint_every"] == (30.0 if op.get("extraArgs") else 60.0)  # extraArgs come last and win


@pytest.mark.e2e
def test_pod_runs_non_root_with_a_read_only_root_and_no_capabilities(tmp_path: Path) -> None:
    docs = render(tmp_path, VALUE_SETS["everything"])
    (deployment,) = of_kind(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 3
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"]
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert {"name": "HOME", "value": "/tmp"} in container["env"]
    assert container["image"] == "registry.example.com/autocm:dev"
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]


@pytest.mark.e2e
def test_default_image_tag_is_the_app_version(tmp_path: Path) -> None:
    docs = render(tmp_path)
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    image = of_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"autocm:{chart['appVersion']}"


@pytest.mark.e2e
def test_service_monitor_only_when_enabled(tmp_path: Path) -> None:
    assert not of_kind(render(tmp_path), "ServiceMonitor")
    docs = render(tmp_path, VALUE_SETS["everything"])
    (monitor,) = of_kind(docs, "ServiceMonitor")
    (service,) = of_kind(docs, "Service")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"] == "metrics"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()


@pytest.mark.e2e
def test_metrics_service_selects_the_operator_pods_with_prometheus_annotations(tmp_path: Path) -> None:
    docs = render(tmp_path)
    (service,) = of_kind(docs, "Service")
    pod_labels = of_kind(docs, "Deployment")[0]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    notes = service["metadata"]["annotations"]
    assert notes == {"prometheus.io/scrape": "true", "prometheus.io/path": "/metrics", "prometheus.io/port": "8080"}
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"


@pytest.mark.e2e
def test_helm_ships_the_sizingpolicy_crd_and_kopf_peering_crds(tmp_path: Path) -> None:
    docs = render(tmp_path, None, "--include-crds")
    crds = {d["metadata"]["name"]: d for d in of_kind(docs, "CustomResourceDefinition")}
    assert set(crds) == {"sizingpolicies.autocm.io", "clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"}
    assert crds["sizingpolicies.autocm.io"] == yaml.safe_load(CRD_SOURCE.read_text())


@pytest.mark.e2e
@pytest.mark.parametrize(("setting", "message"), [
    ("replicaCount=0", "/replicaCount"),
    ("prometheus.url=prometheus:9090", "/prometheus/url"),
    ("operator.logLevel=trace", "value must be one of 'info', 'debug'"),
    ("operator.watchNamespaces={Team_A}", "/operator/watchNamespaces/0"),
    ("operator.metricsPort=70000", "/operator/metricsPort"),
    ("replicas=2", "additional properties 'replicas' not allowed"),
    ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
    ("metrics.serviceMonitor.interval=often", "/metrics/serviceMonitor/interval"),
    ("replicaCount=2,peering.enabled=false", "replicaCount > 1 needs peering.enabled=true"),
    ("replicaCount=2,peering.prioritySpread=1", "replicaCount > 1 needs peering.prioritySpread >= 2"),
    ("metrics.serviceMonitor.enabled=true,metrics.service.enabled=false", "needs metrics.service.enabled"),
    ("operator.shareEverySeconds=600,operator.shareMaxAgeSeconds=600", "shareMaxAgeSeconds must exceed"),
    ("operator.shareEverySeconds=0", "/operator/shareEverySeconds"),
])
def test_bad_values_fail_with_a_message_naming_the_value(setting: str, message: str) -> None:
    got = helm("template", "ops", str(CHART), "--set", setting)
    assert got.returncode != 0
    assert message in got.stderr, got.stderr
