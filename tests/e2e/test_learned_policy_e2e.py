"""The learned policy in the operator, end to end (issue 11): ``autocm train``'s checkpoint, loaded by
``autocm run`` through ``autocm push-checkpoint`` and the SizingPolicy's ``spec.learner.checkpoint``,
resizes a real Deployment on the real control plane (kube-apiserver, scheduler, kwok GPU nodes) from
metrics scraped by a real Prometheus, in apply mode.

The workload is tests/e2e/emulator.py replaying a compressed segment of the diurnal evaluation day
(simulator/scenarios/inference-diurnal-eval.yaml): the same knobs (1-16 replicas, TP 4 or 8, batch
16-64), SLO (TTFT p99 <= 5 s) and initial size (4 x TP 8), a ramp from 1 to 8 requests/s and back
(the eval day's range) with one control interval of 2 s standing in for the simulator's 60 s. The
emulator is an M/M/c queue, not the simulator's latency tables: 0.5 requests/s per GPU (a TP 8
replica serves 4 requests/s, so the eval peak of 8/s needs about 3 TP 8 or 5 TP 4 replicas) and a
1 s prefill. It counts attainment exactly (requests whose TTFT CDF is under the SLO) and GPU- and
pod-seconds of Running pods.

The same segment then runs under HPA at the cheapest TP-8 setting that passed the simulator sweep of
that scenario (gpu_utilization target 0.9, docs/learned-autoscaler.md). Asserted: the checkpoint was
restored and the policy acted (resized the Deployment); slo-rl held the SLO. GPU- and replica-minutes
of both, and HPA's attainment, are printed, not compared in an assertion.

NOT YET SHOWN: fewer replica-minutes than HPA. Measured 2026-12-05 (run 2): slo-rl attainment 1.0000,
88.0 GPU-min, 11.0 replica-min (up to 10 x TP 8); HPA 0.9 attainment 0.9131, 39.5 GPU-min, 4.9
replica-min (up to 3 x TP 8); slo-rl / HPA = 2.22. Why: the checkpoint's capacity model learned the
simulator's llama2-70b/A100 tables (about 0.2 requests/s per GPU at the SLO), the emulator serves 0.5
per GPU, so slo-rl sizes for a slower service than the one it runs; and it planned for 14.5 requests/s
(forecast quantile over the cold-start horizon on a 30x compressed ramp) while the operator read
9.7 requests/s (4 s rate() window) at a true rate of at most 8. Calibrating the emulator to the
simulator's tables is the next step. Also HPA at 0.9 (cheapest passing in the
simulator sweep) missed the SLO on this emulator (attainment 0.916 in the first run, 2026-12-05):
the M/M/c emulator, the 30x time compression (a ramp of 7 requests/s in 40 s = 20 intervals) and the
4 s metrics window behind a 2 s interval make a reactive rule lag more than in the simulator. The
emulator-side HPA sweep that would find its cheapest passing target here was not run (no time).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import kubernetes
import pytest

from .conftest import ControlPlane, PrometheusServer, free_port, gpu_node_manifest, http_get, wait_until
from .test_operator_e2e import (
    EMULATOR,
    GROUP,
    PAUSE_IMAGE,
    PLURAL,
    REPO,
    VERSION,
    crd,  # noqa: F401 (fixture)
    custom,
    operator_argv,
    process,
    wait_status,
)

pytestmark = pytest.mark.e2e

CHECKPOINT = REPO / "simulator" / "checkpoints" / "slo-rl-diurnal.ckpt"
SLO_S, ATTAINMENT = 5.0, 0.99
INTERVAL_S = 2
SCHEDULE = "0:1,15:1,55:8,75:8,115:1,125:1"
"""time_s:requests/s from the emulator's start: flat, ramp up to the eval day's peak, hold, down."""
SEGMENT_S = 125
EXTRA_NODES = 8
"""Ten 8-GPU nodes in all (80 GPUs): room for HPA's TP-8 replicas at the peak with headroom."""
KNOBS = {
    "replicas": {"min": 1, "max": 16},
    "gpusPerReplica": {"choices": [4, 8]},
    "batchSize": {"min": 16, "max": 64, "step": 16},
}
"""The eval scenario's knobs, exactly: a checkpoint is refused for a policy with other knobs."""


@pytest.fixture(scope="module")
def extra_gpu_nodes(control_plane: ControlPlane):
    """More fake GPU nodes for this module only (the session's two hold 16 GPUs; the eval service starts at 32)."""
    core = kubernetes.client.CoreV1Api(control_plane.api_client)
    names = [f"gpu-extra-{i}" for i in range(EXTRA_NODES)]
    for name in names:
        core.create_node(gpu_node_manifest(name, control_plane.settings))

    def ready() -> bool:
        nodes = {n.metadata.name: n for n in core.list_node().items}
        return all(
            any(c.type == "Ready" and c.status == "True" for c in (nodes[n].status.conditions or []))
            for n in names if n in nodes
        ) and all(n in nodes for n in names)

    wait_until(ready, what="extra GPU nodes Ready", timeout_s=60)
    yield names
    for name in names:
        core.delete_node(name)


def sizing_policy(name: str, learner: dict) -> dict:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "SizingPolicy",
        "metadata": {"name": name},
        "spec": {
            "targetRef": {"kind": "Deployment", "name": name},
            "workload": "inference",
            "objective": {"metric": "ttft_p99_seconds", "target": SLO_S},
            "knobs": KNOBS,
            "learner": learner,
            "mode": "apply",
            "intervalSeconds": INTERVAL_S,
            "metrics": {"windowSeconds": 4},
        },
    }


