"""A workload emulator: an inference service whose latency follows its Deployment's live size.

The e2e tests need a workload whose metrics respond when the operator resizes it, without GPUs. This
process plays the role of every pod of one Deployment at once: every second it reads the Deployment
and its Running pods from the apiserver (kwok runs them), computes a queueing model of the service
at that size, and serves the result on ``/metrics`` under the names the real exporters use (vLLM's
``vllm:*`` per pod, DCGM's ``DCGM_FI_DEV_GPU_UTIL``), labelled ``namespace`` and ``pod`` with the real
pod names, so that the operator's default PromQL joins them exactly as it would in a cluster.

The model (no simulator module for it existed when this was written) is M/M/c: Poisson arrivals at
``rate`` requests/s, ``c`` = Running pods, each serving ``service_rate x gpus_per_pod`` requests/s
with exponential service times; time to first token = a fixed ``prefill_s`` plus the queueing wait.
Erlang's C formula gives P(wait > 0); the wait tail is P(W > t) = C * exp(-(c mu - lambda) t)
(Kleinrock, Queueing Systems Vol. 1, section 3.5), so the TTFT CDF is known in closed form. Every
second the histogram buckets grow by ``rate x CDF(le)``: Prometheus' ``histogram_quantile`` over
them returns the model's percentile up to bucket interpolation. An overloaded service (lambda >= c
mu) reports TTFT at the top bucket. ``emulator_ttft_p99_seconds`` is the model's exact p99, for tests.

Calibrated to the simulator (``--calibrate MODEL:HARDWARE``): the service rate and prefill then follow
the Deployment's live template (GPUs per pod = TP, ``AUTOCM_BATCH_SIZE`` = max batch) through the
simulator's own latency model, so that a size the simulator says meets the SLO at a rate also meets it
here. :func:`calibrated_model`: the prefill is the table's prefill of the mean prompt at batch 1 (TP's
own), and the per-replica service rate is the one at which this M/M/c queue's capacity at the SLO
(largest rate with attainment >= the SLO's) equals the simulator's
(:func:`simulator.inference.capacity.bundled_slo_capacity`) at ``CALIBRATION_REPLICAS`` replicas.
At 1-4 replicas the two capacities then agree within about 10% (tests/unit/inference/
test_emulator_calibration.py); the simulator's batching server has a sharper cliff than M/M/c, so
tail latencies between the SLO and the cliff are not reproduced, only the capacity at the SLO.
During a rolling update every Running pod counts as the Deployment's current template.

The per-replica signals rules scale on are the simulator's too, with ``--calibrate`` (since session 24):
``DCGM_FI_DEV_GPU_UTIL``, ``vllm:num_requests_running`` and ``vllm:kv_cache_usage_perc`` read what the
simulator's replicas of the live template read at the same per-replica rate (:func:`calibrated_signals`, from
:func:`simulator.inference.capacity.bundled_steady_signals`). Before, all three were the M/M/c queue's
utilisation (arrivals over service capacity), a gauge exactly proportional to the load that no vLLM exports:
HPA on it was a rule on requests per replica, where the simulator's HPA reads a GPU busy fraction that is
near 1 from half a replica's capacity on. ``vllm:num_requests_waiting`` stays the M/M/c mean queue.

Run: ``python tests/e2e/emulator.py --kubeconfig K --namespace NS --deployment NAME --port P``.
``POST /rate`` with a number as the body steps the arrival rate from that instant (replacing ``--rate`` or
``--schedule``): a test that must place a load step relative to the operator's control steps.
"""

from __future__ import annotations

import argparse
import itertools
import math
import threading
import time
from dataclasses import dataclass, field, replace
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

BUCKETS_S = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
)
"""vLLM's bucket edges for time to first token (same as simulator/metrics.py)."""


