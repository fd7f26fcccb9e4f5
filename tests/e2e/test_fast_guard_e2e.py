"""The operator's fast timescale end to end: slo-rl's fast guard scales a real Deployment up between two
control steps, from a queue scraped by the real Prometheus, and the same policy without ``fast_period_s``
does not.

Two Deployments of 2 one-GPU pods side by side under one ``autocm run`` (the same machine load), each
served by its own tests/e2e/emulator.py, each with an slo-rl policy (untrained) in apply mode on an
``INTERVAL_S`` control interval; only ``fast`` sets ``fast_period_s`` (``FAST_PERIOD_S``, the operator's
floor), so the operator gives it ``INTERVAL_S / FAST_PERIOD_S - 1`` fast steps between two control steps,
each reading only ``vllm:num_requests_waiting`` and ``rate(vllm:request_success_total[5s])`` (Prometheus
scrapes every 1 s, conftest.E2ESettings, so a 5 s rate holds 5 samples). Right after both policies' first
control step the test steps both emulators' arrivals from ``LOW_RATE`` to ``HIGH_RATE`` (``POST /rate``):
anything under 7 pods is overloaded and the emulator reports 100 requests waiting. It samples both
Deployments and the operator's decision counters every ``POLL_S`` until each policy's next control step.

Asserted: before ``fast``'s next control step began (its status time), its Deployment grew, within three
fast periods of the step (the first look may read the fast cache filled before it), and never shrank;
each change has an ``AutocmFastScaleUp`` event ("replicas a -> b: fast guard: N queued ...", b > a, N the
emulator's queue, the changes a chain from the size before the step) timed strictly between the two
control steps' status times; ``autocm_operator_decisions_total{outcome="fast_applied"}`` on the operator's
/metrics counts exactly those events; the next control step's status reports the size the fast path
left. ``control`` kept its 2 pods until its own next control step, with no fast event and no fast outcome.
A typical run (2 shared cores): fast 2 -> 8 at +5 s after the step (2 -> 5 -> 8 while the emulator counted
arrivals as completions: the guard read 1.5 req/s per pod where a pod serves under 0.5); control 2 -> 8
at its next control step, +30 s.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import kubernetes
import pytest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import ControlPlane, PrometheusServer, free_port, http_get, wait_until
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
    wait_status,
)

pytestmark = pytest.mark.e2e

INTERVAL_S = 30
"""Control interval: long enough that a reaction within it is visibly not a control step's."""
FAST_PERIOD_S = 5
"""The operator's floor (controller/operator.py FAST_FLOOR_S): 5 fast steps per interval."""
SERVICE_RATE = 0.5
"""Requests/s one emulated 1-GPU pod serves: a 70B-class replica, the scale slo-rl's untrained prior is
centred on (learners/slo_rl.py LOAD_REF, 0.25 requests/s per GPU). At the emulator's default 8/s the
prior asks for 6-8 replicas at any load the emulator can tell from idle, leaving the fast path no room."""
LOW_RATE, HIGH_RATE = 0.02, 3.0
"""Arrivals/s before and after the step. At 0.02/s slo-rl keeps the 2 replicas it starts with (its plan
asks for 3 from about 0.05/s) and nothing waits; 3/s overloads anything under 7 pods, so the emulator
reports 100 waiting, 33 s of work for 2 pods against the guard's bar of 0.5 x the 0.5 s target."""
TTFT_TARGET_S = 0.5
POLL_S = 0.3
FAST = "fast"
CONTROL = "control"


def sizing_policy(name: str, settings: dict) -> dict:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "SizingPolicy",
        "metadata": {"name": name},
        "spec": {
            "targetRef": {"kind": "Deployment", "name": name},
            "workload": "inference",
            "objective": {"metric": "ttft_p99_seconds", "target": TTFT_TARGET_S},
            "knobs": {"replicas": {"min": 1, "max": 8}},  # 2 x 8 = the session's 16 fake GPUs
            "learner": {"name": "slo-rl", "settings": settings},
            "mode": "apply",
            "intervalSeconds": INTERVAL_S,
            "metrics": {"windowSeconds": 10},
        },
    }


