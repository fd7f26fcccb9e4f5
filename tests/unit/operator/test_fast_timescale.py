"""The operator's fast timescale (controller/loop.py's ``fast_step``): ClusterSource.peek over a short
PromQL window, Engine.fast_step between two control steps, the daemon's schedule and its bounds."""

from __future__ import annotations

import asyncio
import contextlib
import math

import pytest
from operator_fakes import FakeKube, deployment, fake_prometheus, node, vector
from prometheus_client import generate_latest
from test_engine import DEPLOY, PODS, POLICY, Clock, engine_for, policy_body, step

from controller.operator import FAST_FLOOR_S, Engine, operator_fast_period, policy_loop, replica_samples
from learners.types import ReplicaSample

KEY = "ml/web-policy"


class Cluster:
    """What the fake Prometheus answers, per query: a queue (gauge) and completion rates per window."""

    def __init__(self, queue: float = 0.0, rate_15s: float = 2.0, rate_60s: float = 2.0) -> None:
        self.queue, self.rates = queue, {"15s": rate_15s, "60s": rate_60s}

    def __call__(self, q: str):
        per_pod = len(PODS)
        if "time_to_first_token" in q:  # well under the 0.5 s target: the slow path has no reason to act
            return vector([s for p in PODS for s in (({"namespace": "ml", "pod": p, "le": "0.1"}, 10.0),
                                                     ({"namespace": "ml", "pod": p, "le": "+Inf"}, 10.0))])
        if "request_success" in q and "]))[" in q:  # the burst's subquery: no short-window data here
            return vector([])
        if "request_success" in q:
            window = q.rsplit("[", 1)[1].split("]")[0]
            return vector([({"namespace": "ml", "pod": p}, self.rates[window] / per_pod) for p in PODS])
        if "num_requests_waiting" in q:
            return vector([({"namespace": "ml", "pod": p}, self.queue / per_pod) for p in PODS])
        return vector([])


def slo_rl(fast_period_s: float | None = 15.0) -> dict:
    settings = {} if fast_period_s is None else {"fast_period_s": fast_period_s}
    return {"name": "slo-rl", "settings": settings}


def cluster(body, ready: int | None = None) -> FakeKube:
    kube = FakeKube()
    dep = deployment(replicas=2, gpus=1)
    if ready is not None:
        dep["status"] = {"replicas": 2, "readyReplicas": ready}
    kube.put(DEPLOY, dep)
    for i in range(8):  # room for 64 one-GPU pods: capacity never cuts a scale-up here
        kube.put(f"/api/v1/nodes/n{i}", node(f"n{i}"))
    kube.put(POLICY, body)
    return kube


def body_of(learner: dict, mode: str = "apply", interval: float = 60) -> dict:
    body = policy_body(mode, learner=learner, intervalSeconds=interval)
    body["spec"]["knobs"] = {"replicas": {"min": 1, "max": 64}}
    return body


def replicas(kube: FakeKube) -> int:
    return kube.objects[DEPLOY]["spec"]["replicas"]


def all_ready(kube: FakeKube) -> None:
    """The pods of the current scale are up (the fake apiserver runs no controller)."""
    n = replicas(kube)
    kube.objects[DEPLOY]["status"] = {"replicas": n, "readyReplicas": n}


def status_writes(kube: FakeKube) -> int:
    return sum(1 for _, p, _ in kube.writes("APPLY") if p == POLICY + "/status")


# --- (a) peek -------------------------------------------------------------------------------------------


