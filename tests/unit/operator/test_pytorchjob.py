"""Kubeflow PyTorchJobs: elastic resizes in place, everything else by checkpoint-aware recreation."""

from __future__ import annotations

import re

import pytest
from operator_fakes import FakeKube, fake_prometheus, node, vector
from test_engine import Clock, engine_for

from controller.kube import RESTARTS_ANNOTATION, WorkloadActuator, read_config
from controller.policy import PolicyError, TargetRef, parse
from controller.prometheus import pod_regex

JOB = "/apis/kubeflow.org/v1/namespaces/ml/pytorchjobs/train"
POLICY = "/apis/autocm.io/v1alpha1/namespaces/ml/sizingpolicies/train"
GROUP_LISTING = "/apis/kubeflow.org/v1"


def trainer(batch: int = 8) -> dict:
    return {"name": "pytorch", "image": "trainer:1",
            "env": [{"name": "DATA", "value": "/data"}, {"name": "AUTOCM_BATCH_SIZE", "value": str(batch)}],
            "resources": {"limits": {"nvidia.com/gpu": "1"}}}


def job(workers: int = 2, elastic: dict | None = None) -> dict:
    def role(n: int) -> dict:
        return {"replicas": n, "restartPolicy": "OnFailure",
                "template": {"metadata": {"labels": {"team": "ml"}},
                             "spec": {"containers": [trainer(), {"name": "sidecar", "image": "log:1"}]}}}

    spec: dict = {"pytorchReplicaSpecs": {"Master": role(1), "Worker": role(workers)}}
    if elastic is not None:
        spec["elasticPolicy"] = elastic
    return {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
            "metadata": {"name": "train", "namespace": "ml", "uid": "job-uid-1", "labels": {"team": "ml"}},
            "spec": spec}


def spec(knobs: dict, config: dict, mode: str = "apply") -> dict:
    return {"targetRef": {"kind": "PyTorchJob", "name": "train"},
            "objective": {"metric": "throughput_samples_per_second", "target": 50},
            "knobs": knobs, "learner": {"name": "static", "settings": {"config": config}},
            "mode": mode, "intervalSeconds": 5}


def cluster(obj: dict | None, crd: bool = True) -> FakeKube:
    kube = FakeKube()
    kube.put("/api/v1/nodes/n0", node("n0", gpus=8))
    if obj is not None:
        kube.put(JOB, obj)
    if crd:
        kube.put(GROUP_LISTING, {"kind": "APIResourceList", "groupVersion": "kubeflow.org/v1",
                                 "resources": [{"name": "pytorchjobs", "kind": "PyTorchJob"}]})
    return kube


def actuator(kube: FakeKube, knobs: dict) -> WorkloadActuator:
    return WorkloadActuator(kube, parse(spec(knobs, {}), "ml", "train"))


REPLICAS = {"replicas": {"min": 1, "max": 8}}


def test_policy_defaults_for_a_pytorchjob():
    p = parse(spec(REPLICAS, {}), "ml", "train")
    assert p.target == TargetRef("PyTorchJob", "train", "ml", "kubeflow.org/v1")
    assert p.workload == "training"
    with pytest.raises(PolicyError, match="PyTorchJob"):
        parse({**spec(REPLICAS, {}), "targetRef": {"kind": "TFJob", "name": "x"}}, "ml", "x")


def test_config_is_read_from_the_worker_replicas_and_its_trainer_container():
    p = parse(spec({**REPLICAS, "gpusPerReplica": {"choices": [1, 2, 4]},
                    "batchSize": {"min": 8, "max": 64, "step": 8}}, {}), "ml", "train")
    got = read_config(job(workers=3), p)
    assert (got["replicas"], got["gpus_per_replica"], got["batch_size"]) == (3, 1, 8)
    master_only = job()
    del master_only["spec"]["pytorchReplicaSpecs"]["Worker"]
    assert read_config(master_only, p)["replicas"] == 1


def test_pod_names_the_training_operator_gives_are_joined_to_the_job():
    rx = re.compile(pod_regex(TargetRef("PyTorchJob", "train", "ml", "kubeflow.org/v1")))
    assert rx.fullmatch("train-master-0") and rx.fullmatch("train-worker-12")
    assert not rx.fullmatch("train2-worker-0") and not rx.fullmatch("train-worker-abcde")


