"""How the operator scales: one control cycle over N managed workloads on a real control plane.

Issue 4 ("Scale, in a benchmark") asks for 1,000 managed workloads on kwok fake nodes, the time of
one full control cycle (queries, decisions, status writes, patches) and the operator's resident
memory beside the idle operator's. Aim: < 2 s of operator work per cycle on 2 cores, < 1 GiB.

Setup (all real, as in tests/e2e): etcd, kube-apiserver, controller manager, scheduler and kwok with
enough fake GPU nodes for the pods; N Deployments (``--replicas`` pods each, kwok runs them) and N
SizingPolicies (hpa learner on ``gpu_utilization``, objective ``ttft_p99_seconds``); one exporter
process serving vLLM/DCGM series for every pod (the names and labels tests/e2e/emulator.py serves),
scraped by a real Prometheus.

Two measurements per N:

- **subprocess**: the real ``autocm run`` process (kopf, a daemon per policy). Its RSS idle (no
  policies in its namespace) and with N policies (VmRSS from /proc/<pid>/status), and over a window
  of several intervals its CPU seconds per interval (utime+stime from /proc/<pid>/stat) and the
  number of steps it completed per interval (from its own ``/metrics``): work per cycle, and whether
  it keeps up.
- **in-process**: the operator's :class:`~controller.operator.Engine` without kopf, stepping every
  policy once per cycle (serially, then on the operator's step threads), timed: wall and CPU seconds of
  one full cycle, the shared Prometheus refresh's share of it, API calls per cycle. ``--profile``
  prints where a cycle's time goes (cProfile).

Run: ``.venv/bin/python benchmarks/bench_operator_scale.py --workloads 1000 --baseline 100``
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import cProfile
import io
import json
import math
import os
import pstats
import re
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

GROUP, VERSION, PLURAL = "autocm.io", "v1alpha1", "sizingpolicies"
CRD_FILE = REPO / "controller" / "crd" / "sizingpolicy.yaml"
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"  # kwok never pulls it
TTFT_BUCKETS_S = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
                  10.0, 20.0, 40.0, 80.0)
"""vLLM's TTFT bucket edges (as tests/e2e/emulator.py and simulator/metrics.py)."""


@dataclass(frozen=True)
class BenchSettings:
    target_cycle_s: float = 2.0
    """Issue 4: under 2 s of operator work per cycle for 1,000 workloads on 2 cores."""
    target_rss_bytes: int = 2**30
    """Issue 4: under 1 GiB resident."""
    pods_per_node: int = 100
    """Below the kubelet's default --max-pods (110) that the e2e fake nodes advertise."""
    scrape_interval: str = "2s"
    """Fast enough for a 10 s rate() window to hold several samples, slow enough for 2 cores."""
    window_s: int = 10
    """spec.metrics.windowSeconds: five scrapes per rate() window."""


SETTINGS = BenchSettings()


# --- the exporter: one process serving every pod's series ------------------------------------------


def exporter_main(pods_file: Path, namespace: str, port: int) -> None:
    """Serves vLLM/DCGM series for every pod listed in ``pods_file``; counters grow with time."""
    pods: dict[str, list[str]] = json.loads(pods_file.read_text())
    t0 = time.time()
    rows = []
    for i, (_workload, names) in enumerate(sorted(pods.items())):
        # Each workload gets its own steady load so the p99s and utilisations differ.
        rate = 5.0 + (i % 17)
        util = 0.3 + 0.6 * ((i * 7919) % 100) / 100
        scale_s = 0.05 + 0.5 * ((i * 104729) % 100) / 100
        cdf = [1 - math.exp(-le / scale_s) for le in TTFT_BUCKETS_S]
        for pod in names:
            rows.append((f'namespace="{namespace}",pod="{pod}"', rate, util, cdf))

    def render() -> bytes:
        el = time.time() - t0 + 60.0
        out = ["# TYPE vllm:time_to_first_token_seconds histogram"]
        for lab, rate, _, cdf in rows:
            n = rate * el
            out.extend(f'vllm:time_to_first_token_seconds_bucket{{{lab},le="{le}"}} {n * c:.3f}'
                       for le, c in zip(TTFT_BUCKETS_S, cdf, strict=True))
            out.append(f'vllm:time_to_first_token_seconds_bucket{{{lab},le="+Inf"}} {n:.3f}')
            out.append(f"vllm:time_to_first_token_seconds_count{{{lab}}} {n:.3f}")
        out.append("# TYPE vllm:request_success_total counter")
        out.extend(f"vllm:request_success_total{{{lab}}} {rate * el:.3f}" for lab, rate, _, _ in rows)
        for name, scale in (("vllm:num_requests_running", 8.0), ("vllm:num_requests_waiting", 2.0),
                            ("vllm:kv_cache_usage_perc", 1.0), ("DCGM_FI_DEV_GPU_UTIL", 100.0)):
            out.append(f"# TYPE {name} gauge")
            out.extend(f"{name}{{{lab}}} {scale * util:.4f}" for lab, _, util, _ in rows)
        return ("\n".join(out) + "\n").encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = render()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


