"""Tenant isolation on the real apiserver (and the real operator and Prometheus): a SizingPolicy can only
ever reach its own namespace, and bad specs end in a clear refusal, never in another tenant's trouble.

1. The served CRD refuses target names that would leave the namespace (``../../<ns>/jobs/train``), an
   unknown kind or a mismatched apiVersion, and a table of wrong types and out-of-bounds values.
2. The Kubernetes adapter, given such a name anyway (as with a CRD without the pattern), neither reads
   nor deletes the other namespace's Job on the real apiserver.
3. The real operator: a policy whose query template is plain PromQL, or reads another namespace, gets
   ``Ready=False, reason=InvalidSpec`` naming the field, while a good policy next to it keeps its
   metrics from the real Prometheus.
4. The chart's SizingPolicy user roles aggregate into the built-in ``edit`` and ``view`` roles (the
   controller manager's aggregation controller, for real): an editor of a namespace may create
   SizingPolicies there and not write their status, a viewer may only read them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest
import yaml

from controller.kube import Kube, UnsafeTarget, WorkloadActuator
from controller.policy import parse
from controller.workload_cache import WorkloadCache

from .conftest import ControlPlane, PrometheusServer, free_port, wait_until
from .test_operator_e2e import (
    GROUP,
    PAUSE_IMAGE,
    PLURAL,
    VERSION,
    condition,
    crd,  # noqa: F401  (fixture)
    custom,
    make_deployment,
    operator_argv,
    policy,
    process,
    wait_status,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def victim(control_plane: ControlPlane) -> Iterator[str]:
    """A second namespace with a Job ``train`` in it: what a hostile policy would reach for."""
    core = kubernetes.client.CoreV1Api(control_plane.api_client)
    name = f"victim-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    kubernetes.client.BatchV1Api(control_plane.api_client).create_namespaced_job(name, {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "train"},
        "spec": {"parallelism": 1, "template": {"spec": {"restartPolicy": "Never", "containers": [
            {"name": "trainer", "image": PAUSE_IMAGE, "env": [{"name": "AUTOCM_BATCH_SIZE", "value": "8"}]}]}}}})
    yield name
    with contextlib.suppress(kubernetes.client.ApiException):
        core.delete_namespace(name)


def create(plane: ControlPlane, ns: str, body: dict) -> dict:
    return custom(plane).create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)


def rejected(plane: ControlPlane, ns: str, body: dict) -> str:
    with pytest.raises(kubernetes.client.ApiException) as err:
        create(plane, ns, body)
    assert err.value.status == 422, err.value.body
    return json.loads(err.value.body)["message"]


# --- 1. admission --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../{victim}/jobs/train", "../{victim}", "..", "train/../../x", "Train",
                                  "train\n", "a" * 254])
def test_a_target_name_that_leaves_the_namespace_is_rejected_by_the_apiserver(
    crd, control_plane: ControlPlane, namespace: str, victim: str, name: str  # noqa: F811
) -> None:
    body = policy("evil", "apply", targetRef={"kind": "Job", "name": name.format(victim=victim)},
                  workload="training", objective={"metric": "throughput_samples_per_second", "target": 10},
                  learner={"name": "static"})
    said = rejected(control_plane, namespace, body)
    assert "spec.targetRef.name" in said, said


@pytest.mark.parametrize(("ref", "field"), [
    ({"kind": "Secret", "name": "web"}, "spec.targetRef.kind"),
    ({"kind": "Deployment", "name": "web", "apiVersion": "v1"}, "spec.targetRef.apiVersion"),
    ({"kind": "Deployment", "name": "web", "container": "../x"}, "spec.targetRef.container"),
])
def test_kind_api_version_and_container_are_checked_at_admission(
    crd, control_plane: ControlPlane, namespace: str, ref: dict, field: str  # noqa: F811
) -> None:
    said = rejected(control_plane, namespace, policy("evil", targetRef=ref))
    assert field in said, said


CRD_REJECTS: list[tuple[str, dict, str]] = [
    # (case, spec fields to override, text the apiserver's message must contain)
    ("learner is a string", {"learner": "vconf"}, "spec.learner"),
    ("guards is a list", {"guards": [1]}, "spec.guards"),
    ("metrics is a string", {"metrics": "fast"}, "spec.metrics"),
    ("objective is a number", {"objective": 5}, "spec.objective"),
    ("targetRef is a string", {"targetRef": "web"}, "spec.targetRef"),
    ("paused is a string", {"paused": "no"}, "spec.paused"),
    ("interval 1e12", {"intervalSeconds": 1e12}, "spec.intervalSeconds"),
    ("interval 0.5", {"intervalSeconds": 0.5}, "spec.intervalSeconds"),
    ("a billion values", {"knobs": {"memory": {"min": 0, "max": 1000000000}}}, "at most 1000000 values"),
    ("a step of 1e-9", {"knobs": {"cpu": {"min": 1, "max": 2, "step": 1e-9}}}, "at most 1000000 values"),
    ("knob max 1e12", {"knobs": {"replicas": {"min": 1, "max": 1e12}}}, "spec.knobs.replicas.max"),
    ("window a year", {"metrics": {"windowSeconds": 31536000}}, "spec.metrics.windowSeconds"),
    ("template too long", {"metrics": {"queries": {"queue_length": "x" * 5000}}}, "spec.metrics.queries"),
    ("steps 1e9", {"guards": {"maxStepsPerInterval": 1000000000}}, "spec.guards.maxStepsPerInterval"),
    ("pending timeout a year", {"guards": {"pendingTimeoutSeconds": 31536000}}, "spec.guards.pendingTimeoutSeconds"),
    ("checkpoint path", {"learner": {"name": "hpa", "checkpoint": "configmap/../x"}}, "spec.learner.checkpoint"),
]


@pytest.mark.parametrize(("spec", "words"), [c[1:] for c in CRD_REJECTS], ids=[c[0] for c in CRD_REJECTS])
def test_the_crd_rejects_wrong_types_and_unbounded_values(
    crd, control_plane: ControlPlane, namespace: str, spec: dict, words: str  # noqa: F811
) -> None:
    said = rejected(control_plane, namespace, policy("bad", **spec))
    assert words in said, said


def test_the_largest_admitted_knob_is_admitted(crd, control_plane: ControlPlane, namespace: str) -> None:  # noqa: F811
    create(control_plane, namespace, policy("big", knobs={"memory": {"min": 1, "max": 1000000}}))


# --- 2. the adapter, given a hostile name anyway ---------------------------------------------------------


def test_the_adapter_neither_reads_nor_deletes_another_namespaces_job(
    control_plane: ControlPlane, namespace: str, victim: str
) -> None:
    """Before the fix this recreation path sent DELETE .../namespaces/<tenant>/jobs/../../<victim>/jobs/train."""
    spec = {"targetRef": {"kind": "Job", "name": "train"}, "workload": "training",
            "objective": {"metric": "throughput_samples_per_second", "target": 10},
            "knobs": {"replicas": {"min": 1, "max": 4}, "batchSize": {"min": 8, "max": 64, "step": 8}},
            "learner": {"name": "static"}, "mode": "apply"}
    good = parse(spec, namespace, "evil")
    evil = dataclasses.replace(good, target=dataclasses.replace(good.target, name=f"../../{victim}/jobs/train"))
    kube = Kube(control_plane.api_client)
    with pytest.raises(UnsafeTarget, match="not a DNS-1123 name"):
        WorkloadActuator(kube, evil).apply(evil.key, {"replicas": 2, "batch_size": 16}, "bigger batch")
    with pytest.raises(UnsafeTarget):
        WorkloadCache(kube).get(evil.target)
    job = kubernetes.client.BatchV1Api(control_plane.api_client).read_namespaced_job("train", victim)
    assert job.metadata.deletion_timestamp is None and job.spec.parallelism == 1
    assert kube.calls == 0  # not one request left the process


# --- 3. the operator: a bad template is its own policy's problem only ------------------------------------


CONSTANT_TTFT = 'label_replace(vector(0.3), "deployment", "{name}", "", "")'


def test_bad_templates_are_invalid_specs_and_do_not_touch_the_neighbours_metrics(
    crd, control_plane: ControlPlane, namespace: str, prometheus: PrometheusServer, tmp_path: Path  # noqa: F811
) -> None:
    plane = control_plane
    make_deployment(plane, namespace)
    create(plane, namespace, policy("good", metrics={"windowSeconds": 5, "queries": {
        "ttft_p99_seconds": CONSTANT_TTFT}}))
    create(plane, namespace, policy("plain-promql", metrics={"windowSeconds": 5, "queries": {
        "ttft_p99_seconds": 'max(up{job="prometheus"})'}}))
    create(plane, namespace, policy("other-namespace", metrics={"windowSeconds": 5, "queries": {
        "ttft_p99_seconds": 'max(up{{namespace="kube-system"}})'}}))
    log = tmp_path / "operator.log"
    with process(operator_argv(plane, prometheus.url, free_port()), log):
        for name, words in (("plain-promql", "unknown placeholder"), ("other-namespace", "no namespace matcher")):
            st = wait_status(plane, namespace, name, lambda s: condition(s, "Ready").get("reason") == "InvalidSpec",
                             f"{name} InvalidSpec", 90, log)
            msg = condition(st, "Ready")["message"]
            assert msg.startswith("spec.metrics.queries.ttft_p99_seconds: ") and words in msg, msg
        st = wait_status(plane, namespace, "good",
                         lambda s: s.get("metrics", {}).get("ttft_p99_seconds") == pytest.approx(0.3),
                         "the good policy's metrics", 90, log)
        assert condition(st, "Ready")["status"] == "True"
        assert condition(st, "MetricsAvailable")["status"] == "True"
    wait_until(lambda: "Traceback" not in log.read_text(errors="replace"), what="no traceback in the log",
               timeout_s=1)


# --- 4. who may size workloads: the chart's user roles, aggregated ---------------------------------------


def can(plane: ControlPlane, user: str, ns: str, verb: str, resource: str, sub: str = "") -> bool:
    review = kubernetes.client.AuthorizationV1Api(plane.api_client).create_subject_access_review({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": user, "resourceAttributes": {"namespace": ns, "verb": verb, "group": GROUP,
                                                       "resource": resource, "subresource": sub}}})
    return bool(review.status.allowed)


def test_user_roles_aggregate_into_edit_and_view(control_plane: ControlPlane, namespace: str,
                                                  tmp_path: Path) -> None:
    plane = control_plane
    release = f"roles-{namespace}"
    got = subprocess.run([str(plane.tools.path("helm")), "template", release,
                          str(Path(__file__).resolve().parents[2] / "manifests" / "autocm"), "-n", namespace],
                         capture_output=True, text=True, timeout=60,
                         env={"HELM_CACHE_HOME": str(tmp_path / "c"), "HELM_CONFIG_HOME": str(tmp_path / "h"),
                              "PATH": "/usr/bin:/bin"})
    assert got.returncode == 0, got.stderr
    rbac = kubernetes.client.RbacAuthorizationV1Api(plane.api_client)
    roles = [d for d in yaml.safe_load_all(got.stdout)
             if d and d["kind"] == "ClusterRole" and d["metadata"]["name"].endswith(("-editor", "-viewer"))]
    assert len(roles) == 2
    try:
        for role in roles:
            rbac.create_cluster_role(role)
        for name, who in (("edit", "editor"), ("view", "viewer")):
            rbac.create_namespaced_role_binding(namespace, {
                "metadata": {"name": f"{who}-binding"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": who}]})
        # The aggregation controller copies the rules into edit/admin/view within a sync.
        wait_until(lambda: can(plane, "editor", namespace, "create", PLURAL), what="edit aggregates the editor role",
                   timeout_s=60)
        wait_until(lambda: can(plane, "viewer", namespace, "list", PLURAL), what="view aggregates the viewer role",
                   timeout_s=60)
        assert can(plane, "editor", namespace, "delete", PLURAL)
        assert not can(plane, "editor", namespace, "patch", PLURAL, "status")  # the operator's alone
        assert not can(plane, "viewer", namespace, "create", PLURAL)
        assert not can(plane, "editor", "default", "create", PLURAL)  # only where edit is bound
    finally:
        for role in roles:
            with contextlib.suppress(kubernetes.client.ApiException):
                rbac.delete_cluster_role(role["metadata"]["name"])
