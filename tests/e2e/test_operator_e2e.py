"""The operator end to end: real kube-apiserver (+ scheduler, controller manager, kwok GPU nodes), real
Prometheus, the real ``autocm run`` process, and a workload emulator whose latency follows its size.

1. The CRD installs, and the apiserver itself rejects nonsense with the CRD's own messages.
2. A good policy in recommend mode gets status written even when Prometheus is down (frozen, with
   the condition saying why).
3. Closed loop: the emulator's TTFT misses the SLO at 2 replicas; in recommend mode the operator only
   says what it would do; switched to apply it scales the Deployment through the scale subresource,
   the emulator sees the new Running pods, Prometheus scrapes the lower latency, and the status
   reports the SLO met. The operator's own /metrics is scraped by the same Prometheus.
4. SIGKILL and restart: the learner's checkpoint is restored and no change is made twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest
import yaml

from .conftest import ControlPlane, PrometheusServer, free_port, http_get, wait_until

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CRD_FILE = REPO / "controller" / "crd" / "sizingpolicy.yaml"
EMULATOR = Path(__file__).resolve().parent / "emulator.py"
GROUP, VERSION, PLURAL = "autocm.io", "v1alpha1", "sizingpolicies"
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"  # kwok never pulls it


# --- helpers ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crd(control_plane: ControlPlane) -> None:
    """Install the SizingPolicy CRD (idempotent) and wait until the apiserver serves it."""
    ext = kubernetes.client.ApiextensionsV1Api(control_plane.api_client)
    body = yaml.safe_load(CRD_FILE.read_text())
    try:
        ext.create_custom_resource_definition(body)
    except kubernetes.client.ApiException as exc:
        if exc.status != 409:
            raise

    def established() -> bool:
        got = ext.read_custom_resource_definition(body["metadata"]["name"])
        return any(c.type == "Established" and c.status == "True" for c in got.status.conditions or [])

    wait_until(established, what="SizingPolicy CRD Established", timeout_s=30)


def custom(plane: ControlPlane) -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(plane.api_client)


def policy(name: str, mode: str = "recommend", **spec: object) -> dict:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "SizingPolicy",
        "metadata": {"name": name},
        "spec": {
            "targetRef": {"kind": "Deployment", "name": "web"},
            "workload": "inference",
            "objective": {"metric": "ttft_p99_seconds", "target": 0.5},
            "knobs": {"replicas": {"min": 1, "max": 8}},
            "learner": {"name": "hpa", "settings": {"metric": "gpu_utilization", "target": 0.7}},
            "mode": mode,
            "intervalSeconds": 2,
            "metrics": {"windowSeconds": 5},
            **spec,
        },
    }


def make_deployment(plane: ControlPlane, ns: str, replicas: int = 2, name: str = "web") -> None:
    apps = kubernetes.client.AppsV1Api(plane.api_client)
    apps.create_namespaced_deployment(
        ns,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {
                        "terminationGracePeriodSeconds": 0,
                        "containers": [
                            {
                                "name": "server",
                                "image": PAUSE_IMAGE,
                                "env": [{"name": "AUTOCM_BATCH_SIZE", "value": "8"}],
                                "resources": {"limits": {"nvidia.com/gpu": "1"}},
                            }
                        ],
                    },
                },
            },
        },
    )


def status(plane: ControlPlane, ns: str, name: str) -> dict:
    obj = custom(plane).get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
    return obj.get("status") or {}


def condition(st: dict, kind: str) -> dict:
    return next((c for c in st.get("conditions", []) if c["type"] == kind), {})


@contextlib.contextmanager
def process(argv: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


def operator_argv(plane: ControlPlane, prometheus_url: str, metrics_port: int,
                  peering: tuple[str, ...] = ("--standalone",)) -> list[str]:
    return [sys.executable, "-m", "controller.run_cmd", "run", "--kubeconfig", str(plane.kubeconfig),
            "--prometheus", prometheus_url, "--metrics-port", str(metrics_port), *peering,
            "--checkpoint-every", "2"]


def wait_status(
    plane: ControlPlane, ns: str, name: str, predicate, what: str, timeout_s: float, log: Path
) -> dict:
    seen: dict = {}

    def check() -> bool:
        seen.clear()
        seen.update(status(plane, ns, name))
        return bool(predicate(seen))

    try:
        wait_until(check, what=what, timeout_s=timeout_s, interval_s=0.5)
    except Exception as exc:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:]) if log.exists() else ""
        raise AssertionError(
            f"{exc}\nlast status: {json.dumps(seen, indent=1)}\noperator log:\n{tail}"
        ) from exc
    return seen


# --- 1. admission -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("knobs", "learner", "message"),
    [
        ({"replicas": {"min": 5, "max": 2}}, "hpa", "min must not be greater than max"),
        ({"replicas": {"min": 1, "max": 3, "choices": [1, 2]}}, "hpa", "either a range"),
        ({}, "hpa", "knobs"),
        (
            {"replicas": {"min": 1, "max": 3}},
            "gradient-descent-by-hand",
            'Unsupported value: "gradient-descent',
        ),
    ],
)
def test_bad_policies_are_rejected_at_admission(
    crd, control_plane: ControlPlane, namespace: str, knobs, learner, message
) -> None:
    body = policy("bad")
    body["spec"]["knobs"] = knobs
    body["spec"]["learner"] = {"name": learner}
    with pytest.raises(kubernetes.client.ApiException) as err:
        custom(control_plane).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    assert err.value.status == 422
    said = json.loads(err.value.body)["message"]
    assert message in said, said


def test_learner_enum_served_by_the_apiserver_is_the_registry(crd, control_plane: ControlPlane) -> None:
    from learners.base import registered

    got = kubernetes.client.ApiextensionsV1Api(control_plane.api_client).read_custom_resource_definition(
        "sizingpolicies.autocm.io"
    )
    schema = got.spec.versions[0].schema.open_apiv3_schema
    assert schema.properties["spec"].properties["learner"].properties["name"].enum == list(registered())


# --- 2. status without Prometheus ---------------------------------------------------------------------


def test_recommend_policy_gets_status_even_without_prometheus(
    crd, control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    make_deployment(control_plane, namespace)
    custom(control_plane).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, policy("p"))
    dead = f"http://127.0.0.1:{free_port()}"
    log = tmp_path / "operator.log"
    with process(operator_argv(control_plane, dead, free_port()), log):
        st = wait_status(
            control_plane,
            namespace,
            "p",
            lambda s: condition(s, "MetricsAvailable").get("reason") == "PrometheusUnavailable",
            "MetricsAvailable=False",
            90,
            log,
        )
    assert condition(st, "Ready")["status"] == "True"
    assert condition(st, "Applied")["reason"] == "Frozen"
    assert st["observedGeneration"] == 1
    assert all(c["observedGeneration"] == 1 and c["lastTransitionTime"] for c in st["conditions"])
    assert "unreachable" in condition(st, "MetricsAvailable")["message"]


# --- 3./4. the closed loop --------------------------------------------------------------------------------


def test_closed_loop_recommend_then_apply_meets_the_slo(
    crd,
    control_plane: ControlPlane,
    namespace: str,
    prometheus: PrometheusServer,
    prometheus_scrape,
    tmp_path: Path,
) -> None:
    plane = control_plane
    apps = kubernetes.client.AppsV1Api(plane.api_client)
    make_deployment(plane, namespace, replicas=2)
    emu_port, metrics_port = free_port(), free_port()
    emu_log, op_log = tmp_path / "emulator.log", tmp_path / "operator.log"
    with process(
        [
            sys.executable,
            str(EMULATOR),
            "--kubeconfig",
            str(plane.kubeconfig),
            "--namespace",
            namespace,
            "--deployment",
            "web",
            "--port",
            str(emu_port),
        ],
        emu_log,
    ):
        prometheus_scrape([f"127.0.0.1:{emu_port}"])
        running = f'emulator_running_pods{{namespace="{namespace}"}}'
        wait_until(
            lambda: any(float(r["value"][1]) == 2 for r in prometheus.query(running)),
            what="2 running pods scraped",
            timeout_s=90,
        )

        custom(plane).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, policy("web"))
        with process(operator_argv(plane, prometheus.url, metrics_port), op_log) as op:
            prometheus_scrape([f"127.0.0.1:{metrics_port}"])
            # recommend: a recommendation above 2, in words, and nothing changes.
            st = wait_status(
                plane,
                namespace,
                "web",
                lambda s: s.get("recommendedConfig", {}).get("replicas", 0) > 2,
                "a scale-up recommendation",
                90,
                op_log,
            )
            assert condition(st, "Applied")["reason"] == "RecommendOnly"
            assert condition(st, "MetricsAvailable")["status"] == "True"
            assert st["metrics"]["ttft_p99_seconds"] > 0.5  # overloaded at 2 pods
            msg = st["lastDecision"]["message"]
            assert "ttft_p99_seconds=" in msg and "missed" in msg and "(recommended, not applied)" in msg
            time.sleep(4)  # two more intervals: still untouched
            assert apps.read_namespaced_deployment("web", namespace).spec.replicas == 2

            # apply: the operator scales, the emulator's latency follows, the SLO is met.
            custom(plane).patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, "web", {"spec": {"mode": "apply"}}
            )
            st = wait_status(
                plane,
                namespace,
                "web",
                lambda s: (
                    s.get("metrics", {}).get("ttft_p99_seconds", 99) <= 0.5
                    and s.get("currentConfig", {}).get("replicas", 0) >= 4
                ),
                "the SLO met after scaling",
                150,
                op_log,
            )
            dep = apps.read_namespaced_deployment("web", namespace)
            assert dep.spec.replicas >= 4
            owners = {(m.manager, m.subresource or "") for m in dep.metadata.managed_fields}
            assert ("autocm", "scale") in owners  # server-side apply through the scale subresource
            events = kubernetes.client.CoreV1Api(plane.api_client).list_namespaced_event(namespace).items
            resized = [e for e in events if e.reason == "AutocmResized" and e.involved_object.name == "web"]
            # One event per change, each with the knob, old -> new, and the learner's reason.
            assert any(e.message.startswith("replicas 2 -> ") for e in resized)
            assert all("gpu_utilization averages" in e.message for e in resized)
            assert condition(st, "Ready")["status"] == "True"

            # the operator's own /metrics, through the real Prometheus
            found = prometheus.wait_for(
                f'autocm_operator_decisions_total{{namespace="{namespace}",policy="web",outcome="applied"}}',
                timeout_s=30,
            )
            assert float(found[0]["value"][1]) >= 1
            code, _ = http_get(f"http://127.0.0.1:{metrics_port}/metrics")
            assert code == 200
            applied_before = len(resized)
            replicas_before = dep.spec.replicas
            checkpoint = st.get("checkpoint", {}).get("configMap")
            assert checkpoint, st

            # 4. SIGKILL: no goodbye, no final checkpoint.
            os.killpg(op.pid, signal.SIGKILL)
            op.wait(timeout=10)
        restart_log = tmp_path / "operator-restarted.log"
        with process(operator_argv(plane, prometheus.url, free_port()), restart_log):
            st = wait_status(
                plane,
                namespace,
                "web",
                lambda s: "restoredFrom" in s.get("checkpoint", {}),
                "the restarted operator to restore its checkpoint",
                90,
                restart_log,
            )
            assert st["checkpoint"]["restoredFrom"].startswith(f"configmap/{checkpoint}")
            time.sleep(6)  # three intervals at the chosen size
            events = kubernetes.client.CoreV1Api(plane.api_client).list_namespaced_event(namespace).items
            resized = [e for e in events if e.reason == "AutocmResized" and e.involved_object.name == "web"]
            assert len(resized) == applied_before  # nothing repeated
            assert apps.read_namespaced_deployment("web", namespace).spec.replicas == replicas_before


def test_two_namespaces_one_query_per_metric(
    crd, control_plane: ControlPlane, prometheus: PrometheusServer, tmp_path: Path
) -> None:
    """The adapter's shared query against the real Prometheus: valid PromQL, two namespaces in one matcher."""
    from controller.policy import TargetRef
    from controller.prometheus import PrometheusClient, Registration, SharedMetrics

    client = PrometheusClient(prometheus.url)
    shared = SharedMetrics(client)
    for ns in (f"a-{uuid.uuid4().hex[:4]}", f"b-{uuid.uuid4().hex[:4]}"):
        target = TargetRef("Deployment", "web", ns, "apps/v1")
        shared.register(ns, Registration(target, "inference", 5, 2, {}))
    got = shared.metrics_for(next(iter(shared._workloads)))
    assert got is not None and got.problems == ()  # every default query parsed and ran
    from controller.prometheus import DEFAULT_QUERIES

    # one query per distinct default inference query text, shared by both namespaces (two metrics may share a text)
    assert client.queries_sent == len({q.template for q in DEFAULT_QUERIES.values() if "inference" in q.kinds})