# --- cluster objects ---------------------------------------------------------------------------------


def deployment(name: str, replicas: int) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"terminationGracePeriodSeconds": 0,
                                           "containers": [{"name": "server", "image": PAUSE_IMAGE}]}}}}


def sizing_policy(name: str, mode: str, interval_s: int) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "SizingPolicy", "metadata": {"name": name},
            "spec": {"targetRef": {"kind": "Deployment", "name": name}, "workload": "inference",
                     "objective": {"metric": "ttft_p99_seconds", "target": 0.5},
                     "knobs": {"replicas": {"min": 1, "max": 8}},
                     "learner": {"name": "hpa", "settings": {"metric": "gpu_utilization", "target": 0.7}},
                     "mode": mode, "intervalSeconds": interval_s,
                     "metrics": {"windowSeconds": SETTINGS.window_s}}}


def parallel(fn, items, workers: int = 16) -> None:
    """Creates objects with a few concurrent requests: 1,000 sequential creates take minutes."""
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for f in [pool.submit(fn, x) for x in items]:
            f.result()


def install_crd(api_client, wait_until) -> None:
    import kubernetes
    import yaml

    ext = kubernetes.client.ApiextensionsV1Api(api_client)
    body = yaml.safe_load(CRD_FILE.read_text())
    with contextlib.suppress(kubernetes.client.ApiException):
        ext.create_custom_resource_definition(body)

    def established() -> bool:
        got = ext.read_custom_resource_definition(body["metadata"]["name"])
        return any(c.type == "Established" and c.status == "True" for c in got.status.conditions or [])

    wait_until(established, what="SizingPolicy CRD Established", timeout_s=60)


# --- process measurements ----------------------------------------------------------------------------


