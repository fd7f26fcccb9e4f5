"""Bayesian logistic regression for SLO-violation prediction: calibration, update direction, scoring."""

from __future__ import annotations

import math

import numpy as np
import pytest

from learners import Objective, Observation, ReplicaSample
from learners.predict import (
    FEATURES,
    BayesianLogisticRegression,
    PredictorSettings,
    labelled,
    score_alarms,
    violation_features,
)

TRUE_W = np.array([-1.0, 1.5, -2.0, 0.5, 0.0, 1.0])  # intercept, then 5 weights


def synthetic(n, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    p = 1.0 / (1.0 + np.exp(-(TRUE_W[0] + X @ TRUE_W[1:])))
    return X, (rng.random(n) < p).astype(float), p


def test_predictions_are_calibrated_on_held_out_data():
    X, y, _ = synthetic(4000, seed=0)
    model = BayesianLogisticRegression(5).update(X, y)
    Xt, yt, _ = synthetic(20000, seed=1)
    p = model.predict_proba(Xt)
    bins = np.minimum((p * 10).astype(int), 9)
    checked = 0
    for b in range(10):
        sel = bins == b
        if sel.sum() >= 300:
            # three binomial standard errors of the bin's frequency, plus 0.01 for the fit's own error
            tol = 3 * math.sqrt(p[sel].mean() * (1 - p[sel].mean()) / sel.sum()) + 0.01
            assert abs(p[sel].mean() - yt[sel].mean()) < tol, (b, p[sel].mean(), yt[sel].mean())
            checked += 1
    assert checked >= 8
    # and the posterior covers the true weights
    sd = np.sqrt(np.diag(model.covariance))
    assert np.all(np.abs(model.mean - TRUE_W) < 4 * sd), (model.mean, sd)


def test_a_label_moves_the_prediction_its_way_and_shrinks_the_uncertainty():
    X, y, _ = synthetic(200, seed=2)
    x = np.array([[0.3, -0.2, 0.5, 1.0, 0.1]])
    for label, sign in ((1.0, +1), (0.0, -1)):
        model = BayesianLogisticRegression(5).update(X, y)
        before, var_before = model.predict_proba(x)[0], (x @ model.covariance[1:, 1:] @ x.T).item()
        model.update(x, [label])
        after, var_after = model.predict_proba(x)[0], (x @ model.covariance[1:, 1:] @ x.T).item()
        assert sign * (after - before) > 0
        assert var_after < var_before


def test_sequential_updates_agree_with_one_batch():
    X, y, _ = synthetic(3000, seed=3)
    batch = BayesianLogisticRegression(5).update(X, y)
    seq = BayesianLogisticRegression(5)
    for i in range(0, 3000, 300):
        seq.update(X[i:i + 300], y[i:i + 300])
    Xt, _, _ = synthetic(2000, seed=4)
    assert np.max(np.abs(batch.predict_proba(Xt) - seq.predict_proba(Xt))) < 0.02
    assert seq.samples == 3000


def test_an_untrained_model_says_maybe_and_uncertainty_pulls_towards_one_half():
    model = BayesianLogisticRegression(5)
    assert np.allclose(model.predict_proba(np.zeros((3, 5))), 0.5)
    X, y, _ = synthetic(30, seed=5)
    model.update(X, y)
    far = np.array([[8.0, -8.0, 8.0, 8.0, 8.0]])  # far from the data: large predictive variance
    plug_in = 1.0 / (1.0 + np.exp(-(model.mean[0] + far @ model.mean[1:])))
    assert abs(model.predict_proba(far)[0] - 0.5) < abs(plug_in[0] - 0.5)


def test_bad_input_is_refused():
    model = BayesianLogisticRegression(2)
    with pytest.raises(ValueError, match="labels"):
        model.update(np.zeros((2, 2)), [0, 2])
    with pytest.raises(ValueError, match="features"):
        model.update(np.zeros((2, 3)), [0, 1])


def test_alarm_scores_by_hand():
    violated = np.array([0, 0, 0, 1, 1, 0, 0, 1], bool)
    alarm = np.array([0, 1, 0, 0, 0, 0, 1, 0], bool)
    s = score_alarms(alarm, violated, horizon=2)
    # labels (violation in t+1..t+2): t=1,2,3,5,6 -> alarms at 1 and 6 are both right
    assert s.precision == 1.0 and math.isclose(s.recall, 2 / 5)
    assert (s.onsets, s.onsets_caught) == (2, 2)
    assert s.mean_lead_intervals == pytest.approx((2 + 1) / 2)  # onset 3 from t=1, onset 7 from t=6


OBJ = Objective(metric="ttft_p99_seconds", target=10.0, attainment=0.99)


def obs(t, ttft, att=1.0, queue=0.0, ready=4, replicas=4, failures=0.0):
    samples = tuple(ReplicaSample(i < ready, 0.5) for i in range(replicas))
    return Observation(60.0 * t, {"replicas": float(replicas)},
                       {"ttft_p99_seconds": ttft, "slo_attainment": att, "queue_length": queue,
                        "gpu_utilization": 0.7, "request_rate_per_second": 2.0},
                       replicas=samples, events={"failures": failures})


def test_features_see_a_rising_latency_a_failure_and_missing_replicas():
    f = dict(zip(FEATURES, violation_features([obs(0, 2.0), obs(1, 3.0), obs(2, 8.0, ready=2, failures=1)], OBJ),
                 strict=True))
    assert f["ttft_trend"] > 0 and f["log_ttft_over_target"] < 0
    assert f["failed_last_interval"] == 1.0 and f["ready_fraction"] == 0.5
    assert f["shortfall_last_interval"] == 0.0


def test_labels_look_ahead_exactly_horizon_intervals():
    history = [obs(t, 2.0, att=0.5 if t == 6 else 1.0) for t in range(10)]
    X, y, idx = labelled(history, OBJ, PredictorSettings(horizon=2, window=3))
    assert list(idx) == list(range(2, 8))
    assert [int(v) for v in y] == [0, 0, 1, 1, 0, 0]  # t=4 and t=5 see interval 6 coming
    assert X.shape == (6, len(FEATURES))


def test_the_online_forecaster_predicts_before_it_learns_and_learns_a_leading_signal():
    """A stream where a rising TTFT always precedes a violation one interval later: the forecaster,
    starting from nothing, must come to give the rise a higher probability than a calm interval."""
    from learners.predict import ViolationForecaster

    forecaster = ViolationForecaster(OBJ, PredictorSettings(horizon=2, window=2))
    rng = np.random.default_rng(0)
    pattern = []
    for _ in range(60):  # calm, calm, calm, rise, violate
        pattern += [(2.0, 1.0), (2.0, 1.0), (2.0, 1.0), (7.0, 1.0), (12.0, 0.5)]
    first = forecaster.observe(obs(0, 2.0))
    assert first == pytest.approx(0.5)  # nothing learned yet: it has not seen any outcome
    probs = []
    for t, (ttft, att) in enumerate(pattern, start=1):
        probs.append((ttft, forecaster.observe(obs(t, ttft * (1 + 0.05 * rng.standard_normal()), att=att))))
    late = probs[-50:]
    rise = np.mean([p for ttft, p in late if ttft == 7.0])
    calm = np.mean([p for ttft, p in late if ttft == 2.0])
    assert rise > 0.8 and calm < rise - 0.3, (rise, calm)
    assert forecaster.model.samples == len(pattern) + 1 - 2  # the last two still await their outcome
