"""The operator's scale paths: one workload listing per namespace per interval, and fewer status writes.

Both must leave what the operator decides unchanged: a workload it just changed is read afresh, a
deleted one is still "not found", and anything a user acts on reaches the status at once.
"""

from __future__ import annotations

import pytest
from kubernetes.client import ApiException
from operator_fakes import FakeKube, deployment, fake_prometheus, node, vector
from test_engine import Clock, engine_for, ttft

from controller.policy import TargetRef
from controller.workload_cache import WorkloadCache

DEPLOYS = "/apis/apps/v1/namespaces/ml/deployments"


def target(name: str) -> TargetRef:
    return TargetRef("Deployment", name, "ml", "apps/v1")


def cache_over(names: list[str], clock: Clock) -> tuple[FakeKube, WorkloadCache]:
    kube = FakeKube()
    for n in names:
        kube.put(f"{DEPLOYS}/{n}", deployment(n, replicas=2))
    cache = WorkloadCache(kube, clock=clock)
    for n in names:
        cache.register(f"ml/{n}-policy", target(n), interval_s=10.0)
    return kube, cache


def gets(kube: FakeKube) -> list[str]:
    return [p for m, p, _ in kube.calls if m == "GET"]


def test_policies_sharing_a_namespace_read_their_workloads_with_one_list_per_interval():
    clock = Clock()
    kube, cache = cache_over(["a", "b", "c"], clock)
    for _ in range(2):
        got = {n: cache.get(target(n)) for n in ("a", "b", "c")}
        assert {n: o["spec"]["replicas"] for n, o in got.items()} == {"a": 2, "b": 2, "c": 2}
        assert all(o["kind"] == "Deployment" and o["apiVersion"] == "apps/v1" for o in got.values())
    assert gets(kube) == [DEPLOYS]  # six reads, one request
    clock.t += 9.0  # 0.9 of the 10 s interval: the listing is renewed
    cache.get(target("a"))
    assert gets(kube) == [DEPLOYS, DEPLOYS]


def test_a_changed_workload_is_read_afresh_and_a_deleted_one_is_not_found():
    clock = Clock()
    kube, cache = cache_over(["a", "b"], clock)
    cache.get(target("a"))
    kube.objects[f"{DEPLOYS}/a"]["spec"]["replicas"] = 5
    cache.invalidate(target("a"))
    assert cache.get(target("a"))["spec"]["replicas"] == 5
    assert gets(kube) == [DEPLOYS, f"{DEPLOYS}/a"]
    assert cache.get(target("b"))["spec"]["replicas"] == 2  # still from the listing
    assert len(gets(kube)) == 2
    with pytest.raises(ApiException) as err:
        cache.get(target("gone"))  # not in the listing: a GET, which says 404 as before
    assert err.value.status == 404


def test_a_lone_workload_is_read_with_a_get_not_a_list_of_its_namespace():
    clock = Clock()
    kube, cache = cache_over(["a"], clock)
    kube.put(f"{DEPLOYS}/unmanaged", deployment("unmanaged"))
    cache.get(target("a"))
    cache.unregister("ml/a-policy")
    cache.get(target("a"))
    assert gets(kube) == [f"{DEPLOYS}/a", f"{DEPLOYS}/a"]


def two_policies(mode: str) -> FakeKube:
    kube = FakeKube()
    kube.put("/api/v1/nodes/n0", node("n0"))
    for n in ("web", "api"):
        kube.put(f"{DEPLOYS}/{n}", deployment(n, replicas=2, gpus=1))
        kube.put(f"/apis/autocm.io/v1alpha1/namespaces/ml/sizingpolicies/{n}", {
            "apiVersion": "autocm.io/v1alpha1", "kind": "SizingPolicy",
            "metadata": {"name": n, "namespace": "ml", "uid": f"pol-{n}", "generation": 1},
            "spec": {"targetRef": {"kind": "Deployment", "name": n},
                     "objective": {"metric": "ttft_p99_seconds", "target": 0.5},
                     "knobs": {"replicas": {"min": 1, "max": 8}},
                     "learner": {"name": "static", "settings": {"config": {"replicas": 4}}},
                     "mode": mode, "intervalSeconds": 5}})
    return kube


def policy_path(name: str) -> str:
    return f"/apis/autocm.io/v1alpha1/namespaces/ml/sizingpolicies/{name}"


def step_all(eng, kube: FakeKube) -> None:
    for n in ("web", "api"):
        eng.observe_body(kube.objects[policy_path(n)])
        eng.step(f"ml/{n}")


def test_a_policy_sees_its_own_change_at_the_next_step_though_its_namespace_is_listed():
    kube = two_policies("apply")
    clock = Clock()
    with fake_prometheus(ttft(1.0)) as prom:
        eng = engine_for(prom.url, kube, clock)
        step_all(eng, kube)
        assert kube.objects[f"{DEPLOYS}/web"]["spec"]["replicas"] == 4
        step_all(eng, kube)  # same instant: the listing is still young, but web changed since
    assert kube.objects[policy_path("web")]["status"]["currentConfig"] == {"replicas": 4}
    scales = [p for _, p, _ in kube.writes("APPLY") if p.endswith("/scale")]
    assert scales == [f"{DEPLOYS}/web/scale"]  # once, not again (api has no metrics: frozen)
    assert DEPLOYS in [p for m, p, _ in kube.calls if m == "GET"]


def status_writes(kube: FakeKube, name: str) -> int:
    return sum(1 for _, p, _ in kube.writes("APPLY") if p == policy_path(name) + "/status")


def test_a_status_with_only_fresher_numbers_waits_for_the_refresh_but_news_is_written_at_once():
    kube = two_policies("recommend")
    clock = Clock()
    latency = {"ttft": 1.0}

    def responder(q: str):
        return ttft(latency["ttft"])(q) if "time_to_first_token" in q else vector([])

    with fake_prometheus(responder) as prom:
        eng = engine_for(prom.url, kube, clock, status_refresh_s=60.0)
        step_all(eng, kube)
        assert status_writes(kube, "web") == 1
        assert kube.objects[policy_path("web")]["status"]["checkpoint"]["configMap"]
        first = kube.objects[policy_path("web")]["status"]["lastDecision"]["time"]
        latency["ttft"] = 2.5  # a different number, the same decision, the SLO still missed
        clock.t += 5
        step_all(eng, kube)
        assert status_writes(kube, "web") == 1
        clock.t += 60
        step_all(eng, kube)  # the refresh: the numbers catch up
        assert status_writes(kube, "web") == 2
        st = kube.objects[policy_path("web")]["status"]
        assert st["metrics"]["ttft_p99_seconds"] > 2 and st["lastDecision"]["time"] > first
        latency["ttft"] = 0.1  # the SLO is met now: written at once
        clock.t += 5
        step_all(eng, kube)
        assert status_writes(kube, "web") == 3
        assert ": met)" in kube.objects[policy_path("web")]["status"]["lastDecision"]["message"]


def test_status_refresh_zero_writes_every_step():
    kube = two_policies("recommend")
    clock = Clock()
    with fake_prometheus(ttft(1.0)) as prom:
        eng = engine_for(prom.url, kube, clock, status_refresh_s=0.0)
        for _ in range(3):
            step_all(eng, kube)
            clock.t += 5
    assert status_writes(kube, "web") == 3
