"""Constrained Bayesian optimisation finds the best training configuration of a Pollux profile.

Ground truth (imagenet profile, simulator/data/pollux/profiles/imagenet/placements.csv, 864
configurations = 108 placements x 8 local batch sizes). For placement p (digits = GPUs per node)
and local batch size b, with G GPUs and total batch M = b G:

    throughput = M / step_time                                    samples per second
    efficiency = (φ + M0) / (φ + M)                               Pollux's statistical efficiency
    goodput    = throughput x efficiency                          (Qiao et al., OSDI 2021, eq. 5 /
                                                                   McCandlish et al. 2018), φ = 100
    cost       = G / goodput                                      GPU-seconds per useful sample
    constraint = 1 / goodput <= 1 / (0.5 x max goodput)           the SLO: at least half the best
                                                                   goodput any configuration reaches

Minimise cost subject to the SLO. The optimum is unique (next-best feasible cost is 4.9% higher).
"""

from __future__ import annotations

import csv

import numpy as np
import pytest

from learners.bayesopt import (
    BayesOptSettings,
    ConstrainedBayesOpt,
    GaussianProcess,
    expected_improvement,
    farthest_point_design,
)
from simulator.datasets import DATA_DIR

PROFILE = DATA_DIR / "pollux" / "profiles" / "imagenet" / "placements.csv"
NOISE_SCALE = 100.0  # φ, the gradient noise scale in samples
SLO_SHARE = 0.5
TRIALS = 15
SEEDS = 20


def _load() -> dict[str, np.ndarray]:
    with PROFILE.open() as f:
        rows = list(csv.DictReader(f))
    placement = [r["placement"] for r in rows]
    bsz = np.array([float(r["local_bsz"]) for r in rows])
    step = np.array([float(r["step_time"]) for r in rows])
    gpus = np.array([sum(int(c) for c in p) for p in placement], dtype=float)
    nodes = np.array([len(p) for p in placement], dtype=float)
    total = bsz * gpus
    goodput = total / step * (NOISE_SCALE + bsz.min()) / (NOISE_SCALE + total)
    return {
        # GP inputs: log GPUs, nodes, log batch size, and log GPUs per node (packing: one node with
        # two GPUs syncs over NVLink/PCIe, two nodes with one each over the network)
        "features": np.c_[np.log2(gpus), nodes, np.log2(bsz), np.log2(gpus / nodes)],
        "cost": gpus / goodput,
        "constraint": 1.0 / goodput,
        "limit": np.array(1.0 / (SLO_SHARE * goodput.max())),
    }


@pytest.fixture(scope="module")
def profile() -> dict[str, np.ndarray]:
    if not PROFILE.exists():
        pytest.skip(f"Pollux profile not found at {PROFILE}")
    return _load()


def test_ground_truth_has_a_unique_constrained_optimum(profile):
    feasible = profile["constraint"] <= profile["limit"]
    costs = np.sort(profile["cost"][feasible])
    assert len(profile["cost"]) >= 500 and 0 < feasible.sum() < len(feasible)
    assert costs[1] > 1.02 * costs[0]
    # the constraint binds: the unconstrained cheapest configuration violates the SLO
    assert not feasible[np.argmin(profile["cost"])]


def test_bo_finds_the_best_configuration_and_beats_random_search(profile):
    cost, con, limit = profile["cost"], profile["constraint"], float(profile["limit"])
    feasible = con <= limit
    best = int(np.flatnonzero(feasible)[np.argmin(cost[feasible])])
    settings = BayesOptSettings(constraint_max=limit, restarts=1)
    found, bo_regret, random_regret = 0, [], []
    for seed in range(SEEDS):
        bo = ConstrainedBayesOpt(profile["features"], settings, np.random.default_rng(seed))
        for _ in range(TRIALS):
            i = bo.suggest()
            bo.observe(i, cost[i], con[i])
        found += best in bo.indices
        pick = bo.best()
        bo_regret.append(np.inf if pick is None else cost[pick] / cost[best] - 1)
        tried = np.random.default_rng(10_000 + seed).choice(len(cost), TRIALS, replace=False)
        ok = tried[feasible[tried]]
        random_regret.append(np.inf if ok.size == 0 else cost[ok].min() / cost[best] - 1)
    assert found >= 0.9 * SEEDS, f"best found in {found}/{SEEDS} seeds"
    assert np.mean(bo_regret) < np.mean(random_regret)


def test_gp_interpolates_a_smooth_function_and_is_uncertain_far_away():
    rng = np.random.default_rng(0)
    X = rng.random((25, 2))
    y = np.sin(3 * X[:, 0]) + X[:, 1] ** 2
    gp = GaussianProcess(BayesOptSettings()).fit(X, y, rng)
    Xs = rng.random((50, 2))
    mean, std = gp.predict(Xs)
    assert np.max(np.abs(mean - (np.sin(3 * Xs[:, 0]) + Xs[:, 1] ** 2))) < 0.05
    _, std_far = gp.predict(np.array([[5.0, 5.0]]))
    assert std_far[0] > 10 * np.median(std)


def test_marginal_likelihood_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    X, y = rng.random((10, 3)), rng.normal(size=10)
    gp = GaussianProcess(BayesOptSettings())
    theta = np.r_[0.3, np.log([0.3, 0.5, 1.0]), np.log(1e-2)]
    _, grad = gp._neg_lml(theta, X, y)
    eps = 1e-6
    numeric = [(gp._neg_lml(theta + eps * e, X, y)[0] - gp._neg_lml(theta - eps * e, X, y)[0]) / (2 * eps)
               for e in np.eye(len(theta))]
    assert np.allclose(grad, numeric, rtol=1e-4, atol=1e-6)


def test_expected_improvement_closed_form():
    # at mean == best, EI = std * pdf(0)
    at_incumbent = expected_improvement(np.array([1.0]), np.array([2.0]), 1.0)[0]
    assert at_incumbent == pytest.approx(2 / np.sqrt(2 * np.pi))
    # far below the incumbent, EI ≈ best - mean
    assert expected_improvement(np.array([-10.0]), np.array([0.1]), 0.0)[0] == pytest.approx(10.0)


def test_initial_design_spans_the_space_and_is_seeded():
    grid = np.array([[i, j] for i in range(5) for j in range(5)], dtype=float)
    a = farthest_point_design(grid, 4, np.random.default_rng(3))
    assert a == farthest_point_design(grid, 4, np.random.default_rng(3)) and len(set(a)) == 4
    spread = min(np.linalg.norm(grid[i] - grid[j]) for i in a for j in a if i != j)
    assert spread >= 2.0


def test_observe_rejects_repeats_and_non_positive_metrics():
    bo = ConstrainedBayesOpt(np.arange(6.0)[:, None], BayesOptSettings(constraint_max=1.0))
    bo.observe(bo.suggest(), 1.0, 0.5)
    with pytest.raises(ValueError, match="already observed"):
        bo.observe(bo.indices[0], 1.0, 0.5)
    with pytest.raises(ValueError, match="positive"):
        bo.observe(5 if bo.indices[0] != 5 else 4, 0.0, 0.5)
    assert bo.best() == bo.indices[0]
