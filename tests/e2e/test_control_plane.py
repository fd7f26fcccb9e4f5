"""Smoke tests of the e2e environment itself: if these fail, no other e2e result means anything.

They check what the autocm operator relies on: a v1.34 apiserver (pods/resize exists), GPU nodes
the real scheduler bin-packs, Helm that knows the cluster's version, and a Prometheus that scrapes
a prometheus_client exporter like the ones the simulator and the operator expose.
"""

from __future__ import annotations

import math
import os
import random
import subprocess
import uuid
from collections import Counter
from pathlib import Path

import kubernetes
import pytest
import yaml
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from .conftest import (
    ControlPlane,
    PrometheusServer,
    find_tools,
    free_port,
    node_problems,
    restore_gpu_nodes,
    wait_until,
)

pytestmark = pytest.mark.e2e

GPU = "nvidia.com/gpu"
# A real image name; kwok never pulls it.
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
# Upstream's message (k8s.io/kubernetes pkg/apis/core/validation/validation.go, ValidatePodResize).
RESIZE_ONLY_CPU_MEMORY = "only cpu and memory resources are mutable"


def binary_version(path: Path) -> str:
    """`kube-apiserver --version` prints "Kubernetes v1.34.4": the version the build stamped in."""
    out = subprocess.run([str(path), "--version"], check=True, capture_output=True, text=True).stdout
    return out.split()[-1]


def pod_spec(container: dict[str, object]) -> dict[str, object]:
    return {
        "containers": [{"name": "app", "image": PAUSE_IMAGE, **container}],
        "terminationGracePeriodSeconds": 0,
    }


def pod_condition(pod: kubernetes.client.V1Pod, kind: str) -> kubernetes.client.V1PodCondition | None:
    return next((c for c in (pod.status.conditions or []) if c.type == kind), None)


# --------------------------------------------------------------------------------------------


def test_missing_tools_fail_with_instructions(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """CI must never go green by skipping: no tools means a failure that says how to build them."""
    monkeypatch.setenv("AUTOCM_E2E_BIN", str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match="make e2e-tools"):
        find_tools()


def test_apiserver_reports_the_version_it_was_built_as(control_plane: ControlPlane) -> None:
    built = binary_version(control_plane.tools.path("kube-apiserver"))
    info = kubernetes.client.VersionApi(control_plane.api_client).get_code()
    # The operator needs 1.33+ for pods/resize; the tools script pins a v1.34 patch release.
    assert built.startswith("v1.34."), built
    assert info.git_version == built
    major, minor = built.removeprefix("v").split(".")[:2]
    assert (info.major, info.minor) == (major, minor)


def test_fake_gpu_nodes_advertise_their_gpus(control_plane: ControlPlane) -> None:
    core = kubernetes.client.CoreV1Api(control_plane.api_client)
    settings = control_plane.settings
    for name in control_plane.gpu_nodes:
        node = core.read_node(name)
        assert node.status.allocatable[GPU] == str(settings.gpus_per_node)
        assert node.metadata.labels["nvidia.com/gpu.product"] == settings.gpu_product
        assert any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)


def test_fake_gpu_nodes_renew_their_leases(control_plane: ControlPlane) -> None:
    """kwok renews each node's Lease (the heartbeat the node lifecycle controller reads), so a busy machine
    does not get the fake nodes marked Unknown and tainted node.kubernetes.io/unreachable mid-test."""
    coordination = kubernetes.client.CoordinationV1Api(control_plane.api_client)
    duration = control_plane.settings.node_lease_duration_s
    first = {n: coordination.read_namespaced_lease(n, "kube-node-lease").spec.renew_time
             for n in control_plane.gpu_nodes}
    assert all(first.values()), first
    wait_until(lambda: all(coordination.read_namespaced_lease(n, "kube-node-lease").spec.renew_time > first[n]
                           for n in control_plane.gpu_nodes),
               what="kwok to renew every GPU node's lease", timeout_s=2 * duration)


