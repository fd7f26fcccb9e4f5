"""The operator's ``Converged`` condition for slo-rl (issue 11): from a checkpoint trained with held-out checks
(``autocm train --workers``) the condition and the convergence gauges show the verdict and residual the training
recorded, until 10 live intervals give the learner evidence of its own; then the live evidence decides. The
training record is tenant input (a pushed checkpoint): a malformed one is refused, and the policy runs on."""

from __future__ import annotations

import pytest
from operator_fakes import FakeKube, fake_prometheus
from prometheus_client import generate_latest
from test_engine import POLICY, Clock, cluster, conditions, engine_for, policy_body, step, ttft

from controller import checkpoint as ckpt

SLO = {"name": "slo-rl", "checkpoint": "configmap/pretrained"}


def _push(kube: FakeKube, prom_url: str, training: object) -> None:
    """A ConfigMap ``pretrained`` holding a fresh slo-rl's state for this policy's knobs with ``training`` as its
    convergence record (what ``autocm train --workers --until-converged`` writes)."""
    from learners.base import create

    fresh = engine_for(prom_url, kube, Clock())
    step(fresh, kube)
    policy = fresh.runners["ml/web-policy"].policy
    state = create("slo-rl", policy.space, policy.objective).state_dict()
    state["training"] = training
    kube.put("/api/v1/namespaces/ml/configmaps/pretrained",
             ckpt.configmap_body("pretrained", "ml", ckpt.encode("slo-rl", policy.space, state), "slo-rl",
                                 policy.space))
    kube.objects.pop("/api/v1/namespaces/ml/configmaps/" + ckpt.configmap_name("web-policy"), None)


def _gauge(eng, name: str) -> float:
    text = generate_latest(eng.telemetry.registry).decode()
    line = next(x for x in text.splitlines() if x.startswith(f"autocm_operator_{name}{{") and "web-policy" in x)
    return float(line.rsplit(" ", 1)[1])


@pytest.mark.parametrize(("verdict", "status", "reason", "flag"), [
    ("converged", "True", "Converged", 1.0),
    ("converging", "False", "Converging", 0.0),
    ("diverging", "False", "Diverging", 0.0),
])
def test_a_recorded_verdict_is_the_condition_until_live_evidence_decides(verdict, status, reason, flag):
    kube = cluster(policy_body(learner=SLO, intervalSeconds=60))
    clock = Clock()
    with fake_prometheus(ttft(1.0)) as prom:  # every interval misses the 0.5 s target
        _push(kube, prom.url, {"verdict": verdict, "residual": 0.042, "episodes": 12})
        eng = engine_for(prom.url, kube, clock)
        step(eng, kube)
        assert eng.runners["ml/web-policy"].restored.startswith("configmap/pretrained")
        c = conditions(kube)["Converged"]
        assert (c["status"], c["reason"]) == (status, reason)
        assert _gauge(eng, "converged") == flag
        assert _gauge(eng, "convergence_residual") == pytest.approx(0.042)
        for _ in range(12):  # past 10 live intervals: the learner's own error, and a price raised by misses
            clock.t += 60
            step(eng, kube)
    c = conditions(kube)["Converged"]
    assert (c["status"], c["reason"]) == ("False", "Converging")  # live: missing the SLO is not converged
    assert _gauge(eng, "converged") == 0.0
    assert _gauge(eng, "convergence_residual") != pytest.approx(0.042)


@pytest.mark.parametrize("training", [
    {"verdict": "certainly", "residual": 0.1},
    {"verdict": "converged", "residual": "tiny"},
    {"verdict": ["converged"]},
    "converged",
])
def test_a_malformed_training_record_is_refused_and_the_policy_runs_on(training):
    kube = cluster(policy_body(learner=SLO, intervalSeconds=60))
    clock = Clock()
    with fake_prometheus(ttft(1.0)) as prom:
        _push(kube, prom.url, training)
        eng = engine_for(prom.url, kube, clock)
        for _ in range(3):
            assert step(eng, kube).outcome in {"recommended", "unchanged"}
            clock.t += 60
    ignored = [e for e in kube.events if e["reason"] == "CheckpointIgnored"]
    assert ignored and "training" in ignored[0]["message"]
    c = conditions(kube)["Converged"]
    assert (c["status"], c["reason"]) == ("False", "Exploring")
    assert kube.objects[POLICY]["status"]["observedGeneration"] == 1
