"""How long ``autocm --help`` and ``autocm sim`` on a small scenario take end to end, against the bare
simulation time of the same scenario.

End to end = a fresh interpreter running the command as a user would (``python -m controller.cli``),
timed from outside; wall and CPU (user + system, of the child) are both printed because a loaded machine
stretches wall time but not CPU time. The bare simulation is :func:`simulator.workloads.simulate` for each
of the scenario's policies, timed in this process after every import is done: what the command would
cost with free start-up and free report writing. The difference is start-up, checks, the best static in
hindsight (one more simulation per candidate) and report writing.

Scenario: ten minutes of the Azure code trace, a 16-GPU cluster, static and HPA policies (the same as
tests/e2e/test_sim_metrics_import.py), metrics export on (the default for short runs).

Targets (issue 12): ``autocm --help`` under 1 s, ``autocm sim`` on it under 3 s.

Run: ``python benchmarks/bench_startup.py [--repeat 3]``
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCENARIO = """
name: startup
description: ten minutes of the Azure code trace on a small cluster.
seed: 1
control_interval_s: 60
cluster: {nodes: 2, gpus_per_node: 8}
inference:
  - name: svc
    namespace: serving
    trace: {kind: azure-code, duration_s: 600}
    slo: {ttft_seconds: 10.0, attainment: 0.99}
    knobs: {replicas: {min: 1, max: 2}, gpus_per_replica: [8], max_batch_size: {min: 64, max: 64}}
    initial: {replicas: 2, gpus_per_replica: 8}
policies: [{name: static}, {name: hpa}]
"""


def timed(cmd: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env={**os.environ})
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def bare_simulation(path: Path) -> float:
    from simulator import scenario as sc
    from simulator.runner import expand
    from simulator.workloads import simulate

    scenario = sc.load(str(path))
    plan = expand(scenario, None, sweep=True)
    simulate(scenario, plan[0], scenario.seed)  # warm: the trace file is read once, as in the command
    t0 = time.perf_counter()
    for prun in plan:
        simulate(scenario, prun, scenario.seed)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs of each command; the best is reported")
    args = ap.parse_args()
    cli = [sys.executable, "-m", "controller.cli"]
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        path = Path(tmp) / "startup.yaml"
        path.write_text(SCENARIO)
        helps = [timed([*cli, "--help"]) for _ in range(args.repeat)]
        sims = [timed([*cli, "sim", str(path), "--out", f"{tmp}/report", "-q"]) for _ in range(args.repeat)]
        bare = bare_simulation(path)
    load = os.getloadavg()[0]
    print(f"load average {load:.1f} on {os.cpu_count()} CPUs; best of {args.repeat}")
    print(f"{'':28s} {'wall s':>8s} {'CPU s':>8s}   target")
    print(f"{'autocm --help':28s} {min(w for w, _ in helps):8.2f} {min(c for _, c in helps):8.2f}   < 1 s")
    print(f"{'autocm sim (small, report)':28s} {min(w for w, _ in sims):8.2f} {min(c for _, c in sims):8.2f}   < 3 s")
    print(f"{'bare simulation, in-process':28s} {bare:8.2f}")
    print(f"sim end to end / bare simulation: {min(w for w, _ in sims) / bare:.1f}x wall, "
          f"{min(c for _, c in sims) / bare:.1f}x CPU")


if __name__ == "__main__":
    main()
