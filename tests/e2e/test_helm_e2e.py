"""The Helm chart against the real control plane: install, upgrade, uninstall, and RBAC that really suffices.

1. ``helm install`` (the real helm v3.19.5) creates the CRDs (Established), the ServiceAccount, the
   ClusterRole/Binding, the Deployment, the metrics Service and the peering object; ``helm upgrade``
   changes the Deployment; ``helm uninstall`` removes everything but the CRDs.
2. The operator runs as the chart's ServiceAccount: a token from the TokenRequest API, a kubeconfig
   with only that token, and exactly the arguments of the installed Deployment's container. It
   manages a SizingPolicy in recommend mode, then in apply mode (scale subresource, events, a
   checkpoint ConfigMap it creates), and a deleted policy loses kopf's finalizer: no call is refused.
3. The same ServiceAccount resizes pods in place, deletes and re-creates a Job, and scales a StatefulSet.

kwok fakes pods, so the Deployment's own pod is Running without running anything: the operator runs
here as a process of this worktree's code, with the pod's identity and arguments.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import kubernetes
import pytest
import yaml

from .conftest import ControlPlane, PrometheusServer, free_port, wait_until
from .test_operator_e2e import (
    GROUP,
    PLURAL,
    VERSION,
    condition,
    custom,
    make_deployment,
    policy,
    process,
    wait_status,
)

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "manifests" / "autocm"
CRDS = ("sizingpolicies.autocm.io", "clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev")


def helm(plane: ControlPlane, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(plane.kubeconfig), "HELM_CACHE_HOME": str(tmp_path / "helm-cache"),
           "HELM_CONFIG_HOME": str(tmp_path / "helm-config"), "HELM_DATA_HOME": str(tmp_path / "helm-data")}
    got = subprocess.run([str(plane.tools.path("helm")), *args], capture_output=True, text=True, timeout=120,
                         env=env)
    assert got.returncode == 0, f"helm {' '.join(args)} failed:\n{got.stdout}\n{got.stderr}"
    return got


def values_file(tmp_path: Path, values: dict) -> str:
    path = tmp_path / f"values-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(values))
    return str(path)


def established(plane: ControlPlane, name: str) -> bool:
    got = kubernetes.client.ApiextensionsV1Api(plane.api_client).read_custom_resource_definition(name)
    return any(c.type == "Established" and c.status == "True" for c in got.status.conditions or [])


def exists(read, *args) -> bool:
    try:
        read(*args)
    except kubernetes.client.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def test_install_upgrade_uninstall(control_plane: ControlPlane, namespace: str, tmp_path: Path) -> None:
    plane = control_plane
    core = kubernetes.client.CoreV1Api(plane.api_client)
    apps = kubernetes.client.AppsV1Api(plane.api_client)
    rbac = kubernetes.client.RbacAuthorizationV1Api(plane.api_client)
    objects = kubernetes.client.CustomObjectsApi(plane.api_client)
    release = f"autocm-{namespace}"  # cluster-scoped names (ClusterRole, peering) are per release

    # --wait: kwok marks the operator's pod Running and Ready, so the rollout completes.
    helm(plane, tmp_path, "install", release, str(CHART), "-n", namespace, "--wait", "--timeout", "90s",
         "-f", values_file(tmp_path, {"prometheus": {"url": "http://prometheus.invalid:9090"}}))
    wait_until(lambda: all(established(plane, c) for c in CRDS), what="chart CRDs Established", timeout_s=30)
    # helm's --wait judges the ReplicaSet's pods; the Deployment's own status can trail it by a sync under load.
    wait_until(lambda: apps.read_namespaced_deployment(release, namespace).status.ready_replicas == 1,
               what="operator Deployment status readyReplicas=1", timeout_s=30)
    dep = apps.read_namespaced_deployment(release, namespace)
    assert dep.spec.replicas == 1 and dep.status.ready_replicas == 1
    container = dep.spec.template.spec.containers[0]
    assert "--prometheus=http://prometheus.invalid:9090" in container.args
    sa = core.read_namespaced_service_account(release, namespace)
    assert dep.spec.template.spec.service_account_name == sa.metadata.name
    binding = rbac.read_cluster_role_binding(release)
    assert binding.role_ref.name == rbac.read_cluster_role(release).metadata.name
    assert [(s.kind, s.name, s.namespace) for s in binding.subjects] == [("ServiceAccount", release, namespace)]
    svc = core.read_namespaced_service(f"{release}-metrics", namespace)
    assert svc.metadata.annotations["prometheus.io/scrape"] == "true"
    assert objects.get_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", release)
    notes = json.loads(helm(plane, tmp_path, "status", release, "-n", namespace, "-o", "json").stdout)
    assert notes["info"]["status"] == "deployed" and "kubectl get sizingpolicies" in notes["info"]["notes"]

    # Upgrade to two replicas: peering keeps them from both acting, each pod adds its own offset.
    helm(plane, tmp_path, "upgrade", release, str(CHART), "-n", namespace, "--reuse-values",
         "--set", "replicaCount=2", "--wait", "--timeout", "90s")
    dep = apps.read_namespaced_deployment(release, namespace)
    assert dep.spec.replicas == 2 and dep.status.ready_replicas == 2
    assert "--priority-spread=1000" in dep.spec.template.spec.containers[0].args
    status = json.loads(helm(plane, tmp_path, "status", release, "-n", namespace, "-o", "json").stdout)
    assert status["version"] == 2 and status["info"]["status"] == "deployed"

    helm(plane, tmp_path, "uninstall", release, "-n", namespace, "--wait", "--timeout", "90s")
    assert not exists(apps.read_namespaced_deployment, release, namespace)
    assert not exists(core.read_namespaced_service_account, release, namespace)
    assert not exists(rbac.read_cluster_role, release)
    assert not exists(rbac.read_cluster_role_binding, release)
    assert not exists(objects.get_cluster_custom_object, "kopf.dev", "v1", "clusterkopfpeerings", release)
    assert established(plane, "sizingpolicies.autocm.io")  # helm never deletes CRDs from crds/


def service_account_kubeconfig(plane: ControlPlane, namespace: str, name: str, path: Path) -> Path:
    """A kubeconfig holding only a TokenRequest token of ``namespace/name``: no admin certificate."""
    core = kubernetes.client.CoreV1Api(plane.api_client)
    token = core.create_namespaced_service_account_token(
        name, namespace, {"spec": {"expirationSeconds": 3600}}).status.token
    admin = yaml.safe_load(plane.kubeconfig.read_text())
    cluster = admin["clusters"][0]["cluster"]
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "e2e", "cluster": cluster}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "e2e", "user": name, "namespace": namespace}}],
        "current-context": "sa",
    }))
    return path


# RBAC's denial ("User ... cannot patch resource ...") and kopf's warning when it lacks a right. Not a
# bare 403: a namespace being deleted by another test also answers 403 to creates, and that is no RBAC gap.
REFUSED = re.compile(r"cannot [a-z]+ resource|Not enough permissions")


def refused_calls(log: Path, core: kubernetes.client.CoreV1Api, namespace: str) -> list[str]:
    """Operator log lines and Warning events in ``namespace`` that say RBAC refused a call."""
    lines = log.read_text(errors="replace").splitlines()
    lines += [e.message for e in core.list_namespaced_event(namespace).items if e.type == "Warning"]
    return [line for line in lines if REFUSED.search(line)]


@pytest.mark.parametrize("scope", ["cluster", "namespaced"])
def test_the_charts_service_account_is_enough_to_run_the_operator(
    control_plane: ControlPlane, namespace: str, prometheus: PrometheusServer, tmp_path: Path, scope: str
) -> None:
    plane = control_plane
    core = kubernetes.client.CoreV1Api(plane.api_client)
    apps = kubernetes.client.AppsV1Api(plane.api_client)
    release = f"autocm-{namespace}"
    values = {"prometheus": {"url": prometheus.url},
              "operator": {"intervalSeconds": 2, "checkpointEverySeconds": 2, "metricsPort": free_port(),
                           "logLevel": "debug", "watchNamespaces": [namespace] if scope == "namespaced" else []}}
    helm(plane, tmp_path, "install", release, str(CHART), "-n", namespace, "-f", values_file(tmp_path, values))
    wait_until(lambda: established(plane, "sizingpolicies.autocm.io"), what="CRD Established", timeout_s=30)

    kubeconfig = service_account_kubeconfig(plane, namespace, release, tmp_path / "sa-kubeconfig")
    as_sa = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
    with pytest.raises(kubernetes.client.ApiException) as denied:  # it really is not the admin
        kubernetes.client.CoreV1Api(as_sa).list_namespaced_secret(namespace)
    assert denied.value.status == 403
    as_sa.close()

    make_deployment(plane, namespace, replicas=2)
    constant = 'label_replace(vector({v}), "deployment", "{{name}}", "", "")'
    body = policy("web", metrics={"windowSeconds": 5, "queries": {
        "ttft_p99_seconds": constant.format(v=0.9), "gpu_utilization": constant.format(v=0.95)}})
    custom(plane).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)

    args = apps.read_namespaced_deployment(release, namespace).spec.template.spec.containers[0].args
    assert args[0] == "run"
    log = tmp_path / "operator.log"
    argv = [sys.executable, "-m", "controller.run_cmd", *args, "--kubeconfig", str(kubeconfig)]
    with process(argv, log, env={"KUBECONFIG": str(kubeconfig)}):
        # recommend: hpa wants ceil(2 x 0.95 / 0.7) = 3 replicas, and nothing changes.
        st = wait_status(plane, namespace, "web", lambda s: s.get("recommendedConfig", {}).get("replicas") == 3,
                         "a recommendation written with the service account", 60, log)
        assert condition(st, "Applied")["reason"] == "RecommendOnly"
        # The checkpoint ConfigMap is created by server-side apply, which needs `create` as well.
        assert st.get("checkpoint", {}).get("configMap"), refused_calls(log, core, namespace)
        assert apps.read_namespaced_deployment("web", namespace).spec.replicas == 2
        pol = custom(plane).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "web")
        assert "autocm.io/finalizer" in pol["metadata"]["finalizers"]  # kopf patched the policy

        custom(plane).patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "web",
                                                     {"spec": {"mode": "apply"}})
        wait_status(plane, namespace, "web", lambda s: s.get("appliedConfig", {}).get("replicas") == 3,
                    "replicas applied through the scale subresource", 60, log)
        assert apps.read_namespaced_deployment("web", namespace).spec.replicas == 3
        events = core.list_namespaced_event(namespace).items
        assert any(e.reason == "AutocmResized" and e.message.startswith("replicas 2 -> 3") for e in events)
        assert any(e.reason == "AutocmApplied" for e in events)

        objects = kubernetes.client.CustomObjectsApi(plane.api_client)
        peering = (objects.get_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", release)
                   if scope == "cluster" else
                   objects.get_namespaced_custom_object("kopf.dev", "v1", namespace, "kopfpeerings", release))
        assert peering.get("status"), peering  # this replica's keep-alive entry (kopf peering: patch)

        # kopf removes its finalizer when the policy is deleted (patch), or the policy would stay.
        custom(plane).delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "web")
        wait_until(lambda: not exists(custom(plane).get_namespaced_custom_object, GROUP, VERSION, namespace,
                                      PLURAL, "web"), what="the deleted policy to go", timeout_s=30)
    refused = refused_calls(log, core, namespace)
    assert refused == [], "\n".join(refused)
    helm(plane, tmp_path, "uninstall", release, "-n", namespace)


def test_the_service_account_can_resize_in_place_recreate_jobs_and_scale_statefulsets(
    control_plane: ControlPlane, namespace: str, prometheus: PrometheusServer, tmp_path: Path
) -> None:
    """The other write paths under the chart's RBAC: pods/resize, a Job deleted and re-created, a
    StatefulSet's scale subresource; the static learner asks for each change at the first step."""
    plane = control_plane
    core = kubernetes.client.CoreV1Api(plane.api_client)
    apps = kubernetes.client.AppsV1Api(plane.api_client)
    batch = kubernetes.client.BatchV1Api(plane.api_client)
    release = f"autocm-{namespace}"
    values = {"prometheus": {"url": prometheus.url},
              "operator": {"intervalSeconds": 2, "metricsPort": free_port(), "logLevel": "debug"}}
    helm(plane, tmp_path, "install", release, str(CHART), "-n", namespace, "-f", values_file(tmp_path, values))
    wait_until(lambda: established(plane, "sizingpolicies.autocm.io"), what="CRD Established", timeout_s=30)

    make_deployment(plane, namespace, replicas=2)
    apps.patch_namespaced_deployment("web", namespace, {"spec": {"template": {"spec": {"containers": [
        {"name": "server", "resources": {"requests": {"cpu": "500m"}}}]}}}})
    pod = {"terminationGracePeriodSeconds": 0, "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                                                               "env": [{"name": "AUTOCM_BATCH_SIZE", "value": "8"}]}]}
    apps.create_namespaced_stateful_set(namespace, {
        "metadata": {"name": "db"}, "spec": {"replicas": 1, "serviceName": "db",
                                             "selector": {"matchLabels": {"app": "db"}},
                                             "template": {"metadata": {"labels": {"app": "db"}}, "spec": pod}}})
    batch.create_namespaced_job(namespace, {"metadata": {"name": "train"}, "spec": {
        "parallelism": 1, "completions": 1, "backoffLimit": 0,
        "template": {"spec": {**pod, "restartPolicy": "Never"}}}})
    first_uid = batch.read_namespaced_job("train", namespace).metadata.uid
    wait_until(lambda: sum(p.status.phase == "Running" and p.metadata.labels.get("app") == "web"
                           and p.spec.containers[0].resources.requests.get("cpu") == "500m"
                           for p in core.list_namespaced_pod(namespace).items) == 2,
               what="2 web pods with 500m CPU Running", timeout_s=60)

    constant = 'label_replace(vector({v}), "workload", "{{name}}", "", "")'
    for body in (
        policy("web", "apply", knobs={"cpu": {"min": 250, "max": 2000, "step": 250}},
               learner={"name": "static", "settings": {"config": {"cpu_millicores": 1000}}},
               metrics={"windowSeconds": 5, "queries": {"ttft_p99_seconds": constant.format(v=0.3)}}),
        policy("db", "apply", targetRef={"kind": "StatefulSet", "name": "db"},
               learner={"name": "static", "settings": {"config": {"replicas": 3}}},
               metrics={"windowSeconds": 5, "queries": {"ttft_p99_seconds": constant.format(v=0.3)}}),
        policy("train", "apply", targetRef={"kind": "Job", "name": "train"}, workload="training",
               objective={"metric": "throughput_samples_per_second", "target": 50},
               knobs={"batchSize": {"min": 8, "max": 64, "step": 8}},
               learner={"name": "static", "settings": {"config": {"batch_size": 16}}},
               metrics={"windowSeconds": 5, "queries": {"throughput_samples_per_second": constant.format(v=100)}}),
    ):
        custom(plane).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)

    kubeconfig = service_account_kubeconfig(plane, namespace, release, tmp_path / "sa-kubeconfig")
    args = apps.read_namespaced_deployment(release, namespace).spec.template.spec.containers[0].args
    log = tmp_path / "operator.log"
    argv = [sys.executable, "-m", "controller.run_cmd", *args, "--kubeconfig", str(kubeconfig)]
    with process(argv, log, env={"KUBECONFIG": str(kubeconfig)}):
        wait_status(plane, namespace, "web", lambda s: s.get("currentConfig", {}).get("cpu_millicores") == 1000,
                    "cpu resized in place to 1000m", 60, log)
        wait_status(plane, namespace, "db", lambda s: s.get("currentConfig", {}).get("replicas") == 3,
                    "the StatefulSet scaled to 3", 60, log)
        wait_status(plane, namespace, "train", lambda s: s.get("currentConfig", {}).get("batch_size") == 16,
                    "the Job recreated with batch size 16", 60, log)
    web_pods = [p for p in core.list_namespaced_pod(namespace, label_selector="app=web").items
                if p.metadata.deletion_timestamp is None]
    assert web_pods and all(p.spec.containers[0].resources.requests["cpu"] in ("1", "1000m") for p in web_pods)
    web = apps.read_namespaced_deployment("web", namespace)  # in place: the template, so no rollout
    assert web.spec.template.spec.containers[0].resources.requests["cpu"] == "500m"
    assert web.metadata.annotations["autocm.io/resources"] == '{"cpu": "1000m"}'
    assert apps.read_namespaced_stateful_set("db", namespace).spec.replicas == 3
    job = batch.read_namespaced_job("train", namespace)
    assert job.metadata.uid != first_uid and job.metadata.annotations["autocm.io/restarts"] == "1"
    refused = refused_calls(log, core, namespace)
    assert refused == [], "\n".join(refused)
    helm(plane, tmp_path, "uninstall", release, "-n", namespace)


def test_token_kubeconfig_is_self_contained(control_plane: ControlPlane, namespace: str, tmp_path: Path) -> None:
    """The helper above writes the CA inline and no client certificate: the token is the only identity."""
    core = kubernetes.client.CoreV1Api(control_plane.api_client)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "probe"}})
    cfg = yaml.safe_load(service_account_kubeconfig(control_plane, namespace, "probe", tmp_path / "k").read_text())
    user = cfg["users"][0]["user"]
    assert set(user) == {"token"}
    claims = json.loads(base64.urlsafe_b64decode(user["token"].split(".")[1] + "=="))
    assert claims["sub"] == f"system:serviceaccount:{namespace}:probe"
    assert "certificate-authority-data" in cfg["clusters"][0]["cluster"]
