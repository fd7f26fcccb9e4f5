"""A target workload whose own object is malformed is reported as the workload's fault, not the learner's.

The object ``spec.targetRef`` names is as much tenant input as the SizingPolicy: a person or another
controller writes it. Before this check the operator caught whatever reading it raised in its catch-all
and wrote ``learner 'static' failed in its step (ValueError: ... has no containers); check
spec.learner.settings``: found on the real Kubeflow training operator (docs/training-operator.md), where a
wiped pod template sent the reader to the learner's settings. Each case here must end in
``Ready=False, reason=InvalidWorkload`` with a message that names the target, count under the
``workload`` error stage, write nothing to the workload, and recover once the object is fixed.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from operator_fakes import FakeKube, deployment
from prometheus_client import generate_latest

from controller.operator import Engine, OperatorSettings
from controller.prometheus import PrometheusClient, PrometheusSettings, WorkloadMetrics

DEPLOY = "/apis/apps/v1/namespaces/ml/deployments/web"
POLICY = "/apis/autocm.io/v1alpha1/namespaces/ml/sizingpolicies/p"
SPEC = {"targetRef": {"kind": "Deployment", "name": "web"},
        "objective": {"metric": "ttft_p99_seconds", "target": 0.5},
        "knobs": {"replicas": {"min": 1, "max": 8}, "gpusPerReplica": {"choices": [1, 2]},
                  "cpu": {"min": 250, "max": 4000}, "batchSize": {"choices": [8, 16]}},
        "learner": {"name": "static"}}


def _container(d: dict) -> dict:
    return d["spec"]["template"]["spec"]["containers"][0]


def _set(path: list[Any], value: Any) -> Any:
    def mutate(d: dict) -> None:
        node = d
        for p in path[:-1]:
            node = node[p]
        node[path[-1]] = value
    return mutate


TPL = ["spec", "template", "spec"]
RES = [*TPL, "containers", 0, "resources"]
MALFORMED = [
    ("no containers", _set([*TPL, "containers"], []), "has no containers"),
    ("containers not a list", _set([*TPL, "containers"], "vllm"), "not a list of objects"),
    ("a container that is a string", _set([*TPL, "containers"], ["vllm"]), "not a list of objects"),
    ("pod template a string", _set(["spec", "template"], "x"), "Deployment web"),
    ("gpu quantity a word", _set([*RES, "limits", "nvidia.com/gpu"], "two"), "not a Kubernetes quantity"),
    ("cpu quantity a list", _set([*RES, "requests", "cpu"], [1]), "cannot read its configuration"),
    ("resources a string", _set(RES, "lots"), "cannot read its configuration"),
    ("batch env not a number", _set([*TPL, "containers", 0, "env", 1, "value"], "eight"),
     "cannot read its configuration"),
    ("resize annotation not JSON", _set(["metadata", "annotations"], {"autocm.io/resources": "{cpu"}),
     "cannot read its configuration"),
]


def engine(kube: FakeKube) -> Engine:
    client = PrometheusClient("http://127.0.0.1:9", PrometheusSettings(timeout_s=0.2))
    eng = Engine(kube, OperatorSettings(prometheus_url=client.url, resize_in_place=False), prometheus=client,
                 clock=lambda: 10_000.0)
    # fresh, healthy metrics, so the step goes on to read the workload (the thing that fails)
    eng.shared.metrics_for = lambda key: WorkloadMetrics({"ttft_p99_seconds": 0.1}, 10_000.0)
    return eng


@pytest.mark.parametrize(("case", "mutate", "words"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_a_malformed_workload_is_blamed_on_the_workload_and_recovers_when_fixed(case, mutate, words):
    good = deployment()
    bad = copy.deepcopy(good)
    mutate(bad)
    kube = FakeKube()
    kube.put(DEPLOY, bad)
    kube.put(POLICY, {"apiVersion": "autocm.io/v1alpha1", "kind": "SizingPolicy",
                      "metadata": {"name": "p", "namespace": "ml", "uid": "u", "generation": 1}, "spec": SPEC})
    eng = engine(kube)
    eng.observe_body(kube.objects[POLICY])
    for _ in range(2):  # every interval says so, and the loop goes on
        assert eng.step("ml/p").outcome == "refused"
    ready = {c["type"]: c for c in kube.objects[POLICY]["status"]["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidWorkload"), ready
    msg = ready["message"]
    assert msg.startswith("spec.targetRef: Deployment ml/web cannot be sized: ") and words in msg, msg
    assert "learner" not in msg and "Traceback" not in msg, msg
    assert {e["reason"] for e in kube.events} == {"InvalidWorkload"}
    assert not [c for c in kube.writes() if "/deployments/" in c[1]]
    text = generate_latest(eng.telemetry.registry).decode()
    assert 'autocm_operator_errors_total{stage="workload"} 2.0' in text
    assert 'autocm_operator_errors_total{stage="learner"} 0.0' in text

    kube.put(DEPLOY, good)  # its owner fixes it: the next interval sizes it
    assert eng.step("ml/p").outcome != "refused"
    ready = {c["type"]: c for c in kube.objects[POLICY]["status"]["conditions"]}["Ready"]
    assert ready["status"] == "True", ready