def test_an_elastic_job_is_resized_in_place_within_its_elastic_policy():
    kube = cluster(job(workers=2, elastic={"minReplicas": 1, "maxReplicas": 4, "rdzvBackend": "c10d"}))
    act = actuator(kube, REPLICAS)
    act.apply("ml/train", {"replicas": 3}, "more workers")
    # no DELETE: the same job, resized; a merge patch of the count alone, so the template autocm applied in an
    # earlier recreation is not dropped (a server-side apply that omits it would remove it)
    assert [m for m, _, _ in kube.writes()] == ["MERGE"]
    _, path, body = kube.writes()[0]
    assert path == JOB and body == {"spec": {"pytorchReplicaSpecs": {"Worker": {"replicas": 3}}}}
    assert kube.objects[JOB]["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"]
    assert kube.objects[JOB]["metadata"]["uid"] == "job-uid-1"
    act.apply("ml/train", {"replicas": 8}, "many more")  # above maxReplicas: cut to it
    assert kube.objects[JOB]["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] == 4
    assert act.changes == {"replicas": (3, 4)}
    assert any("elasticPolicy: replicas 8 cut to 4" in n for n in act.notes)


def test_a_fixed_size_job_is_recreated_with_the_new_worker_count():
    kube = cluster(job(workers=2))
    actuator(kube, REPLICAS).apply("ml/train", {"replicas": 4}, "more workers")
    assert [m for m, _, _ in kube.writes()] == ["DELETE", "APPLY"]  # WORLD_SIZE is baked into every rank
    new = kube.objects[JOB]
    assert new["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] == 4
    assert new["spec"]["pytorchReplicaSpecs"]["Master"]["replicas"] == 1
    assert new["metadata"]["annotations"][RESTARTS_ANNOTATION] == "1"
    assert new["metadata"]["annotations"]["autocm.io/recreated-from-uid"] == "job-uid-1"


def test_a_batch_size_change_recreates_the_job_with_every_rank_in_line():
    kube = cluster(job(workers=2, elastic={"minReplicas": 1, "maxReplicas": 4}))
    knobs = {**REPLICAS, "batchSize": {"min": 8, "max": 64, "step": 8}}
    actuator(kube, knobs).apply("ml/train", {"replicas": 2, "batch_size": 32}, "bigger batch")
    assert [m for m, _, _ in kube.writes()] == ["DELETE", "APPLY"]  # elastic or not: a new template
    roles = kube.objects[JOB]["spec"]["pytorchReplicaSpecs"]
    for role in ("Master", "Worker"):
        c = roles[role]["template"]["spec"]["containers"]
        assert {e["name"]: e["value"] for e in c[0]["env"]} == {"DATA": "/data", "AUTOCM_BATCH_SIZE": "32"}
        assert c[0]["image"] == "trainer:1" and c[1] == {"name": "sidecar", "image": "log:1"}
    assert roles["Worker"]["replicas"] == 2
    assert kube.objects[JOB]["spec"]["elasticPolicy"] == {"minReplicas": 1, "maxReplicas": 4}


def throughput(q: str):
    if "throughput" in q:
        return vector([({"namespace": "ml", "pod": p}, 60.0) for p in ("train-master-0", "train-worker-0")])
    return vector([])


def policy_object(knobs: dict, config: dict) -> dict:
    return {"apiVersion": "autocm.io/v1alpha1", "kind": "SizingPolicy",
            "metadata": {"name": "train", "namespace": "ml", "uid": "pol-uid", "generation": 1},
            "spec": {**spec(knobs, config), "workload": "training"}}


def test_the_operator_resizes_a_pytorchjob_and_reports_the_training_metrics():
    kube = cluster(job(workers=2, elastic={"minReplicas": 1, "maxReplicas": 4}))
    kube.put(POLICY, policy_object(REPLICAS, {"replicas": 4}))
    with fake_prometheus(throughput) as prom:
        eng = engine_for(prom.url, kube, Clock())
        eng.observe_body(kube.objects[POLICY])
        assert eng.step("ml/train").outcome == "applied"
    assert kube.objects[JOB]["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] == 4
    st = kube.objects[POLICY]["status"]
    assert st["metrics"]["throughput_samples_per_second"] == 120  # both ranks' series, summed
    assert st["appliedConfig"] == {"replicas": 4}


def test_without_the_crd_the_policy_says_so_instead_of_not_found():
    kube = cluster(None, crd=False)
    kube.put(POLICY, policy_object(REPLICAS, {"replicas": 4}))
    with fake_prometheus(throughput) as prom:
        eng = engine_for(prom.url, kube, Clock())
        eng.observe_body(kube.objects[POLICY])
        assert eng.step("ml/train").outcome == "refused"
    ready = next(c for c in kube.objects[POLICY]["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "CRDNotInstalled")
    assert "kubeflow.org/v1 PyTorchJob CRD is not installed" in ready["message"]
    assert JOB not in [p for m, p, _ in kube.calls if m == "GET"]
    assert any(e["reason"] == "CRDNotInstalled" for e in kube.events)
