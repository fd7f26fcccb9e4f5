"""spec.trainingPool as hostile input, the metric queries, observations and the quota-checked action plan."""

from __future__ import annotations

import jsonschema
import pytest

from controller import training_pool as tp
from controller.policy import PolicyError, crd_scheduler_enum, load_crd, parse
from learners import training_scheduler as ts
from learners.pollux import BatchLimits


def _policy(pool) -> dict:
    return {"metadata": {"name": "p", "namespace": "team-a"}, "spec": {"trainingPool": pool}}


GOOD = {"scheduler": "pollux", "gpuQuota": 16, "gpusPerNode": 4, "selector": {"autocm.io/pool": "vision"}}


def test_a_good_pool_parses_in_the_policys_namespace() -> None:
    pool = tp.parse_pool(_policy(GOOD))
    assert pool is not None and pool.namespace == "team-a" and pool.gpu_quota == 16
    assert pool.nodes() == {f"slot-{i}": 4 for i in range(4)}
    assert pool.label_selector() == "autocm.io/pool=vision"
    assert tp.parse_pool({"metadata": {"namespace": "team-a"}, "spec": {}}) is None
    odd = tp.parse_pool(_policy({**GOOD, "gpuQuota": 10}))
    assert odd is not None and sum(odd.nodes().values()) == 10


@pytest.mark.parametrize("bad", [
    {**GOOD, "gpuQuota": 0}, {**GOOD, "gpuQuota": 10**9}, {**GOOD, "gpuQuota": "16"}, {**GOOD, "gpuQuota": True},
    {**GOOD, "gpusPerNode": 0}, {**GOOD, "scheduler": "rm -rf"}, {**GOOD, "selector": {}},
    {**GOOD, "selector": {"a": 'x"}'}}, {**GOOD, "selector": {"bad key!": "x"}}, {**GOOD, "namespace": "kube-system"},
    "not-an-object",
])
def test_hostile_pools_are_refused_with_the_field_named(bad) -> None:
    with pytest.raises(tp.PoolSpecError, match=r"spec\.trainingPool"):
        tp.parse_pool(_policy(bad))


def test_queries_use_the_contract_names_and_refuse_injection() -> None:
    q = tp.queries("team-a", "bert-1")
    assert "autocm_train_step_seconds_sum" in q["step_s"] and 'namespace="team-a"' in q["step_s"]
    assert q["grad_var"].startswith("avg(autocm_train_grad_var{")
    with pytest.raises(tp.PoolSpecError):
        tp.queries("team-a", 'x"} or vector(1) #')


def test_observation_keeps_sane_samples_only() -> None:
    rec = tp.JobRecord("bert-1", BatchLimits(128, 4096, 16, 256), first_seen_s=0.0, samples={})
    o = tp.observe(rec, {"step_s": 0.5, "gpus": 4, "local_batch_size": 32, "grad_sqr": 1.0, "grad_var": 4.0},
                   (("slot-0", 4),), now=120.0)
    assert o.samples == (ts.StepSample(1, 4, 32, 0.5),) and o.age_s == 120.0 and o.grad_var == 4.0
    o = tp.observe(rec, {"step_s": float("nan"), "gpus": 8, "local_batch_size": 32, "grad_sqr": -1.0}, (), 180.0)
    assert len(o.samples) == 1 and o.grad_sqr is None


def test_plan_resizes_elastic_jobs_in_place_recreates_others_and_refuses_over_quota() -> None:
    pool = tp.parse_pool(_policy(GOOD))
    assert pool is not None
    answer = {"el": ts.Allocation((("slot-0", 4),), 256), "job": ts.Allocation((("slot-1", 2),), 128),
              "same": ts.Allocation((("slot-2", 1),))}
    acts = {a.name: a for a in tp.plan(answer, {"el": 2, "job": 4, "same": 1}, pool,
                                       {"el": (1, 8), "job": None, "same": None}, {"el": 1, "job": 1})}
    assert set(acts) == {"el", "job"}
    assert acts["el"].elastic_replicas == 4 and acts["el"].env == ()
    assert acts["job"].elastic_replicas is None
    assert dict(acts["job"].env) == {"AUTOCM_GPUS": "2", "AUTOCM_BATCH_SIZE": "128"}
    admitted = tp.plan({"el": ts.Allocation((("slot-0", 2),), 64)}, {"el": 0}, pool, {"el": (1, 8)}, {"el": 1})
    assert admitted[0].elastic_replicas is None  # suspended: recreated unsuspended with its batch, not patched
    assert dict(admitted[0].env) == {"AUTOCM_GPUS": "2", "AUTOCM_BATCH_SIZE": "64"}
    outside = tp.plan({"el": ts.Allocation((("slot-0", 4), ("slot-1", 4)))}, {"el": 2}, pool, {"el": (1, 4)}, {})
    assert outside[0].elastic_replicas is None  # beyond maxReplicas: recreate, never patch outside the policy
    with pytest.raises(ValueError, match="oversubscribed"):
        tp.plan({"a": ts.Allocation((("slot-0", 4),)), "b": ts.Allocation((("slot-0", 1),))}, {}, pool, {}, {})
    with pytest.raises(ValueError, match="unknown node"):
        tp.plan({"a": ts.Allocation((("slot-9", 1),))}, {}, pool, {}, {})


