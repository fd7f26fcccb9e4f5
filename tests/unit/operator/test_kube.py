"""The Kubernetes actuator on an in-memory API: what it reads, what it applies, what it refuses."""

from __future__ import annotations

import json

import pytest
from kubernetes.client import ApiException
from operator_fakes import FakeKube, deployment, node, pod

from controller.kube import (
    FIELD_MANAGER,
    RESOURCES_ANNOTATION,
    RESTARTS_ANNOTATION,
    Kube,
    KubeSettings,
    WorkloadActuator,
    free_gpu_slots,
    keep_pods_together,
    other_scalers,
    parse_quantity,
    pods_selector,
    prefer_node,
    quota_room,
    read_config,
)
from controller.policy import parse

DEPLOY = "/apis/apps/v1/namespaces/ml/deployments/web"


def policy(knobs=None, kind="Deployment", **extra):
    spec = {
        "targetRef": {"kind": kind, "name": "web"},
        "objective": {"metric": "ttft_p99_seconds", "target": 0.5},
        "knobs": knobs or {"replicas": {"min": 1, "max": 8}, "gpusPerReplica": {"choices": [1, 2, 4]},
                           "batchSize": {"min": 8, "max": 64, "step": 8}},
        "learner": {"name": "static"},
        **extra,
    }
    return parse(spec, "ml", "web-policy")


@pytest.mark.parametrize(("q", "value"), [("500m", 0.5), ("2", 2.0), ("1Gi", 2**30), ("1e3", 1000.0),
                                          ("1.5G", 1.5e9), ("128Mi", 128 * 2**20)])
def test_quantities(q, value):
    assert parse_quantity(q) == pytest.approx(value)


def test_read_config_from_the_pod_template():
    p = policy({"replicas": {"min": 1, "max": 8}, "gpusPerReplica": {"choices": [1, 2]},
                "batchSize": {"min": 8, "max": 64, "step": 8}, "cpu": {"min": 250, "max": 4000, "step": 250},
                "memory": {"min": 512, "max": 8192, "step": 512}, "maxConcurrency": {"min": 1, "max": 64}})
    got = read_config(deployment(replicas=3, gpus=2, batch=16), p)
    # maxConcurrency is not in the template: the knob's default (its lower bound).
    assert got == {"replicas": 3, "gpus_per_replica": 2, "max_batch_size": 16, "cpu_millicores": 500,
                   "memory_mib": 1024, "max_concurrency": 1}


def test_replicas_go_through_the_scale_subresource_and_template_knobs_through_apply():
    kube = FakeKube()
    kube.put(DEPLOY, deployment())
    for i in range(2):
        kube.put(f"/api/v1/nodes/n{i}", node(f"n{i}"))
    act = WorkloadActuator(kube, policy())
    act.apply("ml/web", {"replicas": 3, "gpus_per_replica": 2, "max_batch_size": 32}, "SLO missed")
    applies = kube.writes("APPLY")
    scale = [b for m, p, b in applies if p == DEPLOY + "/scale"]
    assert scale == [{"apiVersion": "autoscaling/v1", "kind": "Scale",
                      "metadata": {"name": "web", "namespace": "ml"}, "spec": {"replicas": 3}}]
    (template,) = [b for m, p, b in applies if p == DEPLOY]
    container = template["spec"]["template"]["spec"]["containers"][0]
    # Only the fields autocm owns: GPUs (requests == limits for extended resources) and the env contract.
    assert container == {"name": "server",
                         "resources": {"requests": {"nvidia.com/gpu": "2"},
                                       "limits": {"nvidia.com/gpu": "2"}},
                         "env": [{"name": "AUTOCM_BATCH_SIZE", "value": "32"}]}
    assert read_config(kube.objects[DEPLOY], act.policy) == {"replicas": 3, "gpus_per_replica": 2,
                                                            "max_batch_size": 32}
    (event,) = kube.events
    assert event["reason"] == "AutocmResized" and event["involvedObject"]["name"] == "web"
    assert "replicas 2 -> 3" in event["message"] and "batchSize 8 -> 32" in event["message"]
    assert event["message"].endswith("SLO missed")