def erlang_c(servers: int, offered_load: float) -> float:
    """Probability that an arrival waits in an M/M/c queue (offered load a = lambda/mu < c)."""
    if servers <= 0:
        return 1.0
    if offered_load >= servers:
        return 1.0
    # Erlang B by the stable recurrence, then C = B / (1 - rho (1 - B)).
    b = 1.0
    for k in range(1, servers + 1):
        b = offered_load * b / (k + offered_load * b)
    rho = offered_load / servers
    return b / (1.0 - rho * (1.0 - b))


@dataclass(frozen=True)
class ServiceModel:
    rate: float = 20.0
    """Arrivals per second."""
    service_rate: float = 8.0
    """Requests per second one GPU serves."""
    prefill_s: float = 0.1
    """Fixed time to first token without queueing."""

    def pod_rate(self, gpus_per_pod: float) -> float:
        """Requests per second one pod serves at full utilisation (a pod has at least one GPU's worth)."""
        return self.service_rate * max(gpus_per_pod, 1.0)

    def state(self, pods: int, gpus_per_pod: float) -> tuple[float, float, float]:
        """(utilisation per pod, P(wait), decay rate of the wait tail, 0 when overloaded)."""
        mu = self.pod_rate(gpus_per_pod)
        if pods <= 0:
            return 1.0, 1.0, 0.0
        capacity = pods * mu
        if self.rate >= capacity:
            return 1.0, 1.0, 0.0
        return self.rate / capacity, erlang_c(pods, self.rate / mu), capacity - self.rate

    def ttft_cdf(self, t: float, pods: int, gpus_per_pod: float) -> float:
        _, wait_p, decay = self.state(pods, gpus_per_pod)
        if t < self.prefill_s:
            return 0.0
        if decay == 0.0:
            return 0.0 if t < BUCKETS_S[-1] else 1.0
        return 1.0 - wait_p * math.exp(-decay * (t - self.prefill_s))

    def ttft_quantile(self, q: float, pods: int, gpus_per_pod: float) -> float:
        _, wait_p, decay = self.state(pods, gpus_per_pod)
        if decay == 0.0:
            return math.inf
        tail = 1.0 - q
        return self.prefill_s + (math.log(wait_p / tail) / decay if wait_p > tail else 0.0)


CALIBRATION_REPLICAS = 3
"""Replicas at which the M/M/c capacity is matched to the simulator's (the e2e segment's peak size)."""


def capacity_at_slo(model: ServiceModel, replicas: int, gpus_per_pod: float, slo_s: float,
                    attainment: float) -> float:
    """Largest arrival rate at which the share of requests with TTFT <= ``slo_s`` is >= ``attainment``."""
    lo, hi = 0.0, replicas * model.pod_rate(gpus_per_pod)
    for _ in range(60):
        mid = (lo + hi) / 2
        if replace(model, rate=mid).ttft_cdf(slo_s, replicas, gpus_per_pod) >= attainment:
            lo = mid
        else:
            hi = mid
    return lo


@lru_cache(maxsize=32)
def calibrated_model(model: str, hardware: str, tp: int, max_batch: int, slo_s: float, attainment: float = 0.99,
                     sizes: str = "second-half", replicas: int = CALIBRATION_REPLICAS) -> ServiceModel:
    """The M/M/c service of one (TP, max batch) template whose capacity at the SLO, at ``replicas``
    replicas, is the simulator's for the same model, hardware, template and request sizes."""
    from simulator.inference.capacity import bundled_slo_capacity
    from simulator.inference.perf_model import PerfModel
    from simulator.inference.traces import azure_code_half

    target = bundled_slo_capacity(model, hardware, tp, max_batch, replicas, slo_s, attainment, sizes)
    prefill = PerfModel.load(model, hardware).prefill_time_s(float(azure_code_half(sizes).prompt_tokens.mean()), 1, tp)
    lo, hi = target / replicas / tp, 20.0 * target / replicas / tp  # requests/s per GPU
    for _ in range(60):
        mid = (lo + hi) / 2
        if capacity_at_slo(ServiceModel(0.0, mid, prefill), replicas, tp, slo_s, attainment) < target:
            lo = mid
        else:
            hi = mid
    return ServiceModel(rate=0.0, service_rate=hi, prefill_s=prefill)


