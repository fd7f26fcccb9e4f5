"""Kubeflow PyTorchJobs on the real apiserver, with the real ``autocm run`` process.

No training operator runs here (no pods appear): the tests assert on the PyTorchJob objects autocm
writes. The CRD is Kubeflow's own (training-operator v1.8.1's, which scripts/e2e-tools.sh copies from
its Go module). What the real training operator then does with these objects is
tests/e2e/test_kubeflow_training_operator_e2e.py.

1. Before the CRD exists, a policy that targets a PyTorchJob says so (Ready=False, CRDNotInstalled).
2. With the CRD: an elastic job's ``Worker.replicas`` is changed in place (same uid, autocm owns
   the field); a fixed-size job's batch-size change recreates it under the same name, with every
   replica type's template in line and the restart annotations.
"""

from __future__ import annotations

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
    crd,  # noqa: F401  (fixture)
    custom,
    operator_argv,
    policy,
    process,
    wait_status,
)
from .test_operator_faults import THROUGHPUT

pytestmark = pytest.mark.e2e

KF_GROUP, KF_VERSION, KF_PLURAL = "kubeflow.org", "v1", "pytorchjobs"


def pytorchjob(name: str, workers: int, elastic: bool) -> dict:
    def role(n: int) -> dict:
        return {"replicas": n, "restartPolicy": "OnFailure", "template": {"spec": {"containers": [{
            "name": "pytorch", "image": "registry.k8s.io/pause:3.10",
            "env": [{"name": "AUTOCM_BATCH_SIZE", "value": "8"}],
            "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}}

    spec: dict = {"pytorchReplicaSpecs": {"Master": role(1), "Worker": role(workers)}}
    if elastic:
        spec["elasticPolicy"] = {"rdzvBackend": "c10d", "minReplicas": 1, "maxReplicas": 4}
    return {"apiVersion": f"{KF_GROUP}/{KF_VERSION}", "kind": "PyTorchJob", "metadata": {"name": name},
            "spec": spec}


def training_policy(name: str, knobs: dict, config: dict) -> dict:
    return policy(name, "apply", targetRef={"kind": "PyTorchJob", "name": name}, workload="training",
                  objective={"metric": "throughput_samples_per_second", "target": 50}, knobs=knobs,
                  learner={"name": "static", "settings": {"config": config}},
                  metrics={"windowSeconds": 5, "queries": {"throughput_samples_per_second": THROUGHPUT}})


def crd_installed(ext: kubernetes.client.ApiextensionsV1Api) -> bool:
    try:
        ext.read_custom_resource_definition(f"{KF_PLURAL}.{KF_GROUP}")
    except kubernetes.client.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def install_pytorchjob_crd(plane: ControlPlane) -> None:
    """Kubeflow's PyTorchJob CRD (created, or replaced where one is already there)."""
    ext = kubernetes.client.ApiextensionsV1Api(plane.api_client)
    body = yaml.safe_load(plane.tools.path("pytorchjobs-crd.yaml").read_text())
    name = body["metadata"]["name"]
    try:
        old = ext.read_custom_resource_definition(name)
    except kubernetes.client.ApiException as exc:
        if exc.status != 404:
            raise
        ext.create_custom_resource_definition(body)
    else:
        body["metadata"]["resourceVersion"] = old.metadata.resource_version
        ext.replace_custom_resource_definition(name, body)

    def established() -> bool:
        conditions = ext.read_custom_resource_definition(name).status.conditions or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    wait_until(established, what="PyTorchJob CRD Established", timeout_s=30)


def remove_pytorchjob_crd(plane: ControlPlane) -> None:
    """Deletes the CRD (and every PyTorchJob) and waits until it is gone, so the next test starts without it."""
    ext = kubernetes.client.ApiextensionsV1Api(plane.api_client)
    try:
        ext.delete_custom_resource_definition(f"{KF_PLURAL}.{KF_GROUP}")
    except kubernetes.client.ApiException as exc:
        if exc.status != 404:
            raise
    wait_until(lambda: not crd_installed(ext), what="the PyTorchJob CRD removed", timeout_s=60)


def test_pytorchjobs_are_resized_elastically_or_recreated(crd, control_plane: ControlPlane,  # noqa: F811
                                                          namespace: str, prometheus: PrometheusServer,
                                                          tmp_path: Path) -> None:
    plane = control_plane
    ext = kubernetes.client.ApiextensionsV1Api(plane.api_client)
    objects = custom(plane)
    objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, training_policy(
        "elastic", {"replicas": {"min": 1, "max": 8}}, {"replicas": 3}))

    # 1. No CRD yet (a session that installed it already skips this part).
    if not crd_installed(ext):
        log = tmp_path / "operator-no-crd.log"
        with process(operator_argv(plane, prometheus.url, free_port()), log):
            st = wait_status(plane, namespace, "elastic",
                             lambda s: condition(s, "Ready").get("reason") == "CRDNotInstalled",
                             "Ready=False CRDNotInstalled", 90, log)
        assert condition(st, "Ready")["status"] == "False"
        assert "kubeflow.org/v1 PyTorchJob CRD is not installed" in condition(st, "Ready")["message"]

    # 2. With the CRD.
    install_pytorchjob_crd(plane)
    for name, elastic in (("elastic", True), ("fixed", False)):
        objects.create_namespaced_custom_object(KF_GROUP, KF_VERSION, namespace, KF_PLURAL,
                                                pytorchjob(name, workers=1, elastic=elastic))
    first_uid = {n: objects.get_namespaced_custom_object(KF_GROUP, KF_VERSION, namespace, KF_PLURAL, n)
                 ["metadata"]["uid"] for n in ("elastic", "fixed")}
    objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, training_policy(
        "fixed", {"batchSize": {"min": 8, "max": 64, "step": 8}}, {"batch_size": 16}))
    log = tmp_path / "operator.log"
    with process(operator_argv(plane, prometheus.url, free_port()), log):
        st_elastic = wait_status(plane, namespace, "elastic",
                                 lambda s: s.get("currentConfig", {}).get("replicas") == 3,
                                 "the elastic PyTorchJob at 3 workers", 120, log)
        st_fixed = wait_status(plane, namespace, "fixed",
                               lambda s: s.get("currentConfig", {}).get("batch_size") == 16,
                               "the fixed PyTorchJob recreated with batch size 16", 120, log)

    elastic = objects.get_namespaced_custom_object(KF_GROUP, KF_VERSION, namespace, KF_PLURAL, "elastic")
    assert elastic["metadata"]["uid"] == first_uid["elastic"]  # resized in place, not recreated
    assert elastic["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] == 3
    assert elastic["spec"]["pytorchReplicaSpecs"]["Master"]["replicas"] == 1
    assert "autocm" in {m["manager"] for m in elastic["metadata"]["managedFields"]}
    assert condition(st_elastic, "Ready")["status"] == "True"
    assert st_elastic["metrics"]["throughput_samples_per_second"] == 100

    fixed = objects.get_namespaced_custom_object(KF_GROUP, KF_VERSION, namespace, KF_PLURAL, "fixed")
    assert fixed["metadata"]["uid"] != first_uid["fixed"]
    assert fixed["metadata"]["annotations"]["autocm.io/restarts"] == "1"
    assert fixed["metadata"]["annotations"]["autocm.io/recreated-from-uid"] == first_uid["fixed"]
    for role in ("Master", "Worker"):
        container = fixed["spec"]["pytorchReplicaSpecs"][role]["template"]["spec"]["containers"][0]
        assert container["env"] == [{"name": "AUTOCM_BATCH_SIZE", "value": "16"}]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert condition(st_fixed, "Applied")["status"] == "True"