def test_peek_reads_the_short_window_and_the_queue_now():
    kube = cluster(body_of(slo_rl()), ready=1)
    prom_state = Cluster(queue=7.0, rate_15s=6.0, rate_60s=1.0)
    with fake_prometheus(prom_state) as prom:
        eng = engine_for(prom.url, kube, Clock())
        step(eng, kube)  # builds the runner (the slow path: 60 s window)
        all_ready(kube)
        kube.objects[DEPLOY]["status"]["readyReplicas"] = replicas(kube) - 1  # one replica still boots
        runner = eng.runners[KEY]
        before = len(prom.queries)
        obs = runner.source.peek(KEY, eng.clock())
        fast_queries = prom.queries[before:]
    assert obs is not None
    assert obs.metrics == {"queue_length": 7.0, "request_rate_per_second": 6.0}  # 15 s rate, not the 60 s one
    assert obs.interval_s == 15.0 and obs.events == {"completed": 90.0}  # 6 req/s for 15 s
    assert obs.config == {"replicas": replicas(kube)}
    n = replicas(kube)
    assert [r.ready for r in obs.replicas] == [True] * (n - 1) + [False]
    # Only the queue and the rate, over the fast window: no histogram is re-run every 15 s.
    assert sorted(fast_queries) == sorted([
        'sum by (namespace, pod) (rate(vllm:request_success_total{namespace=~"ml"}[15s]))',
        'sum by (namespace, pod) (vllm:num_requests_waiting{namespace=~"ml"})'])


def test_the_slow_observation_carries_the_intervals_completions_as_the_simulators_does():
    """slo-rl's per-replica throughput (its fast and saturation guards' yardstick) comes from
    ``events["completed"]``; the simulator's observe has it, so the operator's must too."""
    kube = cluster(body_of(slo_rl()), ready=2)
    with fake_prometheus(Cluster(queue=0.0, rate_15s=6.0, rate_60s=1.5)) as prom:
        eng = engine_for(prom.url, kube, Clock())
        step(eng, kube)
        obs = eng.runners[KEY].source.observe(KEY, eng.clock())
    assert obs is not None and obs.interval_s == 60.0
    assert obs.events == {"completed": 90.0}  # 1.5 req/s completed over the 60 s interval
    assert eng.runners[KEY].learner._served_per_replica > 0  # the learner read it at the first step


def test_the_slow_observation_carries_readiness_for_slo_rl_and_not_for_hpa():
    """The simulator gives every observation one sample per replica; slo-rl counts only ready ones as
    serving and learns its cold start from the booting ones. The operator's slow path gave it none, with
    or without the fast guard. HPA gets none still: it reads samples as per-pod metric values."""
    for learner in (slo_rl(None), slo_rl(15.0)):
        kube = cluster(body_of(learner), ready=1)
        with fake_prometheus(Cluster(queue=0.0, rate_15s=1.0, rate_60s=1.0)) as prom:
            eng = engine_for(prom.url, kube, Clock())
            step(eng, kube)
            kube.objects[DEPLOY]["spec"]["replicas"] = 2
            kube.objects[DEPLOY]["status"] = {"replicas": 2, "readyReplicas": 1}
            eng.workloads.invalidate(eng.runners[KEY].policy.target)
            obs = eng.runners[KEY].source.observe(KEY, eng.clock())
        assert obs is not None and [r.ready for r in obs.replicas] == [True, False], (learner, obs.replicas)
    kube = cluster(body_of({"name": "hpa", "settings": {"metric": "gpu_utilization", "target": 0.5}}), ready=1)
    with fake_prometheus(Cluster()) as prom:
        eng = engine_for(prom.url, kube, Clock())
        step(eng, kube)
        obs = eng.runners[KEY].source.observe(KEY, eng.clock())
    assert obs is not None and obs.replicas == ()


