"""``trace.mean_rate_range``: a load-shape trace whose mean rate each seed draws from a range (a training ground
over load levels, inference-diurnal-train-levels), and the clear errors on a range that cannot be one."""

import math

import pytest

from simulator import scenario as sc
from simulator.workloads import _trace, mean_rate

SHAPED = """
name: levels
description: a load-shape service whose level varies by seed
cluster: {nodes: 2, gpus_per_node: 8}
inference:
  - name: svc
    trace: {kind: load-shape, shape: bursty, mean_rate_range: [1.0, 4.0], duration_s: 600}
    slo: {ttft_seconds: 5.0, attainment: 0.99}
    knobs: {replicas: {min: 1, max: 2}}
policies: [{name: static}]
"""


def test_each_seed_draws_its_level_once_within_the_range_and_spreads_over_it():
    levels = [mean_rate({"mean_rate_range": [1.0, 4.0]}, seed) for seed in range(200)]
    assert levels == [mean_rate({"mean_rate_range": [1.0, 4.0]}, seed) for seed in range(200)]
    assert all(1.0 <= v <= 4.0 for v in levels)
    logs = sorted(math.log(v) for v in levels)  # log-uniform: each half of the log range holds about half
    assert 70 <= sum(v < math.log(2.0) for v in logs) <= 130
    assert mean_rate({"mean_rate_per_s": 2.5}, 7) == 2.5


def test_the_trace_a_seed_runs_has_the_level_it_drew(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(SHAPED)
    scen = sc.load(path)
    for seed in (3, 4):
        trace = _trace(scen, scen.inference[0], seed)
        got = len(trace.arrival_s) / 600.0
        assert got == pytest.approx(mean_rate(scen.inference[0]["trace"], seed), rel=0.25)


@pytest.mark.parametrize("edit, expected", [
    (("mean_rate_range: [1.0, 4.0]", "mean_rate_range: [4.0, 1.0]"), "low above high"),
    (("mean_rate_range: [1.0, 4.0]", "mean_rate_range: [1.0, 4.0], mean_rate_per_s: 2"), "not both"),
    (("kind: load-shape, shape: bursty,", "kind: azure-code,"), "only for kind load-shape"),
    (("mean_rate_range: [1.0, 4.0]", "mean_rate_range: [0, 4.0]"), "mean_rate_range"),
    (("mean_rate_range: [1.0, 4.0]", "mean_rate_range: [1.0]"), "mean_rate_range"),
])
def test_a_range_that_cannot_be_one_is_refused_by_name(tmp_path, edit, expected):
    path = tmp_path / "s.yaml"
    path.write_text(SHAPED.replace(*edit))
    with pytest.raises(sc.ScenarioError) as err:
        sc.load(path)
    assert expected in str(err.value)


def test_the_size_check_default_rate_is_the_bundled_code_trace_rate():
    """The scenario check sizes a load-shape trace without a rate at ``AZURE_CODE_MEAN_RATE_PER_S`` without
    reading the trace file; the simulator runs it at the code trace's own mean. The two must not drift."""
    from simulator.inference import traces as tr

    assert abs(sc.AZURE_CODE_MEAN_RATE_PER_S - tr.azure_code().mean_rate_per_s) <= 0.005
    assert mean_rate({}, 3) == tr.azure_code().mean_rate_per_s
