"""Sharing within a workload class in the operator: experience crosses between the slo-rl policies of
one class in one namespace, and never into another namespace's or another class's policy."""

from __future__ import annotations

from operator_fakes import FakeKube, deployment, fake_prometheus, node, pod, vector

from controller.operator import Engine, OperatorSettings
from controller.prometheus import PrometheusClient, PrometheusSettings

# (namespace, deployment, shareWith)
SUFFIX = ("aaaaa", "bbbbb")
POLICIES = [("ml", "a", "llama"), ("ml", "b", "llama"), ("other", "c", "llama"), ("ml", "d", "mistral")]


def responder(q: str):
    series = []
    for ns, name, _ in POLICIES:
        for i in range(2):
            p = {"namespace": ns, "pod": f"{name}-5d8f7c9b4-{SUFFIX[i]}"}
            if "time_to_first_token" in q:
                series += [({**p, "le": "1.0"}, 10.0), ({**p, "le": "+Inf"}, 10.0)]
            elif "request_success" in q or "num_requests" in q:
                series.append((p, 10.0))
    return vector(series)


def body(ns: str, name: str, share: str | None) -> dict:
    learner = {"name": "slo-rl", **({"shareWith": share} if share else {})}
    return {"apiVersion": "autocm.io/v1alpha1", "kind": "SizingPolicy",
            "metadata": {"name": f"{name}-policy", "namespace": ns, "uid": f"pol-{name}", "generation": 1},
            "spec": {"targetRef": {"kind": "Deployment", "name": name},
                     "objective": {"metric": "ttft_p99_seconds", "target": 0.5},
                     "knobs": {"replicas": {"min": 1, "max": 8}}, "learner": learner,
                     "mode": "recommend", "intervalSeconds": 5}}


class Clock:
    t = 10_000.0

    def __call__(self) -> float:
        return self.t


def run_engine(policies=POLICIES, steps: int = 12, **settings):
    kube = FakeKube()
    kube.put("/api/v1/nodes/n0", node("n0"))
    bodies = {}
    for ns, name, share in policies:
        kube.put(f"/apis/apps/v1/namespaces/{ns}/deployments/{name}", deployment(name, ns, replicas=2))
        for i in range(2):
            kube.put(f"/api/v1/namespaces/{ns}/pods/{name}-5d8f7c9b4-{SUFFIX[i]}",
                     pod(f"{name}-5d8f7c9b4-{SUFFIX[i]}", ns, 1, "n0", {"app": name}))
        b = bodies[f"{ns}/{name}-policy"] = body(ns, name, share)
        kube.put(f"/apis/autocm.io/v1alpha1/namespaces/{ns}/sizingpolicies/{name}-policy", b)
    clock = Clock()
    with fake_prometheus(responder) as prom:
        s = OperatorSettings(prometheus_url=prom.url, resize_in_place=False, share_every_s=10.0, **settings)
        eng = Engine(kube, s, prometheus=PrometheusClient(prom.url, PrometheusSettings(timeout_s=1.0)), clock=clock)
        for _ in range(steps):
            clock.t += 5.0
            for key, b in bodies.items():
                eng.observe_body(b)
                eng.step(key)
    return eng


def test_experience_crosses_within_a_class_and_namespace_only():
    eng = run_engine()
    a, b, c, d = (eng.runners[k].loop.sharing for k in ("ml/a-policy", "ml/b-policy", "other/c-policy", "ml/d-policy"))
    assert a is not None and b is not None and c is not None and d is not None
    assert a.key == b.key and a.key != c.key and a.key != d.key
    assert a.absorbed_rows > 0 and b.absorbed_rows > 0  # each took the other's experience
    assert c.absorbed_rows == 0 and d.absorbed_rows == 0  # alone in their classes: nothing came in


def test_another_namespace_class_is_refused_unless_the_operator_allows_it():
    pols = [("ml", "a", "other/llama"), ("other", "c", "llama")]
    eng = run_engine(pols, steps=1)
    assert "ml/a-policy" not in eng.runners
    assert "own namespace" in eng.invalid["ml/a-policy"]
    eng = run_engine(pols, steps=12, cross_namespace_classes=True)
    a, c = eng.runners["ml/a-policy"].loop.sharing, eng.runners["other/c-policy"].loop.sharing
    assert a is not None and c is not None and a.key == c.key
    assert a.absorbed_rows > 0 and c.absorbed_rows > 0


def test_without_share_with_a_policy_is_in_no_class():
    eng = run_engine([("ml", "a", None), ("ml", "b", "llama")])
    assert eng.runners["ml/a-policy"].loop.sharing is None
    assert eng.runners["ml/b-policy"].loop.sharing.absorbed_rows == 0


def test_the_status_shows_the_class_and_the_exchange():
    """A tenant sees in status.sharing which class its policy is in and that experience moved (or did not)."""
    eng = run_engine([("ml", "a", "llama"), ("ml", "b", "llama"), ("other", "c", "llama"), ("ml", "e", None)])

    def sharing(ns: str, name: str) -> dict | None:
        return eng.kube.get(f"/apis/autocm.io/v1alpha1/namespaces/{ns}/sizingpolicies/{name}-policy")["status"].get(
            "sharing")

    a, c = sharing("ml", "a"), sharing("other", "c")
    assert a is not None and c is not None
    assert a["class"] == "ml/llama" and c["class"] == "other/llama" and a["everySeconds"] == 10.0
    assert a["published"] >= 1 and a["absorbed"] >= 1 and a["absorbedRows"] >= 1
    member = eng.runners["ml/a-policy"].loop.sharing
    assert (a["absorbed"], a["absorbedRows"]) == (member.absorbed_batches, member.absorbed_rows)
    assert c["published"] >= 1 and c["absorbed"] == 0 and c["absorbedRows"] == 0  # alone in its namespace's class
    assert sharing("ml", "e") is None  # no shareWith, no sharing status
