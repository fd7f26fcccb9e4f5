"""A pushed checkpoint is tenant input. A state that every check at restore lets through but that breaks the
learner's ``decide`` or ``learn`` used to fail every control step for good. (The example was VCONF with a reward
scale of 0, which load_state_dict now refuses; the test stands one in: a reward scale of 7 that a patched
``_greedy`` divides by zero on.)
Now a learner that fails within its first RESTORE_PROBATION_STEPS steps after a restore drops the checkpoint, says
so, and runs on from a fresh learner; a failure after that is the learner's own and is reported as before."""

from __future__ import annotations

from operator_fakes import FakeKube, fake_prometheus
from test_engine import POLICY, Clock, cluster, engine_for, policy_body, step, ttft

from controller import checkpoint as ckpt
from controller.operator import RESTORE_PROBATION_STEPS

VCONF = {"name": "vconf", "checkpoint": "configmap/pretrained"}


def _push(kube: FakeKube, prom_url: str, **fields) -> None:
    """A ConfigMap ``pretrained`` with a VCONF state for this policy's knobs, ``fields`` replaced."""
    from learners.base import create

    fresh = engine_for(prom_url, kube, Clock())
    step(fresh, kube)
    policy = fresh.runners["ml/web-policy"].policy
    state = {**create("vconf", policy.space, policy.objective).state_dict(), **fields}
    kube.put("/api/v1/namespaces/ml/configmaps/pretrained",
             ckpt.configmap_body("pretrained", "ml", ckpt.encode("vconf", policy.space, state), "vconf",
                                 policy.space))
    kube.objects.pop("/api/v1/namespaces/ml/configmaps/" + ckpt.configmap_name("web-policy"), None)


def test_a_checkpoint_that_breaks_the_learner_is_dropped_and_the_policy_runs_on(monkeypatch):
    from learners.vconf import Vconf

    greedy = Vconf._greedy

    def breaks_on_the_pushed_state(self, *args):
        if getattr(self, "reward_scale", 1.0) == 7.0:
            raise ZeroDivisionError("float division by zero")
        return greedy(self, *args)

    monkeypatch.setattr(Vconf, "_greedy", breaks_on_the_pushed_state)
    kube = cluster(policy_body(learner=VCONF))
    clock = Clock()
    with fake_prometheus(ttft(1.0)) as prom:
        _push(kube, prom.url, reward_scale=7.0)
        eng = engine_for(prom.url, kube, clock)
        outcomes = []
        for _ in range(5):
            outcomes.append(step(eng, kube).outcome)
            clock.t += 5
    assert outcomes.count("refused") == 1, outcomes  # the one failing step, then a fresh learner
    assert outcomes[-1] in {"recommended", "unchanged"}
    ignored = [e["message"] for e in kube.events if e["reason"] == "CheckpointIgnored"]
    assert any("configmap/pretrained" in m and "fresh learner" in m and "ZeroDivisionError" in m for m in ignored)
    failed = [e["message"] for e in kube.events if e["reason"] == "LearnerFailed"]
    assert len(failed) == 1 and "dropped the checkpoint" in failed[0]
    status = kube.objects[POLICY]["status"]
    assert "restoredFrom" not in status.get("checkpoint", {})
    runner = eng.runners["ml/web-policy"]
    assert runner.learner.state_dict()["reward_scale"] != 7.0


def test_a_failure_after_the_probation_is_the_learners_own(monkeypatch):
    kube = cluster(policy_body(learner=VCONF))
    clock = Clock()
    with fake_prometheus(ttft(1.0)) as prom:
        _push(kube, prom.url)  # a sound checkpoint
        eng = engine_for(prom.url, kube, clock)
        for _ in range(RESTORE_PROBATION_STEPS):
            assert step(eng, kube).outcome != "refused"
            clock.t += 5
        runner = eng.runners["ml/web-policy"]
        learned = runner.learner.state_dict()

        def broken(obs):
            raise RuntimeError("a bug")

        monkeypatch.setattr(runner.learner, "decide", broken)
        assert step(eng, kube).outcome == "refused"
    failed = [e["message"] for e in kube.events if e["reason"] == "LearnerFailed"]
    assert failed and "check spec.learner.settings" in failed[-1]
    assert runner.restored and runner.restored.startswith("configmap/pretrained")
    assert runner.learner.state_dict().keys() == learned.keys()
    assert not [e for e in kube.events if e["reason"] == "CheckpointIgnored"]