def test_applying_the_current_config_changes_nothing():
    kube = FakeKube()
    kube.put(DEPLOY, deployment())
    WorkloadActuator(kube, policy()).apply("ml/web", {"replicas": 2, "gpus_per_replica": 1,
                                                       "max_batch_size": 8}, "keep")
    assert kube.writes() == [] and kube.events == []


def test_scale_up_is_cut_to_the_gpus_that_fit():
    kube = FakeKube()
    kube.put(DEPLOY, deployment(replicas=2, gpus=4))
    kube.put("/api/v1/nodes/n0", node("n0"))
    kube.put("/api/v1/nodes/n1", node("n1"))
    # n0 is full (8 used), n1 has 4 free: one more 4-GPU pod fits.
    kube.put("/api/v1/namespaces/ml/pods/web-a", pod("web-a", "ml", 4, "n0", {"app": "web"}))
    kube.put("/api/v1/namespaces/ml/pods/web-b", pod("web-b", "ml", 4, "n0", {"app": "web"}))
    kube.put("/api/v1/namespaces/ml/pods/x", pod("x", "ml", 4, "n1"))
    act = WorkloadActuator(kube, policy())
    act.apply("ml/web", {"replicas": 6, "gpus_per_replica": 4, "max_batch_size": 8}, "more")
    assert kube.objects[DEPLOY]["spec"]["replicas"] == 3
    assert any("only 1 more pod(s) of 4 GPU(s) fit" in n for n in act.notes)


def test_no_scale_up_while_gpu_pods_are_pending_or_quota_is_full():
    kube = FakeKube()
    kube.put(DEPLOY, deployment(replicas=2, gpus=1))
    kube.put("/api/v1/nodes/n0", node("n0"))
    kube.put("/api/v1/namespaces/other/pods/big", pod("big", "other", 8, None,
                                                      pending_msg="0/1 nodes: Insufficient nvidia.com/gpu"))
    act = WorkloadActuator(kube, policy())
    act.apply("ml/web", {"replicas": 4, "gpus_per_replica": 1, "max_batch_size": 8}, "more")
    assert kube.objects[DEPLOY]["spec"]["replicas"] == 2 and kube.writes() == []
    # Another namespace's pod is counted but not named: the status is readable by this namespace's users.
    assert "cannot schedule (in other namespaces)" in act.notes[0] and "big" not in act.notes[0]
    kube.put("/api/v1/namespaces/ml/pods/mine", pod("mine", "ml", 8, None, pending_msg="Insufficient"))
    act.apply("ml/web", {"replicas": 4, "gpus_per_replica": 1, "max_batch_size": 8}, "more")
    assert "2 GPU pod(s) already cannot schedule (e.g. ml/mine)" in act.notes[0]
    del kube.objects["/api/v1/namespaces/ml/pods/mine"]

    del kube.objects["/api/v1/namespaces/other/pods/big"]
    kube.put("/api/v1/namespaces/ml/resourcequotas/gpus", {
        "metadata": {"name": "gpus"}, "spec": {"hard": {"requests.nvidia.com/gpu": "3"}},
        "status": {"hard": {"requests.nvidia.com/gpu": "3"}, "used": {"requests.nvidia.com/gpu": "2"}}})
    act.apply("ml/web", {"replicas": 4, "gpus_per_replica": 1, "max_batch_size": 8}, "more")
    assert kube.objects[DEPLOY]["spec"]["replicas"] == 2
    assert "ResourceQuota gpus" in act.notes[0] and "room for 1" in act.notes[0]
    # Scaling down never needs room.
    act.apply("ml/web", {"replicas": 1, "gpus_per_replica": 1, "max_batch_size": 8}, "less")
    assert kube.objects[DEPLOY]["spec"]["replicas"] == 1


