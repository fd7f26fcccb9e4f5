"""Convergence of VCONF on the evaluation scenario, from the bundled checkpoint and from scratch.

Issue 3: "control intervals until the learner's GPU-hours stay within 1.05x the oracle's with at
least 99% SLO attainment over every later 10-interval window, from a pretrained checkpoint (target:
25 or fewer) and from scratch". The checkpoint (simulator/checkpoints/vconf-code-completion.ckpt) was
pretrained on inference-pretrain-bursty (another load shape, Poisson arrivals), never on the trace
evaluated here (inference-azure-code, the Azure code trace).

Per interval k we record what the learner held (GPUs x interval, GPU-hours) and the SLO attainment of
the requests judged in it (the observation the control loop saw), and compare with the hindsight
oracle's feasible schedule for the same interval (``hindsight_oracle(...).schedule``: (TP, replicas)
per interval). The convergence interval is the first k such that every 10-interval window starting
at k or later has GPU-hours <= 1.05x the oracle's and attainment >= 0.99; "never" when no such k
exists. Printed: both convergence intervals, their ratio (pretrained / scratch), and how far each run
is from the criterion (windows that pass, median GPU-hour ratio, median window attainment).

Run: ``PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_convergence.py [--scenario inference-azure-code]``
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field

import numpy as np
import simpy

from controller.checkpoint import decode
from controller.loop import ControlLoop
from learners import Observation
from learners.base import create
from simulator.inference import InferenceService, ServiceSettings
from simulator.inference.oracle import OracleSettings, hindsight_oracle
from simulator.scenario import load as load_scenario
from simulator.workloads import _build_service, _drive, _pool, _slo, duration_of, service_settings

WINDOW = 10
COST_SLACK = 1.05


@dataclass
class Recording:
    """The simulated service as the control loop sees it, remembering every observation."""

    service: InferenceService
    seen: list[Observation] = field(default_factory=list)

    def observe(self, workload: str, now: float) -> Observation | None:
        obs = self.service.observe(workload, now)
        if obs is not None:
            self.seen.append(obs)
        return obs


def vconf_settings(scenario, pretrained: bool) -> dict:
    """The settings the scenario gives its VCONF policy (the one with a checkpoint, or the one without)."""
    for entry in scenario.policies:
        if entry["name"] == "vconf" and bool(entry.get("checkpoint")) == pretrained:
            return dict(entry.get("settings", {}))
    return {}


def run_learner(scenario, checkpoint: str | None, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Per-interval GPU-hours held, requests met and requests judged, and the run's summary."""
    spec = scenario.inference[0]
    svc = _build_service(scenario, spec, seed)
    learner = create("vconf", svc.space, svc.objective, vconf_settings(scenario, checkpoint is not None))
    if checkpoint:
        learner.load_state_dict(decode(scenario.resolve(checkpoint).read_bytes(), "vconf", svc.space).state)
    env = simpy.Environment()
    service = InferenceService(env, _pool(scenario), svc.perf, svc.trace,
                               service_settings(spec, svc.space, "vconf"), seed)
    rec = Recording(service)
    loop = ControlLoop(spec["name"], learner, svc.objective, svc.space, rec, service)
    env.process(_drive(env, loop, scenario.control_interval_s))
    env.run(until=duration_of(scenario))
    gpu_h = np.array([o.config["replicas"] * o.config["gpus_per_replica"] * o.interval_s / 3600 for o in rec.seen])
    judged = np.array([o.events.get("completed", 0.0) + o.events.get("rejected", 0.0) for o in rec.seen])
    met = np.array([o.metric("slo_attainment") for o in rec.seen]) * judged
    return gpu_h, met, judged, service.summary()


