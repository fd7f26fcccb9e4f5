"""The train/test split holds: no training trace uses a request row, a shape second or a seed that an
evaluation trace uses (checked on the traces actually generated, by the hashes of their sources)."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.bench import split
from simulator.bench.scenarios import SCENARIOS, TRAINING
from simulator.bench.split import EVAL, EVAL_SEED0, TRAIN, TRAIN_SEED0
from simulator.inference.traces import azure_code, request_log


def test_code_halves_partition_the_trace():
    train, ev = split.code_half(TRAIN), split.code_half(EVAL)
    assert not train.sources & ev.sources
    assert len(train.trace) + len(ev.trace) == len(azure_code())
    assert abs(len(train.trace) - len(ev.trace)) <= 1


@pytest.mark.parametrize("shape", ["bursty", "noisy"])
def test_shape_halves_are_disjoint(shape):
    a, sa = split.shape_half(shape, TRAIN)
    b, sb = split.shape_half(shape, EVAL)
    assert not sa & sb and len(a) == len(b) == 1800


def test_every_training_scenario_is_disjoint_from_every_evaluation_scenario(tmp_path):
    train_sources, eval_sources = set(), set()
    for b in TRAINING:
        for seed in (TRAIN_SEED0, TRAIN_SEED0 + 1):
            _, used = b.write(tmp_path / "train", TRAIN, seed, quick=True)
            assert used, b.name
            train_sources |= used
    for b in SCENARIOS:
        for seed in (EVAL_SEED0, EVAL_SEED0 + 1):
            _, used = b.write(tmp_path / "eval", EVAL, seed, quick=True)
            eval_sources |= used
    assert train_sources and eval_sources
    assert not train_sources & eval_sources
    # both sides draw on the trace rows and on the shapes
    assert any(s.startswith("row:") for s in train_sources) and any(s.startswith("shape:") for s in train_sources)
    assert any(s.startswith("row:") for s in eval_sources) and any(s.startswith("shape:") for s in eval_sources)


def test_seeds_of_the_two_sides_never_meet():
    # the CLI allows at most 99 seeds on either side: training 1..99 (at most), evaluation 101..199
    assert set(range(TRAIN_SEED0, TRAIN_SEED0 + 99)).isdisjoint(range(EVAL_SEED0, EVAL_SEED0 + 99))


def test_bootstrap_keeps_one_minute_blocks_and_only_first_half_rows():
    built = split.code_bootstrap(TRAIN, 1800.0, seed=3)
    t = built.trace.arrival_s
    assert np.all(np.diff(t) >= 0) and t[-1] < 1800.0
    first_half = split.code_half(TRAIN).sources
    assert built.sources <= first_half
    again = split.code_bootstrap(TRAIN, 1800.0, seed=3)
    assert np.array_equal(again.trace.arrival_s, t)  # seeded
    other = split.code_bootstrap(TRAIN, 1800.0, seed=4)
    assert not np.array_equal(other.trace.arrival_s[:50], t[:50])


def test_written_request_log_reads_back(tmp_path):
    built = split.shape_trace("noisy", EVAL, 2.0, 600.0, seed=EVAL_SEED0)
    path = split.write_csv(built.trace, tmp_path / "t.csv")
    back = request_log(path)
    assert len(back) == len(built.trace)
    assert np.array_equal(back.prompt_tokens, built.trace.prompt_tokens)
    assert np.allclose(back.arrival_s, built.trace.arrival_s - built.trace.arrival_s[0], atol=1e-5)


def test_a_training_file_describes_the_training_side_not_the_evaluation_side(tmp_path):
    """The step's training files used to say '3.6 req/s from half time on, sizes from the second half':
    the evaluation side's step. A reader of a training file must see what it holds."""
    import yaml

    from simulator.bench.scenarios import by_name

    step = by_name(["step"])[0]
    train = yaml.safe_load(step.write(tmp_path, TRAIN, 1, quick=True)[0].read_text())["description"]
    evaluation = yaml.safe_load(step.write(tmp_path, EVAL, 101, quick=True)[0].read_text())["description"]
    assert train.startswith("TRAINING side") and "family of steps" in train and "first half" in train
    assert evaluation == step.description and "TRAINING" not in evaluation


def test_the_training_steps_are_a_family_and_the_evaluation_step_is_untouched():
    """Each training seed draws its own step (factor 2-4, at 30-70% of the run); the evaluation side stays
    x3 at half time. Read back from the written request logs' arrival rates, not from the draw."""
    from simulator.bench.scenarios import STEP_TRAIN_AT, STEP_TRAIN_FACTORS, _step, step_draw

    draws = [step_draw(seed) for seed in range(1, 17)]
    assert len(set(draws)) == 16
    assert all(STEP_TRAIN_FACTORS[0] <= f <= STEP_TRAIN_FACTORS[1] and STEP_TRAIN_AT[0] <= a <= STEP_TRAIN_AT[1]
               for f, a in draws)
    assert max(f for f, _ in draws) - min(f for f, _ in draws) > 1.0

    def measured(side: str, seed: int) -> tuple[float, float]:
        arrivals = _step(side, 7200.0, seed).trace.arrival_s
        counts = np.bincount((arrivals // 60).astype(int), minlength=120)[:120].astype(float)
        sse = [((counts[:k] - counts[:k].mean()) ** 2).sum() + ((counts[k:] - counts[k:].mean()) ** 2).sum()
               for k in range(5, 116)]
        jump = 5 + int(np.argmin(sse))  # the least-squares change point of the per-minute counts
        return counts[jump + 1:].mean() / counts[:jump - 1].mean(), jump / 120

    for seed in (1, 2, 14):
        factor, at = step_draw(seed)
        got_factor, got_at = measured(TRAIN, seed)
        assert abs(got_factor - factor) < 0.25 * factor and abs(got_at - at) <= 0.02
    got_factor, got_at = measured(EVAL, 101)
    assert abs(got_factor - 3.0) < 0.6 and abs(got_at - 0.5) <= 0.02