SIGNAL_LOADS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.65, 0.8, 1.0, 1.2)
"""Per-replica arrival rates, as shares of one replica's capacity at the SLO (at ``CALIBRATION_REPLICAS``), at
which :func:`calibrated_signals` reads the simulator's per-replica signals; linear in between, the last value
beyond."""
SIGNAL_REPLICAS = 4
"""Replica counts 1..this are simulated; a larger Deployment reads as this many (the signals per replica at
one per-replica rate move by a few percent between 2 and 4 replicas)."""


@dataclass(frozen=True)
class Signals:
    """What a replica's exporters read at a per-replica arrival rate, as the simulator reads them."""

    rates: tuple[float, ...]
    """Per-replica arrival rates (requests/s), ascending, from 0."""
    table: tuple[tuple[tuple[float, float, float], ...], ...]
    """``table[k - 1][i]``: (GPU busy fraction, requests running, KV cache share) per replica with k replicas
    at ``rates[i]``."""

    def at(self, pods: int, rate: float) -> tuple[float, float, float]:
        if pods <= 0:
            return 0.0, 0.0, 0.0
        rows = self.table[min(pods, len(self.table)) - 1]
        per = rate / pods
        return tuple(float(np.interp(per, self.rates, [row[j] for row in rows])) for j in range(3))  # type: ignore[return-value]


@lru_cache(maxsize=32)
def calibrated_signals(model: str, hardware: str, tp: int, max_batch: int, slo_s: float, attainment: float = 0.99,
                       sizes: str = "second-half") -> Signals:
    """The simulator's GPU busy fraction, running requests and KV share per replica of one template
    (:func:`simulator.inference.capacity.bundled_steady_signals`), on a grid of per-replica rates.

    The M/M/c queue's own utilisation (arrival rate over service capacity) is a load gauge that no vLLM
    exports: DCGM's GPU utilisation is the share of time a kernel runs, and a batching engine runs one as
    long as any request is in it, so the simulator's busy fraction is 0.97-0.99 at half a replica's capacity at
    the SLO where the queue's utilisation is 0.45. A rule that scales on GPU utilisation must read here what
    it reads in the simulator, or the e2e costs a different rule than the simulator's sweep did."""
    from simulator.inference.capacity import bundled_slo_capacity, bundled_steady_signals

    per = bundled_slo_capacity(model, hardware, tp, max_batch, CALIBRATION_REPLICAS, slo_s, attainment, sizes)
    per /= CALIBRATION_REPLICAS
    rates = (0.0, *(f * per for f in SIGNAL_LOADS))
    table = tuple(
        ((0.0, 0.0, 0.0), *(bundled_steady_signals(model, hardware, tp, max_batch, k, r * k, sizes) for r in rates[1:]))
        for k in range(1, SIGNAL_REPLICAS + 1)
    )
    return Signals(rates, table)


