"""The operator under faults and safety rules, on the real control plane and a real Prometheus.

- Prometheus stopped mid-run: the policy freezes with MetricsAvailable=False, and recovers when it
  is back (a private Prometheus, so the session's shared one keeps running for other tests).
- A workload that an HPA already scales is refused, and the condition names the HPA.
- CPU in place through pods/resize: the apiserver accepts it on kwok's pods (no kubelet carries it
  out), and the pod template is untouched (no rollout).
- GPU capacity: a scale-up is cut to what the kwok GPU nodes can schedule; no pod stays Pending.
- A workload the apiserver accepts but autocm cannot read (a batch size that is not a number) is
  reported as InvalidWorkload, not as the learner failing, and is sized once its owner fixes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest

from .conftest import Component, ControlPlane, E2ETools, PrometheusServer, free_port, http_get, wait_until
from .test_operator_e2e import (
    EMULATOR,
    GROUP,
    PLURAL,
    VERSION,
    condition,
    crd,  # noqa: F401  (fixture)
    custom,
    make_deployment,
    operator_argv,
    policy,
    process,
    status,
    wait_status,
)

pytestmark = pytest.mark.e2e


@contextlib.contextmanager
def emulator(plane: ControlPlane, ns: str, log: Path) -> Iterator[int]:
    port = free_port()
    with process([sys.executable, str(EMULATOR), "--kubeconfig", str(plane.kubeconfig), "--namespace", ns,
                  "--deployment", "web", "--port", str(port)], log):
        # Serving before anything scrapes it: a bind failure is then this wait's error, with the log, and
        # not a metrics timeout 90 s later.
        try:
            wait_until(lambda: http_get(f"http://127.0.0.1:{port}/metrics")[0] == 200,
                       what="the emulator serving", timeout_s=60)
        except Exception as exc:
            raise AssertionError(f"{exc}\nemulator log:\n{log.read_text(errors='replace')[-2000:]}") from exc
        yield port


def private_prometheus(tools: E2ETools, work: Path, port: int, targets: list[str]) -> Component:
    work.mkdir(parents=True, exist_ok=True)
    config = work / "prometheus.yml"
    config.write_text(json.dumps({"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                                  "scrape_configs": [{"job_name": "emulator",
                                                      "static_configs": [{"targets": targets}]}]}))
    comp = Component("prometheus-private", [str(tools.path("prometheus")), f"--config.file={config}",
                                            f"--storage.tsdb.path={work / 'data'}",
                                            f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                     work / "prometheus.log")
    comp.start()
    wait_until(lambda: http_get(f"http://127.0.0.1:{port}/-/ready")[0] == 200,
               what="private Prometheus ready", timeout_s=60, watch=[comp])
    return comp


def test_prometheus_stopped_mid_run_freezes_then_recovers(crd, control_plane: ControlPlane,  # noqa: F811
                                                          namespace: str, e2e_tools: E2ETools,
                                                          tmp_path: Path) -> None:
    plane = control_plane
    make_deployment(plane, namespace, replicas=2)
    prom_port = free_port()
    op_log = tmp_path / "operator.log"
    with emulator(plane, namespace, tmp_path / "emulator.log") as emu_port:
        prom = private_prometheus(e2e_tools, tmp_path / "prom", prom_port, [f"127.0.0.1:{emu_port}"])
        try:
            body = policy("web", "apply", learner={"name": "static", "settings": {"config": {"replicas": 2}}})
            custom(plane).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
            with process(operator_argv(plane, f"http://127.0.0.1:{prom_port}", free_port()), op_log):
                wait_status(plane, namespace, "web",
                            lambda s: condition(s, "MetricsAvailable").get("status") == "True",
                            "metrics available", 90, op_log)
                prom.stop()
                st = wait_status(plane, namespace, "web",
                                 lambda s: condition(s, "MetricsAvailable").get("reason")
                                 == "PrometheusUnavailable",
                                 "the freeze after Prometheus stopped", 60, op_log)
                assert condition(st, "Applied")["reason"] == "Frozen"
                assert "unreachable" in condition(st, "MetricsAvailable")["message"]
                assert st["lastDecision"]["message"].startswith("frozen, nothing decided")
                prom.start()  # same port, same data directory
                wait_until(lambda: http_get(f"http://127.0.0.1:{prom_port}/-/ready")[0] == 200,
                           what="Prometheus back", timeout_s=60, watch=[prom])
                wait_status(plane, namespace, "web",
                            lambda s: condition(s, "MetricsAvailable").get("status") == "True",
                            "recovery after Prometheus returned", 90, op_log)
        finally:
            prom.stop()
    assert kubernetes.client.AppsV1Api(plane.api_client).read_namespaced_deployment(
        "web", namespace).spec.replicas == 2


def test_a_workload_scaled_by_an_hpa_is_refused(crd, control_plane: ControlPlane,  # noqa: F811
                                                namespace: str, tmp_path: Path) -> None:
    plane = control_plane
    make_deployment(plane, namespace)
    kubernetes.client.AutoscalingV2Api(plane.api_client).create_namespaced_horizontal_pod_autoscaler(
        namespace, {"metadata": {"name": "web-hpa"},
                    "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                             "minReplicas": 1, "maxReplicas": 3,
                             "metrics": [{"type": "Resource", "resource": {
                                 "name": "cpu",
                                 "target": {"type": "Utilization", "averageUtilization": 80}}}]}})
    custom(plane).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, policy("web", "apply"))
    log = tmp_path / "operator.log"
    with process(operator_argv(plane, f"http://127.0.0.1:{free_port()}", free_port()), log):
        st = wait_status(plane, namespace, "web",
                         lambda s: condition(s, "Ready").get("reason") == "ConflictingAutoscaler",
                         "Ready=False ConflictingAutoscaler", 90, log)
    assert condition(st, "Ready")["status"] == "False"
    assert "HorizontalPodAutoscaler web-hpa" in condition(st, "Ready")["message"]
    events = kubernetes.client.CoreV1Api(plane.api_client).list_namespaced_event(namespace).items
    assert any(e.reason == "ConflictingAutoscaler" and e.involved_object.kind == "SizingPolicy"
               for e in events)


def test_cpu_is_resized_in_place_through_pods_resize(crd, control_plane: ControlPlane,  # noqa: F811
                                                     namespace: str, prometheus: PrometheusServer,
                                                     prometheus_scrape, tmp_path: Path) -> None:
    plane = control_plane
    apps = kubernetes.client.AppsV1Api(plane.api_client)
    core = kubernetes.client.CoreV1Api(plane.api_client)
    make_deployment(plane, namespace, replicas=2)
    apps.patch_namespaced_deployment("web", namespace, {"spec": {"template": {"spec": {"containers": [
        {"name": "server", "resources": {"requests": {"cpu": "500m"}}}]}}}})
    wait_until(lambda: sum(p.status.phase == "Running" and p.spec.containers[0].resources.requests.get("cpu")
                           == "500m" for p in core.list_namespaced_pod(namespace).items) == 2,
               what="2 pods with 500m CPU Running", timeout_s=90)
    log = tmp_path / "operator.log"
    with emulator(plane, namespace, tmp_path / "emulator.log") as emu_port:
        prometheus_scrape([f"127.0.0.1:{emu_port}"])
        body = policy("web", "apply", knobs={"cpu": {"min": 250, "max": 2000, "step": 250}},
                      learner={"name": "static", "settings": {"config": {"cpu_millicores": 1000}}})
        custom(plane).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
        with process(operator_argv(plane, prometheus.url, free_port()), log):
            st = wait_status(plane, namespace, "web",
                             lambda s: s.get("currentConfig", {}).get("cpu_millicores") == 1000,
                             "cpu resized to 1000m", 120, log)
    pods = [p for p in core.list_namespaced_pod(namespace).items if p.metadata.deletion_timestamp is None]
    assert len(pods) == 2
    for pod in pods:  # the apiserver accepted and stored the resize ...
        assert pod.spec.containers[0].resources.requests["cpu"] in ("1", "1000m")
        # ... and nothing carried it out: kwok has no kubelet to report new allocated resources.
        allocated = (pod.status.container_statuses or [None])[0]
        assert allocated is None or allocated.resources is None or \
            (allocated.resources.requests or {}).get("cpu") != "1"
    dep = apps.read_namespaced_deployment("web", namespace)
    assert dep.spec.template.spec.containers[0].resources.requests["cpu"] == "500m"  # no rollout
    assert json.loads(dep.metadata.annotations["autocm.io/resources"]) == {"cpu": "1000m"}
    assert condition(st, "Applied")["status"] == "True"


def test_a_workload_with_an_unreadable_knob_is_invalid_until_fixed(crd, control_plane: ControlPlane,  # noqa: F811
                                                                    namespace: str, prometheus: PrometheusServer,
                                                                    prometheus_scrape, tmp_path: Path) -> None:
    plane = control_plane
    apps = kubernetes.client.AppsV1Api(plane.api_client)
    make_deployment(plane, namespace, replicas=1)
    env = [{"name": "AUTOCM_BATCH_SIZE", "value": "eight"}]  # the apiserver takes any string
    apps.patch_namespaced_deployment("web", namespace, {"spec": {"template": {"spec": {"containers": [
        {"name": "server", "env": env}]}}}})
    log = tmp_path / "operator.log"
    with emulator(plane, namespace, tmp_path / "emulator.log") as emu_port:
        prometheus_scrape([f"127.0.0.1:{emu_port}"])
        body = policy("web", "apply", knobs={"replicas": {"min": 1, "max": 4}, "batchSize": {"choices": [8, 16]}},
                      learner={"name": "static", "settings": {"config": {"replicas": 2}}})
        custom(plane).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
        with process(operator_argv(plane, prometheus.url, free_port()), log):
            st = wait_status(plane, namespace, "web",
                             lambda s: condition(s, "Ready").get("reason") == "InvalidWorkload",
                             "Ready=False InvalidWorkload", 120, log)
            msg = condition(st, "Ready")["message"]
            assert msg.startswith(f"spec.targetRef: Deployment {namespace}/web cannot be sized: "), msg
            assert "cannot read its configuration" in msg and "'eight'" in msg, msg
            assert "learner" not in msg, msg
            assert apps.read_namespaced_deployment("web", namespace).spec.replicas == 1  # nothing applied
            events = kubernetes.client.CoreV1Api(plane.api_client).list_namespaced_event(namespace).items
            assert any(e.reason == "InvalidWorkload" and e.involved_object.kind == "SizingPolicy" for e in events)
            env[0]["value"] = "8"  # its owner fixes it: the next interval sizes it
            apps.patch_namespaced_deployment("web", namespace, {"spec": {"template": {"spec": {"containers": [
                {"name": "server", "env": env}]}}}})
            st = wait_status(plane, namespace, "web",
                             lambda s: condition(s, "Ready").get("status") == "True"
                             and s.get("currentConfig", {}).get("replicas") == 2,
                             "sized once fixed", 120, log)
    assert apps.read_namespaced_deployment("web", namespace).spec.replicas == 2


def test_gpu_scale_up_is_cut_to_what_the_nodes_can_schedule(crd, control_plane: ControlPlane,  # noqa: F811
                                                            namespace: str, prometheus: PrometheusServer,
                                                            prometheus_scrape, tmp_path: Path) -> None:
    plane = control_plane
    apps = kubernetes.client.AppsV1Api(plane.api_client)
    core = kubernetes.client.CoreV1Api(plane.api_client)
    gpus_per_pod = plane.settings.gpus_per_node // 2 + 1  # only one such pod fits on a node
    make_deployment(plane, namespace, replicas=1)
    apps.patch_namespaced_deployment("web", namespace, {"spec": {"template": {"spec": {"containers": [
        {"name": "server", "resources": {"limits": {"nvidia.com/gpu": str(gpus_per_pod)}}}]}}}})

    wait_until(lambda: any(p.status.phase == "Running" and p.spec.containers[0].resources.limits.get(
        "nvidia.com/gpu") == str(gpus_per_pod) for p in core.list_namespaced_pod(namespace).items),
        what="the first big GPU pod Running", timeout_s=90)
    free_nodes = sum(1 for n in plane.gpu_nodes if sum(
        int((c.resources.requests or {}).get("nvidia.com/gpu", 0))
        for p in core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={n}").items
        if p.status.phase in ("Running", "Pending") for c in p.spec.containers) + gpus_per_pod
        <= plane.settings.gpus_per_node)
    expected = 1 + free_nodes
    log = tmp_path / "operator.log"
    with emulator(plane, namespace, tmp_path / "emulator.log") as emu_port:
        prometheus_scrape([f"127.0.0.1:{emu_port}"])
        body = policy("web", "apply", learner={"name": "static", "settings": {"config": {"replicas": 8}}})
        custom(plane).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
        with process(operator_argv(plane, prometheus.url, free_port()), log):
            st = wait_status(plane, namespace, "web",
                             lambda s: "capacity: only" in s.get("lastDecision", {}).get("message", ""),
                             "a capacity-limited scale-up", 120, log)
            replicas = apps.read_namespaced_deployment("web", namespace).spec.replicas
            # Other tests' pods may come and go on the shared nodes: the cut is at most what was free.
            assert 1 <= replicas <= expected < 8

            def running() -> int:
                return sum(p.status.phase == "Running" for p in core.list_namespaced_pod(namespace).items)

            wait_until(lambda: running() == replicas, what=f"{replicas} pods Running", timeout_s=90)
    pods = core.list_namespaced_pod(namespace).items
    pending = [p.metadata.name for p in pods if p.status.phase == "Pending"]
    assert pending == []  # never scaled into pods that cannot schedule
    assert "replicas 8 cut to" in st["lastDecision"]["message"]


# kopf's peering resources (the schema kopf's docs publish: status is free-form, one key per peer).
KOPF_PEERING_CRDS = [
    {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
     "metadata": {"name": f"{plural}.kopf.dev"},
     "spec": {"scope": scope, "group": "kopf.dev",
              "names": {"kind": kind, "plural": plural, "singular": plural[:-1]},
              "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                  "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}
    for kind, plural, scope in (("ClusterKopfPeering", "clusterkopfpeerings", "Cluster"),
                                ("KopfPeering", "kopfpeerings", "Namespaced"))
]


def decisions(metrics_port: int, namespace: str) -> float:
    """This replica's decisions for the test's policy, from its own /metrics (0 when it is not acting)."""
    code, body = http_get(f"http://127.0.0.1:{metrics_port}/metrics")
    if code != 200:
        return 0.0
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith("autocm_operator_decisions_total{") and f'namespace="{namespace}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_a_second_replica_takes_over_when_the_first_dies(crd, control_plane: ControlPlane,  # noqa: F811
                                                         namespace: str, tmp_path: Path) -> None:
    plane = control_plane
    ext = kubernetes.client.ApiextensionsV1Api(plane.api_client)
    for body in KOPF_PEERING_CRDS:
        with contextlib.suppress(kubernetes.client.ApiException):
            ext.create_custom_resource_definition(body)

    def established(name: str) -> bool:
        conditions = ext.read_custom_resource_definition(name).status.conditions or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    wait_until(lambda: all(established(b["metadata"]["name"]) for b in KOPF_PEERING_CRDS),
               what="kopf peering CRDs", timeout_s=30)
    peering = f"autocm-{namespace}"
    kubernetes.client.CustomObjectsApi(plane.api_client).create_cluster_custom_object(
        "kopf.dev", "v1", "clusterkopfpeerings",
        {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": peering}})
    make_deployment(plane, namespace)
    custom(plane).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, policy("web"))
    dead_prometheus = f"http://127.0.0.1:{free_port()}"
    port_a, port_b = free_port(), free_port()

    def argv(port: int, priority: int) -> list[str]:
        return operator_argv(plane, dead_prometheus, port, ("--peering", "--peering-name", peering,
                                                            "--priority", str(priority),
                                                            "--peering-lifetime", "5"))

    log_a, log_b = tmp_path / "operator-a.log", tmp_path / "operator-b.log"
    with process(argv(port_a, 100), log_a) as a:
        # A first, so that its peering entry exists when B starts (two replicas starting in the same
        # instant may both act until each has seen the other: kopf's documented start-up race).
        wait_until(lambda: decisions(port_a, namespace) >= 2, what="replica A acting", timeout_s=90)
        with process(argv(port_b, 50), log_b):
            wait_until(lambda: http_get(f"http://127.0.0.1:{port_b}/metrics")[0] == 200,
                       what="replica B up", timeout_s=60)
            time.sleep(6)  # three intervals: B must stay idle while A lives
            assert decisions(port_b, namespace) == 0, log_b.read_text()[-2000:]
            os.killpg(a.pid, signal.SIGKILL)
            a.wait(timeout=10)
            before = status(plane, namespace, "web")["lastDecision"]["time"]
            wait_until(lambda: decisions(port_b, namespace) >= 1, what="replica B taking over", timeout_s=90)
            wait_until(lambda: status(plane, namespace, "web")["lastDecision"]["time"] > before,
                       what="status written by replica B", timeout_s=30)


THROUGHPUT = 'label_replace(vector(100), "job_name", "{name}", "", "")'
"""A per-workload override ({name}): a constant 100 samples/s labelled with the Job's name."""


