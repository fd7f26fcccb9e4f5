"""A training-pool SizingPolicy through the operator's Engine: jobs listed by selector in the policy's namespace
only, metrics read with the contract's queries, all jobs allocated at once, changes applied shrink-first through
the elastic resize or the checkpoint-aware recreation, over-quota answers refused, status and events written."""

from __future__ import annotations

import re

import pytest
from operator_fakes import FakeKube, fake_prometheus, vector
from test_engine import Clock, engine_for

from controller import pool_runner as pr
from controller.kube import RESTARTS_ANNOTATION, UnsafeTarget
from learners import training_scheduler as ts

POLICY = "/apis/autocm.io/v1alpha1/namespaces/ml/sizingpolicies/vision"
JOBS = "/apis/batch/v1/namespaces/ml/jobs"
PTJ = "/apis/kubeflow.org/v1/namespaces/ml/pytorchjobs"


def job(name: str, ns: str = "ml", labels: dict | None = None, suspend: bool = True, parallelism: int = 1,
        annotations: dict | None = None) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}",
                         "labels": {"autocm.io/pool": "vision"} if labels is None else labels,
                         "annotations": annotations or {"autocm.io/max-batch-size": "1024"}},
            "spec": {"suspend": suspend, "parallelism": parallelism,
                     "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": f"uid-{name}"}},
                     "template": {"metadata": {"labels": {"batch.kubernetes.io/job-name": name}}, "spec": {
                         "restartPolicy": "Never", "containers": [{
                             "name": "trainer", "image": "trainer:1",
                             "env": [{"name": "AUTOCM_BATCH_SIZE", "value": "64"}],
                             "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}}}


def pool_policy(scheduler: str = "fixed", mode: str = "apply", quota: int = 8, **pool) -> dict:
    return {"apiVersion": "autocm.io/v1alpha1", "kind": "SizingPolicy",
            "metadata": {"name": "vision", "namespace": "ml", "uid": "pol-uid", "generation": 1},
            "spec": {"trainingPool": {"scheduler": scheduler, "gpuQuota": quota, "gpusPerNode": 4,
                                      "selector": {"autocm.io/pool": "vision"}, **pool},
                     "mode": mode, "intervalSeconds": 5, "metrics": {"windowSeconds": 10},
                     "learner": {"name": "vconf"}}}


def cluster(*objs: dict, policy: dict | None = None) -> FakeKube:
    kube = FakeKube()
    for o in objs:
        base = JOBS if o["kind"] == "Job" else PTJ
        kube.put(base.replace("/ml/", f"/{o['metadata']['namespace']}/") + "/" + o["metadata"]["name"], o)
    kube.put(POLICY, policy or pool_policy())
    return kube


def no_metrics(q: str):
    return vector([])


def env(obj: dict) -> dict:
    c = obj["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in c["env"]}


def held(kube: FakeKube) -> int:
    """GPUs the pool's Jobs hold according to the objects (unsuspended parallelism x 1 GPU)."""
    return sum(o["spec"]["parallelism"] for p, o in kube.objects.items()
               if p.startswith(JOBS + "/") and not o["spec"].get("suspend") and not o.get("status"))


def step(eng, kube: FakeKube):
    eng.observe_body(kube.objects[POLICY])
    return eng.step("ml/vision")


def test_fixed_pool_admits_jobs_up_to_the_quota_in_its_namespace_only_and_refills_when_one_finishes():
    outsider = job("a-x", ns="other")
    kube = cluster(job("a-0"), job("a-1"), job("a-2"), job("unlabelled", labels={"team": "x"}), outsider)
    clock = Clock()
    with fake_prometheus(no_metrics) as prom:
        eng = engine_for(prom.url, kube, clock)
        assert step(eng, kube).outcome == "applied"
        assert held(kube) == 8  # two jobs of 4, the third waits: never more than the quota
        started = [n for n in ("a-0", "a-1", "a-2") if not kube.objects[f"{JOBS}/{n}"]["spec"]["suspend"]]
        assert len(started) == 2
        for n in started:
            o = kube.objects[f"{JOBS}/{n}"]
            assert o["spec"]["parallelism"] == 4 and env(o) == {"AUTOCM_BATCH_SIZE": "64", "AUTOCM_GPUS": "4"}
            assert o["metadata"]["annotations"][RESTARTS_ANNOTATION] == "1"
            assert o["metadata"]["annotations"]["autocm.io/recreated-from-uid"] == f"uid-{n}"
            assert "selector" not in o["spec"]  # the Job controller sets a new one
            # The recreated Job asks the scheduler to keep its pods on one node where it can.
            assert o["spec"]["template"]["spec"]["affinity"]["podAffinity"] == {
                "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": {
                    "labelSelector": {"matchLabels": {"batch.kubernetes.io/job-name": n}},
                    "topologyKey": "kubernetes.io/hostname"}}]}
        assert kube.objects["/apis/batch/v1/namespaces/other/jobs/a-x"] == outsider
        assert all("/namespaces/other/" not in p for m, p, _ in kube.calls)
        st = kube.objects[POLICY]["status"]
        assert st["trainingPool"]["gpusAllocated"] == 8 and st["trainingPool"]["jobs"]["a-2"]["gpus"] == 0
        assert "unlabelled" not in st["trainingPool"]["jobs"]
        assert sum(e["reason"] == "AutocmPoolAllocated" for e in kube.events) == 2
        # Every metric query of the contract, scoped to the namespace and the job.
        assert any('namespace="ml",job_name="a-0"' in q and "autocm_train_step_seconds" in q for q in prom.queries)
        assert not any("a-x" in q for q in prom.queries)

        kube.objects[f"{JOBS}/{started[0]}"]["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
        clock.t += 5
        assert step(eng, kube).outcome == "applied"
        waiting = next(n for n in ("a-0", "a-1", "a-2") if n not in started)
        assert kube.objects[f"{JOBS}/{waiting}"]["spec"]["parallelism"] == 4
        assert held(kube) == 8
        rows = kube.objects[POLICY]["status"]["trainingPool"]["jobs"]
        assert rows[started[0]] == {"gpus": 0, "finished": True, "restarts": 1}
        assert rows[waiting]["gpus"] == 4 and rows[waiting]["batchSize"] == 64


def training_metrics(kube: FakeKube):
    def answer(q: str):
        name = re.search(r'job_name="([^"]+)"', q).group(1)
        obj = kube.objects.get(f"{JOBS}/{name}")
        if obj is None or obj["spec"].get("suspend"):
            return vector([])
        gpus = float(env(obj).get("AUTOCM_GPUS", 1))
        batch = float(env(obj)["AUTOCM_BATCH_SIZE"])
        values = {"step_seconds": 0.2 + batch / gpus / 400, "batch_size": batch, "local_batch_size": batch / gpus,
                  "gpus": gpus, "grad_sqr": 1.0, "grad_var": 50.0, "progress": 0.1}
        key = next(k for k in values if f"autocm_train_{k}" in q)
        return vector([({}, values[key])])
    return answer


def test_pollux_pool_reallocates_as_jobs_arrive_and_never_holds_more_than_the_quota():
    # Rounds 5 s apart: a restart that costs 1 s is worth making (30 s would be, for jobs this young, not).
    kube = cluster(job("b-0"), job("b-1"), policy=pool_policy("pollux", restartSeconds=1))
    clock = Clock()
    with fake_prometheus(training_metrics(kube)) as prom:
        eng = engine_for(prom.url, kube, clock)
        runner_seen = []
        for round_ in range(8):
            if round_ == 3:
                kube.put(f"{JOBS}/b-2", job("b-2"))
                kube.put(f"{JOBS}/b-3", job("b-3"))
            result = step(eng, kube)
            assert result.outcome in ("applied", "unchanged"), result.status
            assert held(kube) <= 8
            st = kube.objects[POLICY]["status"]["trainingPool"]
            assert st["gpusAllocated"] <= 8
            runner_seen.append({n: r["gpus"] for n, r in st["jobs"].items()})
            clock.t += 5
        assert all(runner_seen[-1].get(n, 0) >= 1 for n in ("b-2", "b-3"))  # the newcomers got GPUs
        assert runner_seen[0] == {"b-0": 0, "b-1": 0}  # no allocation before the first answer is applied
        assert max(sum(s.values()) for s in runner_seen) > sum(runner_seen[2].values())  # the pool grew


class _Greedy:
    name = "greedy"

    def allocate(self, jobs, nodes, now):
        return {j.name: ts.Allocation((("slot-0", 4),)) for j in jobs}


def test_an_answer_that_oversubscribes_is_refused_and_nothing_changes():
    kube = cluster(job("c-0"), job("c-1"))
    with fake_prometheus(no_metrics) as prom:
        eng = engine_for(prom.url, kube, Clock())
        eng.observe_body(kube.objects[POLICY])
        eng._runner("ml/vision", kube.objects[POLICY]).scheduler = _Greedy()
        result = eng.step("ml/vision")
    assert result.outcome == "refused"
    assert not kube.writes("DELETE") and held(kube) == 0
    applied = next(c for c in kube.objects[POLICY]["status"]["conditions"] if c["type"] == "Applied")
    assert applied["reason"] == "OverQuota" and "oversubscribed" in applied["message"]
    assert any(e["reason"] == "PoolAnswerRefused" for e in kube.events)


def test_an_elastic_pytorchjob_is_resized_in_place_and_recommend_mode_changes_nothing():
    ptj = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
           "metadata": {"name": "e-0", "namespace": "ml", "uid": "uid-e", "labels": {"autocm.io/pool": "vision"},
                        "annotations": {"autocm.io/init-batch-size": "32"}},
           "spec": {"elasticPolicy": {"minReplicas": 1, "maxReplicas": 8},
                    "pytorchReplicaSpecs": {"Worker": {"replicas": 2, "template": {"spec": {"containers": [{
                        "name": "pytorch", "image": "t:1", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}}}}}
    kube = cluster(ptj, job("unlabelled", labels={"team": "x"}), policy=pool_policy(mode="recommend"))
    with fake_prometheus(no_metrics) as prom:
        eng = engine_for(prom.url, kube, Clock())
        assert step(eng, kube).outcome == "recommended"
        assert not kube.writes("APPLY") or all(p.endswith("/status") for _, p, _ in kube.writes("APPLY"))
        assert "e-0: 2 -> 4 GPUs" in kube.objects[POLICY]["status"]["lastDecision"]["message"]
        kube.objects[POLICY]["spec"]["mode"] = "apply"
        kube.objects[POLICY]["metadata"]["generation"] = 2
        assert step(eng, kube).outcome == "applied"
    obj = kube.objects[f"{PTJ}/e-0"]
    assert obj["metadata"]["uid"] == "uid-e"  # in place, not recreated
    assert obj["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] == 4
    assert not kube.writes("DELETE")


def test_a_suspended_elastic_pytorchjob_is_admitted_unsuspended():
    """Found by the real Kubeflow training operator (tests/e2e/test_kubeflow_training_operator_e2e.py): an in-place
    Worker.replicas change left runPolicy.suspend true, so the admitted job never got pods."""
    ptj = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
           "metadata": {"name": "s-0", "namespace": "ml", "uid": "uid-s", "labels": {"autocm.io/pool": "vision"},
                        "annotations": {"autocm.io/init-batch-size": "32"}},
           "spec": {"elasticPolicy": {"minReplicas": 1, "maxReplicas": 8}, "runPolicy": {"suspend": True},
                    "pytorchReplicaSpecs": {"Worker": {"replicas": 1, "template": {"spec": {"containers": [{
                        "name": "pytorch", "image": "t:1", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}}}}}
    kube = cluster(ptj, job("unlabelled", labels={"team": "x"}), policy=pool_policy(fixedGpusPerJob=2))
    with fake_prometheus(no_metrics) as prom:
        eng = engine_for(prom.url, kube, Clock())
        assert step(eng, kube).outcome == "applied"
    obj = kube.objects[f"{PTJ}/s-0"]
    assert obj["spec"]["runPolicy"]["suspend"] is False
    assert obj["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] >= 1
    env = obj["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "AUTOCM_BATCH_SIZE", "value": "32"} in env
    assert obj["metadata"]["annotations"]["autocm.io/restarts"] == "1"
    together = obj["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["affinity"]["podAffinity"]
    term = together["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert term["labelSelector"] == {"matchLabels": {"training.kubeflow.org/job-name": "s-0"}}


def test_jobs_the_pool_cannot_use_are_reported_and_left_alone():
    bad = job("d-0", annotations={"autocm.io/max-batch-size": "lots"})
    kube = cluster(bad, job("d-1"))
    with fake_prometheus(no_metrics) as prom:
        eng = engine_for(prom.url, kube, Clock())
        assert step(eng, kube).outcome == "applied"
    assert kube.objects[f"{JOBS}/d-0"] == bad
    assert any(e["reason"] == "PoolJobRefused" and "max-batch-size" in e["message"] for e in kube.events)
    with pytest.raises(UnsafeTarget):
        pr.read_job(job("z", ns="other"), "ml")
    with pytest.raises(pr.JobSpecError, match="min local"):
        pr.read_job(job("z", annotations={"autocm.io/min-local-batch-size": "64",
                                          "autocm.io/max-local-batch-size": "8"}), "ml")


def test_an_invalid_pool_policy_is_reported_not_run():
    body = pool_policy()
    body["spec"]["targetRef"] = {"kind": "Job", "name": "x"}
    kube = cluster(job("f-0"), policy=body)
    with fake_prometheus(no_metrics) as prom:
        eng = engine_for(prom.url, kube, Clock())
        assert step(eng, kube).outcome == "refused"
    ready = next(c for c in kube.objects[POLICY]["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "InvalidSpec" and ready["message"].startswith("spec.trainingPool")
    assert not kube.writes("DELETE")


def pod(name: str, labels: dict, node: str | None = "n0", phase: str = "Running", gpus: str = "1") -> dict:
    return {"metadata": {"name": name, "namespace": "ml", "labels": labels},
            "spec": {"nodeName": node, "containers": [{"name": "trainer",
                                                       "resources": {"limits": {"nvidia.com/gpu": gpus}}}]},
            "status": {"phase": phase}}


def test_a_finished_job_whose_pods_still_hold_gpus_is_reported_until_they_exit():
    """The pool frees a finished job's GPUs when its status says so; a pod that has not exited still holds its
    GPU. The status row and one Warning say which, the lookups stop once none is left, and another namespace's
    pods are never listed."""
    done = job("c-0", suspend=False, parallelism=2)
    done["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
    uid = {"batch.kubernetes.io/controller-uid": "uid-c-0"}
    kube = cluster(done, job("c-1"))
    kube.put("/api/v1/namespaces/ml/pods/c-0-a", pod("c-0-a", uid))  # hung on exit
    kube.put("/api/v1/namespaces/ml/pods/c-0-b", pod("c-0-b", uid, phase="Succeeded"))
    kube.put("/api/v1/namespaces/ml/pods/c-0-c", pod("c-0-c", uid, node=None, phase="Pending"))  # never bound
    kube.put("/api/v1/namespaces/ml/pods/other", pod("other", {"app": "x"}))
    kube.put("/api/v1/namespaces/other/pods/c-0-a", pod("c-0-a", uid))
    clock = Clock()
    with fake_prometheus(no_metrics) as prom:
        eng = engine_for(prom.url, kube, clock)
        assert step(eng, kube).outcome == "applied"
        rows = kube.objects[POLICY]["status"]["trainingPool"]["jobs"]
        assert rows["c-0"] == {"gpus": 0, "finished": True, "restarts": 0, "podsHoldingGpus": 1, "gpusHeld": 1}
        warnings = [e["message"] for e in kube.events if e["reason"] == "FinishedJobHoldsGpus"]
        assert len(warnings) == 1 and "Job c-0 finished, but 1 of its pods still hold 1 GPUs (c-0-a on n0)" in \
            warnings[0] and "cleanPodPolicy: Running" in warnings[0]
        assert rows["c-1"]["gpus"] == 4  # the pool does not wait for the pod: it reports it

        clock.t += 5  # still there: said in the status again, not in a second event
        step(eng, kube)
        assert kube.objects[POLICY]["status"]["trainingPool"]["jobs"]["c-0"]["podsHoldingGpus"] == 1
        assert sum(e["reason"] == "FinishedJobHoldsGpus" for e in kube.events) == 1

        kube.objects["/api/v1/namespaces/ml/pods/c-0-a"]["status"]["phase"] = "Succeeded"
        clock.t += 5
        step(eng, kube)
        assert kube.objects[POLICY]["status"]["trainingPool"]["jobs"]["c-0"] == {
            "gpus": 0, "finished": True, "restarts": 0}
        lookups = sum(m == "GET" and p == "/api/v1/namespaces/ml/pods" for m, p, _ in kube.calls)
        clock.t += 5
        step(eng, kube)
        assert sum(m == "GET" and p == "/api/v1/namespaces/ml/pods" for m, p, _ in kube.calls) == lookups
        assert all("/namespaces/other/" not in p for m, p, _ in kube.calls)


def test_a_finished_pytorchjob_is_looked_up_by_the_training_operators_job_label():
    from controller.pytorchjob import JOB_NAME_LABEL
    ptj = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
           "metadata": {"name": "p-0", "namespace": "ml", "uid": "uid-p-0", "labels": {"autocm.io/pool": "vision"}},
           "spec": {"pytorchReplicaSpecs": {"Worker": {"replicas": 2, "template": {"spec": {"containers": [{
               "name": "pytorch", "image": "trainer:1", "env": [{"name": "AUTOCM_BATCH_SIZE", "value": "64"}],
               "resources": {"limits": {"nvidia.com/gpu": "2"}}}]}}}}},
           "status": {"conditions": [{"type": "Succeeded", "status": "True"}]}}
    kube = cluster(ptj, job("c-1"))  # (the fake answers 404 for an empty list of Jobs)
    kube.put("/api/v1/namespaces/ml/pods/p-0-worker-1", pod("p-0-worker-1", {JOB_NAME_LABEL: "p-0"}, gpus="2"))
    with fake_prometheus(no_metrics) as prom:
        step(engine_for(prom.url, kube, Clock()), kube)
    row = kube.objects[POLICY]["status"]["trainingPool"]["jobs"]["p-0"]
    assert (row["podsHoldingGpus"], row["gpusHeld"]) == (1, 2)
    assert any(e["reason"] == "FinishedJobHoldsGpus" and "PyTorchJob p-0" in e["message"] for e in kube.events)


def test_two_standing_warnings_are_each_posted_once_not_every_round():
    """A job the pool cannot use and a finished job's hung pod, both standing: one event each, not one per round
    (a single remembered message reposted both every round, each after the other)."""
    done = job("d-0", suspend=False)
    done["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
    bad = job("d-1", annotations={"autocm.io/max-batch-size": "-3"})
    kube = cluster(done, bad)
    kube.put("/api/v1/namespaces/ml/pods/d-0-a", pod("d-0-a", {"batch.kubernetes.io/controller-uid": "uid-d-0"}))
    clock = Clock()
    with fake_prometheus(no_metrics) as prom:
        eng = engine_for(prom.url, kube, clock)
        for _ in range(3):
            step(eng, kube)
            clock.t += 5
    reasons = [e["reason"] for e in kube.events if e["type"] == "Warning"]
    assert reasons.count("FinishedJobHoldsGpus") == 1 and reasons.count("PoolJobRefused") == 1, reasons


def split_cluster(**pool) -> FakeKube:
    """Job a-0 runs 4 one-GPU pods, 2 on n1 and 2 on n2. Another tenant holds 5 GPUs of n1 and 2 of n2; n3 is
    empty. Room for all of a-0: n1 3, n2 6, n3 8."""
    running = job("a-0", suspend=False, parallelism=4)
    running["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": "AUTOCM_GPUS", "value": "4"})
    kube = cluster(running, policy=pool_policy(**pool))
    for name in ("n1", "n2", "n3"):
        kube.put(f"/api/v1/nodes/{name}", {"metadata": {"name": name, "labels": {"kubernetes.io/hostname":
                                                                                   f"host-{name}"}},
                                          "status": {"allocatable": {"nvidia.com/gpu": "8"}}})
    mine = {"batch.kubernetes.io/job-name": "a-0"}
    for i, node in enumerate(("n1", "n1", "n2", "n2")):
        kube.put(f"/api/v1/namespaces/ml/pods/a-0-{i}", pod(f"a-0-{i}", mine, node=node))
    kube.put("/api/v1/namespaces/other/pods/x", {**pod("x", {}, node="n1", gpus="5"),
                                                 "metadata": {"name": "x", "namespace": "other"}})
    kube.put("/api/v1/namespaces/other/pods/y", {**pod("y", {}, node="n2", gpus="2"),
                                                 "metadata": {"name": "y", "namespace": "other"}})
    return kube


def test_a_job_split_over_nodes_is_moved_onto_the_fullest_node_with_room_once_it_has_settled():
    kube = split_cluster()
    clock = Clock()
    with fake_prometheus(no_metrics) as prom:
        eng = engine_for(prom.url, kube, clock)
        for _ in range(10):  # rounds 0..45 s: first seen at 0, settles after 10 rounds of 5 s
            assert step(eng, kube).outcome == "unchanged"
            clock.t += 5
        assert RESTARTS_ANNOTATION not in kube.objects[f"{JOBS}/a-0"]["metadata"]["annotations"]
        assert step(eng, kube).outcome == "applied"  # 50 s
        o = kube.objects[f"{JOBS}/a-0"]
        assert o["metadata"]["annotations"][RESTARTS_ANNOTATION] == "1"
        assert o["spec"]["parallelism"] == 4 and env(o)["AUTOCM_GPUS"] == "4"
        affinity = o["spec"]["template"]["spec"]["affinity"]
        assert affinity["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"] == [
            {"weight": 100, "preference": {"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": ["host-n2"]}]}}]
        assert affinity["podAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]  # and together
        assert o["metadata"]["annotations"]["autocm.io/preferred-node"] == "host-n2"
        moved = [e["message"] for e in kube.events if e["reason"] == "AutocmPoolConsolidated"]
        assert moved == ["a-0: 4 GPUs over 2 nodes -> node n2 (fixed)"]
        assert "over 2 nodes onto node n2" in kube.objects[POLICY]["status"]["lastDecision"]["message"]
        assert kube.objects[POLICY]["status"]["trainingPool"]["jobs"]["a-0"]["restarts"] == 1
        clock.t += 5  # the pods in this fake stay split: the job is not moved again before it settles anew
        step(eng, kube)
        assert kube.objects[f"{JOBS}/a-0"]["metadata"]["annotations"][RESTARTS_ANNOTATION] == "1"
        # Another tenant's pods were counted on the nodes, never changed or named.
        assert not any("/namespaces/other/" in p for m, p, _ in kube.calls if m != "GET")


@pytest.mark.parametrize("pool, mode", [({"consolidate": False}, "apply"), ({}, "recommend")])
def test_no_job_is_moved_when_consolidation_is_off_or_the_pool_only_recommends(pool, mode):
    kube = split_cluster(mode=mode, **pool)
    clock = Clock()
    with fake_prometheus(no_metrics) as prom:
        eng = engine_for(prom.url, kube, clock)
        for _ in range(15):
            step(eng, kube)
            clock.t += 5
    assert RESTARTS_ANNOTATION not in kube.objects[f"{JOBS}/a-0"]["metadata"]["annotations"]
    assert not any(p in ("/api/v1/nodes", "/api/v1/pods") for _, p, _ in kube.calls)  # nothing read either


def test_a_job_no_node_has_room_for_stays_where_it_is():
    kube = split_cluster()
    kube.objects["/api/v1/namespaces/other/pods/y"]["spec"]["containers"][0]["resources"]["limits"][
        "nvidia.com/gpu"] = "5"  # n2's room for a-0: 8 - 5 = 3
    kube.put("/api/v1/namespaces/other/pods/z", {**pod("z", {}, node="n3", gpus="5"),
                                                 "metadata": {"name": "z", "namespace": "other"}})
    clock = Clock()
    with fake_prometheus(no_metrics) as prom:
        eng = engine_for(prom.url, kube, clock)
        for _ in range(20):  # 0..95 s: settled at 50 s, no room; the cluster is read again 10 rounds later
            step(eng, kube)
            clock.t += 5
    assert RESTARTS_ANNOTATION not in kube.objects[f"{JOBS}/a-0"]["metadata"]["annotations"]
    assert sum(p == "/api/v1/nodes" for _, p, _ in kube.calls) == 1