def rss_bytes(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (fields 14 and 15 of /proc/<pid>/stat, in clock ticks)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def scrape_operator(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for name in ("autocm_operator_loop_duration_seconds_count", "autocm_operator_loop_duration_seconds_sum"):
        m = re.search(rf"^{name} (\S+)$", text, re.M)
        out[name] = float(m.group(1)) if m else 0.0
    out["queries"] = sum(float(v) for v in re.findall(
        r'^autocm_operator_prometheus_queries_total\{[^}]*result="ok"[^}]*\} (\S+)$', text, re.M))
    return out


# --- one N -----------------------------------------------------------------------------------------


@dataclass
class Result:
    n: int
    setup_s: float = math.nan
    idle_rss: int = 0
    sub_rss: int = 0
    sub_cpu_per_cycle: float = math.nan
    sub_steps_per_cycle: float = math.nan
    sub_step_mean_s: float = math.nan
    sub_queries_per_cycle: float = math.nan
    first_status_s: float = math.nan
    cold_wall: float = math.nan
    cold_cpu: float = math.nan
    wall: float = math.nan
    cpu: float = math.nan
    refresh_s: float = math.nan
    calls: float = math.nan
    threaded_wall: float = math.nan
    threaded_cpu: float = math.nan
    inproc_rss: int = 0


def run_one(n: int, args, plane, prom, wait_until, free_port, work: Path) -> Result:
    import kubernetes

    res = Result(n)
    api = plane.api_client
    core = kubernetes.client.CoreV1Api(api)
    apps = kubernetes.client.AppsV1Api(api)
    custom = kubernetes.client.CustomObjectsApi(api)
    ns = f"scale-{n}"
    names = [f"w{i:05d}" for i in range(n)]
    t0 = time.perf_counter()
    core.create_namespace({"metadata": {"name": ns}})
    wait_until(lambda: bool(core.read_namespaced_service_account("default", ns)),
               what=f"service account {ns}/default", timeout_s=60)
    parallel(lambda nm: apps.create_namespaced_deployment(ns, deployment(nm, args.replicas)), names)
    want = n * args.replicas

    def running() -> bool:  # raw JSON: deserialising 1,000 V1Pods every poll costs a core-second
        resp = core.list_namespaced_pod(ns, field_selector="status.phase=Running", _preload_content=False)
        return len(json.loads(resp.data)["items"]) >= want

    wait_until(running, what=f"{want} Running pods in {ns}", timeout_s=600, interval_s=2)
    pods: dict[str, list[str]] = {nm: [] for nm in names}
    for p in core.list_namespaced_pod(ns).items:
        app = (p.metadata.labels or {}).get("app")
        if app in pods:
            pods[app].append(p.metadata.name)
    for nm, got in pods.items():  # --replicas 0: series under names the pod regex accepts
        if not got:
            got.append(f"{nm}-5d8f7c9b4-x{int(nm[1:]) % 10000:04d}")
    pods_file = work / f"pods-{n}.json"
    pods_file.write_text(json.dumps(pods))
    port = free_port()
    exporter = subprocess.Popen([sys.executable, __file__, "--exporter", str(pods_file), "--namespace", ns,
                                 "--port", str(port)], start_new_session=True)
    try:
        prom.add_job(f"scale-{n}", [f"127.0.0.1:{port}"])
        prom.wait_for(f'count(DCGM_FI_DEV_GPU_UTIL{{namespace="{ns}"}}) >= {len(names)}', timeout_s=120)
        prom.wait_for(f'count(rate(vllm:request_success_total{{namespace="{ns}"}}[{SETTINGS.window_s}s]))'
                      f' >= {len(names)}', timeout_s=120)
        res.setup_s = time.perf_counter() - t0
        print(f"[N={n}] cluster objects, pods and metrics ready in {res.setup_s:.0f} s", flush=True)
        if not args.skip_subprocess:
            measure_subprocess(res, ns, names, args, plane, prom, custom, free_port, work)
        else:
            parallel(lambda nm: custom.create_namespaced_custom_object(
                GROUP, VERSION, ns, PLURAL, sizing_policy(nm, args.mode, args.interval)), names)
        if not args.skip_inprocess:
            measure_inprocess(res, ns, names, args, plane, prom, custom)
    finally:
        exporter.terminate()
        exporter.wait(10)
        prom.remove_job(f"scale-{n}")
    return res


def measure_subprocess(res: Result, ns: str, names: list[str], args, plane, prom, custom, free_port,
                       work: Path) -> None:
    mport = free_port()
    argv = [sys.executable, "-m", "controller.run_cmd", "run", "--kubeconfig", str(plane.kubeconfig),
            "--prometheus", prom.url, "--metrics-port", str(mport), "--standalone", "-n", ns,
            "--checkpoint-every", "600"]
    log = (work / f"operator-{res.n}.log").open("wb")
    proc = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        time.sleep(args.idle_s)
        res.idle_rss = rss_bytes(proc.pid)
        print(f"[N={res.n}] idle operator RSS {res.idle_rss / 2**20:.0f} MiB", flush=True)
        t0 = time.perf_counter()
        parallel(lambda nm: custom.create_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, sizing_policy(nm, args.mode, args.interval)), names)

        def all_have_status() -> bool:
            items = custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["items"]
            return sum(1 for i in items if (i.get("status") or {}).get("conditions")) >= len(names)

        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"operator exited {proc.returncode}; see {log.name}")
            if all_have_status():
                break
            if time.perf_counter() - t0 > args.first_status_timeout_s:
                print(f"[N={res.n}] not every policy had a status after {args.first_status_timeout_s:.0f} s",
                      flush=True)
                break
            time.sleep(2)
        res.first_status_s = time.perf_counter() - t0
        time.sleep(2 * args.interval)  # the first steps restore/checkpoint; measure the steady state
        m0, c0, w0 = scrape_operator(mport), cpu_seconds(proc.pid), time.perf_counter()
        time.sleep(args.window_cycles * args.interval)
        m1, c1, w1 = scrape_operator(mport), cpu_seconds(proc.pid), time.perf_counter()
        res.sub_rss = rss_bytes(proc.pid)
        cycles = (w1 - w0) / args.interval
        steps = m1["autocm_operator_loop_duration_seconds_count"] - m0["autocm_operator_loop_duration_seconds_count"]
        res.sub_cpu_per_cycle = (c1 - c0) / cycles
        res.sub_steps_per_cycle = steps / cycles
        res.sub_queries_per_cycle = (m1["queries"] - m0["queries"]) / cycles
        res.sub_step_mean_s = ((m1["autocm_operator_loop_duration_seconds_sum"]
                                - m0["autocm_operator_loop_duration_seconds_sum"]) / steps) if steps else math.nan
        print(f"[N={res.n}] subprocess: {res.sub_cpu_per_cycle:.2f} CPU s/cycle, "
              f"{res.sub_steps_per_cycle:.0f}/{res.n} steps/cycle, RSS {res.sub_rss / 2**20:.0f} MiB", flush=True)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


