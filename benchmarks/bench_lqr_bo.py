"""Figures behind docs/lqr-bo-prediction.md for the lambda-pi and bayesopt learners, each against a baseline.

1. linearity: GPU busy fraction x replicas of a simulated llama2-70b service (why lambda-pi regulates
   utilisation);
2. gain error against the Riccati (DARE) gain: LSTD-form λ-PI (learners/lqr.py) against the ordinary
   least-squares form (learners/lambda_pi.py) under process noise;
3. bayesopt on a toy service with a known optimum, against random search with the same trial budget.

    PYTHONPATH=$PWD OPENBLAS_NUM_THREADS=1 python benchmarks/bench_lqr_bo.py [--only linearity|gain|bo]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from scipy.linalg import solve_discrete_are

from learners.lambda_pi import lambda_pi_model_free
from learners.lqr import lambda_pi_lstd


def linearity() -> None:
    import simpy

    from simulator.cluster import GpuPool
    from simulator.inference import SLO, InferenceService, PerfModel, ServiceSettings
    from simulator.inference import traces as tr

    perf = PerfModel.load("llama2-70b", "a100-80gb")
    trace = tr.load_shape("noisy", 2.57, 900, seed=1)
    print("1. busy fraction x replicas (llama2-70b TP4, noisy shape at 2.57 req/s, 15 min, first 2 min dropped)")
    print(f"{'replicas':>8} {'busy':>6} {'busy x replicas':>15} {'queue':>6} {'TTFT p99 s':>10}")
    for r in (4, 6, 8, 10, 12):
        env = simpy.Environment()
        svc = InferenceService(env, GpuPool.uniform(16, 8, "a100-80gb"), perf, trace,
                               ServiceSettings(initial={"replicas": r, "gpus_per_replica": 4, "max_batch_size": 64},
                                               slo=SLO(ttft_s=10.0)), 1)
        obs = []

        def drive(env=env, svc=svc, obs=obs):
            while True:
                yield env.timeout(60)
                obs.append(svc.observe(svc.name))

        env.process(drive())
        env.run(until=900)
        m = np.array([[o.metric(k) for k in ("gpu_utilization", "queue_length", "ttft_p99_seconds")] for o in obs[2:]])
        busy, queue, ttft = m.mean(axis=0)
        print(f"{r:>8} {busy:>6.3f} {busy * r:>15.2f} {queue:>6.1f} {ttft:>10.2f}")


def gain() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "unit" / "learners"))
    from test_lqr import A, B, Q, R, transitions  # the tests' plant, so the figures match the tests

    P = solve_discrete_are(A, B, Q, R)
    K = np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)
    print(f"\n2. relative gain error against the DARE gain K* = {np.round(K, 3).tolist()}, seeds 0-4")
    print(f"{'transitions':>11} {'noise':>6} {'LSTD mean (max)':>18} {'OLS mean (max)':>18} {'OLS/LSTD':>9}")
    for n in (2000, 8000):
        for noise in (0.05, 0.1):
            ours, ols = [], []
            for seed in range(5):
                X, U, Xn = transitions(n, noise, seed)
                ours.append(np.linalg.norm(lambda_pi_lstd(X, U, Xn, Q, R, 0.5).K - K) / np.linalg.norm(K))
                ols.append(np.linalg.norm(lambda_pi_model_free(X, U, Xn, Q, R, np.zeros((1, 2)), 0.5).K - K)
                           / np.linalg.norm(K))
            print(f"{n:>11} {noise:>6} {np.mean(ours):>9.4f} ({max(ours):.4f}) {np.mean(ols):>9.4f} ({max(ols):.4f}) "
                  f"{np.mean(ols) / np.mean(ours):>9.2f}")


def bo() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "unit" / "learners"))
    from test_bayesopt_sizing import OBJ, SPACE, ToyService, cheapest_feasible, feasible

    from controller.loop import ControlLoop
    from learners import create

    best, _ = cheapest_feasible()
    configs = list(SPACE.enumerate())
    print(f"\n3. bayesopt on the toy service ({len(configs)} configurations, optimum {best:g} GPUs), seeds 0-9")
    print(f"{'trials':>6} {'BO hits':>7} {'BO mean regret':>14} {'random hits':>11} {'random mean regret':>18}")
    for trials in (10, 15):
        hits, regrets, r_hits, r_regrets = 0, [], 0, []
        for seed in range(10):
            learner = create("bayesopt", SPACE, OBJ, {"max_trials": trials, "trial_intervals": 2,
                                                      "settle_intervals": 0, "seed": seed})
            svc = ToyService()
            loop = ControlLoop("toy", learner, OBJ, SPACE, svc, svc)
            for i in range(trials * 2 + 3):
                loop.step(60.0 * i)
            cost = OBJ.cost_per_hour(svc.config)
            hits += math.isclose(cost, best)
            regrets.append(cost / best - 1.0)
            rng = np.random.default_rng(seed)
            tried = [configs[i] for i in rng.choice(len(configs), size=trials, replace=False)]
            ok = [OBJ.cost_per_hour(c) for c in tried if feasible(c)]
            r_cost = min(ok) if ok else max(OBJ.cost_per_hour(c) for c in configs)
            r_hits += math.isclose(r_cost, best)
            r_regrets.append(r_cost / best - 1.0)
        print(f"{trials:>6} {hits:>4}/10 {np.mean(regrets):>14.3f} {r_hits:>8}/10 {np.mean(r_regrets):>18.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=("linearity", "gain", "bo"))
    args = ap.parse_args()
    for name, fn in (("linearity", linearity), ("gain", gain), ("bo", bo)):
        if args.only in (None, name):
            fn()


if __name__ == "__main__":
    main()