@dataclass
class Emulator:
    namespace: str
    deployment: str
    model: ServiceModel
    pods: list[str] = field(default_factory=list)
    gpus_per_pod: float = 1.0
    buckets: dict[str, dict[float, float]] = field(default_factory=dict)
    """Per pod, cumulative bucket counts: each pod's own counters, which only ever grow (a pod that
    appears starts at zero, as a restarted vLLM would), so Prometheus' rate() sees no false resets."""
    total: dict[str, float] = field(default_factory=dict)
    completed: dict[str, float] = field(default_factory=dict)
    """Per pod, requests finished (``vllm:request_success_total``): the arrivals, but never more than the pod
    serves, so an overloaded service reports its throughput and not its demand (a policy sizing by
    completions per replica reads what a replica delivers)."""
    total_sum: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    slo_s: float = 5.0
    """TTFT target for the emulator's own attainment counters (what the tests judge a policy by)."""
    served: float = 0.0
    within_slo: float = 0.0
    gpu_seconds: float = 0.0
    """GPUs of Running pods integrated over time: the cost a test compares policies by."""
    pod_seconds: float = 0.0
    """Running pods (replicas) integrated over time."""
    calibrate: tuple[str, str] | None = None
    """(model, hardware): service rate and prefill follow the live template (:func:`calibrated_model`)."""
    batch_size: int = 64
    schedule: list[tuple[float, float]] | None = None
    """Arrival rate over time (:func:`rate_at`), from the first :meth:`advance`; None keeps ``model.rate``."""
    started_t: float | None = None
    last_t: float | None = None
    signals: Signals | None = None
    """Per-replica GPU utilisation, running requests and KV share as the simulator reads them at the live
    template (:func:`calibrated_signals`, with ``calibrate``); None: the M/M/c queue's utilisation for all three."""

    def observe_cluster(self, apps, core) -> None:
        dep = apps.read_namespaced_deployment(self.deployment, self.namespace)
        container = dep.spec.template.spec.containers[0]
        limits = (container.resources and container.resources.limits) or {}
        gpus = float(limits.get("nvidia.com/gpu", 1))
        env = {e.name: e.value for e in (container.env or [])}
        batch = int(env.get("AUTOCM_BATCH_SIZE") or self.batch_size)
        selector = ",".join(f"{k}={v}" for k, v in sorted(dep.spec.selector.match_labels.items()))
        pods = core.list_namespaced_pod(self.namespace, label_selector=selector).items
        running = sorted(
            p.metadata.name
            for p in pods
            if p.status.phase == "Running" and p.metadata.deletion_timestamp is None
        )
        # These may simulate for a few seconds (once per template): not under the lock.
        calibrated = (calibrated_model(*self.calibrate, int(gpus), batch, self.slo_s)
                      if self.calibrate is not None else None)
        signals = (calibrated_signals(*self.calibrate, int(gpus), batch, self.slo_s)
                   if self.calibrate is not None else None)
        with self.lock:
            self.pods, self.gpus_per_pod, self.batch_size = running, gpus, batch
            if calibrated is not None:
                self.model = replace(calibrated, rate=self.model.rate)
            self.signals = signals

    def advance(self, now: float) -> None:
        """Account for the time since the last call (the schedule's rate at the gap's midpoint).

        Called every second by the main loop AND by every scrape, so the counters a scrape reads are
        exact up to that instant: with counters that only moved on the loop's ~1.2 s ticks, Prometheus'
        1 s scrapes caught 4 ticks in some 3 s spans and rate() over a 4 s window read 9.7 requests/s at
        a true 8."""
        with self.lock:
            if self.last_t is None or self.started_t is None:
                self.last_t = self.started_t = now
                return
            seconds, mid = now - self.last_t, (now + self.last_t) / 2 - self.started_t
            if seconds <= 0:
                return
            self.last_t = now
            if self.schedule is not None:
                self.model = replace(self.model, rate=rate_at(self.schedule, mid))
            self._add(seconds)

    def set_rate(self, rate: float, now: float) -> None:
        """From ``now`` on, ``rate`` arrivals per second (a step of the load; it replaces any schedule).
        The time before ``now`` is accounted at the old rate first."""
        self.advance(now)
        with self.lock:
            self.schedule = None
            self.model = replace(self.model, rate=rate)

    def tick(self, seconds: float) -> None:
        """Add one interval's worth of requests to the histograms."""
        with self.lock:
            self._add(seconds)

    def _add(self, seconds: float) -> None:
        """Requests, GPU- and pod-seconds of ``seconds`` at the current state (the caller holds the lock)."""
        self.gpu_seconds += len(self.pods) * self.gpus_per_pod * seconds
        self.pod_seconds += len(self.pods) * seconds
        if not self.pods:
            self.served += self.model.rate * seconds  # nobody serves them: every one misses
            return
        self.served += self.model.rate * seconds
        self.within_slo += self.model.rate * seconds * self.model.ttft_cdf(
            self.slo_s, len(self.pods), self.gpus_per_pod)
        n = self.model.rate * seconds / len(self.pods)  # requests spread evenly over the pods
        done = min(n, self.model.pod_rate(self.gpus_per_pod) * seconds)
        cdf = {
            le: 1.0 if math.isinf(le) else self.model.ttft_cdf(le, len(self.pods), self.gpus_per_pod)
            for le in (*BUCKETS_S, math.inf)
        }
        q50 = self.model.ttft_quantile(0.5, len(self.pods), self.gpus_per_pod)
        for pod in self.pods:
            mine = self.buckets.setdefault(pod, dict.fromkeys(cdf, 0.0))
            for le, f in cdf.items():
                mine[le] += n * f
            self.total[pod] = self.total.get(pod, 0.0) + n
            self.completed[pod] = self.completed.get(pod, 0.0) + done
            self.total_sum[pod] = self.total_sum.get(pod, 0.0) + n * (
                q50 if math.isfinite(q50) else BUCKETS_S[-1]
            )

    def exposition(self) -> str:
        if self.last_t is not None:
            self.advance(time.monotonic())
        with self.lock:
            pods = list(self.pods)
            util, wait_p, decay = self.model.state(len(pods), self.gpus_per_pod)
            p99 = self.model.ttft_quantile(0.99, len(pods), self.gpus_per_pod)
            lines = [
                "# TYPE emulator_ttft_p99_seconds gauge",
                f'emulator_ttft_p99_seconds{{namespace="{self.namespace}"}} '
                f"{p99 if math.isfinite(p99) else BUCKETS_S[-1]}",
                "# TYPE emulator_running_pods gauge",
                f'emulator_running_pods{{namespace="{self.namespace}"}} {len(pods)}',
                "# TYPE emulator_gpus gauge",
                f'emulator_gpus{{namespace="{self.namespace}"}} {len(pods) * self.gpus_per_pod}',
                "# TYPE emulator_arrival_rate gauge",
                f'emulator_arrival_rate{{namespace="{self.namespace}"}} {self.model.rate}',
                f"emulator_requests_total {self.served}",
                f"emulator_requests_within_slo_total {self.within_slo}",
                f"emulator_gpu_seconds_total {self.gpu_seconds}",
                f"emulator_pod_seconds_total {self.pod_seconds}",
                "# TYPE vllm:time_to_first_token_seconds histogram",
            ]
            share = 1.0 / len(pods) if pods else 0.0
            for pod in pods:
                lab = f'namespace="{self.namespace}",pod="{pod}"'
                for le, count in self.buckets.get(pod, {}).items():
                    le_text = "+Inf" if math.isinf(le) else repr(le)
                    lines.append(f'vllm:time_to_first_token_seconds_bucket{{{lab},le="{le_text}"}} {count}')
                lines.append(f"vllm:time_to_first_token_seconds_count{{{lab}}} {self.total.get(pod, 0.0)}")
                lines.append(f"vllm:time_to_first_token_seconds_sum{{{lab}}} {self.total_sum.get(pod, 0.0)}")
            queue = (wait_p * util / (1.0 - util)) if decay > 0 else 100.0
            busy, running, kv = ((util, util, util) if self.signals is None
                                 else self.signals.at(len(pods), self.model.rate))
            lines.append("# TYPE vllm:request_success counter")
            for pod in pods:
                lines.append(
                    f'vllm:request_success_total{{namespace="{self.namespace}",pod="{pod}"}} '
                    f"{self.completed.get(pod, 0.0)}"
                )
            for name, value in (
                ("vllm:num_requests_running", running),
                ("vllm:num_requests_waiting", queue * share),
                ("vllm:kv_cache_usage_perc", kv),
                ("DCGM_FI_DEV_GPU_UTIL", 100.0 * busy),
            ):
                lines.append(f"# TYPE {name} gauge")
                for pod in pods:
                    lines.append(f'{name}{{namespace="{self.namespace}",pod="{pod}"}} {value}')
            return "\n".join(lines) + "\n"