def _pool_policy(**spec) -> dict:
    return {"metadata": {"name": "vision", "namespace": "team-a"},
            "spec": {"trainingPool": GOOD, "mode": "apply", "intervalSeconds": 5, **spec}}


def test_a_pool_policy_has_a_pool_and_no_target() -> None:
    pp = tp.parse_pool_policy(_pool_policy(metrics={"windowSeconds": 20}, learner={"name": "vconf"},
                                           workload="inference"))  # CRD defaults are ignored
    assert pp is not None and pp.key == "team-a/vision" and pp.pool.gpu_quota == 16
    assert pp.mode.value == "apply" and pp.interval_s == 5 and pp.window_s == 20 and not pp.paused
    assert pp.pool.scheduler_kwargs()["settings"].restart_delay_s == 30.0
    fixed = tp.parse_pool_policy(_pool_policy(trainingPool={**GOOD, "scheduler": "fixed", "fixedGpusPerJob": 2}))
    assert fixed is not None and fixed.pool.scheduler_kwargs() == {"gpus": 2}
    assert pp.pool.consolidate  # on by default
    off = tp.parse_pool_policy(_pool_policy(trainingPool={**GOOD, "consolidate": False}))
    assert off is not None and not off.pool.consolidate
    assert tp.parse_pool_policy({"metadata": {"name": "x", "namespace": "a"}, "spec": {"targetRef": {}}}) is None
    with pytest.raises(PolicyError, match=r"^spec\.trainingPool: a training pool policy has no targetRef"):
        parse({"trainingPool": GOOD}, "team-a", "vision")


@pytest.mark.parametrize(("spec", "field"), [
    ({"targetRef": {"kind": "Job", "name": "a"}}, "spec.trainingPool"),
    ({"knobs": {"replicas": {"min": 1, "max": 2}}}, "spec.trainingPool"),
    ({"objective": {"metric": "ttft_p99_seconds", "target": 1}}, "spec.trainingPool"),
    ({"mode": "yolo"}, "spec.mode"), ({"paused": "no"}, "spec.paused"),
    ({"intervalSeconds": 0}, "spec.intervalSeconds"), ({"intervalSeconds": float("nan")}, "spec.intervalSeconds"),
    ({"intervalSeconds": 10**9}, "spec.intervalSeconds"), ({"intervalSeconds": True}, "spec.intervalSeconds"),
    ({"metrics": {"queries": {"x": "up"}}}, "spec.metrics"), ({"metrics": {"windowSeconds": -1}},
                                                              "spec.metrics.windowSeconds"),
    ({"trainingPool": {**GOOD, "gpusPerNode": 65}}, "spec.trainingPool.gpusPerNode"),
    ({"trainingPool": {**GOOD, "selector": {f"k{i}": "v" for i in range(17)}}}, "spec.trainingPool.selector"),
    ({"trainingPool": {**GOOD, "selector": {"a": "x" * 64}}}, "spec.trainingPool.selector"),
    ({"trainingPool": {**GOOD, "restartSeconds": -1}}, "spec.trainingPool.restartSeconds"),
    ({"trainingPool": {**GOOD, "restartSeconds": float("inf")}}, "spec.trainingPool.restartSeconds"),
    ({"trainingPool": {**GOOD, "fixedGpusPerJob": 0}}, "spec.trainingPool.fixedGpusPerJob"),
    ({"trainingPool": {**GOOD, "fixedGpusPerJob": 1.5}}, "spec.trainingPool.fixedGpusPerJob"),
    ({"trainingPool": {**GOOD, "consolidate": "yes"}}, "spec.trainingPool.consolidate"),
    ({"trainingPool": {**GOOD, "consolidate": 1}}, "spec.trainingPool.consolidate"),
])
def test_hostile_pool_policies_are_refused_with_the_field_named(spec, field) -> None:
    with pytest.raises(PolicyError) as err:
        tp.parse_pool_policy(_pool_policy(**spec))
    assert str(err.value).startswith(field), str(err.value)


def test_the_crd_admits_a_pool_policy_and_its_scheduler_enum_is_the_registry() -> None:
    schema = load_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec = schema["properties"]["spec"]
    assert "required" not in spec  # a pool policy has no targetRef; CEL says "exactly one"
    assert any("either a targetRef or a trainingPool" in r["message"] for r in spec["x-kubernetes-validations"])
    pool = spec["properties"]["trainingPool"]
    assert crd_scheduler_enum() == ts.names() == pool["properties"]["scheduler"]["enum"]
    validator = jsonschema.Draft4Validator(schema)
    validator.validate({"spec": _pool_policy()["spec"]})
    for bad in ({**GOOD, "gpuQuota": 2000}, {**GOOD, "selector": {}}, {**GOOD, "gpusPerNode": 0},
                {**GOOD, "scheduler": "nope"}):
        with pytest.raises(jsonschema.ValidationError):
            validator.validate({"spec": {"trainingPool": bad}})
    jobs = schema["properties"]["status"]["properties"]["trainingPool"]["properties"]["jobs"]
    assert {"gpus", "batchSize", "placement", "restarts"} <= set(jobs["additionalProperties"]["properties"])