def test_a_taint_or_cordon_left_on_a_node_is_undone_before_the_next_test(control_plane: ControlPlane) -> None:
    """The ``namespace`` fixture starts every test on Ready, schedulable, untainted nodes."""
    core = kubernetes.client.CoreV1Api(control_plane.api_client)
    node = control_plane.gpu_nodes[-1]
    core.patch_node(node, {"spec": {"unschedulable": True,
                                    "taints": [{"key": "example.com/left-over", "effect": "NoSchedule"}]}})
    assert node_problems(core.read_node(node))
    restore_gpu_nodes(core, control_plane.gpu_nodes, control_plane.settings.isolation_timeout_s)
    assert all(node_problems(core.read_node(n)) == [] for n in control_plane.gpu_nodes)


def test_gpu_deployment_is_bin_packed_onto_fake_gpu_nodes(
    control_plane: ControlPlane, namespace: str
) -> None:
    settings = control_plane.settings
    gpus_per_pod = settings.gpus_per_node // 2
    # One replica more than there are nodes, so the pods cannot all share one node's GPUs.
    replicas = settings.gpu_node_count + 1
    labels = {"app": "gpu-worker"}
    apps = kubernetes.client.AppsV1Api(control_plane.api_client)
    core = kubernetes.client.CoreV1Api(control_plane.api_client)
    apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "gpu-worker"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": pod_spec({"resources": {"limits": {GPU: str(gpus_per_pod)}}}),
                },
            },
        },
    )
    wait_until(
        lambda: (
            (apps.read_namespaced_deployment_status("gpu-worker", namespace).status.ready_replicas or 0)
            == replicas
        ),
        what=f"{replicas} ready gpu-worker replicas",
        timeout_s=60,
    )

    pods = core.list_namespaced_pod(namespace, label_selector="app=gpu-worker").items
    assert len(pods) == replicas
    assert all(p.status.phase == "Running" for p in pods)
    assert {p.spec.node_name for p in pods} <= set(control_plane.gpu_nodes)
    gpus_on_node = Counter()
    for pod in pods:
        gpus_on_node[pod.spec.node_name] += int(pod.spec.containers[0].resources.requests[GPU])
    # The scheduler never over-commits an extended resource ...
    assert max(gpus_on_node.values()) <= settings.gpus_per_node
    # ... so by pigeonhole the pods must spread over at least this many nodes.
    assert len(gpus_on_node) >= math.ceil(replicas * gpus_per_pod / settings.gpus_per_node)


def test_pod_needing_more_gpus_than_a_node_has_stays_pending(
    control_plane: ControlPlane, namespace: str
) -> None:
    too_many = control_plane.settings.gpus_per_node + 1
    core = kubernetes.client.CoreV1Api(control_plane.api_client)
    core.create_namespaced_pod(
        namespace,
        {"metadata": {"name": "too-big"}, "spec": pod_spec({"resources": {"limits": {GPU: str(too_many)}}})},
    )

    def unschedulable() -> bool:
        condition = pod_condition(core.read_namespaced_pod("too-big", namespace), "PodScheduled")
        return condition is not None and condition.status == "False" and condition.reason == "Unschedulable"

    wait_until(unschedulable, what="the scheduler to mark too-big Unschedulable", timeout_s=60)
    pod = core.read_namespaced_pod("too-big", namespace)
    assert pod.status.phase == "Pending"
    assert pod.spec.node_name is None
    assert f"Insufficient {GPU}" in pod_condition(pod, "PodScheduled").message


def test_pod_resize_is_validated_by_the_apiserver(control_plane: ControlPlane, namespace: str) -> None:
    """kwok has no kubelet, so a resize is only accepted and stored, never carried out (docs/e2e.md)."""
    core = kubernetes.client.CoreV1Api(control_plane.api_client)
    resources = {
        "requests": {"cpu": "500m", "memory": "256Mi"},
        "limits": {"cpu": "1", "memory": "256Mi", GPU: "1"},
    }
    core.create_namespaced_pod(
        namespace, {"metadata": {"name": "resizable"}, "spec": pod_spec({"resources": resources})}
    )
    wait_until(
        lambda: core.read_namespaced_pod("resizable", namespace).status.phase == "Running",
        what="pod resizable Running",
        timeout_s=60,
    )

    # A strategic-merge body: containers merge by name (a JSON merge patch would replace the list).
    new_cpu = "750m"
    body = {"spec": {"containers": [{"name": "app", "resources": {"requests": {"cpu": new_cpu}}}]}}
    resized = core.patch_namespaced_pod_resize("resizable", namespace, body)
    assert resized.spec.containers[0].resources.requests["cpu"] == new_cpu
    stored = core.read_namespaced_pod("resizable", namespace)
    assert stored.spec.containers[0].resources.requests["cpu"] == new_cpu
    assert stored.spec.containers[0].resources.limits[GPU] == "1"

    gpu_body = {
        "spec": {"containers": [{"name": "app", "resources": {"limits": {GPU: "2"}, "requests": {GPU: "2"}}}]}
    }
    with pytest.raises(kubernetes.client.ApiException) as rejected:
        core.patch_namespaced_pod_resize("resizable", namespace, gpu_body)
    assert rejected.value.status == 422
    assert RESIZE_ONLY_CPU_MEMORY in rejected.value.body