def rate_at(schedule: list[tuple[float, float]], t: float) -> float:
    """Arrival rate at ``t`` seconds of a piecewise-linear schedule ``[(time_s, rate), ...]``."""
    if t <= schedule[0][0]:
        return schedule[0][1]
    for (t0, r0), (t1, r1) in itertools.pairwise(schedule):
        if t <= t1:
            return r0 + (r1 - r0) * (t - t0) / (t1 - t0) if t1 > t0 else r1
    return schedule[-1][1]


def parse_schedule(text: str) -> list[tuple[float, float]]:
    """``"0:1,40:7,60:7,100:1"`` -> [(0, 1), (40, 7), (60, 7), (100, 1)] (seconds from start: requests/s)."""
    points = [tuple(float(x) for x in part.split(":")) for part in text.split(",") if part]
    if not points or any(len(p) != 2 for p in points):
        raise ValueError(f"schedule {text!r}: expected time:rate,time:rate,...")
    return sorted(points)  # type: ignore[arg-type]


def serve(emulator: Emulator, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = emulator.exposition().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            """``POST /rate`` with a number as the body: the arrival rate from now on (a test's load step)."""
            try:
                if self.path != "/rate":
                    raise ValueError(f"no {self.path}: POST /rate")
                rate = float(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                if not (math.isfinite(rate) and rate >= 0):
                    raise ValueError(f"rate {rate}: a finite number >= 0")
            except ValueError as exc:
                self.send_error(400, str(exc))
                return
            emulator.set_rate(rate, time.monotonic())
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kubeconfig", required=True)
    ap.add_argument("--namespace", required=True)
    ap.add_argument("--deployment", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--rate", type=float, default=ServiceModel.rate)
    ap.add_argument("--service-rate", type=float, default=ServiceModel.service_rate)
    ap.add_argument("--prefill", type=float, default=ServiceModel.prefill_s)
    ap.add_argument("--schedule", default=None,
                    help="Time-varying arrivals, time_s:rate pairs from start, linear between (overrides --rate).")
    ap.add_argument("--slo", type=float, default=5.0, help="TTFT target of the attainment counters.")
    ap.add_argument("--calibrate", default=None, metavar="MODEL:HARDWARE",
                    help="Service rate and prefill from the simulator's latency table for the live template "
                         "(overrides --service-rate and --prefill).")
    args = ap.parse_args()
    schedule = parse_schedule(args.schedule) if args.schedule else None

    import kubernetes

    client = kubernetes.config.new_client_from_config(config_file=args.kubeconfig)
    apps, core = kubernetes.client.AppsV1Api(client), kubernetes.client.CoreV1Api(client)
    calibrate = tuple(args.calibrate.split(":", 1)) if args.calibrate else None
    if calibrate is not None and len(calibrate) != 2:
        ap.error(f"--calibrate {args.calibrate!r}: expected MODEL:HARDWARE, e.g. llama2-70b:a100-80gb")
    emu = Emulator(args.namespace, args.deployment, ServiceModel(args.rate, args.service_rate, args.prefill),
                   slo_s=args.slo, calibrate=calibrate)  # type: ignore[arg-type]
    emu.schedule = schedule
    for attempt in range(30):  # the first template's calibration before any request is counted
        try:
            emu.observe_cluster(apps, core)
            break
        except Exception as exc:
            print(f"emulator: first cluster read failed ({attempt}): {exc}", flush=True)
            time.sleep(1.0)
    emu.advance(time.monotonic())  # the schedule's time 0
    serve(emu, args.port)
    while True:
        time.sleep(1.0)
        try:
            emu.observe_cluster(apps, core)
        except Exception as exc:  # the apiserver may be briefly busy; keep serving the last state
            print(f"emulator: cluster read failed: {exc}", flush=True)
        emu.advance(time.monotonic())


if __name__ == "__main__":
    main()