def test_peek_is_none_without_an_answer():
    kube = cluster(body_of(slo_rl()))
    with fake_prometheus(Cluster()) as prom:
        eng = engine_for(prom.url, kube, Clock())
        step(eng, kube)
        runner = eng.runners[KEY]
    # The fake Prometheus is gone: unreachable.
    eng.clock.t += 15  # type: ignore[attr-defined]
    assert runner.source.peek(KEY, eng.clock()) is None
    assert eng.fast_step(KEY) is None
    # Reachable, but no series for this workload: nothing to look at either.
    with fake_prometheus(lambda q: vector([])) as prom:
        kube2 = cluster(body_of(slo_rl()))
        eng2 = engine_for(prom.url, kube2, Clock())
        step(eng2, kube2)
        assert eng2.runners[KEY].source.peek(KEY, eng2.clock()) is None
    # A policy without a fast period has no fast view at all (and no fast registration).
    kube3 = cluster(body_of(slo_rl(None)))
    with fake_prometheus(Cluster(queue=40.0)) as prom:
        eng3 = engine_for(prom.url, kube3, Clock())
        step(eng3, kube3)
        assert eng3.runners[KEY].source.peek(KEY, eng3.clock()) is None
        assert eng3.fast_shared.metrics_for(KEY) is None


# --- (b) a fast step between two slow steps ---------------------------------------------------------------


def test_a_standing_queue_scales_up_between_two_slow_steps_without_a_status_write():
    kube = cluster(body_of(slo_rl()))
    clock = Clock()
    prom_state = Cluster(queue=0.0, rate_15s=0.2, rate_60s=0.2)  # the slow path picks ~9 replicas
    with fake_prometheus(prom_state) as prom:
        eng = engine_for(prom.url, kube, clock)
        step(eng, kube)
        assert eng.fast_period_of(KEY) == 15.0
        all_ready(kube)
        n = replicas(kube)
        writes, events = status_writes(kube), len(kube.events)

        # No queue: the fast step looks and does nothing.
        clock.t += 15
        assert eng.fast_step(KEY) is None
        assert replicas(kube) == n and len(kube.events) == events and status_writes(kube) == writes

        # 30 requests queue, 0.2 req/s served by n ready replicas: the fast guard adds replicas at once.
        prom_state.queue = 30.0
        clock.t += 15
        result = eng.fast_step(KEY)
        assert result is not None and result.outcome == "fast_applied"
        # slo-rl's fast guard: serve the arrivals and drain the queue within one interval (60 s), and at
        # least half as many replicas again; 0.2 req/s in 15 s is 3 completions, 0.2/n per ready replica,
        # but the last interval's completions (0.2 req/s over the 2 replicas then) say a replica serves 0.1.
        per_replica = max(0.2 / n, 0.2 / 2)
        want = max(math.ceil((0.2 + 30.0 / 60.0) / per_replica), math.ceil(n * 1.5))
        assert 2 < n < want < 64 and replicas(kube) == want
        assert result.applied == {"replicas": float(replicas(kube))}
        fast_events = [e for e in kube.events if e["reason"] == "AutocmFastScaleUp"]
        assert len(fast_events) == 1
        assert fast_events[0]["message"].startswith(f"replicas {n} -> {replicas(kube)}: fast guard: 30 queued")
        assert any(e["reason"] == "AutocmResized" for e in kube.events[events:])  # on the workload
        assert status_writes(kube) == writes  # no status between two intervals
        text = generate_latest(eng.telemetry.registry).decode()
        assert 'autocm_operator_decisions_total{namespace="ml",outcome="fast_applied",policy="web-policy"} 1.0' in text
        assert (f'autocm_operator_applied_config{{knob="replicas",namespace="ml",policy="web-policy"}} '
                f'{float(replicas(kube))}') in text

        # The new replicas boot (not ready yet): the same queue does not add again 15 s later.
        up = replicas(kube)
        clock.t += 15
        assert eng.fast_step(KEY) is None
        assert replicas(kube) == up

        # The next interval's slow step still comes and writes the status with the new configuration.
        clock.t += 15
        assert step(eng, kube).outcome in ("applied", "unchanged")
        assert kube.objects[POLICY]["status"]["currentConfig"] == {"replicas": float(up)}
        assert status_writes(kube) == writes + 1


