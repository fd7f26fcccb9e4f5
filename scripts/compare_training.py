"""Training schedulers side by side in one simulator: mean / p99 JCT, makespan, GPU-hours, restarts per job.

Runs each (policy, load, workload, seed) once, in one process, printing every row as it finishes, on the
Pollux paper's job streams, 16 nodes x 4 GPUs, the artifact's node choice (as ``scripts/fidelity.py``).
The last column is the mean JCT of every application (job class), ``app=seconds``.

    nice -n 10 .venv/bin/python scripts/compare_training.py --policies goodput-las pollux tiresias \\
        --loads 0.5 1.0 1.5 --workloads 3

``--las-exponent`` / ``--las-scale-gpu-s`` give goodput-las other weights than its frozen defaults (the
tuning on workloads 1-2, scripts/tune_goodput_las.py, needs that); other schedulers ignore them.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from simulator.training import simulate_training, workload_path  # noqa: E402
from simulator.training.artifact_pool import MostFreeFirstPool  # noqa: E402
from simulator.training.cluster_sim import TrainingScheduler  # noqa: E402
from simulator.training.goodput_las import LasSettings  # noqa: E402
from simulator.training.shared_goodput import SharedSettings  # noqa: E402
from simulator.workloads import TRAINING_SCHEDULERS  # noqa: E402

POLLUX_DIR = REPO / "simulator" / "data" / "pollux"


def app_of(job: str) -> str:
    """The application (job class) of a trace job, from its name (``<app>-<n>`` in the paper's traces)."""
    return job.rsplit("-", 1)[0]


@dataclass(frozen=True)
class RunSummary:
    """One run's row: what this script prints and what scripts/tune_goodput_las.py optimises over."""

    mean_s: float
    p99_s: float
    makespan_s: float
    gpu_hours: float
    restarts_per_job: float
    per_class_s: dict[str, float]
    unfinished: int = 0


def summarise(jcts_s: Mapping[str, float], makespan_s: float, gpu_hours: float,
              restarts: Mapping[str, int], unfinished: int = 0) -> RunSummary:
    """A run's summary from its per-job JCTs: mean, p99, restarts per job, mean JCT per job class."""
    jcts = np.array(list(jcts_s.values()), dtype=float)
    classes: dict[str, list[float]] = defaultdict(list)
    for name, jct in jcts_s.items():
        classes[app_of(name)].append(jct)
    return RunSummary(float(jcts.mean()), float(np.percentile(jcts, 99)), float(makespan_s), float(gpu_hours),
                      sum(restarts.values()) / max(len(restarts), 1),
                      {a: float(np.mean(v)) for a, v in sorted(classes.items())}, unfinished)


def run_once(policy: str, load: float, workload: int, seed: int, las: LasSettings | None = None,
             shared: SharedSettings | None = None) -> RunSummary:
    """One (policy, load, workload, seed) on the paper's job stream, 16 x 4 GPUs, the artifact's node choice."""
    r = simulate_training(workload_path(POLLUX_DIR, load, workload), scheduler_of(policy, seed, las, shared),
                          pool=MostFreeFirstPool.uniform(16, 4), data_dir=POLLUX_DIR / "profiles", seed=seed)
    return summarise(r.jcts_s, r.makespan_s, r.gpu_hours, r.num_restarts, len(r.unfinished))


def las_settings(exponent: float | None, scale_gpu_s: float | None) -> LasSettings | None:
    """goodput-las' weights from the command line: None (the frozen defaults) unless one is given; a weight
    not given keeps its default."""
    if exponent is None and scale_gpu_s is None:
        return None
    default = LasSettings()
    return LasSettings(default.exponent if exponent is None else exponent,
                       default.scale_gpu_s if scale_gpu_s is None else scale_gpu_s)


def shared_settings(pairs: list[str]) -> SharedSettings | None:
    """shared-goodput's settings from ``FIELD=VALUE`` pairs (None: the frozen defaults); values are parsed as
    the default's type, so a misspelt field or a bad value is one clear error."""
    if not pairs:
        return None
    default = SharedSettings()
    fields = {f.name: type(getattr(default, f.name)) for f in dataclasses.fields(SharedSettings)}
    values: dict[str, object] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or name not in fields:
            raise ValueError(f"--shared {pair!r}: expected FIELD=VALUE with FIELD one of {', '.join(fields)}")
        kind = fields[name]
        if kind is bool:
            if text.lower() not in ("true", "false"):
                raise ValueError(f"--shared {pair!r}: {name} is true or false")
            values[name] = text.lower() == "true"
        else:
            try:
                values[name] = kind(text)
            except ValueError:
                raise ValueError(f"--shared {pair!r}: {name} needs a {kind.__name__}") from None
    return dataclasses.replace(default, **values)


def scheduler_of(policy: str, seed: int, las: LasSettings | None = None,
                 shared: SharedSettings | None = None) -> TrainingScheduler:
    """The registered scheduler; goodput-las gets ``las`` and shared-goodput ``shared`` when given (no other
    scheduler has settings)."""
    if policy == "goodput-las" and las is not None:
        return TRAINING_SCHEDULERS[policy](seed, las=las)
    if policy == "shared-goodput" and shared is not None:
        return TRAINING_SCHEDULERS[policy](seed, shared=shared)
    return TRAINING_SCHEDULERS[policy](seed)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policies", nargs="+", default=["goodput-las", "pollux", "tiresias"])
    ap.add_argument("--loads", nargs="+", type=float, default=[0.5, 1.0, 1.5])
    ap.add_argument("--workloads", nargs="+", type=int, default=[3])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--las-exponent", type=float, default=None,
                    help="goodput-las' exponent (default: the frozen LasSettings); only goodput-las reads it")
    ap.add_argument("--las-scale-gpu-s", type=float, default=None,
                    help="goodput-las' scale_gpu_s (default: the frozen LasSettings)")
    ap.add_argument("--shared", action="append", default=[], metavar="FIELD=VALUE",
                    help="shared-goodput setting other than its frozen default (repeatable), e.g. "
                         "--shared max_staleness=2; only shared-goodput reads it")
    args = ap.parse_args(argv)
    las = las_settings(args.las_exponent, args.las_scale_gpu_s)
    try:
        shared = shared_settings(args.shared)
    except ValueError as e:
        ap.error(str(e))
    if shared is not None:
        print(f"# shared-goodput: {shared}", flush=True)
    if las is not None:
        print(f"# goodput-las: exponent={las.exponent!r} scale_gpu_s={las.scale_gpu_s!r}", flush=True)
    print(f"{'policy':>12} {'load':>4} {'wl':>3} {'seed':>4} {'mean_s':>7} {'p99_s':>7} {'makespan_s':>10} "
          f"{'gpu_h':>7} {'restarts/job':>12} {'wall_s':>6}  per-class mean JCT", flush=True)
    for load in args.loads:
        for w in args.workloads:
            for seed in args.seeds:
                for policy in args.policies:
                    started = time.perf_counter()
                    r = run_once(policy, load, w, seed, las, shared)
                    per = " ".join(f"{a}={v:.0f}" for a, v in r.per_class_s.items())
                    print(f"{policy:>12} {load:>4.1f} {w:>3d} {seed:>4d} {r.mean_s:>7.0f} "
                          f"{r.p99_s:>7.0f} {r.makespan_s:>10.0f} {r.gpu_hours:>7.1f} "
                          f"{r.restarts_per_job:>12.2f} {time.perf_counter() - started:>6.0f}  {per}"
                          + (f" UNFINISHED {r.unfinished}" if r.unfinished else ""), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