def test_free_slots_and_quota_helpers():
    nodes = [node("a", 8), node("b", 8), {**node("c", 8), "spec": {"unschedulable": True}}]
    pods = [pod("p", "ns", 3, "a"), pod("q", "ns", 8, "b"), {**pod("done", "ns", 8, "a"),
                                                              "status": {"phase": "Succeeded"}}]
    assert free_gpu_slots(nodes, pods, 2) == 2  # a has 5 free -> 2 pods of 2; b full; c cordoned
    assert free_gpu_slots(nodes, pods, 8) == 0
    quota = [{"metadata": {"name": "q"}, "status": {"hard": {"pods": "10"}, "used": {"pods": "10"}}}]
    assert "pods" in quota_room(quota, 0, 1)
    assert quota_room(quota, 5, 0) is None


def test_rollback_when_new_pods_stay_pending():
    kube = FakeKube()
    kube.put(DEPLOY, deployment(replicas=2, gpus=1))
    kube.put("/api/v1/nodes/n0", node("n0"))
    now = [1000.0]
    act = WorkloadActuator(kube, policy(guards={"pendingTimeoutSeconds": 30}), clock=lambda: now[0])
    act.apply("ml/web", {"replicas": 4, "gpus_per_replica": 1, "max_batch_size": 8}, "more")
    assert kube.objects[DEPLOY]["spec"]["replicas"] == 4
    kube.put("/api/v1/namespaces/ml/pods/web-new", pod("web-new", "ml", 1, None, {"app": "web"},
                                                       pending_msg="0/1 nodes are available"))
    now[0] += 10
    assert act.stuck_scale_up() is None  # not yet: still within the timeout
    now[0] += 25
    before, why = act.stuck_scale_up()
    assert before["replicas"] == 2 and "web-new" in why and "0/1 nodes are available" in why


def test_other_autoscalers_are_found_and_vpa_off_is_not_a_conflict():
    kube = FakeKube()
    kube.put("/apis/autoscaling/v2/namespaces/ml/horizontalpodautoscalers/h", {
        "metadata": {"name": "h"}, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}}})
    kube.put("/apis/autoscaling/v2/namespaces/ml/horizontalpodautoscalers/other", {
        "metadata": {"name": "other"}, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "db"}}})
    kube.put("/apis/autoscaling.k8s.io/v1/namespaces/ml/verticalpodautoscalers/v", {
        "metadata": {"name": "v"}, "spec": {"targetRef": {"kind": "Deployment", "name": "web"},
                                            "updatePolicy": {"updateMode": "Off"}}})
    kube.put("/apis/keda.sh/v1alpha1/namespaces/ml/scaledobjects/k", {
        "metadata": {"name": "k"}, "spec": {"scaleTargetRef": {"name": "web"}}})
    found = other_scalers(kube, policy().target)
    assert found == ["HorizontalPodAutoscaler h", "KEDA ScaledObject k"]
    # Without VPA/KEDA CRDs (404 on their lists) only the HPA check remains.
    assert other_scalers(FakeKube(), policy().target) == []


