"""The numpy MLP behind VCONF: exact gradients, a working optimiser, faithful state round trips."""

from __future__ import annotations

import numpy as np
import pytest

from learners.mlp import MLP, Adam, bce_with_logits, smooth_l1_on


def _numeric_grads(net: MLP, x: np.ndarray, loss_of, h: float = 1e-3) -> list[np.ndarray]:
    out = []
    for p in net.params:
        g = np.zeros_like(p, dtype=np.float64)
        flat = p.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + h
            up = loss_of(net(x))[0]
            flat[i] = old - h
            down = loss_of(net(x))[0]
            flat[i] = old
            g.reshape(-1)[i] = (up - down) / (2 * h)
        out.append(g)
    return out


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("loss", ["bce", "huber"])
def test_backpropagation_matches_finite_differences(seed: int, loss: str) -> None:
    rng = np.random.default_rng(seed)
    net = MLP([3, 5, 4, 2], rng)
    for i, p in enumerate(net.params):  # float64 for a tight finite-difference check
        net.params[i] = p.astype(np.float64)
    x = rng.normal(size=(7, 3))
    if loss == "bce":
        net.params[-2] = net.params[-2][:, :1].copy()
        net.params[-1] = net.params[-1][:1].copy()
        loss_of = bce_with_logits(rng.uniform(size=7))
    else:  # differences both inside and outside the Huber loss's quadratic zone
        loss_of = smooth_l1_on(rng.integers(0, 2, size=7), rng.normal(scale=2.0, size=7))
    _, grads = net.gradients(x, loss_of)
    for got, want in zip(grads, _numeric_grads(net, x, loss_of), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_adam_fits_a_smooth_function_on_most_seeds() -> None:
    """A 2-16-16-1 network learns y = sin(3x0) * x1 to a small error on at least 9 of 10 seeds."""
    fitted = 0
    for seed in range(10):
        rng = np.random.default_rng(seed)
        net = MLP([2, 16, 16, 1], rng)
        opt = Adam(net, lr=1e-2)
        x = rng.uniform(-1, 1, size=(512, 2)).astype(np.float32)
        y = np.sin(3 * x[:, 0]) * x[:, 1]
        for _ in range(1500):
            idx = rng.integers(0, len(x), size=64)
            _, grads = net.gradients(x[idx], smooth_l1_on(np.zeros(64, dtype=int), y[idx]))
            opt.step(grads)
        mse = float(np.mean((net(x)[:, 0] - y) ** 2))
        fitted += mse < 0.1 * float(np.var(y))
    assert fitted >= 9


def test_state_round_trip_and_shape_mismatch() -> None:
    a = MLP([4, 8, 8, 3], np.random.default_rng(0))
    b = MLP([4, 8, 8, 3], np.random.default_rng(1))
    x = np.random.default_rng(2).normal(size=(5, 4))
    assert not np.allclose(a(x), b(x))
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a(x), b(x))
    wider = MLP([4, 16, 16, 3], np.random.default_rng(0))
    with pytest.raises(ValueError, match="hidden width"):
        wider.load_state_dict(a.state_dict())


def test_one_input_and_a_batch_give_the_same_outputs() -> None:
    net = MLP([3, 6, 6, 2], np.random.default_rng(5))
    x = np.random.default_rng(6).normal(size=(4, 3)).astype(np.float32)
    np.testing.assert_allclose(np.stack([net(row) for row in x]), net(x), rtol=1e-6)
