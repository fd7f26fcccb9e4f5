"""slo-rl's capacity posterior forgets (issue 11): after the service's capacity moves it re-adapts,
with a stationary service it still converges, batched merges forget as much as one-at-a-time updates.

Toy: one feature, the log load per GPU; the true soft label is ``sigmoid(3 (x - c))`` plus label
noise, ``c`` the log capacity. A long history at one capacity (four memories' worth of intervals),
then the service gets slower (``c`` drops by 0.5: 40% less capacity) and the model sees one memory
more, ``1 / (1 - f)`` intervals (2000 at the default ``f = 0.9995``, about eight evaluation days).
Properties across 10 seeds, at least 9 must hold.
"""

from __future__ import annotations

import numpy as np
import pytest

from learners.slo_capacity import CapacityModel, CapacitySettings

SEEDS = range(10)
PROBES = np.linspace(-1.0, 1.0, 9)[:, None]  # log loads per GPU the error is measured at


def _rows(rng: np.random.Generator, n: int, c: float) -> tuple[np.ndarray, np.ndarray]:
    x = rng.uniform(-1.0, 1.0, size=(n, 1))
    logit = 3.0 * (x[:, 0] - c) + rng.normal(0.0, 0.5, size=n)
    return x, 1.0 / (1.0 + np.exp(-logit))


def _truth(c: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-3.0 * (PROBES[:, 0] - c)))


def _error(model: CapacityModel, c: float) -> float:
    return float(np.mean(np.abs(model.predict(PROBES) - _truth(c))))


