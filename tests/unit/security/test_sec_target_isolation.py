"""A SizingPolicy can only ever read or change workloads in its own namespace.

Three layers, each tested alone: the CRD's pattern (checked here with the same regex the apiserver
runs; tests/e2e/test_tenant_isolation.py checks the served CRD), ``parse()``, and the kube adapter,
which refuses a name that could leave the policy's collection even when it got past both and checks
that every object it acts on is the one the policy targets.
"""

from __future__ import annotations

import dataclasses
import posixpath
import re

import pytest
import yaml
from operator_fakes import FakeKube, deployment

from controller import checkpoint as ckpt
from controller.kube import UnsafeTarget, WorkloadActuator, collection_path, path_segment, workload_path
from controller.policy import CRD_PATH, PolicyError, TargetRef, parse
from controller.workload_cache import WorkloadCache

EVIL_NAMES = [
    "../../victim/jobs/train",
    "../victim",
    "..",
    ".",
    "web/../../../victim/jobs/train",
    "web%2F..%2Fvictim",
    "web?dryRun=All",
    "web#x",
    "Web",
    "web ",
    "-web",
    "web.",
    "a" * 254,
    "web\n",
]


def spec(**ref):
    return {"targetRef": {"kind": "Job", "name": "train", **ref}, "workload": "training",
            "objective": {"metric": "throughput_samples_per_second", "target": 10},
            "knobs": {"replicas": {"min": 1, "max": 4}, "batchSize": {"min": 8, "max": 64, "step": 8}},
            "learner": {"name": "static"}, "mode": "apply"}


def crd_target_schema() -> dict:
    crd = yaml.safe_load(CRD_PATH.read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["targetRef"]


@pytest.mark.parametrize("name", EVIL_NAMES)
def test_the_crd_pattern_refuses_names_that_leave_the_namespace(name):
    schema = crd_target_schema()["properties"]["name"]
    # Go's RE2 '$' matches only at the end of the text; Python's also before a final newline.
    pattern = schema["pattern"].removesuffix("$") + r"\Z"
    ok = re.search(pattern, name) is not None and len(name) <= schema["maxLength"]
    assert not ok, name


@pytest.mark.parametrize("name", EVIL_NAMES)
def test_parse_refuses_names_that_leave_the_namespace(name):
    with pytest.raises(PolicyError, match=r"^spec\.targetRef\.name: expected the name of a Job"):
        parse(spec(name=name), "tenant", "p")


@pytest.mark.parametrize("name", EVIL_NAMES)
def test_the_adapter_refuses_such_names_even_past_parse(name):
    target = TargetRef("Job", name, "tenant", "batch/v1")
    with pytest.raises(UnsafeTarget, match="not a DNS-1123 name"):
        workload_path(target)
    with pytest.raises(UnsafeTarget):
        path_segment("targetRef.name", name)


@pytest.mark.parametrize("kind", ["Secret", "../pods", "jobs", "", None, "job"])
def test_kind_is_an_enum_everywhere(kind):
    assert kind not in crd_target_schema()["properties"]["kind"]["enum"]
    with pytest.raises(PolicyError, match=r"^spec\.targetRef\.kind"):
        parse({**spec(), "targetRef": {"kind": kind, "name": "train"}}, "tenant", "p")
    with pytest.raises(UnsafeTarget):
        collection_path(TargetRef(str(kind), "train", "tenant", "v1"))


def test_namespace_and_api_version_and_container_are_checked():
    with pytest.raises(UnsafeTarget):
        workload_path(TargetRef("Job", "train", "../victim", "batch/v1"))
    with pytest.raises(PolicyError, match=r"^spec\.targetRef\.apiVersion"):
        parse(spec(apiVersion="v1"), "tenant", "p")
    with pytest.raises(PolicyError, match=r"^spec\.targetRef\.container"):
        parse(spec(container="../x"), "tenant", "p")
    assert workload_path(parse(spec(), "tenant", "p").target) == "/apis/batch/v1/namespaces/tenant/jobs/train"


class ResolvingKube(FakeKube):
    """An apiserver that resolves ``..`` in paths, as Go's HTTP mux does (it cleans and redirects)."""

    def get(self, path, **query):
        return super().get(posixpath.normpath(path), **query)

    def request(self, method, path, body=None, query=None, content_type="application/json"):
        return super().request(method, posixpath.normpath(path), body, query, content_type)

    def apply(self, path, body, force=True):
        return super().apply(posixpath.normpath(path), body, force)


def victim_job() -> dict:
    job = deployment(name="train", ns="victim")
    job.update({"apiVersion": "batch/v1", "kind": "Job"})
    job["spec"] = {"parallelism": 2, "template": job["spec"]["template"]}
    return job


VICTIM = "/apis/batch/v1/namespaces/victim/jobs/train"


def test_a_traversal_name_past_parse_neither_reads_nor_deletes_the_other_namespace():
    """Before the fix the adapter read victim's Job and deleted it (the Job recreation's DELETE)."""
    kube = ResolvingKube()
    kube.put(VICTIM, victim_job())
    policy = parse(spec(), "tenant", "p")
    evil = dataclasses.replace(policy, target=dataclasses.replace(policy.target, name="../../victim/jobs/train"))
    act = WorkloadActuator(kube, evil)
    with pytest.raises(UnsafeTarget):
        act.apply("tenant/p", {"replicas": 2, "batch_size": 16}, "bigger batch")
    assert VICTIM in kube.objects
    assert kube.writes() == []
    assert all("victim" not in path for _, path, _ in kube.calls)


class RedirectingKube(FakeKube):
    """Answers the tenant's path with the victim's object (a proxy, a redirect, a bug)."""

    def get(self, path, **query):
        if path.startswith("/apis/batch/v1/namespaces/tenant/jobs"):
            path = path.replace("/namespaces/tenant/", "/namespaces/victim/")
        return super().get(path, **query)


def test_an_object_of_another_namespace_is_never_acted_on():
    kube = RedirectingKube()
    kube.put(VICTIM, victim_job())
    act = WorkloadActuator(kube, parse(spec(), "tenant", "p"))
    with pytest.raises(UnsafeTarget, match="refusing to act on Job victim/train"):
        act.apply("tenant/p", {"replicas": 2, "batch_size": 16}, "bigger batch")
    assert kube.writes() == []
    with pytest.raises(UnsafeTarget):
        WorkloadCache(kube).get(parse(spec(), "tenant", "p").target)


def test_the_recreation_delete_carries_the_uid_precondition():
    kube = FakeKube()
    job = victim_job()
    job["metadata"]["namespace"] = "tenant"
    kube.put("/apis/batch/v1/namespaces/tenant/jobs/train", job)
    act = WorkloadActuator(kube, parse(spec(), "tenant", "p"))
    act.apply("tenant/p", {"replicas": 2, "batch_size": 16}, "bigger batch")
    deletes = kube.writes("DELETE")
    assert deletes and deletes[0][2]["preconditions"] == {"uid": job["metadata"]["uid"]}


def test_checkpoint_names_stay_in_the_namespace():
    assert "/" not in ckpt.configmap_name("p")
    with pytest.raises(PolicyError, match=r"^spec\.learner\.checkpoint"):
        parse({**spec(), "learner": {"name": "static", "checkpoint": "configmap/../../x"}}, "tenant", "p")
