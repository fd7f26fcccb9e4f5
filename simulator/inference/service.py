"""A request-level LLM inference service in SimPy: replicas, continuous batching, cold starts, autoscaling.

Story of a request: it arrives, waits in the service's FCFS queue (the gateway in front of the
pods), is admitted by the least-loaded ready replica that has a batch slot and KV-cache room, is
prefilled, decodes one token per iteration and leaves. A replica's life: it waits for GPUs from the
:class:`~simulator.cluster.GpuPool` (all on one node), boots for ``cold_start_s`` holding its GPUs
but serving nothing, then serves until it is deleted.

Each replica is one plain SimPy process that sleeps from one event of its own to the next (end of a
prefill, next completion); decode iterations are counted, not simulated one by one (see
:mod:`simulator.inference.batching`). An arrival wakes the least-loaded replica that could admit it:
an idle one at once, a decoding one at the end of its current iteration (a SimPy interrupt). So a
request costs a handful of SimPy events, which is what lets a day of traffic (225,000 requests)
simulate in seconds.

The service is both ports of the control loop (:mod:`controller.loop`): ``observe`` summarises the
period since the previous call, ``apply`` changes the target configuration, which a
Deployment-like reconciler carries out (scale up: new pods wait for GPUs and cold start; scale
down: pending, then booting, then the least-busy ready pods are deleted at once and their requests
go back to the head of the queue; a new ``gpus_per_replica`` or ``max_batch_size`` rolls pods over
with maxSurge/maxUnavailable 25%, new pods booting before old ones leave).

Disturbances (:mod:`simulator.faults`), both off by default: a failed node kills its replicas at
once (:meth:`InferenceService.node_failed`; their requests are re-queued as on scale-down and the
reconciler creates replacements), and ``interference_slowdown`` stretches steps by co-located tenants.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from math import isfinite
from operator import itemgetter, mul
from typing import Any

import numpy as np
import simpy

from learners.space import Config, ConfigSpace, Knob
from learners.types import Observation, ReplicaSample
from simulator.cluster import Allocation, GpuPool
from simulator.faults import slowdown_factor
from simulator.inference.batching import ReplicaEngine
from simulator.inference.memory import MemorySettings, kv_capacity_tokens
from simulator.inference.perf_model import PerfModel
from simulator.inference.traces import Trace
from simulator.metrics import LATENCY_BUCKETS_S, Histogram, Recorder

# ----------------------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class SLO:
    """Per-request latency thresholds (any subset); a request meets the SLO when it meets all given.

    ``attainment`` is the fraction of requests that must meet them (0.99: 99%).
    """

    ttft_s: float | None = 2.0
    tbt_s: float | None = None
    e2e_s: float | None = None
    attainment: float = 0.99

    def __post_init__(self) -> None:
        if self.ttft_s is None and self.tbt_s is None and self.e2e_s is None:
            raise ValueError("an SLO needs at least one of ttft_s, tbt_s, e2e_s")


@dataclass(frozen=True)
class ServiceSettings:
    name: str = "llm"
    namespace: str = "default"
    model: str = "llama2-70b"
    """Model name in the latency table and in :data:`simulator.inference.memory.MODELS`."""

    initial: Mapping[str, float] = field(
        default_factory=lambda: {"replicas": 1, "gpus_per_replica": 4, "max_batch_size": 64})

    cold_start_s: float = 60.0
    """Boot time of a replica (GPUs held, nothing served). ServerlessLLM (Fu et al., OSDI 2024, sec. 1)
    measured 84 s to load LLaMA-2-70B with standard loaders from local SSD; 60 s assumes the 138 GB of
    fp16 weights cached on the node and loaded by the TP shards in parallel, plus engine start-up."""

    slo: SLO = field(default_factory=SLO)
    max_queue: int | None = None
    """Arrivals beyond this many waiting requests are rejected (None: unbounded, like vLLM)."""

    queue_timeout_s: float | None = None
    """A request still waiting this long after arrival is rejected (a client/gateway timeout)."""

    kv_capacity_tokens: Mapping[int, int] | None = None
    """Per-replica KV-cache capacity in tokens by TP degree; None derives it from GPU memory
    (:func:`simulator.inference.memory.kv_capacity_tokens`)."""

    memory: MemorySettings = field(default_factory=MemorySettings)
    max_prefill_tokens: int = 8192
    """Prompt tokens prefilled in one iteration at most (vLLM's max_num_batched_tokens is
    max(max_model_len, 2048); 8192 is the longest prompt the bundled table measures)."""

    replica_metric: str = "gpu_utilization"
    """Per-replica value in ``Observation.replicas``: "gpu_utilization" (busy fraction) or
    "concurrency" (mean requests in flight on the pod, its share of the queue included)."""

    initial_ready: bool = True
    """The initial replicas are already warm at time 0 (the service existed before the experiment)."""

    pending_retry_s: float = 10.0
    """How often pods waiting for GPUs retry (kube-scheduler's maximum pod back-off is 10 s)."""

    max_surge: float = 0.25
    max_unavailable: float = 0.25
    """Rolling-update bounds as fractions of the target replicas (Kubernetes Deployment defaults;
    surge rounds up, unavailable down)."""

    series_interval_s: float = 60.0
    """Resolution of the time series in :meth:`InferenceService.summary` (for plots)."""

    interference_slowdown: float = 0.0
    """Prefill and decode steps take (1 + this x neighbours) times longer, neighbours being the other
    owners' allocations on the replica's node when the step starts (:func:`simulator.faults.neighbours`).
    0 (the default) turns the model off and costs nothing."""

    def kv_capacity(self, tp: int) -> int:
        if self.kv_capacity_tokens is not None and int(tp) in self.kv_capacity_tokens:
            return int(self.kv_capacity_tokens[int(tp)])
        return kv_capacity_tokens(self.model, int(tp), self.memory)


def inference_config_space(perf: PerfModel, min_replicas: int = 0, max_replicas: int = 8,
                           min_batch: int = 1, max_batch: int | None = None, batch_step: int = 1,
                           initial: Mapping[str, float] | None = None) -> ConfigSpace:
    """The knobs of an inference service. Only measured TP degrees are offered as GPUs per replica,
    and the batch size stays within the measured batches."""
    measured_batch = min(perf.max_measured_batch(tp) for tp in perf.tp_degrees)
    upper = measured_batch if max_batch is None else min(max_batch, measured_batch)
    initial = initial or {}
    return ConfigSpace.of(
        Knob("replicas", lower=min_replicas, upper=max_replicas, step=1, default=initial.get("replicas")),
        Knob("gpus_per_replica", choices=tuple(float(t) for t in perf.tp_degrees), restarts=True,
             default=initial.get("gpus_per_replica")),
        Knob("max_batch_size", lower=min_batch, upper=upper, step=batch_step, restarts=True,
             default=initial.get("max_batch_size")),
    )


# ----------------------------------------------------------------------------------------- replicas

PENDING, BOOTING, IDLE, PREFILL, DECODE, STEP_END, GONE = range(7)


class Replica:
    """One pod: its GPUs, its batch and the bookkeeping its metrics need."""

    def __init__(self, index: int, tp: int, max_batch: int, created_s: float) -> None:
        self.index, self.tp, self.max_batch = index, tp, max_batch
        self.created_s = created_s
        self.phase = PENDING
        self.alloc: Allocation | None = None
        self.allocated_s = math.nan
        self.ready_s = math.nan
        self.engine: ReplicaEngine | None = None
        self.proc: simpy.Process | None = None
        self.wake: simpy.Event | None = None
        self.decode_t0 = 0.0
        self.step = 0.0
        self.busy_s = 0.0           # cumulative busy (prefill or decode) seconds
        self.busy_since = math.nan  # start of the current busy stretch, NaN when idle
        self.load_area = 0.0        # integral of running requests over time
        self.load_t = 0.0
        self.snap_busy = 0.0        # busy_s at the previous observe()/scrape
        self.snap_area = 0.0
        self.scrape_busy = 0.0

    @property
    def ready(self) -> bool:
        return IDLE <= self.phase <= STEP_END

    @property
    def template(self) -> tuple[int, int]:
        return (self.tp, self.max_batch)

    def busy_total(self, now: float) -> float:
        return self.busy_s + (now - self.busy_since if self.busy_since == self.busy_since else 0.0)

    def load_total(self, now: float) -> float:
        running = self.engine.running if self.engine is not None else 0
        return self.load_area + running * (now - self.load_t)


# ----------------------------------------------------------------------------------------- service

QUEUED, RUNNING, DONE, REJECTED = 1, 2, 3, 4


def _peak_rate(arrivals: np.ndarray, start: float, end: float, window_s: float = 10.0) -> float:
    """Largest arrival rate over the ``window_s`` windows of [start, end) (the interval's burst)."""
    if end - start < window_s or not arrivals.size:
        return float(arrivals.size) / max(end - start, 1e-9)
    counts = np.bincount(((arrivals - start) // window_s).astype(np.int64).clip(0))
    return float(counts.max()) / window_s


class InferenceService:
    """A simulated inference Deployment behind one FCFS gateway queue."""

    def __init__(self, env: simpy.Environment, pool: GpuPool, perf: PerfModel, trace: Trace,
                 settings: ServiceSettings | None = None, seed: int = 0, recorder: Recorder | None = None,
                 scrape_interval_s: float = 15.0) -> None:
        self.env, self.pool, self.perf = env, pool, perf
        self.settings = s = settings or ServiceSettings()
        self.seed = seed  # arrivals come from the (already seeded) trace; kept for the record
        self.recorder = recorder
        self.scrape_interval_s = scrape_interval_s
        if s.replica_metric not in ("gpu_utilization", "concurrency"):
            raise ValueError("replica_metric must be 'gpu_utilization' or 'concurrency', "
                             f"got {s.replica_metric!r}")
        self._arrival_np = np.asarray(trace.arrival_s, dtype=float)
        self.arrival = self._arrival_np.tolist()
        self.prompt = np.asarray(trace.prompt_tokens, dtype=np.int64).tolist()
        self.output = np.maximum(np.asarray(trace.output_tokens, dtype=np.int64), 1).tolist()
        self.need = [p + o for p, o in zip(self.prompt, self.output, strict=True)]
        self._kv_cap = {tp: s.kv_capacity(tp) for tp in perf.tp_degrees}
        n = len(self.arrival)
        self.t_first = [math.nan] * n
        self.t_done = [math.nan] * n
        self.state = [0] * n
        self.served_by = [-1] * n
        self.queue: deque[int] = deque()
        self.arrived = 0
        self.completed = 0
        self.rejected = 0
        self.done_seq: list[int] = []      # completions in completion order
        self.rejected_seq: list[tuple[float, int]] = []
        self.replicas: list[Replica] = []
        self._next_index = 0
        self._gpu_s_released = 0.0
        self.replica_failures = 0          # replicas killed by node failures
        self._obs_failures = 0
        self._inflight_area = 0.0          # integral of (queued + running) over time
        self._inflight_t = env.now
        self._inflight_n = 0
        self.events: list[tuple[float, str, dict[str, float]]] = []
        self._target: Config = self._validate(dict(s.initial))
        self.initial_target: Config = dict(self._target)
        """What was asked for at the start; with ``events`` it gives the target at every moment of the run."""
        self._obs_t = env.now
        self._obs_marks = (0, 0, 0, 0.0)   # arrived, len(done_seq), len(rejected_seq), inflight area
        self._peek_t = env.now
        self._peek_marks = (0, 0, 0)       # arrived, len(done_seq), len(rejected_seq) at the last peek/observe
        self._obs_replica_snap: dict[int, tuple[float, float, float]] = {}
        self._scrape_mark = 0
        self._scrape_t = env.now
        self._pod_hist: dict[int, tuple[Histogram, Histogram, Histogram]] = {}
        self._pod_success: dict[int, int] = {}
        self._pod_series: dict[int, dict[str, list[int]]] = {}   # recorder handles by pod index
        self._hist_series: dict[int, tuple[int, int, int, int]] = {}
        self.series: dict[str, list[float]] = {k: [] for k in (
            "time_s", "replicas_ready", "replicas_total", "gpus_held", "queue_length", "ttft_p99_s",
            "e2e_p99_s", "slo_attainment")}
        self._series_mark = 0
        self._series_t = env.now
        self.pending_pod_s = 0.0
        """Pod-seconds spent Pending (no room for the pod's GPUs), sampled every ``series_interval_s``."""
        self.ready_s_by_template: dict[tuple[int, int], float] = {}
        """Ready replica-seconds by (GPUs per replica, max batch size): the configuration that really served."""
        self._reconcile(initial=True)
        env.process(self._arrivals())
        env.process(self._retry_pending())
        if recorder is not None:
            env.process(self._scraper())
        if s.series_interval_s > 0:
            env.process(self._series_sampler())

    # ------------------------------------------------------------------ configuration

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def config(self) -> Config:
        return dict(self._target)

    def _validate(self, config: Mapping[str, float]) -> Config:
        cfg = {**self._target, **config} if hasattr(self, "_target") else dict(config)
        tp = int(cfg.get("gpus_per_replica", self.perf.tp_degrees[0]))
        if tp not in self.perf.tp_degrees:
            raise ValueError(f"gpus_per_replica={tp} was not measured for {self.perf.model} on "
                             f"{self.perf.hardware}; choose one of {list(self.perf.tp_degrees)}")
        replicas = round(cfg.get("replicas", 1))
        batch = round(cfg.get("max_batch_size", 64))
        if replicas < 0 or batch < 1:
            raise ValueError(f"invalid configuration {dict(cfg)}")
        if self.settings.kv_capacity(tp) <= 0:
            raise ValueError(f"{self.settings.model} does not fit on {tp} GPUs (no room for the KV cache)")
        return {"replicas": float(replicas), "gpus_per_replica": float(tp), "max_batch_size": float(batch)}

    def apply(self, workload: str, config: Config, reason: str) -> None:
        """Actuator port: change the target; the reconciler creates, boots and deletes pods."""
        if workload != self.name:
            raise KeyError(f"service {self.name!r} cannot apply a configuration for {workload!r}")
        self._target = self._validate(config)
        self.events.append((self.env.now, reason, dict(self._target)))
        self._reconcile()

    @property
    def gpu_seconds(self) -> float:
        """GPU-seconds held so far (booting and idle replicas included)."""
        now = self.env.now
        live = sum(r.tp * (now - r.allocated_s) for r in self.replicas if r.alloc is not None)
        return self._gpu_s_released + live

    # ------------------------------------------------------------------ the reconciler

    def _reconcile(self, initial: bool = False) -> None:
        """Make the pods converge to the target, Deployment-style, then place pending pods."""
        n = int(self._target["replicas"])
        tmpl = (int(self._target["gpus_per_replica"]), int(self._target["max_batch_size"]))
        live = self.replicas
        new = [r for r in live if r.template == tmpl]
        old = [r for r in live if r.template != tmpl]
        if not old:
            for _ in range(n - len(new)):
                self._create(tmpl, initial)
            if len(new) > n:
                for r in sorted(new, key=self._deletion_rank)[: len(new) - n]:
                    self._delete(r)
        else:
            surge = math.ceil(self.settings.max_surge * n)
            unavailable = math.floor(self.settings.max_unavailable * n)
            if surge == 0 and unavailable == 0:
                surge = 1
            if len(new) > n:
                for r in sorted(new, key=self._deletion_rank)[: len(new) - n]:
                    self._delete(r)
                new = [r for r in self.replicas if r.template == tmpl]
            while len(new) < n and len(self.replicas) < n + surge:
                new.append(self._create(tmpl, initial))
            for r in sorted(old, key=self._deletion_rank):
                ready = sum(1 for x in self.replicas if x.ready)
                if not r.ready or ready - 1 >= n - unavailable:
                    self._delete(r)
            new = [r for r in self.replicas if r.template == tmpl]
            while len(new) < n and len(self.replicas) < n + surge:
                new.append(self._create(tmpl, initial))
        self._place_pending(initial)

    def _deletion_rank(self, r: Replica) -> tuple[int, int, int]:
        """Kubernetes' ReplicaSet order: pending before booting before ready; then the least busy;
        then the newest (controller.ActivePods ranking, simplified)."""
        stage = 0 if r.phase == PENDING else 1 if r.phase == BOOTING else 2
        load = r.engine.running if r.engine is not None else 0
        return (stage, load, -r.index)

    def _create(self, tmpl: tuple[int, int], initial: bool = False) -> Replica:
        r = Replica(self._next_index, tmpl[0], tmpl[1], self.env.now)
        self._next_index += 1
        self.replicas.append(r)
        return r

    def _place_pending(self, initial: bool = False) -> None:
        for r in self.replicas:
            if r.phase != PENDING:
                continue
            alloc = self.pool.allocate(self.pod_name(r), r.tp, gpu_type=None, max_nodes=1)
            if alloc is None:
                continue
            r.alloc, r.allocated_s = alloc, self.env.now
            r.engine = ReplicaEngine(self.perf, r.tp, r.max_batch, self._kv_cap[r.tp], self.prompt,
                                     self.output, self.settings.max_prefill_tokens, self.need)
            r.load_t = self.env.now
            warm = initial and self.settings.initial_ready
            r.phase = BOOTING
            r.proc = self.env.process(self._replica_life(r, 0.0 if warm else self.settings.cold_start_s))

    def _delete(self, r: Replica) -> None:
        """Delete a pod now: its GPUs go back to the pool, its requests to the head of the queue."""
        now = self.env.now
        self.replicas.remove(r)
        if r.alloc is not None:
            self.pool.release(r.alloc)
            self._gpu_s_released += r.tp * (now - r.allocated_s)
            r.alloc = None
        if r.busy_since == r.busy_since:
            r.busy_s += now - r.busy_since
            r.busy_since = math.nan
        evicted: list[int] = []
        if r.engine is not None:
            r.load_area = r.load_total(now)
            r.load_t = now
            evicted = r.engine.evict_all()
        for req in evicted:
            self.state[req] = QUEUED
            self.t_first[req] = math.nan
        self.queue.extendleft(reversed(evicted))
        was_idle = r.phase == IDLE
        r.phase = GONE
        if was_idle and r.wake is not None and not r.wake.triggered:
            r.wake.succeed()
        if evicted:
            self._nudge()

    def node_failed(self, node: str, lost: list[Allocation]) -> None:
        """A node died: its replicas die with it (requests back to the head of the queue, GPUs back to
        the pool), and the reconciler creates replacements that wait for GPUs, then cold-start."""
        gone = {id(a) for a in lost}
        victims = [r for r in self.replicas if r.alloc is not None and id(r.alloc) in gone]
        for r in victims:
            self._delete(r)
        if victims:
            self.replica_failures += len(victims)
            self._reconcile()

    def _retry_pending(self):
        """Pods waiting for GPUs try again every ``pending_retry_s`` (others may have released some)."""
        while True:
            yield self.env.timeout(self.settings.pending_retry_s)
            if any(r.phase == PENDING for r in self.replicas):
                self._reconcile()

    def pod_name(self, r: Replica) -> str:
        return f"{self.name}-{r.index}"

    # ------------------------------------------------------------------ requests

    def _arrivals(self):
        env, arrival = self.env, self.arrival
        for i, t in enumerate(arrival):
            if t > env.now:
                yield env.timeout(t - env.now)
            self._arrive(i)

    def _account_inflight(self, delta: int) -> None:
        now = self.env.now
        self._inflight_area += self._inflight_n * (now - self._inflight_t)
        self._inflight_t = now
        self._inflight_n += delta

    def _arrive(self, req: int) -> None:
        self.arrived += 1
        limit = self.settings.max_queue
        if (limit is not None and len(self.queue) >= limit) or \
                self.need[req] > self._kv_cap[int(self._target["gpus_per_replica"])]:
            self._reject(req, self.env.now)
            return
        self._account_inflight(+1)
        self.state[req] = QUEUED
        self.queue.append(req)
        self._nudge()

    def _reject(self, req: int, t: float) -> None:
        self.state[req] = REJECTED
        self.t_done[req] = t
        self.rejected += 1
        self.rejected_seq.append((t, req))

    @staticmethod
    def _placement(r: Replica, now: float) -> tuple[bool, float]:
        """(placed, seconds since placement) of a replica, as :class:`learners.ReplicaSample` carries them."""
        placed = r.alloc is not None
        return placed, (now - r.allocated_s) if placed else math.nan

    def _expire(self) -> None:
        """Reject requests that waited longer than the timeout (they are at the head: FCFS by arrival)."""
        timeout = self.settings.queue_timeout_s
        if timeout is None:
            return
        q, now = self.queue, self.env.now
        while q and self.arrival[q[0]] + timeout <= now:
            req = q.popleft()
            deadline = self.arrival[req] + timeout
            self._account_inflight(-1)
            self._inflight_area -= now - deadline  # it left at its deadline, not now
            self._reject(req, deadline)

    def _nudge(self) -> None:
        """Wake the least-loaded ready replica that could admit the head of the queue."""
        if not self.queue:
            return
        head = self.queue[0]
        best, best_load = None, 1 << 62
        for r in self.replicas:  # pick_replica, inlined: this runs for every arrival
            eng = r.engine
            if IDLE <= r.phase <= STEP_END and eng.running < best_load and eng.running < eng.max_batch \
                    and eng.need[head] <= eng.kv_free:
                best, best_load = r, eng.running
        if best is None:
            return
        if best.phase == IDLE:
            if not best.wake.triggered:
                best.wake.succeed()
        elif best.phase == DECODE:
            best.phase = STEP_END
            best.proc.interrupt("admit")
        # PREFILL / STEP_END: it looks at the queue when its iteration ends anyway.

    @staticmethod
    def _touch_load(r: Replica, now: float) -> None:
        """Integrate the replica's running requests up to ``now`` (call before the count changes)."""
        r.load_area += r.engine.running * (now - r.load_t)
        r.load_t = now

    def _replica_life(self, r: Replica, boot_s: float):
        """Boot, then serve: prefill what can be admitted, else decode until the next completion."""
        env, queue, touch = self.env, self.queue, self._touch_load
        slow = self.settings.interference_slowdown
        if boot_s > 0:
            yield env.timeout(boot_s)
        if r.phase == GONE:
            return
        r.phase = IDLE
        r.ready_s = env.now
        r.wake = env.event()
        self._reconcile()  # a rollout may now retire an old pod
        eng = r.engine
        while r.phase != GONE:
            if queue:
                self._expire()
                touch(r, env.now)
                admitted = eng.admit_from(queue)
            else:
                admitted = None
            if admitted:
                for req in admitted:
                    self.state[req] = RUNNING
                    self.served_by[req] = r.index
                r.phase = PREFILL
                if r.busy_since != r.busy_since:
                    r.busy_since = env.now
                prefill = eng.prefill_s(admitted)
                if slow:
                    prefill *= slowdown_factor(self.pool, r.alloc, slow)
                yield env.timeout(prefill)
                if r.phase == GONE:
                    return
                now = env.now
                for req in admitted:
                    self.t_first[req] = now
                touch(r, now)
                done = eng.start_decoding()
                if done:
                    self._finish(done)
                if queue and not eng.fits(queue[0]):
                    self._nudge()  # someone else may have room for what this one cannot take
                continue
            if not eng.decoding:
                if r.busy_since == r.busy_since:
                    r.busy_s += env.now - r.busy_since
                    r.busy_since = math.nan
                r.phase = IDLE
                if r.wake.triggered:
                    r.wake = env.event()
                yield r.wake
                continue
            if r.busy_since != r.busy_since:
                r.busy_since = env.now
            step = eng.step_s()
            if slow:
                step *= slowdown_factor(self.pool, r.alloc, slow)
            k = eng.steps_to_next_completion()
            r.phase, r.decode_t0, r.step = DECODE, env.now, step
            try:
                yield env.timeout(k * step)
            except simpy.Interrupt:
                # An arrival can be admitted: finish the running iteration first.
                done_steps = min(k, math.ceil((env.now - r.decode_t0) / step - 1e-9))
                yield env.timeout(max(0.0, r.decode_t0 + done_steps * step - env.now))
                k = done_steps
            if r.phase == GONE:
                return
            touch(r, env.now)
            done = eng.advance(k)
            if done:
                self._finish(done)

    def _finish(self, done: list[int]) -> None:
        now = self.env.now
        state, t_done = self.state, self.t_done
        for req in done:
            state[req] = DONE
            t_done[req] = now
        self.done_seq.extend(done)
        self.completed += len(done)
        self._account_inflight(-len(done))

    # ------------------------------------------------------------------ latency arithmetic

    def _latencies(self, reqs: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ttft, tbt, e2e) seconds of finished requests; tbt is NaN for one-token requests."""
        idx = np.asarray(reqs, dtype=np.int64)
        arr = self._arrival_np[idx]
        first = np.array(_pick(self.t_first, reqs), dtype=float)
        done = np.array(_pick(self.t_done, reqs), dtype=float)
        out = np.array(_pick(self.output, reqs), dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            tbt = np.where(out > 1, (done - first) / np.maximum(out - 1, 1), np.nan)
        return first - arr, tbt, done - arr

    def _meets(self, ttft: np.ndarray, tbt: np.ndarray, e2e: np.ndarray) -> np.ndarray:
        slo = self.settings.slo
        ok = np.ones(ttft.shape, dtype=bool)
        if slo.ttft_s is not None:
            ok &= ttft <= slo.ttft_s
        if slo.tbt_s is not None:
            ok &= ~(tbt > slo.tbt_s)  # NaN (one token) meets it
        if slo.e2e_s is not None:
            ok &= e2e <= slo.e2e_s
        return ok

    def _waiting_ok(self, now: float) -> tuple[int, int]:
        """(unfinished requests, of which still within their thresholds judged by current age)."""
        slo = self.settings.slo
        pending = list(self.queue)
        for r in self.replicas:
            if r.engine is not None:
                pending += r.engine.requests()
        if not pending:
            return 0, 0
        ok = 0
        for i in pending:
            age = now - self.arrival[i]
            first = self.t_first[i]
            good = True
            if slo.ttft_s is not None and (first != first) and age > slo.ttft_s:
                good = False
            if slo.e2e_s is not None and age > slo.e2e_s:
                good = False
            if slo.tbt_s is not None and first == first and self.output[i] > 1 and \
                    (now - first) / (self.output[i] - 1) > slo.tbt_s:
                good = False
            ok += good
        return len(pending), ok

    def _unfinished_ages(self, now: float) -> tuple[float, float]:
        """Largest age of requests without a first token, and of any unfinished request."""
        ttft_age, e2e_age = 0.0, 0.0
        if self.queue:
            ttft_age = e2e_age = now - self.arrival[self.queue[0]]
        for r in self.replicas:
            if r.engine is None:
                continue
            for req in r.engine.prefilling:
                ttft_age = max(ttft_age, now - self.arrival[req])
            if r.engine.running:
                e2e_age = max(e2e_age, now - self.arrival[r.engine.requests()[0]])
        return ttft_age, e2e_age

    # ------------------------------------------------------------------ observe (the MetricsSource port)

    def observe(self, workload: str, now: float | None = None) -> Observation | None:
        """Summary of the period since the previous call (the first period starts at creation)."""
        if workload != self.name:
            return None
        stamp = self.env.now if now is None else now
        now = self.env.now
        self._expire()
        self._account_inflight(0)
        arrived0, done0, rej0, area0 = self._obs_marks
        interval = max(now - self._obs_t, 1e-9)
        finished = self.done_seq[done0:]
        rejected_n = len(self.rejected_seq) - rej0
        ttft, tbt, e2e = self._latencies(finished)
        met = int(self._meets(ttft, tbt, e2e).sum())
        judged = len(finished) + rejected_n
        if judged:
            attainment = met / judged
        else:
            waiting, ok = self._waiting_ok(now)
            attainment = 1.0 if waiting == 0 else ok / waiting
        ttft_age, e2e_age = self._unfinished_ages(now)

        def p99(x: np.ndarray, fallback: float) -> float:
            x = x[np.isfinite(x)]
            return float(np.percentile(x, 99)) if x.size else fallback

        ready = [r for r in self.replicas if r.ready]
        inflight_mean = (self._inflight_area - area0) / interval
        util, kv, samples = [], [], []
        for r in self.replicas:
            snap = self._obs_replica_snap.get(r.index)
            busy, area = r.busy_total(now), r.load_total(now)
            if r.ready:
                start = max(self._obs_t, r.ready_s)
                span = max(now - start, 1e-9)
                # A replica is never busy before it is ready, so a fresh one starts from zero.
                b0, a0 = (snap[0], snap[1]) if snap is not None and snap[2] >= r.ready_s else (0.0, 0.0)
                frac = min(1.0, max(0.0, (busy - b0) / span))
                util.append(frac)
                kv.append(r.engine.kv_used / r.engine.kv_capacity)
                if self.settings.replica_metric == "gpu_utilization":
                    value: float | None = frac
                else:
                    value = (area - a0) / span + len(self.queue) / max(len(ready), 1)
                samples.append(ReplicaSample(True, value, now - r.created_s, *self._placement(r, now)))
            else:
                samples.append(ReplicaSample(False, None, now - r.created_s, *self._placement(r, now)))
            self._obs_replica_snap[r.index] = (busy, area, now)
        metrics = {
            "request_rate_per_second": (self.arrived - arrived0) / interval,
            "ttft_p99_seconds": p99(ttft, ttft_age),
            "tbt_p99_seconds": p99(tbt, 0.0),
            "e2e_p99_seconds": p99(e2e, e2e_age),
            "slo_attainment": attainment,
            "queue_length": float(len(self.queue)),
            "concurrency_per_replica": inflight_mean / max(len(ready), 1),
            "gpu_utilization": float(np.mean(util)) if util else 0.0,
            "kv_cache_usage": float(np.mean(kv)) if kv else 0.0,
            # sub-interval burst and backlog (what a gateway exports: peak 10 s arrival rate, queued tokens)
            "request_rate_peak_per_second": _peak_rate(self._arrival_np[arrived0:self.arrived], self._obs_t, now),
            "queued_prompt_tokens": float(sum(self.prompt[i] for i in self.queue)),
            "requests_running": float(sum(r.engine.running for r in ready)),
            "prompt_tokens_per_second": float(sum(self.prompt[arrived0:self.arrived])) / interval,
        }
        self._obs_marks = (self.arrived, len(self.done_seq), len(self.rejected_seq), self._inflight_area)
        self._obs_t = now
        self._peek_marks, self._peek_t = self._obs_marks[:3], now
        failures0, self._obs_failures = self._obs_failures, self.replica_failures
        return Observation(time_s=stamp, config=self.config, metrics=metrics, interval_s=interval,
                           replicas=tuple(samples),
                           events={"rejected": float(rejected_n), "completed": float(len(finished)),
                                   "failures": float(self.replica_failures - failures0)})

    def peek(self, workload: str, now: float | None = None) -> Observation | None:
        """The fast timescale's view (:meth:`controller.loop.ControlLoop.fast_step`): arrivals, completions
        and rejections since the previous peek or observe, the queue now and every replica's readiness,
        without closing the control interval (``observe``'s window and its latencies are untouched). No
        latency quantiles: a 15 s window holds too few requests for a p99, and the fast path reacts to a
        backlog, which the queue shows at once."""
        if workload != self.name:
            return None
        stamp = self.env.now if now is None else now
        now = self.env.now
        self._expire()
        arrived0, done0, rej0 = self._peek_marks
        interval = max(now - self._peek_t, 1e-9)
        samples = tuple(ReplicaSample(r.ready, None, now - r.created_s, *self._placement(r, now))
                        for r in self.replicas)
        metrics = {"request_rate_per_second": (self.arrived - arrived0) / interval,
                   "queue_length": float(len(self.queue)),
                   "queued_prompt_tokens": float(sum(self.prompt[i] for i in self.queue))}
        events = {"completed": float(len(self.done_seq) - done0), "rejected": float(len(self.rejected_seq) - rej0)}
        self._peek_marks, self._peek_t = (self.arrived, len(self.done_seq), len(self.rejected_seq)), now
        return Observation(time_s=stamp, config=self.config, metrics=metrics, interval_s=interval,
                           replicas=samples, events=events)

    # ------------------------------------------------------------------ metrics export

    def _scraper(self):
        while True:
            yield self.env.timeout(self.scrape_interval_s)
            self.scrape()

    def scrape(self) -> None:
        """Record every exported metric now (called every ``scrape_interval_s``; callable by tests)."""
        rec = self.recorder
        if rec is None:
            return
        now = self.env.now
        self._expire()
        span = max(now - self._scrape_t, 1e-9)
        # latency histograms and success counters of the completions since the previous scrape
        fresh = self.done_seq[self._scrape_mark:]
        self._scrape_mark = len(self.done_seq)
        if fresh:
            pods = np.array(_pick(self.served_by, fresh), dtype=np.int64)
            tokens = np.array(_pick(self.output, fresh), dtype=np.int64)
            self._observe_by_pod(pods, tokens, *self._latencies(fresh))
        ready = [r for r in self.replicas if r.ready]
        share = _split(len(self.queue), len(ready))
        s = self.settings
        for r in self.replicas:
            if r.alloc is None:
                continue
            busy = r.busy_total(now)
            frac = min(1.0, max(0.0, (busy - r.scrape_busy) / span)) if r.ready else 0.0
            r.scrape_busy = busy
            ids = self._pod_series.get(r.index)
            if ids is None:
                ids = self._pod_series[r.index] = self._pod_series_ids(rec, r)
            # one call per pod: its GPUs' DCGM gauges (a value each per GPU), then its vLLM gauges
            gpus = len(ids["util"])
            values = [round(100.0 * frac, 3)] * gpus + [frac] * gpus + [self._fb_used_mib(r)] * gpus
            if not r.ready:
                rec.put_many(ids["dcgm"], now, values)
                continue
            values += (float(r.engine.running), float(share[ready.index(r)]), r.engine.kv_used / r.engine.kv_capacity)
            rec.put_many(ids["all"], now, values)
        # A deleted pod's endpoint is gone: its series stop (completions since its last scrape are lost,
        # as with a real exporter), and so does the memory they held.
        alive = {r.index for r in self.replicas}
        for pod in [p for p in self._pod_hist if p not in alive]:
            del self._pod_hist[pod]
            del self._pod_success[pod]
            self._hist_series.pop(pod, None)
        for pod in [p for p in self._pod_series if p not in alive]:
            del self._pod_series[pod]
        for pod, hists in self._pod_hist.items():
            hids = self._hist_series.get(pod)
            if hids is None:
                labels = {"namespace": s.namespace, "pod": f"{self.name}-{pod}"}
                hids = self._hist_series[pod] = (
                    rec.series_id("vllm:time_to_first_token_seconds", "histogram", labels, edges=hists[0].edges),
                    rec.series_id("vllm:time_per_output_token_seconds", "histogram", labels, edges=hists[1].edges),
                    rec.series_id("vllm:e2e_request_latency_seconds", "histogram", labels, edges=hists[2].edges),
                    rec.series_id("vllm:request_success", "counter", labels))
            rec.put_histogram(hids[0], now, hists[0])
            rec.put_histogram(hids[1], now, hists[1])
            rec.put_histogram(hids[2], now, hists[2])
            rec.put(hids[3], now, float(self._pod_success[pod]))
        self._scrape_t = now

    def _observe_by_pod(self, pods: np.ndarray, tokens: np.ndarray, ttft: np.ndarray, tbt: np.ndarray,
                        e2e: np.ndarray) -> None:
        """Add fresh completions to their pods' latency histograms and success counts, pod by pod in
        ascending order. This runs every scrape for every pod: one stable sort groups the requests by pod
        (each pod's requests keep their order, so its sums are the same floats), then plain lists are
        sliced per pod, with no numpy call per pod (a pod finishes a handful of requests per scrape)."""
        order = np.argsort(pods, kind="stable")
        pods = pods[order]
        cuts = (np.flatnonzero(np.diff(pods)) + 1).tolist()
        weights = np.maximum(tokens[order] - 1, 1).tolist()
        ttft_l, tbt_l, e2e_l = ttft[order].tolist(), tbt[order].tolist(), e2e[order].tolist()
        for a, b in zip([0, *cuts], [*cuts, len(pods)], strict=True):
            pod = int(pods[a])
            hists = self._pod_hist.get(pod)
            if hists is None:
                hists = self._pod_hist[pod] = (Histogram(), Histogram(), Histogram())
            _add(hists[0], ttft_l[a:b])
            _add(hists[2], e2e_l[a:b])
            ok = [i for i in range(a, b) if isfinite(tbt_l[i])]
            if ok:
                _add_weighted(hists[1], [tbt_l[i] for i in ok], [weights[i] for i in ok])
            self._pod_success[pod] = self._pod_success.get(pod, 0) + (b - a)

    def _pod_series_ids(self, rec: Recorder, r: Replica) -> dict[str, list[int]]:
        """The recorder's handles for one placed pod's series (its GPUs' DCGM gauges, its vLLM gauges)."""
        labels = {"namespace": self.settings.namespace, "pod": self.pod_name(r)}
        ids: dict[str, list[int]] = {"util": [], "active": [], "fb": []}
        gpu = 0
        for node, count in r.alloc.per_node:  # type: ignore[union-attr]
            for _ in range(count):
                glabels = {**labels, "gpu": str(gpu), "Hostname": node}
                ids["util"].append(rec.series_id("DCGM_FI_DEV_GPU_UTIL", "gauge", glabels))
                ids["active"].append(rec.series_id("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "gauge", glabels))
                ids["fb"].append(rec.series_id("DCGM_FI_DEV_FB_USED", "gauge", glabels))
                gpu += 1
        ids["running"] = [rec.series_id("vllm:num_requests_running", "gauge", labels)]
        ids["waiting"] = [rec.series_id("vllm:num_requests_waiting", "gauge", labels)]
        ids["kv"] = [rec.series_id("vllm:kv_cache_usage_perc", "gauge", labels)]
        ids["dcgm"] = ids["util"] + ids["active"] + ids["fb"]
        ids["all"] = ids["dcgm"] + ids["running"] + ids["waiting"] + ids["kv"]
        return ids

    def _fb_used_mib(self, r: Replica) -> float:
        """vLLM reserves gpu_memory_utilization of each GPU once loaded; a booting pod ramps up to it."""
        m = self.settings.memory
        full = m.gpu_memory_bytes * m.memory_utilization / 2**20
        if r.ready:
            return full
        loaded = (self.env.now - r.allocated_s) / max(self.settings.cold_start_s, 1e-9)
        return full * min(1.0, max(0.0, loaded))

    # ------------------------------------------------------------------ summary

    def _series_sampler(self):
        while True:
            yield self.env.timeout(self.settings.series_interval_s)
            self._sample_series()

    def _sample_series(self) -> None:
        now = self.env.now
        dt, self._series_t = now - self._series_t, now
        for r in self.replicas:  # what really ran, time-weighted at the series resolution
            if r.phase == PENDING:
                self.pending_pod_s += dt
            elif r.ready:
                self.ready_s_by_template[r.template] = self.ready_s_by_template.get(r.template, 0.0) + dt
        fresh = self.done_seq[self._series_mark:]
        self._series_mark = len(self.done_seq)
        ttft, tbt, e2e = self._latencies(fresh)
        s = self.series
        s["time_s"].append(now)
        s["replicas_ready"].append(float(sum(r.ready for r in self.replicas)))
        s["replicas_total"].append(float(len(self.replicas)))
        s["gpus_held"].append(float(sum(r.tp for r in self.replicas if r.alloc is not None)))
        s["queue_length"].append(float(len(self.queue)))
        s["ttft_p99_s"].append(float(np.percentile(ttft, 99)) if ttft.size else math.nan)
        s["e2e_p99_s"].append(float(np.percentile(e2e, 99)) if e2e.size else math.nan)
        s["slo_attainment"].append(float(self._meets(ttft, tbt, e2e).mean()) if ttft.size else math.nan)

    def in_service(self) -> int:
        return sum(r.engine.running for r in self.replicas if r.engine is not None)

    def summary(self) -> dict[str, Any]:
        """Totals over the run so far. Invariant: arrived = completed + rejected + in_service + queued.

        ``slo_attainment`` counts rejected and unfinished requests as misses (strict);
        ``slo_attainment_decided`` leaves out unfinished requests that may still meet the SLO.
        """
        now = self.env.now
        self._expire()
        ttft, tbt, e2e = self._latencies(self.done_seq)
        met = int(self._meets(ttft, tbt, e2e).sum())
        _, still_ok = self._waiting_ok(now)
        decided = self.arrived - still_ok

        def q(x: np.ndarray, p: float) -> float:
            x = x[np.isfinite(x)]
            return float(np.percentile(x, p)) if x.size else math.nan

        return {
            "requests_arrived": self.arrived,
            "requests_completed": self.completed,
            "requests_rejected": self.rejected,
            "requests_in_service": self.in_service(),
            "requests_queued": len(self.queue),
            "slo_attainment": met / self.arrived if self.arrived else 1.0,
            "slo_attainment_decided": met / decided if decided else 1.0,
            "slo_attainment_finished": met / self.completed if self.completed else 1.0,
            "ttft_p50_s": q(ttft, 50), "ttft_p99_s": q(ttft, 99),
            "tbt_p50_s": q(tbt, 50), "tbt_p99_s": q(tbt, 99),
            "e2e_p50_s": q(e2e, 50), "e2e_p99_s": q(e2e, 99),
            "gpu_hours": self.gpu_seconds / 3600.0,
            "replicas_created": self._next_index,
            "replica_failures": self.replica_failures,
            "config_changes": len(self.events),
            "coverage_warnings": self.perf.coverage_warnings,
            "pending_pod_hours": self.pending_pod_s / 3600.0,
            "ready_replica_hours_by_template": {k: v / 3600.0 for k, v in self.ready_s_by_template.items()},
            "target": self.config,
            "series": {k: list(v) for k, v in self.series.items()},
        }


def _split(total: int, parts: int) -> list[int]:
    """``total`` spread over ``parts`` as evenly as integers allow (sums exactly to ``total``)."""
    if parts <= 0:
        return []
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def _pick(values: list[Any], idx: list[int]) -> list[Any]:
    """``[values[i] for i in idx]`` in one C call (itemgetter): each scrape and observation gathers its
    requests' fields from the per-request lists this way."""
    if len(idx) > 1:
        return list(itemgetter(*idx)(values))
    return [values[i] for i in idx]


def _add(h: Histogram, values: list[float]) -> None:
    """Observe ``values`` (not empty) into a cumulative histogram, by the rule of Histogram.observe (first
    edge >= v). Plain bisection over a list: a pod finishes a handful of requests per scrape, where
    numpy's per-call cost would dominate."""
    edges, counts = h.edges, h.counts
    for v in values:
        counts[bisect_left(edges, v)] += 1
    h.total += float(sum(values))
    h.count += len(values)


def _add_weighted(h: Histogram, values: list[float], weights: list[int]) -> None:
    """:func:`_add` with an integer weight per value (time per output token: one per generated token)."""
    edges, counts = h.edges, h.counts
    for v, w in zip(values, weights, strict=True):
        counts[bisect_left(edges, v)] += w
    h.total += float(sum(map(mul, values, weights)))  # left to right, as a generator would
    h.count += int(sum(weights))


__all__ = ["LATENCY_BUCKETS_S", "SLO", "InferenceService", "ServiceSettings", "inference_config_space"]
