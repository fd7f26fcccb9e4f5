"""The service-time model against the measured table it comes from (splitwise-sim's perf_model.csv)."""

from __future__ import annotations

import csv
import itertools
import math

import numpy as np
import pytest
import simpy

from simulator.cluster import GpuPool
from simulator.inference.perf_model import COLUMNS, LogLogCurve, PerfModel, available
from simulator.inference.service import InferenceService, ServiceSettings, inference_config_space
from simulator.inference.traces import Trace

PAIRS = sorted(available())


@pytest.mark.parametrize(("model", "hardware"), PAIRS)
def test_every_measured_point_is_reproduced_within_5_percent(model, hardware):
    perf = PerfModel.load(model, hardware)
    checked = 0
    for tp, points in perf.points.items():
        for p in points:
            if p.batch_size > perf.trusted_batch(tp):
                continue  # excluded as disturbed; see test_disturbed_points_are_excluded_and_reported
            ttft, e2e = perf.lone_request_s(p.prompt_size, p.token_size, tp, batch=p.batch_size)
            lo, hi = p.prompt_time_range_s
            # The same prefill (prompt 512, batch 1) is measured again on the generation axis, with
            # session-to-session differences up to 6%: within 5%, or within that point's own repeats.
            assert ttft == pytest.approx(p.prompt_time_s, rel=0.05) or lo <= ttft <= hi, (tp, p)
            # The table's own decomposition: the prefill emits the first token, then token_size - 1 steps.
            assert e2e == pytest.approx(p.e2e_from_parts_s, rel=0.05), (tp, p)
            if p.self_consistent:
                assert e2e == pytest.approx(p.e2e_time_s, rel=0.05), (tp, p)
            checked += 1
    assert checked >= 18 * len(perf.points)


def test_table_decomposes_with_token_size_minus_one():
    """e2e = prompt_time + (token_size - 1) * token_time fits the table; token_size does not."""
    perf = PerfModel.load("llama2-70b", "a100-80gb")
    minus_one, plain = [], []
    for points in perf.points.values():
        for p in points:
            if p.token_size == 128 and p.batch_size == 1:
                implied = (p.e2e_time_s - p.prompt_time_s) / p.token_time_s
                minus_one.append(abs(implied - (p.token_size - 1)))
                plain.append(abs(implied - p.token_size))
    assert np.median(minus_one) < 0.2 < np.median(plain)


def test_lone_request_through_the_simpy_service_matches_the_table():
    """b identical requests at t=0 on one replica: TTFT = prompt_time, e2e = table within 5%."""
    perf = PerfModel.load("llama2-70b", "h100-80gb")
    for tp in perf.tp_degrees:
        for p in perf.points[tp]:
            if p.token_size != 128 or p.batch_size > perf.trusted_batch(tp):
                continue
            b = p.batch_size
            trace = Trace(np.zeros(b), np.full(b, p.prompt_size), np.full(b, p.token_size))
            env = simpy.Environment()
            settings = ServiceSettings(initial={"replicas": 1, "gpus_per_replica": tp, "max_batch_size": b},
                                       max_prefill_tokens=p.prompt_size * b)
            svc = InferenceService(env, GpuPool.uniform(1, 8, "h100-80gb"), perf, trace, settings)
            env.run(until=1000)
            assert svc.completed == b
            assert svc.t_first[0] == pytest.approx(p.prompt_time_s, rel=0.05)
            assert svc.t_done[0] == pytest.approx(perf.lone_request_s(p.prompt_size, 128, tp, b)[1], rel=1e-9)
            if p.self_consistent:
                assert svc.t_done[0] == pytest.approx(p.e2e_time_s, rel=0.05)


def test_disturbed_points_are_excluded_and_reported():
    perf = PerfModel.load("llama2-70b", "a100-80gb")
    assert perf.trusted_batch(2) == 32 and perf.trusted_batch(4) == 64
    assert any("TP2" in e and "batch 64" in e for e in perf.excluded)
    assert any("excluded point" in w for w in perf.coverage_warnings)


def test_log_log_interpolation_is_exact_at_points_and_geometric_between():
    perf = PerfModel.load("llama2-70b", "a100-80gb")
    p512, p1024 = perf.prefill_time_s(512, 1, 4), perf.prefill_time_s(1024, 1, 4)
    mid = perf.prefill_time_s(math.sqrt(512 * 1024), 1, 4)
    assert mid == pytest.approx(math.sqrt(p512 * p1024), rel=1e-9)
    grid = [perf.prefill_time_s(x, 1, 4) for x in np.geomspace(128, 8192, 60)]
    assert all(b >= a for a, b in itertools.pairwise(grid))
    steps = [perf.decode_step_s(b, 4) for b in range(1, 65)]
    assert all(b >= a for a, b in itertools.pairwise(steps))


def test_outside_the_measured_range_is_clamped_or_scaled_and_flagged():
    perf = PerfModel.load("llama2-70b", "a100-80gb")
    p8192 = perf.prefill_time_s(8192, 1, 8)
    assert perf.prefill_time_s(16384, 1, 8) == pytest.approx(2 * p8192)  # linear per token
    assert perf.prefill_time_s(40, 1, 8) == pytest.approx(perf.prefill_time_s(128, 1, 8))  # clamped
    warnings = " | ".join(perf.coverage_warnings)
    assert "prompt longer than measured" in warnings and "prompt shorter than measured" in warnings


def test_only_measured_tp_degrees_are_offered():
    llama = PerfModel.load("llama2-70b", "a100-80gb")
    bloom = PerfModel.load("bloom-176b", "a100-80gb")
    assert llama.tp_degrees == (2, 4, 8) and bloom.tp_degrees == (8,)
    space = inference_config_space(llama, max_replicas=4)
    assert space.names == ("replicas", "gpus_per_replica", "max_batch_size")
    assert space["gpus_per_replica"].choices == (2.0, 4.0, 8.0) and space["gpus_per_replica"].restarts
    assert space["max_batch_size"].restarts and space["max_batch_size"].upper == 64
    with pytest.raises(ValueError, match="not measured"):
        llama.max_measured_batch(3)


def test_a_users_table_with_the_same_columns_loads(tmp_path):
    path = tmp_path / "mine.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for prompt, batch, tokens, pt, tt in [(512, 1, 128, 100, 20), (1024, 1, 128, 200, 20),
                                              (512, 2, 128, 190, 22), (512, 1, 256, 100, 21)]:
            w.writerow(["m", "gpu", prompt, batch, tokens, 1, 1, pt, tt, pt + (tokens - 1) * tt, 1])
            w.writerow(["m", "gpu", prompt, batch, tokens, 1, 1, pt + 2, tt, pt + 2 + (tokens - 1) * tt, 1])
    perf = PerfModel.load("m", "gpu", path)
    assert perf.tp_degrees == (1,)
    assert perf.prefill_time_s(512, 1, 1) == pytest.approx(0.101)  # repeated rows averaged, ms -> s
    assert perf.decode_step_s(2, 1) == pytest.approx(0.022)
    bad = tmp_path / "bad.csv"
    bad.write_text("model,hardware\nm,gpu\n")
    with pytest.raises(ValueError, match="missing column"):
        PerfModel.load("m", "gpu", bad)


def test_curve_rejects_nonsense():
    with pytest.raises(ValueError):
        LogLogCurve([1, 1], [1, 2])
    with pytest.raises(ValueError):
        LogLogCurve([0, 1], [1, 2])