def _helm(control_plane: ControlPlane, home: Path, *args: str) -> str:
    """Runs helm against the e2e cluster with its cache/config/data dirs kept inside the test's tmp."""
    env = {
        **control_plane.kubectl_env(),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    done = subprocess.run(
        [str(control_plane.tools.path("helm")), *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"helm {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_helm_lints_templates_and_installs_a_chart(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    helm_version = _helm(control_plane, tmp_path, "version", "--template", "{{.Version}}")
    major, minor = (int(p) for p in helm_version.removeprefix("v").split(".")[:2])
    assert (major, minor) >= (3, 19), helm_version

    chart = tmp_path / "demo"
    _helm(control_plane, tmp_path, "create", str(chart))
    # Shows which Kubernetes version helm believes in: built in (template) or the cluster's (install).
    (chart / "templates" / "kube-version.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-kube-version\n"
        "data:\n  version: {{ .Capabilities.KubeVersion.Version | quote }}\n"
    )
    lint = _helm(control_plane, tmp_path, "lint", str(chart))
    assert "1 chart(s) linted, 0 chart(s) failed" in lint

    apiserver = kubernetes.client.VersionApi(control_plane.api_client).get_code()
    rendered = list(yaml.safe_load_all(_helm(control_plane, tmp_path, "template", "demo", str(chart))))
    kinds = {doc["kind"] for doc in rendered if doc}
    assert {"Deployment", "Service", "ServiceAccount", "ConfigMap"} <= kinds
    offline = next(d for d in rendered if d and d["kind"] == "ConfigMap")["data"]["version"]
    # e2e-tools.sh stamps the control plane's minor into helm (chartutil ldflags), else it says v1.20.0.
    assert offline == f"v{apiserver.major}.{apiserver.minor}.0"

    _helm(
        control_plane,
        tmp_path,
        "install",
        "demo",
        str(chart),
        "--namespace",
        namespace,
        "--wait",
        "--timeout",
        "90s",
    )
    apps = kubernetes.client.AppsV1Api(control_plane.api_client)
    core = kubernetes.client.CoreV1Api(control_plane.api_client)
    assert apps.read_namespaced_deployment_status("demo", namespace).status.available_replicas == 1
    online = core.read_namespaced_config_map("demo-kube-version", namespace).data["version"]
    assert online == apiserver.git_version


def test_prometheus_scrapes_a_prometheus_client_exporter(
    prometheus: PrometheusServer, prometheus_scrape
) -> None:
    registry = CollectorRegistry()
    gauge = Gauge("autocm_e2e_probe_value", "A value only this test knows.", ["case"], registry=registry)
    case, value = uuid.uuid4().hex, random.uniform(1.0, 1000.0)
    gauge.labels(case=case).set(value)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        job = prometheus_scrape([f"127.0.0.1:{port}"])
        series = prometheus.wait_for(f'autocm_e2e_probe_value{{job="{job}"}}')
        assert len(series) == 1
        assert series[0]["metric"]["case"] == case
        assert float(series[0]["value"][1]) == pytest.approx(value)
        assert [float(s["value"][1]) for s in prometheus.query(f'up{{job="{job}"}}')] == [1.0]
    finally:
        server.shutdown()
        thread.join(timeout=5)


def test_component_logs_are_kept_in_files(control_plane: ControlPlane) -> None:
    """The failure report points at these files, so they must exist and hold each server's output."""
    names = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"]
    for name in names:
        log = control_plane.log_dir / f"{name}.log"
        assert log.stat().st_size > 0, log
        assert log.read_text().startswith(f"$ {os.fspath(control_plane.tools.path(name))}")
