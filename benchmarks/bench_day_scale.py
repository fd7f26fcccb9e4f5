"""Memory and wall time of a day-long simulated run with and without the OpenMetrics export.

Scenario (built in, seeded): one llama2-70b service on 8 nodes x 8 A100-80GB under the ``noisy`` load
shape at a mean of 2.6 requests/s (the Azure code trace's rate, about 225,000 requests a day), SLO TTFT
5 s for 99% of requests, scaled by Kubernetes HPA on GPU utilisation (target 0.7) between 1 and 16
replicas of TP4 or TP8, so pods come and go all day as on a real cluster. Each variant runs in a fresh
child process (peak RSS is per process); the child simulates exactly what ``autocm sim`` does for one
policy and one seed (:func:`simulator.workloads.simulate`), with the export on or off, and writes the
OpenMetrics file as the report does. The parent samples the child's RSS (``/proc``) and stops it past
``--max-rss-gb``, so a run of an unbounded recorder ends with a figure, not an out-of-memory machine.

Targets (issue 12): with export, peak RSS under 2 GB and wall time within 1.5x of the run without.

Run: ``python benchmarks/bench_day_scale.py [--hours 24] [--policy hpa] [--max-rss-gb 3]``
(``--hours 3`` to compare with code that keeps every sample in memory).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCENARIO = """
name: day-scale
description: A day of the noisy load shape at the Azure code trace's mean rate, HPA-scaled.
seed: 1
control_interval_s: 60
cluster: {{nodes: 8, gpus_per_node: 8, gpu_type: a100-80gb}}
inference:
  - name: code-completion
    namespace: serving
    trace: {{kind: load-shape, shape: noisy, mean_rate_per_s: 2.6, duration_s: {duration}}}
    slo: {{ttft_seconds: 5.0, attainment: 0.99}}
    knobs:
      replicas: {{min: 1, max: 16}}
      gpus_per_replica: [4, 8]
    initial: {{replicas: 4, gpus_per_replica: 8}}
policies:
  - name: {policy}
"""


def child(scenario_path: str, export: bool, out_dir: str) -> None:
    """One run in this process; prints a JSON line with wall seconds, samples and file size."""
    import resource

    from simulator import scenario as sc
    from simulator.metrics import Recorder
    from simulator.runner import expand
    from simulator.workloads import simulate

    scenario = sc.load(scenario_path)
    prun = expand(scenario, None, sweep=False)[0]
    path = Path(out_dir) / "run.om.txt"
    t0, c0 = time.perf_counter(), time.process_time()
    rec = None
    if export:
        try:
            rec = Recorder(spool=path.with_name(".run.spool"))
        except TypeError:  # code from before the streaming recorder keeps samples in memory
            rec = Recorder()
    result = simulate(scenario, prun, scenario.seed, recorder=rec)
    before_write = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # the write loads the spool back to sort
    samples = rec.write_openmetrics(path) if rec is not None else 0
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(json.dumps({"wall_s": wall, "cpu_s": cpu, "samples": samples,
                      "file_bytes": path.stat().st_size if path.exists() else 0,
                      "requests": result.metrics.get("requests"),
                      "self_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "maxrss_before_write_kb": before_write}))


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def measure(scenario_path: Path, export: bool, max_rss_kb: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-day-") as out:
        proc = subprocess.Popen([sys.executable, __file__, "--child", str(scenario_path), "--export", str(int(export)),
                                 "--out", out], stdout=subprocess.PIPE, text=True)
        peak, killed = 0, False
        while proc.poll() is None:
            peak = max(peak, _rss_kb(proc.pid))
            if peak > max_rss_kb:
                proc.kill()
                killed = True
                break
            time.sleep(0.2)
        stdout, _ = proc.communicate()
        if killed:
            return {"export": export, "killed_at_rss_kb": peak}
        if proc.returncode != 0:
            raise SystemExit(f"child failed with status {proc.returncode}")
        row = json.loads(stdout.strip().splitlines()[-1])
        row["export"] = export
        row["peak_rss_kb"] = max(peak, row["self_maxrss_kb"])
        return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--policy", default="hpa")
    ap.add_argument("--max-rss-gb", type=float, default=3.0, help="stop a child past this resident memory")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--export", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, bool(args.export), args.out)
        return
    with tempfile.TemporaryDirectory(prefix="bench-day-scenario-") as tmp:
        path = Path(tmp) / "day.yaml"
        path.write_text(SCENARIO.format(duration=int(args.hours * 3600), policy=args.policy))
        limit = int(args.max_rss_gb * 2**20)
        without = measure(path, False, limit)
        with_ = measure(path, True, limit)
    print(f"{args.hours:g} h, policy {args.policy}, {os.cpu_count()} CPUs")
    print(f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'export':8s} {'wall s':>8s} {'CPU s':>8s} {'peak RSS MB':>12s} {'samples':>12s} {'file MB':>9s}")
    for row in (without, with_):
        name = "on" if row["export"] else "off"
        if "killed_at_rss_kb" in row:
            print(f"{name:8s} {'stopped':>8s} {'':>8s} {row['killed_at_rss_kb'] / 1024:>12.0f}  (past --max-rss-gb)")
            continue
        print(f"{name:8s} {row['wall_s']:>8.1f} {row['cpu_s']:>8.1f} {row['peak_rss_kb'] / 1024:>12.0f} "
              f"{row['samples']:>12,d} {row['file_bytes'] / 1e6:>9.1f}")
    if "killed_at_rss_kb" in with_ or "killed_at_rss_kb" in without:
        print("ratios: n/a (a run was stopped at the memory cap)")
        return
    time_ratio = with_["wall_s"] / without["wall_s"]
    cpu_ratio = with_["cpu_s"] / without["cpu_s"]
    rss_ratio = with_["peak_rss_kb"] / without["peak_rss_kb"]
    print(f"ratios with/without export: time {time_ratio:.2f}x wall, {cpu_ratio:.2f}x CPU (target <= 1.5x), "
          f"peak RSS {rss_ratio:.2f}x; with export {with_['peak_rss_kb'] / 2**20:.2f} GiB (target < 2 GB)")
    if "maxrss_before_write_kb" in with_:  # the write loads the whole spool back to sort it: its own peak
        print(f"with export, peak RSS before the final write {with_['maxrss_before_write_kb'] / 1024:.0f} MB, "
              f"after it {with_['self_maxrss_kb'] / 1024:.0f} MB (in the child)")


if __name__ == "__main__":
    main()