def make_deployment(plane: ControlPlane, ns: str, name: str) -> None:
    kubernetes.client.AppsV1Api(plane.api_client).create_namespaced_deployment(ns, {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 4,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{
                        "name": "server",
                        "image": PAUSE_IMAGE,
                        "env": [{"name": "AUTOCM_BATCH_SIZE", "value": "64"}],
                        "resources": {"limits": {"nvidia.com/gpu": "8"}},
                    }],
                },
            },
        },
    })


def counters(port: int) -> dict[str, float]:
    code, body = http_get(f"http://127.0.0.1:{port}/metrics")
    assert code == 200
    return {m.group(1): float(m.group(2))
            for m in re.finditer(r"^(emulator_\w+_total) (\S+)$", body.decode(), re.M)}


def run_segment(plane: ControlPlane, prometheus: PrometheusServer, prometheus_scrape, ns: str, name: str,
                learner: dict, tmp_path: Path, checkpoint: Path | None = None) -> dict[str, float]:
    """Run the compressed segment against one policy; returns the emulator's totals and what was seen."""
    apps = kubernetes.client.AppsV1Api(plane.api_client)
    make_deployment(plane, ns, name)
    custom(plane).create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, sizing_policy(name, learner))
    if checkpoint is not None:
        pushed = subprocess.run(
            [sys.executable, "-m", "controller.run_cmd", "push-checkpoint", str(checkpoint), "--policy", name,
             "-n", ns, "--kubeconfig", str(plane.kubeconfig)],
            cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
        assert pushed.returncode == 0, pushed.stderr + pushed.stdout
    wait_until(lambda: (apps.read_namespaced_deployment(name, ns).status.ready_replicas or 0) == 4,
               what=f"{name}: 4 pods Ready", timeout_s=60)
    emu_port, metrics_port = free_port(), free_port()
    op_log, emu_log = tmp_path / f"operator-{name}.log", tmp_path / f"emulator-{name}.log"
    seen: dict[str, float] = {}
    with process(operator_argv(plane, prometheus.url, metrics_port), op_log):
        if checkpoint is not None:
            st = wait_status(plane, ns, name, lambda s: "restoredFrom" in s.get("checkpoint", {}),
                             "the checkpoint restored", 60, op_log)
            assert st["checkpoint"]["restoredFrom"].startswith(f"configmap/{learner['checkpoint'].split('/')[1]}")
        with process([sys.executable, str(EMULATOR), "--kubeconfig", str(plane.kubeconfig), "--namespace", ns,
                      "--deployment", name, "--port", str(emu_port), "--service-rate", "0.5", "--prefill", "1.0",
                      "--schedule", SCHEDULE, "--slo", str(SLO_S)], emu_log):
            prometheus_scrape([f"127.0.0.1:{emu_port}"])
            wait_until(lambda: bool(counters(emu_port)), what="emulator serving", timeout_s=30)
            start = time.monotonic()
            sizes = []
            while time.monotonic() - start < SEGMENT_S:
                sizes.append(apps.read_namespaced_deployment(name, ns).spec.replicas)
                time.sleep(2)
            seen = counters(emu_port)
    events = kubernetes.client.CoreV1Api(plane.api_client).list_namespaced_event(ns).items
    resized = [e.message for e in events if e.reason == "AutocmResized" and e.involved_object.name == name]
    seen["resizes"] = len(resized)
    seen["attainment"] = seen["emulator_requests_within_slo_total"] / max(seen["emulator_requests_total"], 1e-9)
    seen["max_replicas"] = max(sizes)
    print(f"\n{name}: attainment {seen['attainment']:.4f} over {seen['emulator_requests_total']:.0f} requests, "
          f"{seen['emulator_gpu_seconds_total'] / 60:.1f} GPU-minutes, "
          f"{seen['emulator_pod_seconds_total'] / 60:.1f} replica-minutes, {len(resized)} resizes, "
          f"spec.replicas over time {sizes}\n  first resizes: {resized[:4]}")
    apps.delete_namespaced_deployment(name, ns)
    wait_until(lambda: not kubernetes.client.CoreV1Api(plane.api_client).list_namespaced_pod(
        ns, label_selector=f"app={name}").items, what=f"{name}'s pods gone", timeout_s=60)
    return seen


def test_learned_policy_from_checkpoint_holds_the_slo_and_is_costed_against_hpa(
    crd,  # noqa: F811
    extra_gpu_nodes,
    control_plane: ControlPlane,
    namespace: str,
    prometheus: PrometheusServer,
    prometheus_scrape,
    tmp_path: Path,
) -> None:
    rl = run_segment(control_plane, prometheus, prometheus_scrape, namespace, "rl",
                     {"name": "slo-rl", "checkpoint": "configmap/slo-rl-diurnal"}, tmp_path, CHECKPOINT)
    hpa = run_segment(control_plane, prometheus, prometheus_scrape, namespace, "hpa",
                      {"name": "hpa", "settings": {"metric": "gpu_utilization", "target": 0.9}}, tmp_path)
    print(f"slo-rl / HPA: GPU-minutes {rl['emulator_gpu_seconds_total'] / hpa['emulator_gpu_seconds_total']:.2f}, "
          f"replica-minutes {rl['emulator_pod_seconds_total'] / hpa['emulator_pod_seconds_total']:.2f}")
    assert rl["resizes"] >= 1  # the learned policy acted
    assert rl["attainment"] >= ATTAINMENT, rl
    # HPA's own attainment is printed, not asserted: at 0.9 it passed the simulator's sweep but missed
    # here (0.916 in the first run; docs/learned-autoscaler.md), so this is not yet "cheaper than a
    # passing HPA" on the emulator; see the module docstring.
    # The cost claim (slo-rl below HPA) is NOT asserted: it does not hold yet (module docstring).
