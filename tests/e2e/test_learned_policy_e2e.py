"""The learned policy in the operator, end to end (issue 11): ``autocm train``'s checkpoint, loaded by
``autocm run`` through ``autocm push-checkpoint`` and the SizingPolicy's ``spec.learner.checkpoint``,
resizes a real Deployment on the real control plane (kube-apiserver, scheduler, kwok GPU nodes) from
metrics scraped by a real Prometheus, in apply mode, and is costed against HPA swept on the same segment.

The workload is tests/e2e/emulator.py replaying a compressed segment of the diurnal evaluation day
(simulator/scenarios/inference-diurnal-eval.yaml): the same knobs (1-16 replicas, TP 4 or 8, batch
16-64), SLO (TTFT p99 <= 5 s) and initial size (4 x TP 8), a ramp from 1 to 8 requests/s and back
(the eval day's range) with one control interval of 2 s standing in for the simulator's 60 s. The
emulator is calibrated to the simulator (``--calibrate llama2-70b:a100-80gb``): its M/M/c service rate
per (TP, batch) template is the one whose capacity at the SLO equals the simulator's
(tests/unit/inference/test_emulator_calibration.py), so the capacity the checkpoint learned in the
simulator is the capacity it meets here. It counts attainment exactly (requests whose TTFT CDF is under
the SLO) and GPU- and pod-seconds of Running pods, and its counters advance to each scrape's instant,
so Prometheus' rate() reads the true arrival rate.

Since session 24 the per-replica signals the rules scale on are the simulator's as well: the emulator's GPU
utilisation is the busy fraction the simulator's replicas report at the same per-replica rate (near 1 from half a
replica's capacity on, as DCGM reads a batching vLLM), not the M/M/c queue's utilisation (arrivals over service
capacity), a gauge exactly proportional to the load that no vLLM exports and that made HPA a request-rate rule.

slo-rl and three rule families run side by side, each setting on its own Deployment and emulator, under one
operator: the same segment, the same machine load. HPA on gpu_utilization at every target of ``HPA_TARGETS``
(TP 8, as in the simulator's sweep; the issue's comparison); KEDA on the request rate per replica
(``KEDA_RATE_THRESHOLDS``), the load-proportional rule the old emulator's HPA amounted to; KEDA on running plus
waiting requests (``KEDA_RW_THRESHOLDS``). Each family's best is its cheapest setting that met the SLO here
(hindsight tuning, as the simulator's sweep does). slo-rl gets no ``slo_attainment`` query: the operator derives
it from the objective's TTFT histogram (controller/prometheus.py, ``histogram_fraction``), so its dual price
rises after misses as it does in the simulator.

Asserted: the checkpoint was restored with the settings it records; slo-rl acted, saw slo_attainment, scaled up for
the plateau and back down after it, and reached ``ATTAINMENT_FLOOR``; some HPA target held the SLO, and slo-rl used
fewer replica-minutes and fewer GPU-minutes than the cheapest one that did (0.48-0.55x in runs 30-32 of
docs/learned-autoscaler.md, "In the operator, end to end"); no replica asked for went without a node. Printed, not
asserted: whether slo-rl held the 0.99 SLO in this run (one real-time run is one seed), and its cost against each
family's best; against the request-rate rule it is at parity (0.985-1.003x in runs 30-32), not below.

The way it used to miss, or over-react and cost 1.1-1.3x the old emulator's
HPA: one 3 -> 2 step at ~6.5-7 requests/s at the start of the ramp down, at price 0 (its capacity posterior,
logistic in load per GPU, read 3 replicas' evidence as room for 2). Since session 23 the checkpoint records
``down_evidence`` 1.0, chosen on the training side: a scale-down plans no more load per GPU than the template met
the SLO at with as many replicas or fewer, here the ~5 requests/s 2 replicas met on the ramp up.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import subprocess
import sys
import time
import zlib
from pathlib import Path

import kubernetes
import pytest

from controller.checkpoint import inflate

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
    status,
    wait_status,
)

pytestmark = pytest.mark.e2e

CHECKPOINT = REPO / "simulator" / "checkpoints" / "slo-rl-diurnal.ckpt"
"""The bundled diurnal checkpoint (TP 8 throughout here). Session 25 ran this test with slo-rl-diurnal-levels.ckpt
(trained over load levels with the pool term; it switches to TP 4 in the operator): SLO held in 4 runs of 4 at
0.415-0.497x HPA's GPU-minutes. It is not the one tested because in the simulator it missed the SLO on 2 of 10
evaluation seeds where this one met all 10 (docs/learned-autoscaler.md, "A capacity term for the pool")."""
SLO_S, ATTAINMENT = 5.0, 0.99
ATTAINMENT_FLOOR = 0.95
"""What one run must reach: far enough below the 0.99 SLO that the timing of one real-time run does not
fail it (runs that missed the SLO reached 0.970-0.989), high enough that a policy that reacts much too
late or too little fails it (one that never scales up for the plateau fails ``peak >= 3`` already)."""
INTERVAL_S = 2
WINDOW_S = 4
"""Rate window: two intervals (four 1 s scrapes); exact now that the emulator's counters are continuous."""
SCHEDULE = "0:1,20:1,80:8,100:8,160:1,180:1"
"""time_s:requests/s from the emulator's start: flat, ramp up to the eval day's peak over 30 intervals,
hold, down over 30. The eval day climbs about as far over some 100 intervals, so this ramp is still
~3x steeper per interval than the day's (it was 30x at 2 s intervals over 20 when the segment ran
policies one after the other)."""
SEGMENT_S = 180
CALIBRATE = "llama2-70b:a100-80gb"
"""The checkpoint's model and hardware (the eval scenario's)."""
HPA_TARGETS = (0.8, 0.85, 0.9)
"""HPA's gpu_utilization targets swept on this segment. Since session 24 the emulator's GPU utilisation is the
simulator's busy fraction (0.97-0.99 at half a replica's capacity), so as in the simulator's sweep a target above
0.9 never scales up (1.0 / target stays inside the 10% tolerance) and 0.9 is the top; below 0.8 (0.5-0.7, swept
before, when the emulator exported the M/M/c queue's utilisation) only costs more (0.7: 27 replica-min in run 30)."""
KEDA_RATE_THRESHOLDS = (2.2, 2.4, 2.6, 2.8)
"""KEDA on the request rate (requests/s per replica, ``query: rate``): the load-proportional rule. Three TP 8
replicas serve 8.8 requests/s at the SLO, 2.9 each; HPA at 0.85 on the emulator's old utilisation (the M/M/c
queue's, arrivals over 3.25 requests/s per replica) amounted to this rule at 2.76."""
KEDA_RW_THRESHOLDS = (4.0, 8.0)
"""KEDA on running + waiting requests per replica (``query: running+waiting``), the suite's in-flight form
(16 missed in run 30: 0.951, oscillating between 3 and 10 replicas)."""
COMPRESSION = 60 / INTERVAL_S
"""Simulated seconds per second here: the simulator's control interval is 60 s."""
HPA_TIME = {
    "sync_period_s": 15 / COMPRESSION,
    "scale_down_stabilization_s": 300 / COMPRESSION,
    "scale_up_policies": [["Pods", 4, 15 / COMPRESSION], ["Percent", 100, 15 / COMPRESSION]],
    "scale_down_policies": [["Percent", 100, 15 / COMPRESSION]],
}
"""HPA's Kubernetes time constants compressed as the segment is: in the simulator its 5-minute scale-down
stabilization is 5 control intervals; uncompressed it would be 150 intervals here, longer than the whole
segment, and HPA could never scale down after the peak (the first run did exactly that)."""
HPA_INTERVAL_S = 1
"""HPA evaluates every 15 s in the simulator, 4 times per 60 s interval (its own period, simulator/runner.py):
0.5 s here, so as often as the 1 s scrape allows."""
EXTRA_NODES = 62
"""64 8-GPU nodes in all (512 GPUs): eleven Deployments start at 4 x TP 8 each (352 GPUs) with room to grow (HPA on
the busy fraction holds 5-11 replicas at the plateau). A pod left Pending would not be costed: the test checks
that the replicas asked for at once never outgrow the nodes."""
SLO_RL_COLD_START_S = 60 / COMPRESSION
"""The checkpoint's cold start (60 s, one simulated interval, state ``cold_start_s``) in this segment's
time: kwok's pods run within about a second, so one 2 s interval is what 60 s was. Left at 60 s, slo-rl
forecasts 1 + 60/2 = 31 intervals ahead (a whole ramp) at its upper quantile: the second run planned
for 29.7 requests/s at a true 8 and went to 9 x TP 8."""
SLO_RL_MIN_REQUESTS = 20 / COMPRESSION
"""slo-rl's ``floor_min_requests`` (20, the requests an interval needs before its tail counts as evidence of
what a size can serve, ``down_evidence``) in this segment's time: a 60 s interval at 5 requests/s holds 300
requests, a 2 s one 10, so left at 20 no interval here would ever count."""
KNOBS = {
    "replicas": {"min": 1, "max": 16},
    "gpusPerReplica": {"choices": [4, 8]},
    "batchSize": {"min": 16, "max": 64, "step": 16},
}
"""The eval scenario's knobs, exactly: a checkpoint is refused for a policy with other knobs."""


