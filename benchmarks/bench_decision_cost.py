"""Decision cost of VCONF at 1,000 managed workloads, against the Kubernetes HPA in the same process.

Issue 3 asks for "microseconds per decision for 1,000 workloads". The operator runs one learner per
workload, so this builds 1,000 VCONF learners over the inference-azure-code knobs (replicas, GPUs per
replica, batch size), each loaded from the same trained state (so every decide() takes the trained
path: one-step look-ahead through the performance model and the Q-network), and times one decide()
per workload per round. The baseline is 1,000 HPA learners deciding on the same observations in the
same process; the ratio is what to read, the absolute microseconds depend on the machine.

learn() is timed separately: most calls are one online TD step, and every ``retrain_every``-th call
refits the performance model and retrains Q on imagined transitions, so its mean and its worst case
differ by orders of magnitude; both are printed.

Run: ``PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_decision_cost.py [--workloads 1000] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from learners import ConfigSpace, Knob, Objective, Observation, create
from learners.types import Action, ReplicaSample

SPACE = ConfigSpace((Knob("replicas", 1, 16, 1, default=8), Knob("gpus_per_replica", choices=(4.0, 8.0),
                                                                restarts=True, default=8.0),
                     Knob("max_batch_size", 16, 64, 16, restarts=True, default=64)))
OBJ = Objective(target=10.0, attainment=0.99).scaled_to(max_cost_per_hour=128, interval_s=60)


def observation(rng: np.random.Generator, t: float) -> Observation:
    replicas = int(rng.integers(1, 17))
    cfg = {"replicas": float(replicas), "gpus_per_replica": float(rng.choice([4.0, 8.0])),
           "max_batch_size": float(rng.choice([16.0, 32.0, 48.0, 64.0]))}
    util = rng.uniform(0.1, 0.95, size=replicas)
    return Observation(t, cfg, {"slo_attainment": float(rng.uniform(0.9, 1.0)),
                                "request_rate_per_second": float(rng.uniform(0.5, 6.0)),
                                "gpu_utilization": float(util.mean()), "queue_length": 0.0},
                       interval_s=60.0, replicas=tuple(ReplicaSample(True, float(u), 600.0) for u in util))


def trained_state(rng: np.random.Generator) -> dict:
    """A VCONF state after a few retrainings on toy experience (enough to take the trained path)."""
    donor = create("vconf", SPACE, OBJ, {"seed": 0})
    prev = observation(rng, 0.0)
    for i in range(1, 21):
        act = donor.decide(prev)
        nxt = observation(rng, 60.0 * i)
        donor.learn(prev, act, OBJ.reward(nxt), nxt)
        prev = nxt
    return donor.state_dict()


def time_decisions(learners: list, observations: list[Observation], rounds: int) -> float:
    """Seconds per decide(), the median over ``rounds`` rounds of one decision per learner."""
    per_round = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for lr, obs in zip(learners, observations, strict=True):
            lr.decide(obs)
        per_round.append((time.perf_counter() - t0) / len(learners))
    return float(np.median(per_round))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workloads", type=int, default=1000, help="learners, one per managed workload")
    ap.add_argument("--rounds", type=int, default=3, help="decision rounds (the median is reported)")
    ap.add_argument("--learn-calls", type=int, default=40, help="learn() calls timed on one learner")
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    state = trained_state(rng)
    observations = [observation(rng, 3600.0) for _ in range(args.workloads)]

    t0 = time.perf_counter()
    vconfs = []
    for i in range(args.workloads):
        lr = create("vconf", SPACE, OBJ, {"seed": i})
        lr.load_state_dict(state)
        lr.epsilon = 0.0  # time the greedy path (exploring is cheaper: a random draw)
        vconfs.append(lr)
    build_s = time.perf_counter() - t0
    hpas = [create("hpa", SPACE, OBJ, {"metric": "gpu_utilization", "target": 0.5}) for _ in range(args.workloads)]
    vconf_s = time_decisions(vconfs, observations, args.rounds)
    hpa_s = time_decisions(hpas, observations, args.rounds)

    one = vconfs[0]
    costs = []
    prev = observations[0]
    for i in range(args.learn_calls):
        act = Action(one.decide(prev).target, "")
        nxt = observation(rng, 3660.0 + 60 * i)
        t0 = time.perf_counter()
        one.learn(prev, act, OBJ.reward(nxt), nxt)
        costs.append(time.perf_counter() - t0)
        prev = nxt
    costs_us = np.asarray(costs) * 1e6
    retrain = costs_us[costs_us > 10 * np.median(costs_us)]

    print(f"{args.workloads} workloads, {args.rounds} rounds (median), numpy networks (learners/mlp.py)")
    print(f"VCONF decide(): {vconf_s * 1e6:,.0f} us per decision, "
          f"{vconf_s * args.workloads:.3f} s per round of {args.workloads}")
    print(f"HPA decide():   {hpa_s * 1e6:,.0f} us per decision (same process, same observations)")
    print(f"ratio VCONF/HPA: {vconf_s / hpa_s:.1f}")
    print(f"building {args.workloads} VCONF learners from a checkpoint state: {build_s:.2f} s")
    print(f"VCONF learn() over {args.learn_calls} calls: median {np.median(costs_us):,.0f} us, "
          f"mean {costs_us.mean():,.0f} us; {len(retrain)} retrainings at "
          f"{(retrain.mean() if len(retrain) else float('nan')) / 1e3:,.0f} ms each "
          f"(every {one.s.retrain_every} transitions)")


if __name__ == "__main__":
    main()