def test_a_job_is_recreated_with_the_new_batch_size(crd, control_plane: ControlPlane,  # noqa: F811
                                                    namespace: str, prometheus: PrometheusServer,
                                                    tmp_path: Path) -> None:
    """A Job's template is immutable: a batch-size change deletes and re-applies it under the same name.

    The throughput comes from a per-workload query override (``{name}`` makes it per workload), which
    also shows overrides reaching the real Prometheus escaped and parsed.
    """
    plane = control_plane
    batch = kubernetes.client.BatchV1Api(plane.api_client)
    batch.create_namespaced_job(namespace, {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "train", "labels": {"team": "ml"}},
        "spec": {"parallelism": 1, "completions": 1, "backoffLimit": 0, "template": {
            "metadata": {"labels": {"team": "ml"}},
            "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0, "containers": [{
                "name": "trainer", "image": "registry.k8s.io/pause:3.10",
                "env": [{"name": "AUTOCM_BATCH_SIZE", "value": "8"}],
                "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}}})
    first_uid = batch.read_namespaced_job("train", namespace).metadata.uid
    body = policy("train", "apply",
                  targetRef={"kind": "Job", "name": "train"}, workload="training",
                  objective={"metric": "throughput_samples_per_second", "target": 50},
                  knobs={"replicas": {"min": 1, "max": 4}, "batchSize": {"min": 8, "max": 64, "step": 8}},
                  learner={"name": "static", "settings": {"config": {"replicas": 1, "batch_size": 16}}},
                  metrics={"windowSeconds": 5, "queries": {"throughput_samples_per_second": THROUGHPUT}})
    custom(plane).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    log = tmp_path / "operator.log"
    with process(operator_argv(plane, prometheus.url, free_port()), log):
        st = wait_status(plane, namespace, "train",
                         lambda s: s.get("currentConfig", {}).get("batch_size") == 16,
                         "the Job recreated with batch size 16", 120, log)
        recreated = batch.read_namespaced_job("train", namespace)
        # Then parallelism alone, on the Job autocm recreated (its whole spec applied by autocm): a merge
        # patch of the count. A server-side apply of the count alone would drop the template autocm applied.
        custom(plane).patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "train", {
            "spec": {"learner": {"settings": {"config": {"replicas": 2, "batch_size": 16}}}}})
        resized = wait_status(plane, namespace, "train",
                              lambda s: s.get("currentConfig", {}).get("replicas") == 2,
                              "the recreated Job at parallelism 2", 120, log)
    assert condition(resized, "Applied")["status"] == "True", resized
    again = batch.read_namespaced_job("train", namespace)
    assert again.metadata.uid == recreated.metadata.uid and again.spec.parallelism == 2
    assert {e.name: e.value for e in again.spec.template.spec.containers[0].env} == {"AUTOCM_BATCH_SIZE": "16"}
    assert again.spec.template.spec.containers[0].image == "registry.k8s.io/pause:3.10"
    job = recreated
    assert job.metadata.uid != first_uid
    assert job.metadata.annotations["autocm.io/restarts"] == "1"
    assert job.metadata.annotations["autocm.io/recreated-from-uid"] == first_uid
    env = {e.name: e.value for e in job.spec.template.spec.containers[0].env}
    assert env == {"AUTOCM_BATCH_SIZE": "16"}
    assert job.spec.template.metadata.labels["team"] == "ml"
    assert st["metrics"]["throughput_samples_per_second"] == 100
    core = kubernetes.client.CoreV1Api(plane.api_client)
    wait_until(lambda: any(p.status.phase == "Running" for p in core.list_namespaced_pod(
        namespace, label_selector=f"batch.kubernetes.io/controller-uid={job.metadata.uid}").items),
        what="the recreated Job's pod Running", timeout_s=90)