def decisions(port: int, ns: str) -> dict[tuple[str, str], float]:
    """``autocm_operator_decisions_total`` of the operator's /metrics: (policy, outcome) -> count."""
    code, body = http_get(f"http://127.0.0.1:{port}/metrics")
    assert code == 200
    return {(s.labels["policy"], s.labels["outcome"]): s.value
            for family in text_string_to_metric_families(body.decode())
            if family.name == "autocm_operator_decisions"
            for s in family.samples
            if s.name.endswith("_total") and s.labels.get("namespace") == ns}


def control_steps(counts: dict[tuple[str, str], float], policy: str) -> int:
    """Control steps so far: every outcome but the fast timescale's (fast_applied/recommended/refused)."""
    return round(sum(v for (p, outcome), v in counts.items() if p == policy and not outcome.startswith("fast_")))


def set_rate(port: int, rate: float) -> None:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/rate", data=str(rate).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=5) as resp:
        assert resp.status == 204


def event_time(event) -> datetime:
    return event.last_timestamp or event.first_timestamp or event.event_time


def status_time(st: dict) -> datetime:
    return datetime.strptime(st["lastDecision"]["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


FAST_EVENT = re.compile(r"^replicas (\d+) -> (\d+): fast guard: (\d+) queued, ([\d.]+) req/s served by (\d+) ready")


def test_fast_guard_scales_up_between_control_steps_and_only_with_fast_period(
    crd,  # noqa: F811
    control_plane: ControlPlane,
    namespace: str,
    prometheus: PrometheusServer,
    prometheus_scrape,
    tmp_path: Path,
) -> None:
    plane, ns = control_plane, namespace
    apps = kubernetes.client.AppsV1Api(plane.api_client)
    core = kubernetes.client.CoreV1Api(plane.api_client)
    settings = {FAST: {"fast_period_s": FAST_PERIOD_S}, CONTROL: {}}
    for name in settings:
        make_deployment(plane, ns, replicas=2, name=name)
    emu_ports = {name: free_port() for name in settings}
    metrics_port = free_port()
    op_log = tmp_path / "operator.log"
    with contextlib.ExitStack() as stack:
        for name, port in emu_ports.items():
            stack.enter_context(process(
                [sys.executable, str(EMULATOR), "--kubeconfig", str(plane.kubeconfig), "--namespace", ns,
                 "--deployment", name, "--port", str(port), "--rate", str(LOW_RATE),
                 "--service-rate", str(SERVICE_RATE)],
                tmp_path / f"emulator-{name}.log"))
        prometheus_scrape([f"127.0.0.1:{port}" for port in emu_ports.values()])
        # Both emulators scraped with their 2 Running pods (4 vllm series; the emulator lists Running pods).
        wait_until(lambda: len(prometheus.query(f'vllm:request_success_total{{namespace="{ns}"}}')) == 4,
                   what="both emulators' pods scraped", timeout_s=60)

        for name, learner_settings in settings.items():
            custom(plane).create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL,
                                                          sizing_policy(name, learner_settings))
        stack.enter_context(process(operator_argv(plane, prometheus.url, metrics_port), op_log))

        def first_steps_done() -> bool:
            counts = decisions(metrics_port, ns)
            return all(control_steps(counts, name) >= 1 for name in settings)

        try:
            wait_until(first_steps_done, what="both policies' first control step", timeout_s=60, interval_s=0.2)
        except Exception as exc:
            raise AssertionError(f"{exc}\noperator log:\n{op_log.read_text(errors='replace')[-4000:]}") from exc
        counts = decisions(metrics_port, ns)
        steps_before = {name: control_steps(counts, name) for name in settings}
        base = {name: apps.read_namespaced_deployment(name, ns).spec.replicas for name in settings}
        # The counter moves before the status is written (Engine.step): wait for the first step's status.
        first_status = {name: wait_status(plane, ns, name, lambda s: "lastDecision" in s, "a first status", 30, op_log)
                        for name in settings}
        t_step = time.monotonic()
        for port in emu_ports.values():
            set_rate(port, HIGH_RATE)

        # Sample both Deployments and the counters until each policy's next control step.
        timeline: list[tuple[float, float, dict[str, int], dict[str, int]]] = []  # (+s, wall, replicas, steps)
        deadline = t_step + INTERVAL_S + 30
        while time.monotonic() < deadline:
            wall = time.time()
            replicas = {name: apps.read_namespaced_deployment(name, ns).spec.replicas for name in settings}
            counts = decisions(metrics_port, ns)
            steps = {name: control_steps(counts, name) for name in settings}
            timeline.append((time.monotonic() - t_step, wall, replicas, steps))
            if all(steps[name] > steps_before[name] for name in settings):
                break
            time.sleep(POLL_S)
        # The next step's status: its lastDecision.time is when that step began (whole seconds).
        next_status = {name: wait_status(
            plane, ns, name, lambda s, t0=first_status[name]["lastDecision"]["time"]: s["lastDecision"]["time"] != t0,
            "the next control step's status", 30, op_log) for name in settings}
        final_counts = decisions(metrics_port, ns)

    log_tail = "\n".join(op_log.read_text(errors="replace").splitlines()[-40:])
    story = "\n".join(f"  +{t:5.1f} s replicas {r} control steps {s}" for t, _, r, s in timeline)
    print(f"\nbase {base}, control steps before the load step {steps_before}\n{story}")
    context = f"\ntimeline:\n{story}\noperator log:\n{log_tail}"
    assert all(timeline[-1][3][name] > steps_before[name] for name in settings), \
        "a policy made no second control step within the interval + 30 s" + context

    # Samples taken before fast's next control step began: only the fast path could act on them.
    between = [(t, r[FAST]) for t, wall, r, _ in timeline if wall < status_time(next_status[FAST]).timestamp()]
    sizes = [n for _, n in between]
    assert sizes == sorted(sizes), "the fast path took replicas away" + context
    grown = [t for t, n in between if n > base[FAST]]
    assert grown, "fast: no scale-up between its control steps" + context
    # Within three fast periods (the first look may still read the fast cache filled before the step).
    assert grown[0] <= 3 * FAST_PERIOD_S, context

    events = [e for e in core.list_namespaced_event(ns).items if e.reason == "AutocmFastScaleUp"]
    mine = sorted((e for e in events if e.involved_object.name == FAST), key=event_time)
    assert [e.involved_object.name for e in events] == [FAST] * len(events), "control got a fast event"
    assert mine, "no AutocmFastScaleUp event" + context
    assert all(e.involved_object.kind == "SizingPolicy" and e.type == "Normal" for e in mine)
    changes = []
    for e in mine:
        m = FAST_EVENT.match(e.message)
        assert m, e.message
        before, after, queued = int(m.group(1)), int(m.group(2)), int(m.group(3))
        assert after > before and queued >= 50, e.message  # the overloaded emulator reports 100 waiting
        # strictly between the two control steps (the status' times, in whole seconds)
        assert status_time(first_status[FAST]) < event_time(e) < status_time(next_status[FAST]), (
            e.message, event_time(e), first_status[FAST]["lastDecision"], next_status[FAST]["lastDecision"])
        changes.append((before, after))
    fast_top = changes[-1][1]
    assert changes[0][0] == base[FAST] and fast_top in sizes and fast_top == sizes[-1], (changes, context)
    assert all(a == b for (_, a), (b, _) in itertools.pairwise(changes)), changes  # a chain, up only
    assert final_counts.get((FAST, "fast_applied"), 0) == len(mine) >= 1, final_counts
    # The next control step saw (and its status reports) the size the fast path left.
    assert next_status[FAST]["currentConfig"]["replicas"] == fast_top, next_status[FAST]

    # control: no fast timescale; its size held until its own next control step.
    held = [r[CONTROL] for _, wall, r, _ in timeline if wall < status_time(next_status[CONTROL]).timestamp()]
    assert held and set(held) == {base[CONTROL]}, "control changed between its control steps" + context
    assert not [k for k in final_counts if k[0] == CONTROL and k[1].startswith("fast_")], final_counts
    print(f"fast: {base[FAST]} -> {fast_top} replicas ({changes}), first change +{grown[0]:.1f} s after the "
          f"load step; control: {base[CONTROL]} replicas until its next control step, then "
          f"{next_status[CONTROL].get('lastDecision', {}).get('message', '')!r}")