def oracle_per_interval(scenario, seed: int) -> tuple[np.ndarray, float]:
    spec = scenario.inference[0]
    svc = _build_service(scenario, spec, seed)
    knobs = {k.name: k for k in svc.space.knobs}
    settings = OracleSettings(interval_s=scenario.control_interval_s, min_replicas=int(knobs["replicas"].lower),
                              max_replicas=int(knobs["replicas"].upper),
                              tp_degrees=tuple(int(v) for v in knobs["gpus_per_replica"].values),
                              max_batch_size=int(knobs["max_batch_size"].upper),
                              cold_start_s=float(spec.get("cold_start_s", 60.0)))
    kv = ServiceSettings(model=spec.get("model", "llama2-70b"))
    res = hindsight_oracle(svc.perf, svc.trace, _slo(spec), {tp: kv.kv_capacity(tp) for tp in settings.tp_degrees},
                           settings)
    hours = settings.interval_s / 3600
    return np.array([tp * n * hours for tp, *_, n in res.schedule]), res.gpu_hours_lower_bound


def convergence_interval(gpu_h: np.ndarray, met: np.ndarray, judged: np.ndarray, oracle: np.ndarray,
                         attainment: float) -> tuple[int | None, np.ndarray]:
    """First interval from which every later window passes (None: never), and each window's verdict.

    Learner interval k is the one ending at observation k; it is compared with oracle interval k.
    """
    n = min(len(gpu_h), len(oracle))
    ok = []
    for j in range(n - WINDOW + 1):
        sl = slice(j, j + WINDOW)
        att = met[sl].sum() / judged[sl].sum() if judged[sl].sum() else 1.0
        ok.append(gpu_h[sl].sum() <= COST_SLACK * oracle[sl].sum() and att >= attainment)
    passes = np.array(ok, dtype=bool)
    if passes.size == 0 or not passes[-1]:
        return None, passes
    fails = np.flatnonzero(~passes)
    return (int(fails[-1]) + 1 if fails.size else 0), passes


def describe(name: str, k: int | None, passes: np.ndarray, gpu_h, met, judged, oracle, summary) -> str:
    n = len(passes)
    ratios = [gpu_h[j:j + WINDOW].sum() / max(oracle[j:j + WINDOW].sum(), 1e-9) for j in range(n)]
    atts = [met[j:j + WINDOW].sum() / max(judged[j:j + WINDOW].sum(), 1) for j in range(n)]
    when = f"interval {k}" if k is not None else "never"
    return (f"{name}: converged at {when}; {passes.sum()}/{n} windows pass; window GPU-h / oracle median "
            f"{np.median(ratios):.2f} (min {min(ratios):.2f}); window attainment median {np.median(atts):.3f} "
            f"(min {min(atts):.3f}); run: attainment {summary['slo_attainment']:.3f}, "
            f"{summary['gpu_hours']:.1f} GPU-h")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", default="inference-azure-code", help="evaluation scenario (bundled name or YAML)")
    ap.add_argument("--seed", type=int, default=None, help="seed (default: the scenario's)")
    ap.add_argument("--checkpoint", default="../checkpoints/vconf-code-completion.ckpt",
                    help="pretrained checkpoint, relative to the scenario file")
    args = ap.parse_args()
    scenario = load_scenario(args.scenario)
    seed = scenario.seed if args.seed is None else args.seed
    target = float(scenario.inference[0]["slo"]["attainment"])
    t0 = time.perf_counter()
    oracle, lower = oracle_per_interval(scenario, seed)
    print(f"oracle: schedule {oracle.sum():.1f} GPU-h (lower bound {lower:.1f}), {len(oracle)} intervals, "
          f"{time.perf_counter() - t0:.0f} s")
    found = {}
    for name, ckpt in (("pretrained", args.checkpoint), ("scratch", None)):
        t0 = time.perf_counter()
        gpu_h, met, judged, summary = run_learner(scenario, ckpt, seed)
        k, passes = convergence_interval(gpu_h, met, judged, oracle, target)
        found[name] = k
        print(describe(name, k, passes, gpu_h, met, judged, oracle, summary) + f" [{time.perf_counter() - t0:.0f} s]")
    p, s = found["pretrained"], found["scratch"]
    if p is not None and s is not None:
        print(f"ratio pretrained/scratch: {(p + 1) / (s + 1):.2f} (intervals to convergence, +1 each)")
    else:
        print(f"ratio pretrained/scratch: undefined (pretrained {p if p is not None else 'never'}, "
              f"scratch {s if s is not None else 'never'})")
    print(f"target: pretrained converges within 25 intervals: {'met' if p is not None and p <= 25 else 'missed'}")


if __name__ == "__main__":
    main()
