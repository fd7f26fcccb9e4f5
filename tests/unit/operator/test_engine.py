"""The operator's engine over a fake apiserver and a fake Prometheus: status, modes, safety, checkpoints."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from operator_fakes import FakeKube, deployment, fake_prometheus, node, vector
from prometheus_client import generate_latest

from controller import checkpoint as ckpt
from controller.kube import one_line
from controller.operator import Engine, OperatorSettings
from controller.prometheus import PrometheusClient, PrometheusSettings

DEPLOY = "/apis/apps/v1/namespaces/ml/deployments/web"
POLICY = "/apis/autocm.io/v1alpha1/namespaces/ml/sizingpolicies/web-policy"
PODS = [f"web-5d8f7c9b4-{s}" for s in ("aaaaa", "bbbbb")]


def ttft(value_s: float):
    """All requests land in the bucket whose bound is value_s: the p99 is 0.99 of the way into it."""

    def responder(q: str):
        if "time_to_first_token" in q:
            series = []
            for p in PODS:
                series += [({"namespace": "ml", "pod": p, "le": str(value_s)}, 10.0),
                           ({"namespace": "ml", "pod": p, "le": "+Inf"}, 10.0)]
            return vector(series)
        if "request_success" in q:
            return vector([({"namespace": "ml", "pod": p}, 10.0) for p in PODS])
        return vector([])

    return responder


def policy_body(mode="recommend", learner=None, generation=1, annotations=None, **spec):
    return {
        "apiVersion": "autocm.io/v1alpha1", "kind": "SizingPolicy",
        "metadata": {"name": "web-policy", "namespace": "ml", "uid": "pol-uid", "generation": generation,
                     "annotations": annotations or {}},
        "spec": {"targetRef": {"kind": "Deployment", "name": "web"},
                 "objective": {"metric": "ttft_p99_seconds", "target": 0.5},
                 "knobs": {"replicas": {"min": 1, "max": 8}},
                 "learner": learner or {"name": "static", "settings": {"config": {"replicas": 4}}},
                 "mode": mode, "intervalSeconds": 5, **spec},
    }


class Clock:
    def __init__(self) -> None:
        self.t = 10_000.0

    def __call__(self) -> float:
        return self.t


def engine_for(prom_url: str, kube: FakeKube, clock: Clock, **settings) -> Engine:
    s = OperatorSettings(prometheus_url=prom_url, resize_in_place=False, **settings)
    client = PrometheusClient(prom_url, PrometheusSettings(timeout_s=1.0))
    return Engine(kube, s, prometheus=client, clock=clock)


def cluster(body) -> FakeKube:
    kube = FakeKube()
    kube.put(DEPLOY, deployment(replicas=2, gpus=1))
    kube.put("/api/v1/nodes/n0", node("n0"))
    kube.put(POLICY, body)
    return kube


def conditions(kube: FakeKube) -> dict[str, dict]:
    return {c["type"]: c for c in kube.objects[POLICY]["status"]["conditions"]}


def step(engine: Engine, kube: FakeKube):
    engine.observe_body(kube.objects[POLICY])
    return engine.step("ml/web-policy")


def test_recommend_mode_writes_status_in_words_and_changes_nothing():
    body = policy_body()
    kube = cluster(body)
    clock = Clock()
    with fake_prometheus(ttft(1.0)) as prom:
        eng = engine_for(prom.url, kube, clock)
        result = step(eng, kube)
    assert result.outcome == "recommended"
    assert kube.objects[DEPLOY]["spec"]["replicas"] == 2
    # Only checkpoints and the policy's own status were written.
    assert all("configmaps" in p or p == POLICY + "/status" for _, p, _ in kube.writes("APPLY"))
    status = kube.objects[POLICY]["status"]
    assert status["recommendedConfig"] == {"replicas": 4} and status["currentConfig"] == {"replicas": 2}
    assert status["observedGeneration"] == 1
    c = conditions(kube)
    assert c["Ready"]["status"] == "True" and c["MetricsAvailable"]["status"] == "True"
    assert (c["Applied"]["status"], c["Applied"]["reason"]) == ("False", "RecommendOnly")
    assert (c["Converged"]["status"], c["Converged"]["reason"]) == ("Unknown", "NotLearning")
    assert all(x["observedGeneration"] == 1 and x["lastTransitionTime"] for x in c.values())
    msg = status["lastDecision"]["message"]
    # Which metric, its value against the SLO, which knob, and that nothing was applied.
    assert "ttft_p99_seconds=0.99" in msg and "SLO <= 0.5: missed" in msg
    assert "replicas 2 -> 4 (recommended, not applied)" in msg
    assert status["lastDecision"]["changes"] == {"replicas": "2 -> 4"}
    assert any(e["reason"] == "AutocmRecommendation" for e in kube.events)


def test_apply_mode_scales_through_the_scale_subresource_and_reports_it():
    kube = cluster(policy_body("apply"))
    clock = Clock()
    with fake_prometheus(ttft(1.0)) as prom:
        eng = engine_for(prom.url, kube, clock)
        assert step(eng, kube).outcome == "applied"
        assert kube.objects[DEPLOY]["spec"]["replicas"] == 4
        c = conditions(kube)
        assert (c["Applied"]["status"], c["Applied"]["reason"]) == ("True", "Applied")
        first_transition = c["Applied"]["lastTransitionTime"]
        assert {e["reason"] for e in kube.events} >= {"AutocmResized", "AutocmApplied"}
        scale_applies = [p for m, p, _ in kube.writes("APPLY") if p.endswith("/scale")]
        assert scale_applies == [DEPLOY + "/scale"]
        # The next interval: already there, nothing applied twice.
        clock.t += 5
        assert step(eng, kube).outcome == "unchanged"
        assert [p for m, p, _ in kube.writes("APPLY") if p.endswith("/scale")] == scale_applies
        assert conditions(kube)["Applied"]["lastTransitionTime"] == first_transition  # still True


def engine_with_prometheus_down(kube: FakeKube, clock: Clock) -> Engine:
    """An engine whose Prometheus URL answered once and is gone (connection refused)."""
    with fake_prometheus(ttft(1.0)) as prom:
        url = prom.url
    return engine_for(url, kube, clock)


def test_prometheus_down_freezes_with_a_condition_then_recovers():
    kube = cluster(policy_body("apply"))
    clock = Clock()
    eng = engine_with_prometheus_down(kube, clock)
    assert step(eng, kube).outcome == "frozen"
    c = conditions(kube)
    metrics = c["MetricsAvailable"]
    assert (metrics["status"], metrics["reason"]) == ("False", "PrometheusUnavailable")
    assert "unreachable" in c["MetricsAvailable"]["message"]
    assert kube.objects[DEPLOY]["spec"]["replicas"] == 2
    with fake_prometheus(ttft(1.0)) as prom:
        eng.shared.client = PrometheusClient(prom.url)
        clock.t += 5
        assert step(eng, kube).outcome == "applied"
    assert conditions(kube)["MetricsAvailable"]["status"] == "True"


def test_missing_objective_metric_freezes():
    kube = cluster(policy_body("apply"))
    with fake_prometheus(lambda q: vector([])) as prom:
        result = step(engine_for(prom.url, kube, Clock()), kube)
    assert result.outcome == "frozen"
    c = conditions(kube)["MetricsAvailable"]
    assert c["reason"] == "MetricsMissing" and "ttft_p99_seconds" in c["message"]


def test_conflicting_hpa_is_refused_and_pause_changes_nothing():
    kube = cluster(policy_body("apply"))
    kube.put("/apis/autoscaling/v2/namespaces/ml/horizontalpodautoscalers/web", {
        "metadata": {"name": "web"}, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}}})
    with fake_prometheus(ttft(1.0)) as prom:
        clock = Clock()
        eng = engine_for(prom.url, kube, clock)
        assert step(eng, kube).outcome == "refused"
        c = conditions(kube)["Ready"]
        assert (c["status"], c["reason"]) == ("False", "ConflictingAutoscaler")
        assert "HorizontalPodAutoscaler web" in c["message"]
        assert kube.objects[DEPLOY]["spec"]["replicas"] == 2
        clock.t += 5
        assert step(eng, kube).outcome == "refused"
        # A standing conflict is one Warning event, not one per interval.
        assert [e["reason"] for e in kube.events].count("ConflictingAutoscaler") == 1

    kube = cluster(policy_body("apply", annotations={"autocm.io/paused": "true"}))
    with fake_prometheus(ttft(1.0)) as prom:
        assert step(engine_for(prom.url, kube, Clock()), kube).outcome == "paused"
    assert kube.objects[DEPLOY]["spec"]["replicas"] == 2
    c = conditions(kube)
    assert c["Applied"]["reason"] == "Paused" and c["Ready"]["reason"] == "Paused"

    kube = cluster(policy_body("apply"))
    with fake_prometheus(ttft(1.0)) as prom:
        assert step(engine_for(prom.url, kube, Clock(), paused=True), kube).outcome == "paused"
    assert kube.objects[DEPLOY]["spec"]["replicas"] == 2


def test_invalid_spec_and_missing_workload_say_so():
    kube = cluster(policy_body(learner={"name": "static", "settings": {"typo": 1}}))
    with fake_prometheus(ttft(1.0)) as prom:
        assert step(engine_for(prom.url, kube, Clock()), kube).outcome == "refused"
    c = conditions(kube)["Ready"]
    assert c["reason"] == "InvalidSpec" and c["message"].startswith("spec.learner.settings")

    kube = cluster(policy_body())
    del kube.objects[DEPLOY]
    with fake_prometheus(ttft(1.0)) as prom:
        step(engine_for(prom.url, kube, Clock()), kube)
    c = conditions(kube)["Ready"]
    assert c["reason"] == "WorkloadNotFound" and "Deployment ml/web not found" in c["message"]


VCONF = {"name": "vconf", "settings": {"seed": 1, "retrain_every": 2, "model_batches": 5,
                                       "imagined_per_load": 4}}


def test_checkpoint_is_saved_and_a_new_engine_continues_from_it():
    kube = cluster(policy_body("recommend", learner=VCONF))
    clock = Clock()
    with fake_prometheus(ttft(1.0)) as prom:
        eng = engine_for(prom.url, kube, clock, checkpoint_every_s=1.0)
        for _ in range(4):
            step(eng, kube)
            clock.t += 5
        cm_path = "/api/v1/namespaces/ml/configmaps/" + ckpt.configmap_name("web-policy")
        assert cm_path in kube.objects
        saved = ckpt.decode(ckpt.blob_of(kube.objects[cm_path]), "vconf")
        assert kube.objects[cm_path]["metadata"]["ownerReferences"][0]["uid"] == "pol-uid"
        before = eng.runners["ml/web-policy"].learner.state_dict()
        # A restarted operator: a fresh engine restores the learner from the ConfigMap.
        eng2 = engine_for(prom.url, kube, clock)
        step(eng2, kube)
    runner = eng2.runners["ml/web-policy"]
    assert runner.restored and runner.restored.startswith("configmap/autocm-checkpoint-web-policy")
    for net, params in before["nets"].items():
        assert all(np.array_equal(saved.state["nets"][net][k], v) for k, v in params.items())
    assert kube.objects[POLICY]["status"]["checkpoint"]["restoredFrom"] == runner.restored


def test_a_mismatched_pretrained_checkpoint_is_ignored_with_a_warning():
    kube = cluster(policy_body(learner={**VCONF, "checkpoint": "configmap/pretrained"}))
    from learners.space import ConfigSpace, Knob

    other = ConfigSpace.of(Knob("replicas", 1, 32))
    blob = ckpt.encode("vconf", other, {})
    kube.put("/api/v1/namespaces/ml/configmaps/pretrained",
             ckpt.configmap_body("pretrained", "ml", blob, "vconf", other))
    with fake_prometheus(ttft(1.0)) as prom:
        step(engine_for(prom.url, kube, Clock()), kube)
    warnings = [e for e in kube.events if e["reason"] == "CheckpointIgnored"]
    assert warnings and "trained for knobs" in warnings[0]["message"]


def test_a_checkpoint_refused_halfway_leaves_the_learner_as_it_was():
    """slo-rl loads its capacity model before its demand model: a hostile seasonal period in the
    second must not leave the first restored (the warning says "not used", so nothing may be used)."""
    slo = {"name": "slo-rl", "checkpoint": "configmap/pretrained"}
    kube = cluster(policy_body(learner=slo))
    with fake_prometheus(ttft(1.0)) as prom:
        fresh = engine_for(prom.url, kube, Clock())
        step(fresh, kube)  # no checkpoint yet: a fresh learner, to build a checkpoint for these knobs from
        runner = fresh.runners["ml/web-policy"]
        state = runner.learner.state_dict()
        untouched = state["capacity"]["mean"]
        state["capacity"]["mean"] = [9.0, 9.0, 9.0]
        state["demand"]["seasonal"]["period"] = 10_000  # refused: outside 4..120
        blob = ckpt.encode("slo-rl", runner.policy.space, state)
        kube.put("/api/v1/namespaces/ml/configmaps/pretrained",
                 ckpt.configmap_body("pretrained", "ml", blob, "slo-rl", runner.policy.space))
        kube.objects.pop("/api/v1/namespaces/ml/configmaps/" + ckpt.configmap_name("web-policy"), None)
        eng = engine_for(prom.url, kube, Clock())
        step(eng, kube)
    learner = eng.runners["ml/web-policy"].learner
    warnings = [e["message"] for e in kube.events if e["reason"] == "CheckpointIgnored"]
    assert warnings and "period" in warnings[0]
    assert eng.runners["ml/web-policy"].restored is None
    assert learner.state_dict()["capacity"]["mean"] == untouched


def test_operator_metrics_expose_decisions_rewards_and_config():
    kube = cluster(policy_body("apply"))
    with fake_prometheus(ttft(1.0)) as prom:
        eng = engine_for(prom.url, kube, Clock())
        step(eng, kube)
    text = generate_latest(eng.telemetry.registry).decode()
    assert 'autocm_operator_decisions_total{namespace="ml",outcome="applied",policy="web-policy"} 1.0' in text
    assert ('autocm_operator_recommended_config{knob="replicas",namespace="ml",policy="web-policy"} 4.0'
            in text)
    assert 'autocm_operator_applied_config{knob="replicas",namespace="ml",policy="web-policy"} 4.0' in text
    assert "autocm_operator_reward{" in text and "autocm_operator_loop_duration_seconds_count 1.0" in text
    assert 'autocm_operator_prometheus_queries_total{metric="ttft_p99_seconds",result="ok"} 1.0' in text
    eng.forget("ml/web-policy")
    assert 'policy="web-policy"' not in generate_latest(eng.telemetry.registry).decode()


@pytest.mark.parametrize("status", [500, 409])
def test_apiserver_errors_become_a_condition_and_the_next_step_retries(status):
    kube = cluster(policy_body("apply"))
    clock = Clock()
    with fake_prometheus(ttft(1.0)) as prom:
        eng = engine_for(prom.url, kube, clock)
        kube.fail_next = [status]  # the scale apply fails once (after the Kube client's own retries)
        assert step(eng, kube).outcome == "error"
        assert conditions(kube)["Applied"]["reason"] == "ApplyFailed"
        assert kube.objects[DEPLOY]["spec"]["replicas"] == 2
        clock.t += 5
        assert step(eng, kube).outcome == "applied"
    assert kube.objects[DEPLOY]["spec"]["replicas"] == 4


def test_a_learner_that_refuses_the_space_is_an_invalid_spec():
    body = policy_body(learner={"name": "hpa"})
    body["spec"]["knobs"] = {"batchSize": {"min": 8, "max": 64, "step": 8}}  # hpa needs replicas
    kube = cluster(body)
    with fake_prometheus(ttft(1.0)) as prom:
        assert step(engine_for(prom.url, kube, Clock()), kube).outcome == "refused"
    c = conditions(kube)["Ready"]
    assert c["reason"] == "InvalidSpec" and "needs a 'replicas' knob" in c["message"]


def test_status_fields_a_step_no_longer_writes_disappear():
    kube = cluster(policy_body("apply"))
    clock = Clock()
    with fake_prometheus(ttft(1.0)) as prom:
        eng = engine_for(prom.url, kube, clock)
        step(eng, kube)
        assert kube.objects[POLICY]["status"]["lastDecision"]["changes"] == {"replicas": "2 -> 4"}
        clock.t += 5
        step(eng, kube)
    assert "changes" not in kube.objects[POLICY]["status"]["lastDecision"]
    assert "keep the current configuration" in kube.objects[POLICY]["status"]["lastDecision"]["message"]


def test_events_of_a_change_are_posted_even_when_the_status_write_fails():
    class StatusDown(FakeKube):
        def apply(self, path, body, force=True):
            if path.endswith("/status") and self.status_failures:
                self.status_failures -= 1
                self._raise(503)
            return super().apply(path, body, force)

    kube = StatusDown()
    kube.status_failures = 1
    kube.put(DEPLOY, deployment(replicas=2, gpus=1))
    kube.put("/api/v1/nodes/n0", node("n0"))
    kube.put(POLICY, policy_body("apply"))
    with fake_prometheus(ttft(0.1)) as prom:
        eng = engine_for(prom.url, kube, Clock())
        assert step(eng, kube).outcome == "applied"
    assert "status" not in kube.objects[POLICY]  # the status write failed ...
    applied = [e for e in kube.events if e["reason"] == "AutocmApplied"]
    assert len(applied) == 1 and applied[0]["message"].startswith("replicas 2 -> 4")  # ... the event did not


def _pretrained_slo_rl(kube: FakeKube, prom_url: str, settings: dict) -> None:
    """A ConfigMap ``pretrained`` holding a fresh slo-rl's state for this policy's knobs, with
    ``settings`` as its provenance (what ``autocm bench pretrain --choose`` records)."""
    from learners.base import create

    fresh = engine_for(prom_url, kube, Clock())
    step(fresh, kube)
    space = fresh.runners["ml/web-policy"].policy.space
    objective = fresh.runners["ml/web-policy"].policy.objective
    state = create("slo-rl", space, objective).state_dict()
    state["provenance"] = {"scenario": "step", "settings": settings}
    kube.put("/api/v1/namespaces/ml/configmaps/pretrained",
             ckpt.configmap_body("pretrained", "ml", ckpt.encode("slo-rl", space, state), "slo-rl", space))
    kube.objects.pop("/api/v1/namespaces/ml/configmaps/" + ckpt.configmap_name("web-policy"), None)


def test_a_pretrained_checkpoint_runs_with_the_settings_it_was_chosen_with_and_the_spec_wins():
    """The simulator evaluates a checkpoint with its provenance's settings; the operator ran it with the
    learner's defaults unless every setting was copied into the spec. Now it takes them (the spec's own win),
    says so in status.checkpoint.settings, and keeps them across its own checkpoints and a restart."""
    chosen = {"risk": 0.05, "demand_noise_clip": 3.0, "fast_period_s": 15.0, "saturation_guard": True}
    slo = {"name": "slo-rl", "checkpoint": "configmap/pretrained", "settings": {"risk": 0.1}}
    kube = cluster(policy_body(learner=slo, intervalSeconds=60))  # room for fast steps of 15 s
    clock = Clock()
    with fake_prometheus(ttft(1.0)) as prom:
        _pretrained_slo_rl(kube, prom.url, chosen)
        eng = engine_for(prom.url, kube, clock, checkpoint_every_s=1.0)
        step(eng, kube)
        runner = eng.runners["ml/web-policy"]
        assert runner.restored and runner.restored.startswith("configmap/pretrained")
        s = runner.learner.s
        assert (s.risk, s.demand_noise_clip, s.fast_period_s, s.saturation_guard) == (0.1, 3.0, 15.0, True)
        assert runner.fast_period_s == 15.0  # the fast guard the evaluation ran, here too
        assert kube.objects[POLICY]["status"]["checkpoint"]["settings"] == chosen
        assert not [e for e in kube.events if e["reason"] == "CheckpointIgnored"]
        clock.t += 5
        step(eng, kube)  # saves its own checkpoint, which carries the settings on
        kube.objects.pop("/api/v1/namespaces/ml/configmaps/pretrained")
        restarted = engine_for(prom.url, kube, clock)
        step(restarted, kube)
    again = restarted.runners["ml/web-policy"]
    assert again.restored.startswith("configmap/autocm-checkpoint-web-policy")
    assert (again.learner.s.risk, again.learner.s.demand_noise_clip, again.fast_period_s) == (0.1, 3.0, 15.0)


@pytest.mark.parametrize(("settings", "spec", "words"), [
    ({"risk": "lots"}, {}, "expected a finite number"),
    ({"no_such_setting": 1}, {}, "no setting(s) ['no_such_setting']"),
    ({"down_window": 10**9}, {}, "down_window"),
    ({"risk": 0.95}, {}, "risk must be a probability"),  # the learner's own check, alone
    ({"risk": 0.6}, {"risk_max": 0.4}, "refused them together with spec.learner.settings"),  # each fine alone
])
def test_hostile_checkpoint_settings_are_not_used_and_the_policy_runs_on(settings, spec, words):
    """A checkpoint is tenant input: its settings pass the spec's checks (types, caps, the learner's own)
    or are not used, with a CheckpointIgnored warning; the policy then runs with its spec's settings."""
    slo = {"name": "slo-rl", "checkpoint": "configmap/pretrained", "settings": spec}
    kube = cluster(policy_body(learner=slo))
    with fake_prometheus(ttft(1.0)) as prom:
        _pretrained_slo_rl(kube, prom.url, settings)
        eng = engine_for(prom.url, kube, Clock())
        result = step(eng, kube)
    runner = eng.runners["ml/web-policy"]
    assert result.outcome != "refused" and runner.adopted_settings == {}
    assert runner.learner.s.risk == 0.2  # the default
    warnings = [e["message"] for e in kube.events if e["reason"] == "CheckpointIgnored"]
    assert warnings and "settings of" in warnings[0] and words in warnings[0], warnings
    assert "settings" not in kube.objects[POLICY]["status"].get("checkpoint", {})


