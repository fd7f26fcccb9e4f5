"""slo-rl's ``batch_levels``: one capacity weight per batch size instead of one on the batch position.

knob-batch's tail is not monotone in the batch size: a small batch queues, the largest breaks the TBT
target. A single weight on the position can only rank the batch sizes in order, so the learner could
prefer only the smallest or the largest; one weight per size can learn that the middle one is safest.
"""

from __future__ import annotations

import numpy as np

from learners import ConfigSpace, Knob, Objective
from learners.slo_rl import SloRl, SloRlSettings

SPACE = ConfigSpace.of(
    Knob("replicas", 1, 16, 1, default=4),
    Knob("gpus_per_replica", choices=(4, 8), restarts=True, default=8),
    Knob("max_batch_size", 16, 64, 16, restarts=True, default=32),
)
BATCHES = np.array([16.0, 32.0, 48.0, 64.0])


def make(**settings) -> SloRl:
    return SloRl(SPACE, Objective(metric="ttft_p99_seconds", target=10.0), SloRlSettings(**settings))


def _rows(learner: SloRl, batch: np.ndarray) -> np.ndarray:
    n = batch.size
    return learner.features(np.full(n, 6.0), np.full(n, 16.0), np.full(n, 4.0), batch, 0.2)


def test_one_weight_per_batch_size_starts_from_the_position_lines_prior():
    line, levels = make(), make(batch_levels=True)
    assert (line.dim, levels.dim) == (4, 6)
    def logits(learner: SloRl) -> np.ndarray:  # the prior mean's logit per batch size (the predictive differs
        return learner.capacity.mean[0] + _rows(learner, BATCHES) @ learner.capacity.mean[1:]  # by variance)

    np.testing.assert_allclose(logits(line), logits(levels))


def test_only_per_size_weights_can_learn_that_the_middle_batch_is_safest():
    """Evidence at one load per GPU: batch 16 and 64 miss (label 0.9), 32 and 48 meet (0.1). With one
    weight per size, 32 ends up predicted safer than both 16 and 64; with one weight on the position it
    cannot be safer than both ends at once."""
    rng = np.random.default_rng(0)
    batch = rng.choice(BATCHES, 400)
    y = np.where((batch == 16.0) | (batch == 64.0), 0.9, 0.1)
    risk = {}
    for levels in (False, True):
        learner = make(batch_levels=levels)
        rows = _rows(learner, batch)
        for i in range(batch.size):  # one interval at a time, as slo-rl learns
            learner.capacity.update(rows[i:i + 1], y[i:i + 1])
        risk[levels] = learner.capacity.predict(_rows(learner, BATCHES))
    p16, p32, _, p64 = risk[True]
    assert p32 < 0.3 < 0.7 < min(p16, p64)
    q16, q32, _, q64 = risk[False]
    assert not q32 < min(q16, q64)


def test_the_setting_travels_with_the_checkpoint():
    learner = make(batch_levels=True)
    restored = make(batch_levels=True)
    restored.load_state_dict(learner.state_dict())
    np.testing.assert_array_equal(restored.capacity.mean, learner.capacity.mean)