def _train(seed: int, forgetting: float, before: int, after: int, shift: float, batch: int = 1) -> CapacityModel:
    rng = np.random.default_rng(seed)
    model = CapacityModel(1, CapacitySettings(forgetting=forgetting))
    for c, n in ((0.2, before), (0.2 - shift, after)):
        for _ in range(n // batch):
            model.update(*_rows(rng, batch, c))
    return model


DEFAULT = CapacitySettings().forgetting
MEMORY = round(1.0 / (1.0 - DEFAULT))
BEFORE = 4 * MEMORY


def test_after_a_shift_the_default_posterior_re_adapts_and_a_never_forgetting_one_does_not():
    adapted = [_error(_train(s, DEFAULT, BEFORE, MEMORY, 0.5), 0.2 - 0.5) for s in SEEDS]
    stuck = [_error(_train(s, 1.0, BEFORE, MEMORY, 0.5), 0.2 - 0.5) for s in SEEDS]
    assert sum(e < 0.08 for e in adapted) >= 9, adapted
    assert sum(e > 0.11 for e in stuck) >= 9, stuck
    # and the stuck one is off by more than the adapted one on every seed
    assert all(a < b for a, b in zip(adapted, stuck, strict=True))


def test_with_a_stationary_service_it_still_converges():
    errors = [_error(_train(s, DEFAULT, BEFORE + MEMORY, 0, 0.0), 0.2) for s in SEEDS]
    assert sum(e < 0.03 for e in errors) >= 9, errors


def test_forgetting_inflates_the_covariance_towards_the_prior_and_leaves_the_mean():
    rng = np.random.default_rng(0)
    model = CapacityModel(1, CapacitySettings(forgetting=0.99))
    model.update(*_rows(rng, 500, 0.2))
    P = model.forgotten_precision(100)
    # between the prior's precision and the current one, in the Loewner order
    assert np.all(np.linalg.eigvalsh(model.precision - P) >= -1e-9)
    assert np.all(np.linalg.eigvalsh(P - model.prior_precision) >= -1e-9)
    assert np.allclose(model.forgotten_precision(10**6), model.prior_precision)
    mean = model.mean.copy()
    model.update(np.empty((0, 1)), np.empty(0))  # no rows: nothing forgotten, nothing learned
    assert np.allclose(model.mean, mean)


def test_a_merge_of_many_rows_forgets_like_the_same_rows_one_at_a_time():
    """``SloRl.absorb`` merges workers' intervals as one update: it must re-adapt as fast."""
    merged = [_error(_train(s, DEFAULT, BEFORE, MEMORY, 0.5, batch=200), 0.2 - 0.5) for s in SEEDS]
    single = [_error(_train(s, DEFAULT, BEFORE, MEMORY, 0.5), 0.2 - 0.5) for s in SEEDS]
    assert sum(abs(m - o) < 0.02 for m, o in zip(merged, single, strict=True)) >= 9, (merged, single)
    assert sum(e < 0.08 for e in merged) >= 9, merged


@pytest.mark.parametrize("bad", [0.0, -0.5, 1.01, float("nan")])
def test_bad_forgetting_is_refused(bad):
    with pytest.raises(ValueError, match="forgetting"):
        CapacitySettings(forgetting=bad)


def test_a_checkpoint_trained_before_forgetting_loads_and_starts_forgetting():
    """The bundled checkpoints keep their format (mean, precision, samples): old ones load as they
    are and the loaded precision decays towards the prior from the first update on."""
    from pathlib import Path

    from controller.checkpoint import decode
    from learners import ConfigSpace, Knob, Objective
    from learners.slo_rl import SloRl

    root = Path(__file__).resolve().parents[3]
    ckpt = decode((root / "simulator/checkpoints/slo-rl-diurnal.ckpt").read_bytes(), learner="slo-rl")
    space = ConfigSpace.of(Knob("replicas", 1, 16, 1, default=4),
                           Knob("gpus_per_replica", choices=(4, 8), restarts=True, default=8),
                           Knob("max_batch_size", 16, 64, 16, restarts=True, default=64))
    learner = SloRl(space, Objective(metric="ttft_p99_seconds", target=5.0, attainment=0.99))
    learner.load_state_dict(ckpt.state)
    model = learner.capacity
    loaded = model.precision.copy()
    forgotten = model.forgotten_precision(MEMORY)
    assert np.all(np.linalg.eigvalsh(loaded - forgotten) >= -1e-9)
    assert np.trace(forgotten) < 0.5 * np.trace(loaded)  # a memory's worth of intervals halves it at least
    assert np.all(np.isfinite(model.predict(np.zeros((1, model.dim)))))


def test_rows_that_cover_no_elapsed_time_are_not_forgotten_for():
    """A class peer's rows (``elapsed=0``, :mod:`learners.sharing`) add evidence without ageing the
    posterior: the update equals one without forgetting, and differs from one that ages per row."""
    rng = np.random.default_rng(0)
    base_x, base_y = _rows(rng, 500, 0.2)
    peer_x, peer_y = _rows(rng, 200, 0.2)
    models = [CapacityModel(1, CapacitySettings(forgetting=f)) for f in (0.99, 1.0, 0.99)]
    for m in models:
        m.update(base_x, base_y, elapsed=0)
    models[0].update(peer_x, peer_y, elapsed=0)
    models[1].update(peer_x, peer_y)
    models[2].update(peer_x, peer_y)
    np.testing.assert_allclose(models[0].precision, models[1].precision)
    np.testing.assert_allclose(models[0].mean, models[1].mean)
    assert np.trace(models[2].precision) < 0.9 * np.trace(models[0].precision)



def test_a_large_batch_of_collinear_rows_does_not_send_the_posterior_off():
    """slo-rl's capacity model (its priors: load 3, batch position -1, burst 1), one update of 400 rows at
    one load, one TP degree and one burst level (constant columns), labels split by batch size: plain
    Newton sent the intercept to about 5,000 (where every probability saturates, the Hessian is the prior
    alone) and every prediction to 1. The damped step keeps the batched update near the one-row-at-a-time
    updates it should agree with, and never raises the MAP objective."""
    from learners import ConfigSpace, Knob, Objective
    from learners.predict import laplace_logistic_update
    from learners.slo_rl import SloRl

    space = ConfigSpace.of(Knob("replicas", 1, 16, 1), Knob("gpus_per_replica", choices=(4, 8), restarts=True),
                           Knob("max_batch_size", 16, 64, 16, restarts=True))
    rng = np.random.default_rng(0)
    sizes = rng.choice([16.0, 32.0, 48.0, 64.0], 400)
    y = np.where((sizes == 16.0) | (sizes == 64.0), 0.9, 0.1)
    batched, sequential = (SloRl(space, Objective(target=10.0)) for _ in range(2))
    X = batched.features(np.full(400, 6.0), np.full(400, 16.0), np.full(400, 4.0), sizes, 0.2)
    prior_mean, prior_precision = batched.capacity.mean.copy(), batched.capacity.precision.copy()
    batched.capacity.update(X, y)
    for i in range(400):
        sequential.capacity.update(X[i:i + 1], y[i:i + 1])
    assert np.max(np.abs(batched.capacity.mean)) < 10.0
    np.testing.assert_allclose(batched.capacity.predict(X[:20]), sequential.capacity.predict(X[:20]), atol=0.05)

    Phi = np.column_stack([np.ones(400), X])

    def objective(w: np.ndarray) -> float:
        z = Phi @ w
        return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * (w - prior_mean) @ prior_precision @ (w - prior_mean))

    for iters in (1, 2, 5, 20):
        w, _ = laplace_logistic_update(Phi, y, prior_mean, prior_precision, iters, 1e-8)
        assert objective(w) <= objective(prior_mean)
