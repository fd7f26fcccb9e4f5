"""SLO-violation prediction on the simulator: Bayesian logistic regression against a naive baseline.

Runs each scenario under a deliberately lean static sizing (so violations happen), records every
control interval, trains the predictor (learners/predict.py) on the TRAINING seeds of both scenarios
and scores it on the held-out TEST seeds of each, next to the baseline "alarm when the last interval
violated the SLO". A second row runs the same trained predictor as the loop would, one observation at
a time, still learning on the test runs (each prediction is made before its outcome is seen).
Prints precision and recall of "a violation within the next H intervals", and, per violation onset
(a violation after a met interval), how many were foreseen and how early.

    PYTHONPATH=$PWD python benchmarks/bench_prediction.py            # seeds 1-5 train, 6-10 test
    PYTHONPATH=$PWD python benchmarks/bench_prediction.py --quick    # seeds 1-2 train, 3-4 test

No node failure is predicted: the simulator's failures are memoryless (exponential lifetimes, no
precursor signal), so the best any predictor can do is react to one after it happened.
"""

from __future__ import annotations

import argparse
import copy
import math
import time

import numpy as np

from learners.predict import (
    FEATURES,
    BayesianLogisticRegression,
    PredictorSettings,
    Standardiser,
    ViolationForecaster,
    best_threshold,
    labelled,
    score_alarms,
)
from simulator import scenario as sc
from simulator.episodes import record
from simulator.workloads import PolicyRun, _build_service

CASES = (
    # scenario, lean static replicas, what it is
    ("inference-failures", 4, "node failures (MTBF 2.5 h/node), Azure code trace, static 4 x TP8"),
    ("inference-lqr", 5, "no failures, noisy load shape, static 5 x TP2"),
)


def run_case(name: str, replicas: int, seed: int):
    scenario = sc.load(name)
    objective = _build_service(scenario, scenario.inference[0], seed).objective
    ep = record(scenario, PolicyRun("static", "static", {"config": {"replicas": replicas}}), seed)[0]
    history = [r.observation for r in ep.history if r.observation is not None]
    return history, objective, ep.period_s, ep.failure_times_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 training and 2 test seeds per scenario")
    ap.add_argument("--horizon", type=int, default=PredictorSettings.horizon)
    args = ap.parse_args()
    train_seeds, test_seeds = ((1, 2), (3, 4)) if args.quick else ((1, 2, 3, 4, 5), (6, 7, 8, 9, 10))
    settings = PredictorSettings(horizon=args.horizon)
    t0 = time.time()
    data: dict[tuple[str, int], tuple] = {}
    for name, replicas, _ in CASES:
        for seed in (*train_seeds, *test_seeds):
            history, objective, period, failures = run_case(name, replicas, seed)
            X, y, idx = labelled(history, objective, settings)
            violated = np.array([not objective.meets(o) for o in history])
            data[(name, seed)] = (X, y, idx, violated, period, len(failures), history, objective)
    sim_s = time.time() - t0

    X_train = np.vstack([data[(n, s)][0] for n, _, _ in CASES for s in train_seeds])
    y_train = np.concatenate([data[(n, s)][1] for n, _, _ in CASES for s in train_seeds])
    scale = Standardiser.fit(X_train)
    model = BayesianLogisticRegression(len(FEATURES), settings.prior_var, settings.intercept_var)
    model.update(scale(X_train), y_train)
    threshold = best_threshold(model.predict_proba(scale(X_train)), y_train)

    print(f"simulated {len(data)} runs in {sim_s:.0f} s; horizon {settings.horizon} intervals; "
          f"training rows {len(y_train)} ({int(y_train.sum())} positive); alarm threshold {threshold:.2f} "
          "(best F1 on training seeds)")
    print(f"train seeds {list(train_seeds)}, test seeds {list(test_seeds)}\n")
    header = (f"{'scenario (test seeds)':<22} {'predictor':<24} {'precision':>9} {'recall':>7} {'alarms':>6} "
              f"{'onsets':>6} {'foreseen':>8} {'lead (intervals)':>16} {'lead (s)':>8}")
    print(header)
    print("-" * len(header))
    for name, _, what in CASES:
        alarms: dict[str, list] = {"bayesian logistic (ours)": [], "  same, learning online": [],
                                   "last interval violated": []}
        online = ViolationForecaster(data[(name, test_seeds[0])][7], settings, copy.deepcopy(model), scale)
        violated_all = []
        failures = 0
        period = 60.0
        for s in test_seeds:
            X, y, idx, violated, period, nfail, history, _ = data[(name, s)]
            failures += nfail
            p = model.predict_proba(scale(X))
            ours = np.zeros(len(violated), bool)
            ours[idx] = p >= threshold
            online.window, online.pending, online.violations = [], [], []  # a new run: keep only the model
            live = np.array([online.observe(o) for o in history]) >= threshold
            learning = np.zeros(len(violated), bool)
            learning[idx] = live[idx]
            naive = np.zeros(len(violated), bool)
            naive[idx] = violated[idx]
            scored = np.zeros(len(violated), bool)
            scored[idx] = True
            # only intervals with a full window and horizon are scored, for both predictors alike
            alarms["bayesian logistic (ours)"].append((ours, violated, scored))
            alarms["  same, learning online"].append((learning, violated, scored))
            alarms["last interval violated"].append((naive, violated, scored))
            violated_all.append(violated)
        for label, runs in alarms.items():
            scores = [score_alarms(a, v, settings.horizon) for a, v, _ in runs]
            tp = fp = pos = 0
            for (a, v, ok) in runs:
                lab = np.array([v[t + 1: t + 1 + settings.horizon].any() for t in range(len(v))])
                tp += int((a & lab & ok).sum())
                fp += int((a & ~lab & ok).sum())
                pos += int((lab & ok).sum())
            onsets = sum(s.onsets for s in scores)
            caught = sum(s.onsets_caught for s in scores)
            leads = [s.mean_lead_intervals * s.onsets_caught for s in scores if s.onsets_caught]
            lead = sum(leads) / caught if caught else math.nan
            precision = tp / (tp + fp) if tp + fp else math.nan
            recall = tp / pos if pos else math.nan
            print(f"{name:<22} {label:<24} {precision:>9.2f} {recall:>7.2f} {tp + fp:>6d} {onsets:>6d} "
                  f"{caught:>8d} {lead:>16.2f} {lead * period:>8.0f}")
        print(f"{'':<22} ({what}; {failures} node failures in the test runs, "
              f"{int(sum(v.sum() for v in violated_all))} violating intervals)")
    print("\nweights (standardised features, posterior mean ± sd):")
    sd = np.sqrt(np.diag(model.covariance))
    for name, w, s in zip(("intercept", *FEATURES), model.mean, sd, strict=True):
        print(f"  {name:<26} {w:+.2f} ± {s:.2f}")


if __name__ == "__main__":
    main()