@pytest.fixture(scope="module")
def extra_gpu_nodes(control_plane: ControlPlane):
    """More fake GPU nodes for this module only (the session's two hold 16 GPUs; each service starts at 32)."""
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

    wait_until(ready, what="extra GPU nodes Ready", timeout_s=120)
    yield names
    for name in names:
        core.delete_node(name)


def compressed_checkpoint(src: Path, dst: Path) -> Path:
    """``src`` with its cold start and its request threshold in this segment's time
    (:data:`SLO_RL_COLD_START_S`, :data:`SLO_RL_MIN_REQUESTS`), all else as trained.

    Its provenance keeps the settings it records (the bundled one: ``down_evidence`` 1.0 and, since session 25,
    ``dual_step`` 0.03, both chosen on the training side by scripts/choose_deployed.py) and adds ``risk_max`` as
    trained: the operator runs a checkpoint with its provenance's settings, and the test reads them back in the
    status."""
    doc = json.loads(inflate(src.read_bytes()))
    doc["state"]["cold_start_s"] = SLO_RL_COLD_START_S
    doc["state"]["settings"]["cold_start_s"] = SLO_RL_COLD_START_S
    prov = doc["state"]["provenance"]
    prov["settings"] = {**prov.get("settings", {}), "risk_max": doc["state"]["settings"]["risk_max"],
                        "floor_min_requests": SLO_RL_MIN_REQUESTS}
    dst.write_bytes(zlib.compress(json.dumps(doc, separators=(",", ":")).encode(), level=9))
    return dst


