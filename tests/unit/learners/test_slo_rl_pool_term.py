"""slo-rl's ``pool_term``: a capacity feature in 1/GPUs, so the model can say that a GPU serves more when
more replicas share the load.

The table is the simulator's own capacity at the SLO (llama2-70b, A100-80GB, max batch 64, 5 s TTFT p99 at
0.99 attainment, request sizes of the Azure code trace's second half), measured with
``simulator.inference.capacity.bundled_slo_capacity("llama2-70b", "a100-80gb", tp, 64, n, 5.0)``: requests/s
per GPU at ``n`` replicas of TP ``tp``. Rows are drawn around it the way the learner meets them (noisy loads
near and below the boundary, soft labels of a tail that grows with load over capacity), at random sizes, on
10 seeds. Without the term the model has one capacity per GPU per template; the test says what the term buys
on 9 of 10 seeds, not on one lucky draw.
"""

from __future__ import annotations

import math

import numpy as np

from learners import ConfigSpace, Knob, Objective
from learners.slo_rl import SloRl, SloRlSettings

SPACE = ConfigSpace.of(
    Knob("replicas", 1, 16, 1, default=4),
    Knob("gpus_per_replica", choices=(4, 8), restarts=True, default=8),
)
OBJECTIVE = Objective(metric="ttft_p99_seconds", target=5.0, attainment=0.99)
PER_GPU = {  # (tp, replicas) -> requests/s per GPU at the SLO, from the simulator (module docstring)
    (4, 1): 0.2786, (4, 2): 0.3898, (4, 3): 0.4004, (4, 4): 0.4391, (4, 6): 0.4610, (4, 8): 0.4660,
    (8, 1): 0.3122, (8, 2): 0.3479, (8, 3): 0.3672, (8, 4): 0.3814, (8, 6): 0.3793, (8, 8): 0.3835,
}


def trained(pool: bool, seed: int, rows: int = 600) -> SloRl:
    lr = SloRl(SPACE, OBJECTIVE, SloRlSettings(pool_term=pool, seed=seed))
    rng = np.random.default_rng(seed)
    sizes = list(PER_GPU)
    X, y = [], []
    for _ in range(rows):
        tp, n = sizes[rng.integers(len(sizes))]
        gpus = float(tp * n)
        load = PER_GPU[tp, n] * gpus * math.exp(rng.normal(-0.3, 0.35))  # mostly below capacity, some over
        tail = OBJECTIVE.target * (load / (PER_GPU[tp, n] * gpus)) ** 3 * math.exp(rng.normal(0.0, 0.2))
        X.append(lr.features(np.array([load]), np.array([gpus]), np.array([float(tp)]), np.array([0.0]), 0.0)[0])
        y.append(lr.capacity.label(tail, OBJECTIVE.target))
    for i in range(0, rows, 20):  # batches of 20 intervals, as update_every would give
        lr.capacity.update(np.stack(X[i:i + 20]), np.array(y[i:i + 20]))
    return lr


def boundary(lr: SloRl, tp: int, n: int) -> float:
    """Requests/s per GPU where the posterior mean puts the tail on the target (probability 0.5)."""
    grid = np.exp(np.linspace(math.log(0.05), math.log(2.0), 400)) * tp * n
    X = lr.features(grid, np.full(grid.shape, float(tp * n)), np.full(grid.shape, float(tp)),
                    np.zeros(grid.shape), 0.0)
    p = 1.0 / (1.0 + np.exp(-(lr.capacity.mean[0] + X @ lr.capacity.mean[1:])))
    return float(grid[np.argmax(p >= 0.5)] / (tp * n))


def worst_error(lr: SloRl) -> float:
    return max(abs(math.log(boundary(lr, tp, n) / c)) for (tp, n), c in PER_GPU.items())


def test_with_the_pool_term_the_learned_boundary_follows_the_pooling_on_9_of_10_seeds() -> None:
    ok = sum(worst_error(trained(True, seed)) < 0.15 for seed in range(10))
    assert ok >= 9, f"the boundary was within 15% of the simulator's capacity everywhere on {ok} of 10 seeds"


def test_without_it_one_capacity_per_gpu_per_template_misses_small_pools() -> None:
    """The structural blind spot: one TP 4 replica serves 0.28 per GPU, eight 0.47; one number per template is
    off by over 30% somewhere (0.42-0.46 in log on these seeds; with the term 0.08-0.14). This is why the
    term exists, checked on every seed."""
    assert all(worst_error(trained(False, seed)) > 0.3 for seed in range(10))


def test_the_pool_term_makes_tp4_the_cheaper_template_at_three_requests_per_second() -> None:
    """At 3 requests/s the simulator serves the SLO with 2 x TP 4 (8 GPUs, 3.1 req/s) where TP 8 needs 2
    replicas (16 GPUs); with the term the risk-bounded choice asks fewer GPUs of TP 4 than of TP 8."""
    wins = 0
    for seed in range(10):
        need = trained(True, seed).cheapest(3.0)
        wins += need[(4.0, 0.0)] * 4 < need[(8.0, 0.0)] * 8
    assert wins >= 9, f"TP 4 was planned cheaper on {wins} of 10 seeds"


def test_the_feature_is_off_by_default_and_checkpoints_keep_their_shape() -> None:
    plain, pooled = SloRl(SPACE, OBJECTIVE), SloRl(SPACE, OBJECTIVE, SloRlSettings(pool_term=True, pool_prior=0.5))
    assert pooled.capacity.dim == plain.capacity.dim + 1
    assert pooled.capacity.mean[-2] == 0.5 and pooled.capacity.mean[-1] == plain.capacity.mean[-1]
    x = pooled.features(np.array([2.0, 2.0]), np.array([4.0, 64.0]), np.array([4.0, 4.0]), np.zeros(2), 0.0)
    assert x[:, -2].tolist() == [1.0, 4.0 / 64.0]
