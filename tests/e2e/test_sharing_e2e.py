"""Sharing within a workload class, end to end: ``spec.learner.shareWith`` on the real control plane.

Two namespaces, one ``autocm run`` with ``--share-every`` shortened to ``SHARE_EVERY_S``. In the first,
two slo-rl policies (``a1``, ``a2``, each on its own Deployment of 2 one-GPU pods served by its own
tests/e2e/emulator.py and scraped by the real Prometheus) name the class ``llama``. In the second, a
tenant names the same class ``llama`` for its own service (``b1``), and a second policy (``steal``) names
the first namespace's class outright, ``<first namespace>/llama``.

Asserted, from what a tenant can read (``status.sharing``, conditions):
- ``a1`` and ``a2`` are both in ``<first>/llama``; each published batches of experience and absorbed
  its peer's (absorbed batches and rows above zero).
- ``b1`` is in ``<second>/llama``, a different class: it published, and absorbed nothing, although
  ``a1`` and ``a2`` published to a class with the same label all along.
- ``steal`` is refused (``Ready=False``, ``InvalidSpec``, "own namespace") and has no sharing status:
  without ``--cross-namespace-classes`` a label cannot reach another namespace's learners.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import kubernetes
import pytest

from .conftest import ControlPlane, PrometheusServer, free_port, wait_until
from .test_operator_e2e import (
    EMULATOR,
    GROUP,
    PLURAL,
    VERSION,
    crd,  # noqa: F401 (fixture)
    custom,
    make_deployment,
    operator_argv,
    process,
    status,
    wait_status,
)

pytestmark = pytest.mark.e2e

SHARE_EVERY_S = 4
"""Exchange period for this test (the operator's default is 300 s): two control intervals."""
INTERVAL_S = 2
CLASS = "llama"
SERVICE_RATE, RATE = 0.5, 0.4
"""Per-pod service rate and arrivals (requests/s): 2 pods at 40% load, so each interval gives the learner a
capacity row (load per GPU, tail met or not) to share."""


def sizing_policy(name: str, target: str, share_with: str) -> dict:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "SizingPolicy",
        "metadata": {"name": name},
        "spec": {
            "targetRef": {"kind": "Deployment", "name": target},
            "workload": "inference",
            "objective": {"metric": "ttft_p99_seconds", "target": 5.0},
            "knobs": {"replicas": {"min": 1, "max": 4}},
            "learner": {"name": "slo-rl", "shareWith": share_with},
            "mode": "recommend",
            "intervalSeconds": INTERVAL_S,
            "metrics": {"windowSeconds": 4},
        },
    }


@pytest.fixture
def second_namespace(control_plane: ControlPlane, namespace: str):
    """Another tenant's namespace beside ``namespace``, deleted (and its pods gone) afterwards."""
    core = kubernetes.client.CoreV1Api(control_plane.api_client)
    name = f"{namespace}-b"
    core.create_namespace({"metadata": {"name": name}})
    wait_until(lambda: bool(core.read_namespaced_service_account("default", name)),
               what=f"service account {name}/default", timeout_s=60)
    yield name
    with contextlib.suppress(kubernetes.client.ApiException):
        core.delete_namespace(name)
    wait_until(lambda: not core.list_namespaced_pod(name).items, what=f"the pods of {name} gone", timeout_s=120)


def test_a_class_shares_within_its_namespace_and_a_label_cannot_reach_another(
    crd,  # noqa: F811
    control_plane: ControlPlane,
    namespace: str,
    second_namespace: str,
    prometheus: PrometheusServer,
    prometheus_scrape,
    tmp_path: Path,
) -> None:
    plane, first, second = control_plane, namespace, second_namespace
    services = {(first, "a1"), (first, "a2"), (second, "b1")}
    for ns, name in services:
        make_deployment(plane, ns, replicas=2, name=name)
    ports = {key: free_port() for key in services}
    op_log = tmp_path / "operator.log"
    argv = [*operator_argv(plane, prometheus.url, free_port()),
            "--share-every", str(SHARE_EVERY_S), "--share-max-age", str(10 * SHARE_EVERY_S)]
    with contextlib.ExitStack() as stack:
        for (ns, name), port in ports.items():
            stack.enter_context(process(
                [sys.executable, str(EMULATOR), "--kubeconfig", str(plane.kubeconfig), "--namespace", ns,
                 "--deployment", name, "--port", str(port), "--rate", str(RATE),
                 "--service-rate", str(SERVICE_RATE)], tmp_path / f"emulator-{ns}-{name}.log"))
        prometheus_scrape([f"127.0.0.1:{port}" for port in ports.values()])
        for ns in (first, second):
            want = 4 if ns == first else 2  # vllm series: 2 Running pods per Deployment
            wait_until(lambda ns=ns, want=want: len(prometheus.query(
                f'vllm:request_success_total{{namespace="{ns}"}}')) == want,
                what=f"the emulators of {ns} scraped", timeout_s=90)
        api = custom(plane)
        for ns, name in services:
            api.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, sizing_policy(name, name, CLASS))
        api.create_namespaced_custom_object(GROUP, VERSION, second, PLURAL,
                                            sizing_policy("steal", "b1", f"{first}/{CLASS}"))
        stack.enter_context(process(argv, op_log))

        def exchanged(s: dict) -> bool:
            sh = s.get("sharing", {})
            return sh.get("absorbed", 0) >= 2 and sh.get("absorbedRows", 0) > 0
        a = {name: wait_status(plane, first, name, exchanged, f"{name} absorbed its peer's experience", 120, op_log)
             for name in ("a1", "a2")}
        b1 = wait_status(plane, second, "b1", lambda s: s.get("sharing", {}).get("published", 0) >= 2,
                         "b1 published its own experience", 60, op_log)
        steal = wait_status(plane, second, "steal", lambda s: any(
            c["type"] == "Ready" and c["reason"] == "InvalidSpec" for c in s.get("conditions", [])),
            "the cross-namespace label refused", 30, op_log)
        a_final = {name: status(plane, first, name)["sharing"] for name in ("a1", "a2")}

    print(f"\na1 {a['a1']['sharing']}\na2 {a['a2']['sharing']}\nb1 {b1['sharing']}")
    for st in a.values():
        assert st["sharing"]["class"] == f"{first}/{CLASS}", st["sharing"]
        assert st["sharing"]["published"] >= 1, st["sharing"]
    # b1 named the same label in its own namespace: its class is its namespace's, and nothing came in,
    # while a1 and a2 kept publishing to theirs.
    assert b1["sharing"]["class"] == f"{second}/{CLASS}", b1["sharing"]
    assert b1["sharing"]["absorbed"] == 0 and b1["sharing"]["absorbedRows"] == 0, b1["sharing"]
    assert all(s["published"] >= 2 for s in a_final.values()), a_final
    ready = next(c for c in steal["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and "own namespace" in ready["message"], ready
    assert "sharing" not in steal