def measure_inprocess(res: Result, ns: str, names: list[str], args, plane, prom, custom) -> None:
    from controller.kube import Kube
    from controller.operator import Engine, OperatorSettings

    # A long checkpoint interval: a steady cycle writes no ConfigMaps (the cold cycle does). The
    # policies keep their own interval, and cycles start one interval apart, as the daemons' steps do:
    # the namespace's Deployment listing is then renewed every cycle, and a status whose only news is
    # fresher numbers is rewritten once per OperatorSettings.status_refresh_s, so the mean over
    # status_refresh_s / interval cycles is the steady cost.
    kube = Kube(plane.api_client)
    settings = OperatorSettings(prometheus_url=prom.url, checkpoint_every_s=600.0)
    eng = Engine(kube, settings)
    items = custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["items"]
    for body in items:
        eng.observe_body(body)
    keys = sorted(Engine.key_of(b) for b in items)

    def cycle(workers: int, profile: cProfile.Profile | None = None) -> tuple[float, float, float, int]:
        c0, w0, k0 = self_cpu(), time.perf_counter(), kube.calls
        if profile:
            profile.enable()
        eng.shared.refresh(force=True)
        refresh = time.perf_counter() - w0
        if workers <= 1:
            for key in keys:
                eng.step(key)
        else:
            with concurrent.futures.ThreadPoolExecutor(workers) as pool:
                list(pool.map(eng.step, keys))
        if profile:
            profile.disable()
        return time.perf_counter() - w0, self_cpu() - c0, refresh, kube.calls - k0

    def paced(workers: int, count: int) -> list[tuple[float, float, float, int]]:
        out = []
        for _ in range(count):
            start = time.perf_counter()
            out.append(cycle(workers))
            time.sleep(max(0.0, args.interval - (time.perf_counter() - start)))
        return out

    def mean(runs: list[tuple[float, float, float, int]], i: int) -> float:
        return sum(r[i] for r in runs) / len(runs)

    res.cold_wall, res.cold_cpu, _, _ = cycle(1)
    print(f"[N={res.n}] in-process cold cycle (restore + checkpoint): {res.cold_wall:.2f} s", flush=True)
    count = args.cycles or max(1, math.ceil(settings.status_refresh_s / args.interval))
    # One paced cycle before the measured ones: the cold cycle's steps (and status writes) come less
    # than one interval before the first paced cycle's, which would push the status refresh they are
    # due past the measured window and flatter it.
    paced(1, 1)
    runs = paced(1, count)
    res.wall, res.cpu, res.refresh_s, res.calls = (mean(runs, i) for i in range(4))
    print(f"[N={res.n}] in-process serial cycles (wall s / CPU s / API calls): "
          + ", ".join(f"{r[0]:.2f}/{r[1]:.2f}/{r[3]}" for r in runs), flush=True)
    threaded = paced(settings.step_threads, count)  # as the daemons do
    res.threaded_wall, res.threaded_cpu = mean(threaded, 0), mean(threaded, 1)
    res.inproc_rss = rss_bytes()
    if args.profile:
        # CPU time, not wall: a serial cycle mostly waits on the apiserver, which hides where the CPU goes.
        prof = cProfile.Profile(time.process_time)
        cycle(1, prof)
        for order in ("tottime", "cumulative"):
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats(order).print_stats(30)
            print(f"[N={res.n}] cProfile (CPU time) of one serial cycle, by {order}:\n{out.getvalue()}", flush=True)


