"""Trace loaders: the Azure code trace, users' request logs and load shapes."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.inference.traces import azure_code, load_shape, read_shape, request_log, shape_rates


def test_azure_code_trace_is_the_published_hour():
    t = azure_code()
    assert len(t) == 8819  # rows of AzureLLMInferenceTrace_code.csv
    assert np.all(np.diff(t.arrival_s) >= 0) and t.arrival_s[0] == 0.0
    assert 3400 < t.duration_s < 3460 and t.mean_rate_per_s == pytest.approx(2.57, abs=0.02)
    assert t.prompt_tokens[0] == 4808 and t.output_tokens[0] == 10  # first data row
    assert t.arrival_s[1] == pytest.approx(0.052)  # 18:17:04.03196 - 18:17:03.97996


def test_rate_scale_and_duration_cut():
    base = azure_code()
    fast = azure_code(rate_scale=2.0)
    assert len(fast) == len(base) and fast.duration_s == pytest.approx(base.duration_s / 2)
    cut = azure_code(duration_s=600.0)
    assert cut.arrival_s[-1] < 600.0 and len(cut) == int(np.sum(base.arrival_s < 600.0))
    longer = azure_code(duration_s=2 * 3600.0)  # a recorded trace shorter than asked is repeated
    assert longer.arrival_s[-1] < 7200.0 and len(longer) > 1.9 * len(base)
    assert np.all(np.diff(longer.arrival_s) >= 0)


def test_user_request_log_in_seconds_or_datetimes(tmp_path):
    secs = tmp_path / "secs.csv"
    secs.write_text("t,in,out\n5.0,100,10\n1.0,200,20\n3.5,300,0\n")
    t = request_log(secs)
    assert t.arrival_s.tolist() == [0.0, 2.5, 4.0]  # sorted, from zero
    assert t.prompt_tokens.tolist() == [200, 300, 100]
    assert t.output_tokens.tolist() == [20, 1, 10]  # at least one output token
    dates = tmp_path / "dates.csv"
    dates.write_text("2024-01-01 00:00:00.5,10,1\n2024-01-01T00:00:02.75,20,2\n")
    assert request_log(dates).arrival_s.tolist() == [0.0, 2.25]
    bad = tmp_path / "bad.csv"
    bad.write_text("1.0,ten,3\n")
    with pytest.raises(ValueError, match="line 1 "):
        request_log(bad)


@pytest.mark.parametrize("shape", ["bursty", "noisy"])
def test_load_shape_hits_the_target_rate_and_is_seeded(shape):
    t = load_shape(shape, mean_rate_per_s=3.0, duration_s=3600.0, seed=7)
    assert len(t) / 3600.0 == pytest.approx(3.0, rel=0.03)
    again = load_shape(shape, mean_rate_per_s=3.0, duration_s=3600.0, seed=7)
    assert np.array_equal(t.arrival_s, again.arrival_s)
    assert np.array_equal(t.prompt_tokens, again.prompt_tokens)
    other = load_shape(shape, mean_rate_per_s=3.0, duration_s=3600.0, seed=8)
    assert not np.array_equal(t.arrival_s, other.arrival_s)
    azure = azure_code()
    pairs = set(zip(azure.prompt_tokens.tolist(), azure.output_tokens.tolist(), strict=True))
    assert set(zip(t.prompt_tokens.tolist(), t.output_tokens.tolist(), strict=True)) <= pairs
    # arrivals follow the shape: per-second counts correlate with the shape's rates
    counts = np.bincount(t.arrival_s.astype(int), minlength=3600)
    assert np.corrcoef(counts, read_shape(shape))[0, 1] > 0.3


def test_day_long_shape_tiles_the_hour_or_stretches_it():
    hour = read_shape("bursty")
    tiled = shape_rates("bursty", 2.0, 2 * 3600.0, fit="tile")
    assert np.allclose(tiled[:3600], tiled[3600:]) and np.allclose(tiled[:3600] / tiled[:3600].mean(),
                                                                    hour / hour.mean())
    stretched = shape_rates("bursty", 2.0, 2 * 3600.0, fit="stretch")
    assert np.allclose(stretched[0::2], stretched[1::2]) and stretched.mean() == pytest.approx(2.0)
    scaled = load_shape("bursty", 2.0, duration_s=600.0, seed=1, rate_scale=2.0)
    assert len(scaled) / 600.0 == pytest.approx(4.0 * 600 / 600, rel=0.15)
