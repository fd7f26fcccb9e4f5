"""The e2e emulator, calibrated to the simulator, serves what the simulator serves at the SLO.

tests/e2e/emulator.py stands in for the simulated llama2-70b/A100 service in the operator's e2e tests
(issue 11): a checkpoint learned in the simulator must meet a service of the same capacity there. Its
M/M/c service rate is matched to the simulator's capacity at the SLO at 3 replicas; this checks the
match holds at the other sizes the e2e segment uses (1, 2, 4 replicas), for three templates, within
12%: both capacities are computed here, the simulator's by simulating its replicas (no cluster). Since
session 24 the per-replica signals the rules scale on (GPU busy fraction, running requests, KV share) are the
simulator's too, read off the same simulated replicas.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from simulator.inference.capacity import bundled_slo_capacity


def _load_emulator():
    """tests/e2e/emulator.py by path: ``tests`` is not an importable package where pytest runs without the
    repository root on sys.path (a fresh clone's CI), so ``from tests.e2e.emulator import ...`` fails there."""
    path = Path(__file__).resolve().parents[2] / "e2e" / "emulator.py"
    spec = importlib.util.spec_from_file_location("autocm_e2e_emulator", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


_emulator = _load_emulator()
ServiceModel, calibrated_model, capacity_at_slo = (_emulator.ServiceModel, _emulator.calibrated_model,
                                                   _emulator.capacity_at_slo)

MODEL, HARDWARE, SLO_S = "llama2-70b", "a100-80gb", 5.0


@pytest.mark.parametrize(("tp", "batch"), [(8, 64), (4, 64), (8, 32)])
def test_emulator_capacity_at_the_slo_matches_the_simulator(tp: int, batch: int) -> None:
    model = calibrated_model(MODEL, HARDWARE, tp, batch, SLO_S)
    for replicas in (1, 2, 4):
        sim = bundled_slo_capacity(MODEL, HARDWARE, tp, batch, replicas, SLO_S)
        emu = capacity_at_slo(model, replicas, tp, SLO_S, 0.99)
        assert abs(emu / sim - 1.0) <= 0.12, (tp, batch, replicas, emu, sim)


def test_a_size_the_simulator_passes_passes_the_emulator_and_tp8_serves_less_than_the_uncalibrated_default() -> None:
    model = calibrated_model(MODEL, HARDWARE, 8, 64, SLO_S)
    sim3 = bundled_slo_capacity(MODEL, HARDWARE, 8, 64, 3, SLO_S)
    # 90% of the simulator's capacity of 3 x TP 8 meets the SLO in the emulator; 115% does not.
    assert ServiceModel(0.9 * sim3, model.service_rate, model.prefill_s).ttft_cdf(SLO_S, 3, 8) >= 0.99
    assert ServiceModel(1.15 * sim3, model.service_rate, model.prefill_s).ttft_cdf(SLO_S, 3, 8) < 0.99
    # The previous hand-set emulator (0.5 requests/s per GPU, 1 s prefill) served more than the simulator.
    assert capacity_at_slo(ServiceModel(0.0, 0.5, 1.0), 3, 8, SLO_S, 0.99) > 1.1 * sim3


def test_counters_advance_exactly_to_each_scrape_on_a_schedule() -> None:
    """A scrape at any instant reads the schedule's integral up to it (rate() then reads the true rate)."""
    Emulator, parse_schedule = _emulator.Emulator, _emulator.parse_schedule
    emu = Emulator("ns", "d", ServiceModel(0.0, 1.0, 0.1), pods=["a", "b"], gpus_per_pod=8.0,
                   schedule=parse_schedule("0:1,10:8,20:8"))
    emu.advance(100.0)  # time 0 of the schedule
    for t in (0.3, 1.7, 2.0, 4.9, 10.0, 13.1, 20.0):
        emu.advance(100.0 + t)
        true = t + 3.5 * t * t / 10 if t <= 10 else 45.0 + 8.0 * (t - 10)  # integral of 1 + 0.7 t, then 8/s
        assert abs(emu.served - true) <= 0.02 * true + 0.2, (t, emu.served, true)
    assert emu.pod_seconds == 2 * 20.0 and emu.gpu_seconds == 16 * 20.0


def test_an_overloaded_emulator_reports_its_throughput_not_its_demand() -> None:
    """``vllm:request_success_total`` grows by what the pods serve: 2 one-GPU pods at 8 requests/s each
    under 30 arriving finish 16 a second (before 2026-12-06 they reported 30, and a policy sizing by
    completions per replica read 15 per pod); under capacity every arrival finishes."""
    emu = _emulator.Emulator("ns", "svc", ServiceModel(rate=30.0, service_rate=8.0), pods=["a", "b"])
    emu.tick(10.0)
    assert emu.completed == {"a": 80.0, "b": 80.0} and emu.total == {"a": 150.0, "b": 150.0}
    assert 'vllm:request_success_total{namespace="ns",pod="a"} 80.0' in emu.exposition()
    emu.model = ServiceModel(rate=10.0, service_rate=8.0)
    emu.tick(10.0)
    assert emu.completed == {"a": 130.0, "b": 130.0}


def test_per_replica_signals_are_the_simulators_between_the_grid_points() -> None:
    """GPU busy fraction, running requests and KV share per replica read what the simulator reads at the same
    template, replicas and rate (off the calibration grid: the interpolation's error), and the busy fraction
    saturates where the simulator's does: near 1 at half a replica's capacity, where the M/M/c queue's own
    utilisation (what the emulator exported before) is under 0.5."""
    from simulator.inference.capacity import bundled_steady_signals

    signals = _emulator.calibrated_signals(MODEL, HARDWARE, 8, 64, SLO_S)
    for replicas, rate in ((2, 1.7), (3, 4.4), (3, 7.3), (4, 2.6)):
        busy, running, kv = signals.at(replicas, rate)
        s_busy, s_running, s_kv = bundled_steady_signals(MODEL, HARDWARE, 8, 64, replicas, rate)
        assert abs(busy - s_busy) <= 0.05, (replicas, rate, busy, s_busy)
        assert abs(running - s_running) <= 0.25 * s_running + 0.3, (replicas, rate, running, s_running)
        assert abs(kv - s_kv) <= 0.25 * s_kv + 0.002, (replicas, rate, kv, s_kv)
    for rows in signals.table:  # monotone in the load, a fraction
        busy = [row[0] for row in rows]
        assert busy == sorted(busy) and busy[0] >= 0.0 and busy[-1] <= 1.0
    half = 0.5 * bundled_slo_capacity(MODEL, HARDWARE, 8, 64, 3, SLO_S)
    model = calibrated_model(MODEL, HARDWARE, 8, 64, SLO_S)
    emu = _emulator.Emulator("ns", "d", replace(model, rate=half), pods=["a", "b", "c"], gpus_per_pod=8.0,
                             signals=signals)
    text = emu.exposition()
    dcgm = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("DCGM_FI_DEV_GPU_UTIL{")]
    rho, _, _ = replace(model, rate=half).state(3, 8.0)
    assert len(dcgm) == 3 and all(d >= 97.0 for d in dcgm) and rho < 0.5, (dcgm, rho)