def test_recommend_mode_and_pause_change_nothing_on_the_fast_path():
    kube = cluster(body_of(slo_rl(), mode="recommend"))
    clock = Clock()
    prom_state = Cluster(queue=40.0)
    with fake_prometheus(prom_state) as prom:
        eng = engine_for(prom.url, kube, clock)
        step(eng, kube)
        all_ready(kube)
        for _ in range(2):
            clock.t += 15
            result = eng.fast_step(KEY)
            assert result is not None and result.outcome == "fast_recommended"
        assert replicas(kube) == 2
        recs = [e for e in kube.events if e["reason"] == "AutocmFastRecommendation"]
        assert len(recs) == 1 and "(recommended, not applied)" in recs[0]["message"]  # not one per look

        paused = body_of(slo_rl())
        paused["metadata"]["annotations"] = {"autocm.io/paused": "true"}
        kube2 = cluster(paused)
        eng2 = engine_for(prom.url, kube2, Clock())
        step(eng2, kube2)
        eng2.clock.t += 15  # type: ignore[attr-defined]
        assert eng2.fast_period_of(KEY) == 15.0 and eng2.fast_step(KEY) is None
        assert replicas(kube2) == 2 and not [e for e in kube2.events if "Fast" in e["reason"]]


def test_a_failing_fast_step_is_contained_and_said_once():
    kube = cluster(body_of(slo_rl()))
    clock = Clock()
    with fake_prometheus(Cluster(queue=40.0)) as prom:
        eng = engine_for(prom.url, kube, clock)
        step(eng, kube)
        all_ready(kube)
        runner = eng.runners[KEY]

        def broken(obs):
            raise RuntimeError("boom")

        runner.learner.react = broken  # type: ignore[method-assign]
        for _ in range(2):
            clock.t += 15
            assert eng.fast_step(KEY) is None
        text = generate_latest(eng.telemetry.registry).decode()
        assert 'autocm_operator_errors_total{stage="learner"} 2.0' in text
        warnings = [e for e in kube.events if e["reason"] == "LearnerFailed"]
        assert len(warnings) == 1 and "fast step (RuntimeError: boom)" in warnings[0]["message"]
        n = replicas(kube)
        clock.t += 30
        assert step(eng, kube).outcome in ("applied", "unchanged")  # the slow path goes on
        assert replicas(kube) >= n


# --- (c) and (d): the daemon's schedule ------------------------------------------------------------------


class Stopped:
    """kopf's DaemonStopped over a fake clock: ``wait`` advances it; stopped after ``until``."""

    def __init__(self, clock: Clock, until: float) -> None:
        self.clock, self.until, self.waits = clock, until, []

    def __bool__(self) -> bool:
        return self.clock.t >= self.until

    async def wait(self, timeout: float):
        self.waits.append(timeout)
        self.clock.t += timeout
        return self


def run_daemon(eng: Engine, clock: Clock, seconds: float) -> tuple[list[float], list[float], Stopped]:
    """The policy's daemon for ``seconds`` of fake time: when its control and fast steps ran."""
    slow, fast = [], []
    real_step, real_fast = eng.step, eng.fast_step

    def counted_step(key):
        slow.append(clock.t)
        return real_step(key)

    def counted_fast(key):
        fast.append(clock.t)
        return real_fast(key)

    eng.step, eng.fast_step = counted_step, counted_fast  # type: ignore[method-assign]
    stopped = Stopped(clock, clock.t + seconds)
    asyncio.run(policy_loop(eng, KEY, stopped))
    return slow, fast, stopped


@contextlib.contextmanager
def policy_engine(learner: dict, prom_state: Cluster):
    """An engine that has seen one policy of ``learner``, its clock, and the fake Prometheus behind it."""
    kube = cluster(body_of(learner))
    clock = Clock()
    with fake_prometheus(prom_state) as prom:
        eng = engine_for(prom.url, kube, clock)
        eng.observe_body(kube.objects[POLICY])
        yield eng, clock, prom