def recorded_settings(ckpt: Path) -> dict:
    """The settings a checkpoint's provenance records: what the operator adopts and shows in the status."""
    return json.loads(inflate(ckpt.read_bytes()))["state"]["provenance"]["settings"]


def sizing_policy(name: str, learner: dict) -> dict:
    interval = HPA_INTERVAL_S if learner["name"] in ("hpa", "keda") else INTERVAL_S
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
            "intervalSeconds": interval,
            # No slo_attainment query: the operator derives it from the objective's TTFT histogram.
            "metrics": {"windowSeconds": WINDOW_S},
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


def hpa_name(target: float) -> str:
    return f"hpa-{round(target * 100):03d}"


RULES: dict[str, dict[float, str]] = {
    "HPA gpu_utilization": {t: hpa_name(t) for t in HPA_TARGETS},
    "KEDA rate": {t: f"keda-rate-{round(t * 10):03d}" for t in KEDA_RATE_THRESHOLDS},
    "KEDA running+waiting": {t: f"keda-rw-{round(t):03d}" for t in KEDA_RW_THRESHOLDS},
}
"""Each rule's swept settings and the Deployment (and SizingPolicy) that runs it."""


def rule_learners() -> dict[str, dict]:
    """The SizingPolicy learner of every swept rule, under its Deployment's name, with Kubernetes' time constants
    compressed as the segment is (KEDA's HPA underneath takes the same ones; its 30 s polling only gates
    activation, which a minimum of one replica never uses)."""
    learners = {name: {"name": "hpa", "settings": {"metric": "gpu_utilization", "target": t, **HPA_TIME}}
                for t, name in RULES["HPA gpu_utilization"].items()}
    for rule, query in (("KEDA rate", "rate"), ("KEDA running+waiting", "running+waiting")):
        learners |= {name: {"name": "keda", "settings": {"query": query, "threshold": t, **HPA_TIME,
                                                         "polling_interval_s": 30 / COMPRESSION}}
                     for t, name in RULES[rule].items()}
    return learners