def test_every_event_and_condition_change_is_one_log_line_a_tenant_cannot_break(caplog):
    """``kubectl logs`` of the operator says what it did: each event it posts is a line (INFO, WARNING for
    a Warning), and so is each condition change no event announced, once, not once per interval."""
    caplog.set_level(logging.INFO, logger="autocm")
    kube = cluster(policy_body("apply"))
    clock = Clock()
    eng = engine_with_prometheus_down(kube, clock)
    assert step(eng, kube).outcome == "frozen"
    clock.t += 5
    assert step(eng, kube).outcome == "frozen"
    down = [r for r in caplog.records if "MetricsAvailable is False (PrometheusUnavailable)" in r.getMessage()]
    assert len(down) == 1 and down[0].levelno == logging.WARNING
    assert down[0].getMessage().startswith("ml/web-policy: ")
    caplog.clear()
    with fake_prometheus(ttft(1.0)) as prom:
        eng.shared.client = PrometheusClient(prom.url)
        clock.t += 5
        assert step(eng, kube).outcome == "applied"
    lines = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    assert ("autocm.operator", logging.INFO, next(m for _, _, m in lines if "MetricsAvailable is True" in m)) in lines
    resized = [m for n, lv, m in lines if n == "autocm.events" and lv == logging.INFO and "AutocmResized" in m]
    assert resized and resized[0].startswith("Deployment ml/web: AutocmResized: replicas 2 -> 4")
    assert any(m.startswith("SizingPolicy ml/web-policy: AutocmApplied: ") for n, _, m in lines
               if n == "autocm.events")

    # A tenant's setting name with a newline in it: refused, said on one line, nothing forged (the refusal
    # quotes the name; one_line, tested below, is the guard for any message that does not).
    caplog.clear()
    forged = "typo\nSizingPolicy other/victim: AutocmApplied: replicas 8 -> 0"
    kube = cluster(policy_body(learner={"name": "static", "settings": {forged: 1}}))
    with fake_prometheus(ttft(1.0)) as prom:
        assert step(engine_for(prom.url, kube, Clock()), kube).outcome == "refused"
    invalid = [r for r in caplog.records if "InvalidSpec" in r.getMessage()]
    assert [r.levelno for r in invalid] == [logging.WARNING]  # the event's line; the condition's is not repeated
    assert all("\n" not in r.getMessage() and "\r" not in r.getMessage() for r in caplog.records)
    assert not any(r.getMessage().startswith("SizingPolicy other/") for r in caplog.records)


@pytest.mark.parametrize("text, want", [
    ("plain", "plain"),
    ("a\nb\r\nc", "a\\nb\\r\\nc"),
    ("tab\there\x1b[31m", "tab\\there\\x1b[31m"),
    ("line\u2028sep", "line\\u2028sep"),
    ("x" * 2000, "x" * 1023 + "\u2026"),
])
def test_one_line_escapes_what_would_break_a_log_line(text, want):
    assert one_line(text) == want