def test_the_daemon_runs_fast_steps_between_slow_steps_and_none_without_a_fast_period():
    with policy_engine(slo_rl(), Cluster()) as (eng, clock, _prom):
        t0 = clock.t
        slow, fast, stopped = run_daemon(eng, clock, 120)
    assert [t - t0 for t in slow] == [0.0, 60.0]  # a slow step every interval, as before
    assert [t - t0 for t in fast] == [15.0, 30.0, 45.0, 75.0, 90.0, 105.0]
    assert stopped.waits == [15.0] * 8

    for learner in (slo_rl(None), {"name": "static", "settings": {"config": {"replicas": 4}}}):
        with policy_engine(learner, Cluster(queue=40.0)) as (eng, clock, _prom):
            slow, fast, stopped = run_daemon(eng, clock, 120)
            assert len(slow) == 2 and fast == [] and stopped.waits == [60.0, 60.0]
            assert eng.fast_period_of(KEY) == 0.0 and Engine.fast_step(eng, KEY) is None
            assert KEY not in eng.fast_shared._workloads


@pytest.mark.parametrize(("period", "interval", "expected"), [
    (0.001, 60, FAST_FLOOR_S),  # hostile: floored, 11 fast steps per minute, not 60,000
    (1e-300, 60, FAST_FLOOR_S),
    (1e9, 60, 0.0),  # as slow as the interval or slower: none
    (60, 60, 0.0),
    (0.001, 7, 0.0),  # under two floors per interval: none
    (0.001, 10, 5.0),
    (15, 60, 15.0),
    (14, 60, 12.0),  # a whole number of fast periods per interval
    (0.001, 86_400, FAST_FLOOR_S),
])
def test_the_fast_period_is_clamped(period, interval, expected):
    class Learner:
        fast_period_s = period

        def react(self, obs):
            return None

    assert operator_fast_period(Learner(), interval) == pytest.approx(expected)


def test_a_hostile_fast_period_cannot_make_runaway_steps_or_queries():
    with policy_engine(slo_rl(0.001), Cluster()) as (eng, clock, prom):
        slow, fast, stopped = run_daemon(eng, clock, 120)
        assert eng.fast_period_of(KEY) == FAST_FLOOR_S
        assert len(slow) == 2 and len(fast) == 2 * 11
        assert min(stopped.waits) == FAST_FLOOR_S
        # Many fast steps at one instant share one refresh of the fast cache.
        before = len(prom.queries)
        for _ in range(50):
            eng.fast_step(KEY)
        assert len(prom.queries) - before <= 2
    # The registration's window is the floor too: no rate over 1 ms.
    assert eng.fast_shared._workloads[KEY].window_s == FAST_FLOOR_S

    with policy_engine(slo_rl(1e9), Cluster(queue=40.0)) as (eng, clock, _prom):
        slow, fast, stopped = run_daemon(eng, clock, 120)
    assert len(slow) == 2 and fast == [] and stopped.waits == [60.0, 60.0]


def test_replica_samples_from_the_workload_status():
    dep = deployment(replicas=4)
    assert replica_samples(dep, 10.0) == ()  # no status yet: unknown, counted ready by the learner
    dep["status"] = {"replicas": 4, "readyReplicas": 3}
    assert replica_samples(dep, 10.0) == (ReplicaSample(True, None),) * 3 + (ReplicaSample(False, None, 10.0),)
    dep["status"] = {"replicas": 4}  # readyReplicas is omitted when none is ready
    assert [r.ready for r in replica_samples(dep, 0.0)] == [False] * 4
    dep["spec"]["replicas"] = 10**9  # a billion replicas are not listed one by one
    assert replica_samples(dep, 0.0) == ()
    assert replica_samples({"kind": "Job", "spec": {}, "status": {}}, 0.0) == ()
