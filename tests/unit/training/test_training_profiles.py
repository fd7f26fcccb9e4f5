"""Profiles: measured points come back exactly, interpolation is linear, nothing is extrapolated."""

import csv

import numpy as np
import pytest

from simulator.datasets import data_path
from simulator.training.profiles import (
    ProfileCoverageError,
    gradient_noise_scale,
    load_profiles,
    placement_id,
)

PROFILES_DIR = data_path("pollux", "profiles")
MODELS = ("bert", "cifar10", "deepspeech2", "imagenet", "ncf", "yolov3")


@pytest.fixture(scope="module")
def profiles():
    return load_profiles(PROFILES_DIR)


def _rows(model, name):
    with (PROFILES_DIR / model / name).open() as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("placement, expected", [
    ((4, 2), "24"), ((2, 2, 1), "122"), ((4, 3, 2, 2), "2243"), ((1,), "1"), ((3, 0, 1), "13"),
])
def test_placement_id_is_the_smallest_rotation(placement, expected):
    assert placement_id(placement) == expected


@pytest.mark.parametrize("model", MODELS)
def test_every_measured_point_is_reproduced_exactly(profiles, model):
    prof = profiles[model]
    for row in _rows(model, "placements.csv"):
        parts = tuple(int(c) for c in row["placement"])
        st = prof.step_time(parts, int(row["local_bsz"]))
        assert st.step_s == float(row["step_time"])
        assert st.sync_s == float(row["sync_time"])


@pytest.mark.parametrize("model", MODELS)
def test_between_measured_batches_is_linear(profiles, model):
    prof = profiles[model]
    rows = sorted((r for r in _rows(model, "placements.csv") if r["placement"] == "22"),
                  key=lambda r: int(r["local_bsz"]))
    lo, hi = rows[1], rows[2]
    b0, b1 = int(lo["local_bsz"]), int(hi["local_bsz"])
    x = b0 + 0.25 * (b1 - b0)
    expected = float(lo["step_time"]) + 0.25 * (float(hi["step_time"]) - float(lo["step_time"]))
    assert prof.step_time((2, 2), x).step_s == pytest.approx(expected, rel=1e-12)


def test_out_of_range_batches_are_refused(profiles):
    prof = profiles["cifar10"]
    batches = prof.measured_local_batches((4,))
    with pytest.raises(ProfileCoverageError, match="outside the measured"):
        prof.step_time((4,), batches[0] - 1)
    with pytest.raises(ProfileCoverageError, match="outside the measured"):
        prof.step_time((4,), batches[-1] + 1)
    with pytest.raises(ProfileCoverageError, match="outside the measured placements"):
        prof.step_time((4,) * 20, 64)  # 80 GPUs on 20 nodes: beyond every measurement
    with pytest.raises(ProfileCoverageError, match="validated"):
        prof.grad_stats(prof.max_batch_size + 1, 0)


def test_unmeasured_placement_reproduces_a_scalability_point(profiles):
    """Six nodes x 1 GPU is not in placements.csv; scalability.csv measured (6 nodes, 6 GPUs)."""
    prof = profiles["cifar10"]
    assert not prof.is_measured((1,) * 6)
    for row in _rows("cifar10", "scalability.csv"):
        if row["num_nodes"] == "6" and row["num_replicas"] == "6":
            st = prof.step_time((1,) * 6, int(row["local_bsz"]))
            assert st.step_s == pytest.approx(float(row["step_time"]), rel=1e-9)


@pytest.mark.parametrize("model", MODELS)
def test_efficiency_is_one_at_the_initial_batch_and_below_above_it(profiles, model):
    prof = profiles[model]
    m0 = prof.init_batch_size
    for epoch in range(prof.max_epochs):
        assert prof.efficiency(m0, epoch) == pytest.approx(1.0, rel=1e-12)
        for m in prof.validated_batch_sizes[1:]:
            eff = prof.efficiency(m, epoch)
            sqr, var = prof.grad_stats(m, epoch)
            pgns = gradient_noise_scale(sqr, var, m0)
            if np.isinf(pgns):  # a measured grad_sqr of 0: pure noise, every batch is efficient
                assert eff == pytest.approx(1.0)
                continue
            assert eff == pytest.approx((pgns + m0) / (pgns + m), rel=1e-9)
            assert 0 < eff < 1


def test_grad_stats_come_from_the_validation_rows(profiles):
    prof = profiles["cifar10"]
    rows = _rows("cifar10", "validation-512.csv")
    assert prof.grad_stats(512, 3) == (float(rows[3]["grad_sqr"]), float(rows[3]["grad_var"]))
    lo, hi = _rows("cifar10", "validation-256.csv")[5], rows[5]
    sqr, _ = prof.grad_stats(384, 5)  # halfway between 256 and 512
    assert sqr == pytest.approx((float(lo["grad_sqr"]) + float(hi["grad_sqr"])) / 2, rel=1e-12)


def test_target_is_the_slowest_validation_run_at_max_epochs(profiles):
    prof = profiles["cifar10"]
    assert prof.max_epochs == 100  # applications.py APPLICATIONS["cifar10"]
    ends = [float(_rows("cifar10", f"validation-{m}.csv")[99]["progress"])
            for m in prof.validated_batch_sizes]
    assert prof.target_progress == min(ends)
    assert np.all(np.diff(prof.epoch_progress) > 0)
    assert profiles["yolov3"].max_local_bsz == 8  # the artifact's override