def run_side_by_side(plane: ControlPlane, prometheus: PrometheusServer, prometheus_scrape, ns: str,
                     policies: dict[str, dict], tmp_path: Path, checkpoint: tuple[str, Path]) -> dict[str, dict]:
    """Run the segment against every policy at once (one Deployment and emulator each, one operator);
    returns per policy the emulator's totals, attainment, resizes and the replicas seen over time."""
    apps = kubernetes.client.AppsV1Api(plane.api_client)
    for name, learner in policies.items():
        make_deployment(plane, ns, name)
        custom(plane).create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, sizing_policy(name, learner))
    ckpt_policy, ckpt_file = checkpoint
    pushed = subprocess.run(
        [sys.executable, "-m", "controller.run_cmd", "push-checkpoint", str(ckpt_file), "--policy", ckpt_policy,
         "-n", ns, "--kubeconfig", str(plane.kubeconfig)],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert pushed.returncode == 0, pushed.stderr + pushed.stdout
    for name in policies:
        wait_until(lambda name=name: (apps.read_namespaced_deployment(name, ns).status.ready_replicas or 0) == 4,
                   what=f"{name}: 4 pods Ready", timeout_s=120)
    ports = {name: free_port() for name in policies}
    op_log = tmp_path / "operator.log"
    sizes: dict[str, list[str]] = {name: [] for name in policies}
    attainment_seen: list[float] = []  # slo_attainment in the checkpoint policy's status.metrics
    bursts_seen: list[float] = []  # log(request_rate_peak_per_second / request_rate_per_second), the same
    with process(operator_argv(plane, prometheus.url, free_port()), op_log), contextlib.ExitStack() as emulators:
        st = wait_status(plane, ns, ckpt_policy, lambda s: "restoredFrom" in s.get("checkpoint", {}),
                         "the checkpoint restored", 60, op_log)
        restored = st["checkpoint"]["restoredFrom"]
        # the checkpoint's settings, adopted and shown (the CRD's status schema keeps them)
        recorded = recorded_settings(checkpoint[1])
        assert recorded["down_evidence"] == 1.0 and recorded["floor_min_requests"] == SLO_RL_MIN_REQUESTS, recorded
        assert st["checkpoint"].get("settings") == recorded, st["checkpoint"]
        for name in policies:
            emulators.enter_context(process(
                [sys.executable, str(EMULATOR), "--kubeconfig", str(plane.kubeconfig), "--namespace", ns,
                 "--deployment", name, "--port", str(ports[name]), "--calibrate", CALIBRATE,
                 "--schedule", SCHEDULE, "--slo", str(SLO_S)], tmp_path / f"emulator-{name}.log"))
        prometheus_scrape([f"127.0.0.1:{port}" for port in ports.values()])
        for name, port in ports.items():
            wait_until(lambda port=port: bool(counters(port)), what=f"emulator of {name} serving", timeout_s=120)
        start = time.monotonic()
        while time.monotonic() - start < SEGMENT_S:
            for name in policies:
                dep = apps.read_namespaced_deployment(name, ns)
                sizes[name].append(f"{dep.spec.replicas}x{dep.spec.template.spec.containers[0].resources.limits['nvidia.com/gpu']}")
            metrics = status(plane, ns, ckpt_policy).get("metrics", {})
            value = metrics.get("slo_attainment")
            if isinstance(value, int | float):
                attainment_seen.append(float(value))
            peak, rate = metrics.get("request_rate_peak_per_second"), metrics.get("request_rate_per_second")
            if isinstance(peak, int | float) and isinstance(rate, int | float) and rate > 0 and peak > 0:
                bursts_seen.append(math.log(peak / rate))
            time.sleep(4)
        seen = {name: counters(port) for name, port in ports.items()}
    events = kubernetes.client.CoreV1Api(plane.api_client).list_namespaced_event(ns).items
    for name, got in seen.items():
        got["resizes"] = sum(1 for e in events if e.reason == "AutocmResized" and e.involved_object.name == name)
        got["attainment"] = got["emulator_requests_within_slo_total"] / max(got["emulator_requests_total"], 1e-9)
        got["gpu_min"] = got["emulator_gpu_seconds_total"] / 60
        got["replica_min"] = got["emulator_pod_seconds_total"] / 60
        got["restored"] = restored if name == ckpt_policy else ""
        got["status_attainment"] = attainment_seen if name == ckpt_policy else []
        got["status_bursts"] = bursts_seen if name == ckpt_policy else []
        got["replicas"] = [int(size.split("x")[0]) for size in sizes[name]]
        if name == ckpt_policy:
            if bursts_seen:
                median = sorted(bursts_seen)[len(bursts_seen) // 2]
                print(f"burst feature (log peak / rate) in status: median {median:.3f}, "
                      f"range {min(bursts_seen):.3f}-{max(bursts_seen):.3f} over {len(bursts_seen)} reads")
            print("\n".join(f"  {e.message}" for e in sorted(
                (e for e in events if e.reason == "AutocmResized" and e.involved_object.name == name),
                key=lambda e: e.first_timestamp or e.event_time)))
        print(f"\n{name}: attainment {got['attainment']:.4f} over {got['emulator_requests_total']:.0f} requests, "
              f"{got['gpu_min']:.1f} GPU-min, {got['replica_min']:.1f} replica-min, {got['resizes']:.0f} resizes, "
              f"size every 4 s {sizes[name]}")
    for name in policies:
        apps.delete_namespaced_deployment(name, ns)
    wait_until(lambda: not kubernetes.client.CoreV1Api(plane.api_client).list_namespaced_pod(ns).items,
               what="the segment's pods gone", timeout_s=120)
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
    policies = {"rl": {"name": "slo-rl", "checkpoint": "configmap/slo-rl-diurnal"}} | rule_learners()
    seen = run_side_by_side(control_plane, prometheus, prometheus_scrape, namespace, policies, tmp_path,
                            ("rl", compressed_checkpoint(CHECKPOINT, tmp_path / "slo-rl-diurnal.ckpt")))
    rl = seen["rl"]
    samples = min(len(got["replicas"]) for got in seen.values())
    asked = [sum(got["replicas"][i] for got in seen.values()) for i in range(samples)]
    # Every TP 8 replica asked for had a node (the emulators cost Running pods only: a Pending one would be free).
    assert max(asked) <= EXTRA_NODES + 2, asked
    best: dict[str, float | None] = {}
    for rule, swept in RULES.items():
        passing = {t: seen[name] for t, name in swept.items() if seen[name]["attainment"] >= ATTAINMENT}
        best[rule] = min(passing, key=lambda t: passing[t]["replica_min"]) if passing else None
        sweep = ", ".join(f"{t}: {seen[name]['attainment']:.4f} / {seen[name]['replica_min']:.1f} replica-min"
                          for t, name in swept.items())
        print(f"{rule} sweep: {sweep}; cheapest passing {best[rule]}")
        if best[rule] is not None:
            chosen = seen[swept[best[rule]]]
            print(f"slo-rl / {rule} {best[rule]}: replica-minutes {rl['replica_min'] / chosen['replica_min']:.3f}, "
                  f"GPU-minutes {rl['gpu_min'] / chosen['gpu_min']:.3f}")
    print("E2E-SUMMARY " + json.dumps({
        "slo_rl": {k: rl[k] for k in ("attainment", "replica_min", "gpu_min", "resizes")},
        "rules": {rule: {str(t): {k: seen[name][k] for k in ("attainment", "replica_min")}
                         for t, name in swept.items()} for rule, swept in RULES.items()},
        "best": best}))
    assert rl["restored"].startswith("configmap/slo-rl-diurnal"), rl
    assert rl["resizes"] >= 1  # the learned policy acted
    # The operator derived slo_attainment from the TTFT histogram (no query given) and the learner saw it.
    assert rl["status_attainment"] and all(0.0 <= a <= 1.0 for a in rl["status_attainment"]), rl
    # and the burst (the largest 2 s rate in the 4 s window): slo-rl's burst feature, 0 in the operator
    # before session 22 while every checkpoint learned it from the simulator at about 0.3.
    # The peak's points need not line up with the rate's window, so a read may sit just below 0, and in
    # this compressed segment the median sat at 0.003-0.022 over four runs: only "it is there, and some
    # interval had a burst" is asserted (maxima 0.30-0.50).
    bursts = rl["status_bursts"]
    assert len(bursts) >= 10 and max(bursts) > 0, bursts
    # It followed the load: up for the 8 requests/s plateau (one TP 8 replica serves ~2.8 at the SLO)
    # and back down after it.
    peak = max(rl["replicas"])
    assert peak >= 3 and rl["replicas"][-1] < peak, rl["replicas"]
    assert rl["attainment"] >= ATTAINMENT_FLOOR, rl
    assert best["HPA gpu_utilization"] is not None, "no HPA target held the SLO on this segment: widen HPA_TARGETS"
    # The issue's comparison: the SLO held at fewer replica-minutes than HPA's cheapest passing target on the same
    # segment (runs 30-32: 0.48-0.55x), and fewer GPU-minutes, the unit of cost: the same ratio while both run TP 8,
    # not once a checkpoint runs TP 4 replicas (4 GPUs) beside HPA's TP 8 ones (session 25's runs 33-35 with the
    # levels checkpoint: 0.415-0.497x in GPU-minutes, 0.72-0.89x in replica-minutes).
    hpa_best = seen[RULES["HPA gpu_utilization"][best["HPA gpu_utilization"]]]
    assert rl["replica_min"] < hpa_best["replica_min"], (rl, hpa_best)
    assert rl["gpu_min"] < hpa_best["gpu_min"], (rl, hpa_best)
    # NOT asserted on one run: attainment >= the SLO's 0.99. One real-time run is one seed of a learner
    # that is randomised by the machine's timing; the SLO is a property tested across seeds in the
    # simulator (tests/unit/learners/test_slo_rl.py, >= 9 of 10). Here slo-rl held it in most runs, not
    # all (docs/learned-autoscaler.md, "In the operator, end to end", with the count).
    # NOT asserted: slo-rl below the request-rate rule's best. It is at parity with it (0.985-1.003x in runs
    # 30-32; the levels checkpoint 0.85-1.04x in GPU-minutes in runs 33-35), within one run's noise.