# --- report -------------------------------------------------------------------------------------------


def report(results: list[Result], args) -> None:
    from controller.operator import OperatorSettings

    s = SETTINGS
    mib = 2**20
    print("\nOperator scale benchmark "
          f"(mode {args.mode}, interval {args.interval} s, {args.replicas} pod(s)/workload, {os.cpu_count()} cores)")
    head = (f"{'N':>6} {'setup s':>8} {'idle RSS':>9} {'RSS N':>8} {'sub CPU/cyc':>11} {'steps/cyc':>9} "
            f"{'step ms':>8} {'q/cyc':>6} {'cold s':>7} {'cycle s':>8} {'cyc CPU s':>9} {'prom s':>7} "
            f"{'calls':>6} {'thr s':>6} {'thr CPU':>7}")
    print(head)
    for r in results:
        print(f"{r.n:>6} {r.setup_s:>8.0f} {r.idle_rss / mib:>8.0f}M {r.sub_rss / mib:>7.0f}M "
              f"{r.sub_cpu_per_cycle:>11.2f} {r.sub_steps_per_cycle:>9.0f} {r.sub_step_mean_s * 1e3:>8.1f} "
              f"{r.sub_queries_per_cycle:>6.1f} {r.cold_wall:>7.2f} {r.wall:>8.2f} {r.cpu:>9.2f} "
              f"{r.refresh_s:>7.2f} {r.calls:>6.0f} {r.threaded_wall:>6.2f} {r.threaded_cpu:>7.2f}")
    print("columns: sub = the `autocm run` process (CPU s per interval, steps completed per interval, mean "
          "step wall, PromQL queries per interval); cycle/cyc CPU/calls = in-process serial full cycle (mean of "
          "cycles started one interval apart); prom = its shared Prometheus refresh; thr = the same on "
          f"{OperatorSettings().step_threads} step threads (OperatorSettings.step_threads)")
    big = max(results, key=lambda r: r.n)
    print(f"\nTargets at N={big.n} (issue 4 is stated for N=1000):")
    work = big.sub_cpu_per_cycle if math.isfinite(big.sub_cpu_per_cycle) else big.cpu
    print(f"  operator CPU per cycle {work:.2f} s vs < {s.target_cycle_s:.0f} s: ratio {work / s.target_cycle_s:.2f}")
    print(f"  in-process cycle wall {big.wall:.2f} s vs < {s.target_cycle_s:.0f} s: "
          f"ratio {big.wall / s.target_cycle_s:.2f}")
    rss = big.sub_rss or big.inproc_rss
    print(f"  resident {rss / mib:.0f} MiB vs < {s.target_rss_bytes / mib:.0f} MiB: "
          f"ratio {rss / s.target_rss_bytes:.2f}")
    small = min(results, key=lambda r: r.n)
    if small is not big:
        k = big.n / small.n
        print(f"\nScaling {small.n} -> {big.n} (x{k:.0f} workloads): per-workload cycle wall "
              f"{small.wall / small.n * 1e3:.2f} -> {big.wall / big.n * 1e3:.2f} ms (ratio "
              f"{(big.wall / big.n) / (small.wall / small.n):.2f}; 1.0 is linear)")
        if math.isfinite(small.sub_cpu_per_cycle) and math.isfinite(big.sub_cpu_per_cycle):
            # Per completed step, not per policy: a process that falls behind completes fewer steps.
            small_step = small.sub_cpu_per_cycle / small.sub_steps_per_cycle
            big_step = big.sub_cpu_per_cycle / big.sub_steps_per_cycle
            print(f"  subprocess CPU per completed step {small_step * 1e3:.2f} -> {big_step * 1e3:.2f} ms "
                  f"(ratio {big_step / small_step:.2f})")
        print(f"  in-process CPU per workload per cycle {small.cpu / small.n * 1e3:.2f} -> "
              f"{big.cpu / big.n * 1e3:.2f} ms (ratio {(big.cpu / big.n) / (small.cpu / small.n):.2f})")
        print(f"  RSS growth per policy {(big.sub_rss - small.sub_rss) / (big.n - small.n) / 1024:.0f} KiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", type=int, default=1000, help="N managed workloads (the headline run)")
    ap.add_argument("--baseline", type=int, default=100, help="the smaller N for the scaling ratio (0: none)")
    ap.add_argument("--replicas", type=int, default=1, choices=(0, 1), help="pods per Deployment")
    ap.add_argument("--mode", default="recommend", choices=("recommend", "apply"))
    ap.add_argument("--interval", type=int, default=10, help="spec.intervalSeconds of every policy")
    ap.add_argument("--cycles", type=int, default=0,
                    help="in-process cycles timed, one interval apart (the mean is reported); 0: enough to "
                         "span one status refresh (OperatorSettings.status_refresh_s)")
    ap.add_argument("--window-cycles", type=int, default=3, help="intervals the subprocess is watched for")
    ap.add_argument("--idle-s", type=float, default=8.0, help="seconds before the idle RSS is read")
    ap.add_argument("--first-status-timeout-s", type=float, default=300.0)
    ap.add_argument("--skip-subprocess", action="store_true")
    ap.add_argument("--skip-inprocess", action="store_true")
    ap.add_argument("--profile", action="store_true", help="cProfile one in-process cycle")
    ap.add_argument("--exporter", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--namespace", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.exporter:
        exporter_main(args.exporter, args.namespace, args.port)
        return

    from tests.e2e.conftest import (
        SETTINGS as E2E,
    )
    from tests.e2e.conftest import (
        Component,
        E2ETools,
        PrometheusServer,
        _start_control_plane,
        free_port,
        http_get,
        tools_bin_dir,
        wait_until,
    )

    sizes = sorted({n for n in (args.baseline, args.workloads) if n > 0})
    nodes = max(2, math.ceil(max(sizes) * max(args.replicas, 1) / SETTINGS.pods_per_node) + 1)
    tools = E2ETools(tools_bin_dir())
    with tempfile.TemporaryDirectory(prefix="autocm-scale-") as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        t0 = time.perf_counter()
        (work / "plane").mkdir()
        plane = _start_control_plane(stack, tools, work / "plane", replace(E2E, gpu_node_count=nodes))
        pport = free_port()
        (work / "prom").mkdir()
        comp = Component("prometheus", [str(tools.path("prometheus")),
                                        f"--config.file={work / 'prom' / 'prometheus.yml'}",
                                        f"--storage.tsdb.path={work / 'prom' / 'data'}",
                                        f"--web.listen-address=127.0.0.1:{pport}", "--web.enable-lifecycle",
                                        "--log.level=warn"], work / "prom" / "prometheus.log")
        prom = PrometheusServer(url=f"http://127.0.0.1:{pport}", config_path=work / "prom" / "prometheus.yml",
                                component=comp, scrape_interval=SETTINGS.scrape_interval)
        prom.write_config()
        comp.start()
        stack.callback(comp.stop)
        wait_until(lambda: http_get(f"{prom.url}/-/ready")[0] == 200, what="Prometheus ready",
                   timeout_s=120, watch=[comp])
        install_crd(plane.api_client, wait_until)
        print(f"control plane ({nodes} kwok nodes) and Prometheus up in {time.perf_counter() - t0:.0f} s",
              flush=True)
        results = [run_one(n, args, plane, prom, wait_until, free_port, work) for n in sizes]
        report(results, args)


if __name__ == "__main__":
    main()