def test_in_place_resize_patches_every_pod_and_records_the_values():
    kube = FakeKube()
    kube.put(DEPLOY, deployment(cpu="500m", memory="1Gi"))
    for name in ("web-a", "web-b"):
        kube.put(f"/api/v1/namespaces/ml/pods/{name}", pod(name, "ml", 1, "n0", {"app": "web"}))
    p = policy({"replicas": {"min": 1, "max": 4}, "cpu": {"min": 250, "max": 2000, "step": 250},
                "memory": {"min": 512, "max": 4096, "step": 512}})
    act = WorkloadActuator(kube, p, in_place_resize=True)
    act.apply("ml/web", {"replicas": 2, "cpu_millicores": 1000, "memory_mib": 2048}, "cpu bound")
    resizes = kube.writes("RESIZE")
    assert [path for _, path, _ in resizes] == ["/api/v1/namespaces/ml/pods/web-a/resize",
                                                 "/api/v1/namespaces/ml/pods/web-b/resize"]
    # Strategic merge body; memory had a limit, so the limit moves with the request; cpu had none.
    assert resizes[0][2] == {"spec": {"containers": [{"name": "server", "resources": {
        "requests": {"cpu": "1000m", "memory": "2048Mi"}, "limits": {"memory": "2048Mi"}}}]}}
    tpl = kube.objects[DEPLOY]["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert tpl["requests"]["cpu"] == "500m"  # the template is untouched: no rollout
    annotation = json.loads(kube.objects[DEPLOY]["metadata"]["annotations"][RESOURCES_ANNOTATION])
    assert annotation == {"cpu": "1000m", "memory": "2048Mi"}
    assert act.current() == {"replicas": 2, "cpu_millicores": 1000, "memory_mib": 2048}


def test_without_pods_resize_cpu_goes_through_the_template():
    kube = FakeKube()
    kube.put(DEPLOY, deployment(cpu="500m"))
    p = policy({"cpu": {"min": 250, "max": 2000, "step": 250}})
    WorkloadActuator(kube, p, in_place_resize=False).apply("ml/web", {"cpu_millicores": 750}, "x")
    assert kube.writes("RESIZE") == []
    assert kube.objects[DEPLOY]["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] \
        == "750m"


def test_job_template_change_recreates_the_job_and_parallelism_is_patched():
    path = "/apis/batch/v1/namespaces/ml/jobs/web"
    job = deployment()
    job.update({"apiVersion": "batch/v1", "kind": "Job"})
    uid_label = {"batch.kubernetes.io/controller-uid": "u1"}
    job["spec"] = {"parallelism": 2, "selector": {"matchLabels": uid_label},
                   "template": {**job["spec"]["template"], "metadata": {"labels": {
                       "batch.kubernetes.io/controller-uid": "u1", "team": "ml"}}}}
    kube = FakeKube()
    kube.put(path, job)
    kube.put("/api/v1/nodes/n0", node("n0"))  # the job's pods hold 1 GPU each: room for 6 more
    p = policy({"replicas": {"min": 1, "max": 8}, "batchSize": {"min": 8, "max": 64, "step": 8}}, kind="Job",
               workload="training", objective={"metric": "throughput_samples_per_second", "target": 100})
    act = WorkloadActuator(kube, p)
    act.apply("ml/web", {"replicas": 4, "batch_size": 8}, "elastic")
    assert [m for m, _, _ in kube.writes()] == ["MERGE"]  # the count alone (see Kube.merge_patch)
    assert kube.objects[path]["spec"]["parallelism"] == 4
    act.apply("ml/web", {"replicas": 4, "batch_size": 16}, "bigger batch")
    kinds = [m for m, _, _ in kube.writes()]
    assert kinds[-2:] == ["DELETE", "APPLY"]
    new = kube.objects[path]
    assert "selector" not in new["spec"]  # the apiserver generates a new one
    assert new["spec"]["template"]["metadata"]["labels"] == {"team": "ml"}
    assert new["metadata"]["annotations"][RESTARTS_ANNOTATION] == "1"
    env = {e["name"]: e["value"] for e in new["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env == {"MODEL": "llama", "AUTOCM_BATCH_SIZE": "16"}
    assert new["spec"]["template"]["spec"]["containers"][0]["image"] == "vllm:latest"
    act.apply("ml/web", {"replicas": 2, "batch_size": 16}, "fewer")  # after a recreation: still the count alone
    assert kube.writes()[-1][0] == "MERGE" and kube.writes()[-1][2] == {"spec": {"parallelism": 2}}
    assert kube.objects[path]["spec"]["template"]["spec"]["containers"][0]["image"] == "vllm:latest"


class FlakyApiClient:
    """Stands in for kubernetes.client.ApiClient.call_api: fails with the given statuses, then answers."""

    def __init__(self, statuses):
        self.statuses = list(statuses)
        self.calls = []

    def call_api(self, path, method, **kw):
        self.calls.append((method, path, kw["header_params"]["Content-Type"], kw["query_params"]))
        if self.statuses:
            raise ApiException(status=self.statuses.pop(0))
        return {"ok": True}


def test_transient_errors_are_retried_and_others_are_not():
    client = FlakyApiClient([503, 500])
    kube = Kube(client, KubeSettings(retry_backoff_s=0.0))
    assert kube.apply("/x", {"a": 1}) == {"ok": True}
    assert len(client.calls) == 3
    method, _, ctype, query = client.calls[0]
    assert (method, ctype) == ("PATCH", "application/apply-patch+yaml")
    assert ("fieldManager", FIELD_MANAGER) in query and ("force", "true") in query
    client = FlakyApiClient([422])
    with pytest.raises(ApiException):
        Kube(client, KubeSettings(retry_backoff_s=0.0)).apply("/x", {})
    assert len(client.calls) == 1


def test_retry_after_is_waited_out_up_to_a_cap(monkeypatch):
    class Throttled(FlakyApiClient):
        def call_api(self, path, method, **kw):
            self.calls.append(method)
            if self.statuses:
                status, retry_after = self.statuses.pop(0)
                exc = ApiException(status=status)
                exc.headers = {"Retry-After": retry_after}
                raise exc
            return {"ok": True}

    sleeps = []
    monkeypatch.setattr("controller.kube.time.sleep", sleeps.append)
    client = Throttled([(429, "3"), (503, "99"), (429, "soon")])
    assert Kube(client, KubeSettings(retry_backoff_s=0.5, max_retry_after_s=10)).get("/x") == {"ok": True}
    # max(backoff, Retry-After): 3 s instead of 0.5; 99 s capped at 10; an unparsable value keeps the backoff.
    assert sleeps == [3.0, 10.0, 2.0]


class NoResize(FakeKube):
    """A server without pods/resize: the subresource answers 404 (the pods themselves exist)."""

    def strategic_patch(self, path, body):
        if path.endswith("/resize"):
            self.calls.append(("RESIZE", path, body))
            self._raise(404)
        return super().strategic_patch(path, body)


def test_a_404_from_pods_resize_falls_back_to_the_template():
    kube = NoResize()
    kube.put(DEPLOY, deployment(cpu="500m"))
    kube.put("/api/v1/namespaces/ml/pods/web-a", pod("web-a", "ml", 1, "n0", {"app": "web"}))
    act = WorkloadActuator(kube, policy({"cpu": {"min": 250, "max": 2000, "step": 250}}), in_place_resize=True)
    act.apply("ml/web", {"cpu_millicores": 750}, "x")
    assert len(kube.writes("RESIZE")) == 1
    assert kube.objects[DEPLOY]["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] \
        == "750m"
    assert RESOURCES_ANNOTATION not in kube.objects[DEPLOY]["metadata"].get("annotations", {})
    assert act.in_place_resize is False and any("pods/resize is not served (404)" in n for n in act.notes)
    act.apply("ml/web", {"cpu_millicores": 1000}, "x")  # from now on straight to the template
    assert len(kube.writes("RESIZE")) == 1 and act.current() == {"cpu_millicores": 1000}


def test_a_pod_gone_before_its_resize_is_skipped():
    class GoneFirst(FakeKube):
        def strategic_patch(self, path, body):
            if path.endswith("web-a/resize"):  # deleted between the listing and the resize
                del self.objects[path[: -len("/resize")]]
                self._raise(404)
            return super().strategic_patch(path, body)

    kube = GoneFirst()
    kube.put(DEPLOY, deployment(cpu="500m"))
    for name in ("web-a", "web-b"):
        kube.put(f"/api/v1/namespaces/ml/pods/{name}", pod(name, "ml", 1, "n0", {"app": "web"}))
    act = WorkloadActuator(kube, policy({"cpu": {"min": 250, "max": 2000, "step": 250}}), in_place_resize=True)
    act.apply("ml/web", {"cpu_millicores": 750}, "x")
    assert act.in_place_resize is True
    assert [p for _, p, _ in kube.writes("RESIZE")] == ["/api/v1/namespaces/ml/pods/web-b/resize"]
    assert json.loads(kube.objects[DEPLOY]["metadata"]["annotations"][RESOURCES_ANNOTATION]) == {"cpu": "750m"}


def test_after_a_rollback_scale_ups_are_held_off_and_the_hold_doubles():
    kube = FakeKube()
    kube.put(DEPLOY, deployment(replicas=2, gpus=1))
    kube.put("/api/v1/nodes/n0", node("n0"))
    now = [1000.0]
    act = WorkloadActuator(kube, policy(guards={"pendingTimeoutSeconds": 30, "cooldownSeconds": 10}),
                           clock=lambda: now[0])
    up = {"replicas": 4, "gpus_per_replica": 1, "max_batch_size": 8}
    stuck = pod("web-new", "ml", 1, None, {"app": "web"}, pending_msg="0/1 nodes are available")

    def scale_up_gets_stuck_and_rolls_back() -> None:
        act.apply("ml/web", up, "more")
        assert kube.objects[DEPLOY]["spec"]["replicas"] == 4
        kube.put("/api/v1/namespaces/ml/pods/web-new", stuck)
        now[0] += 31
        before, _ = act.stuck_scale_up()
        act.apply("ml/web", before, "rollback")
        del kube.objects["/api/v1/namespaces/ml/pods/web-new"]  # the scale-down removes the pending pod

    scale_up_gets_stuck_and_rolls_back()
    now[0] += 29  # within max(cooldown, pending timeout) = 30 s: refused, and the status says why
    act.apply("ml/web", up, "more")
    assert kube.objects[DEPLOY]["spec"]["replicas"] == 2 and not act.changes
    assert "rolled back" in act.notes[0]
    act.apply("ml/web", {**up, "replicas": 1}, "less")  # scaling down is never held
    assert kube.objects[DEPLOY]["spec"]["replicas"] == 1
    now[0] += 2
    scale_up_gets_stuck_and_rolls_back()  # the hold is over: tried again, stuck again
    now[0] += 59  # second rollback in a row: 60 s
    act.apply("ml/web", up, "more")
    assert not act.changes
    now[0] += 2
    act.apply("ml/web", up, "more")
    assert kube.objects[DEPLOY]["spec"]["replicas"] == 4
    now[0] += 31
    assert act.stuck_scale_up() is None and act.rollbacks == 0  # it scheduled: the count starts again


@pytest.mark.parametrize("obj, kind, want", [
    ({"spec": {"selector": {"matchLabels": {"b": "2", "a": ""}}}}, "Deployment", "a=,b=2"),
    ({"spec": {"selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}}}}, "Job",
     "batch.kubernetes.io/controller-uid=u-1"),
    ({"spec": {}}, "PyTorchJob", "training.kubeflow.org/job-name=p-0"),
    ({"spec": {}}, "Deployment", None),
    ({"spec": {"selector": {"matchLabels": {"app": "x,tier=other"}}}}, "Deployment", None),  # a second clause
    ({"spec": {"selector": {"matchLabels": {"app in (a": "b"}}}}, "Deployment", None),
    ({"spec": {"selector": {"matchLabels": {"app": 7}}}}, "Deployment", None),
    ({"spec": {"selector": {"matchLabels": ["app"]}}}, "Deployment", None),
])
def test_a_pods_selector_is_built_only_from_labels_the_apiserver_allows(obj, kind, want):
    assert pods_selector(obj, kind, "p-0") == want


TOGETHER = {"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": {"batch.kubernetes.io/job-name": "t"}},
                                               "topologyKey": "kubernetes.io/hostname"}}


def test_a_recreated_job_prefers_its_own_pods_node_once_and_keeps_the_tenants_affinity():
    theirs = {"weight": 5, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "cache"}},
                                               "topologyKey": "zone"}}
    required = {"nodeSelectorTerms": [{"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}]}
    body = {"spec": {"template": {"spec": {"containers": [], "affinity": {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required},
        "podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [theirs]}}}}}}
    assert keep_pods_together(body, "Job", "t")
    assert not keep_pods_together(body, "Job", "t")  # recreated again: not added twice
    affinity = body["spec"]["template"]["spec"]["affinity"]
    assert affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] == required
    assert affinity["podAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"] == [theirs, TOGETHER]
    assert "namespaces" not in TOGETHER["podAffinityTerm"]  # namespace-local: only this tenant's pods


def test_every_role_of_a_pytorchjob_prefers_the_jobs_pods_node():
    body = {"spec": {"pytorchReplicaSpecs": {"Master": {"template": {"spec": {}}},
                                             "Worker": {"template": {"spec": {"affinity": {}}}}}}}
    assert keep_pods_together(body, "PyTorchJob", "p-0")
    for role in ("Master", "Worker"):
        term = body["spec"]["pytorchReplicaSpecs"][role]["template"]["spec"]["affinity"]["podAffinity"][
            "preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
        assert term["labelSelector"] == {"matchLabels": {"training.kubeflow.org/job-name": "p-0"}}


@pytest.mark.parametrize("spec", [
    {"template": {"spec": {"affinity": "near"}}},
    {"template": {"spec": {"affinity": {"podAffinity": ["x"]}}}},
    {"template": {"spec": {"affinity": {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": {}}}}}},
    {"template": {"spec": {"affinity": None}}},
    {"template": []},
    {"template": {"spec": 3}},
    "spec",
])
def test_a_template_of_the_wrong_shape_is_left_for_the_apiserver_to_judge(spec):
    body = {"spec": spec}
    before = json.dumps(body, sort_keys=True)
    assert not keep_pods_together(body, "Job", "t")
    assert json.dumps(body, sort_keys=True) == before


def test_a_name_that_is_not_a_label_value_adds_nothing():
    body = {"spec": {"template": {"spec": {}}}}
    assert not keep_pods_together(body, "Job", "a,b=c")
    assert body == {"spec": {"template": {"spec": {}}}}


def test_a_node_preference_replaces_the_one_an_earlier_move_wrote_and_goes_when_no_move_asks_for_one():
    theirs = {"weight": 7, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}}
    body = {"metadata": {"annotations": {"team": "x"}}, "spec": {"template": {"spec": {"affinity": {
        "nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [theirs]}}}}}}

    def terms() -> list:
        return body["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
            "preferredDuringSchedulingIgnoredDuringExecution"]

    def hosts() -> list:
        return [t["preference"]["matchExpressions"][0]["values"][0] for t in terms() if t is not theirs and
                t["preference"]["matchExpressions"][0]["key"] == "kubernetes.io/hostname"]

    assert prefer_node(body, "Job", "node-a")
    assert hosts() == ["node-a"] and body["metadata"]["annotations"]["autocm.io/preferred-node"] == "node-a"
    assert prefer_node(body, "Job", "node-b")  # the next move: the old node's preference is taken out
    assert hosts() == ["node-b"] and body["metadata"]["annotations"]["autocm.io/preferred-node"] == "node-b"
    assert not prefer_node(body, "Job", None)  # a recreation that is not a move keeps no node preference
    assert terms() == [theirs] and body["metadata"]["annotations"] == {"team": "x"}
