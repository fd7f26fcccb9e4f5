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
    assert train.startswith("TRAINING side") and "3.0 req/s from 40%" in train and "first half" in train
    assert evaluation == step.description and "TRAINING" not in evaluation
