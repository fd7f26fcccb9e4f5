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
