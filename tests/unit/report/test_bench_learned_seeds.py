"""benchmarks/bench_learned_autoscaler.py --seeds N runs one seed where nothing depends on it (its default
``inference-code-hour-eval`` replays the Azure trace as recorded) instead of dying on the runner's refusal."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from simulator import scenario as sc

BENCH = Path(__file__).resolve().parents[3] / "benchmarks" / "bench_learned_autoscaler.py"


def _bench():
    spec = importlib.util.spec_from_file_location("autocm_bench_learned_autoscaler", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_a_recorded_trace_runs_one_seed_and_says_so():
    scen = sc.load("inference-code-hour-eval")
    seeds, note = _bench().seeds_for(scen, 3)
    assert seeds == [scen.seed]
    assert note is not None and "one seed" in note and "not 3" in note


def test_a_load_shape_runs_every_seed_asked_for():
    scen = sc.load("inference-diurnal-eval")
    assert _bench().seeds_for(scen, 3) == ([scen.seed, scen.seed + 1, scen.seed + 2], None)


def test_windows_on_the_suite_run_each_checkpoint_with_its_recorded_settings(tmp_path, capsys):
    """``--windows --pretrained DIR``: the suite's evaluation hour of knob-batch (seed 101) from session 17's
    checkpoint, with the settings its provenance records (risk 0.6 under a cap of 0.7), as `autocm bench
    inference --pretrained` runs it; a folder without a checkpoint says so instead of failing."""
    folder = BENCH.parents[1] / "docs" / "data" / "bench-2026-12-06-session17" / "checkpoints-validate20"
    bench = _bench()
    bench.suite_windows(folder, ["knob-batch"], 1)
    out = capsys.readouterr().out
    assert "'risk': 0.6" in out and "'risk_max': 0.7" in out
    line = next(x for x in out.splitlines() if x.startswith("knob-batch seed 101:"))
    assert "SLO holds in every window from interval" in line and "GPU-h (as configured) per 10-interval window" in line
    bench.suite_windows(tmp_path, ["knob-batch"], 1)
    assert f"knob-batch: no slo-rl checkpoint in {tmp_path}" in capsys.readouterr().out
