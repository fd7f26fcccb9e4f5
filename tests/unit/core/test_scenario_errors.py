"""A bad scenario gets one clear message naming the file, the field and the expectation; exit status 2."""

import pytest
from click.testing import CliRunner

from controller.cli import main
from simulator import scenario as sc

GOOD = """
name: tiny
description: a tiny inference scenario
cluster: {nodes: 2, gpus_per_node: 8}
inference:
  - name: svc
    trace: {kind: azure-code}
    slo: {ttft_seconds: 2.0, attainment: 0.99}
    knobs: {replicas: {min: 1, max: 4}}
policies: [{name: static}]
"""


@pytest.mark.parametrize("edit, expected", [
    (("gpus_per_node: 8", "gpus_per_node: eight"), "cluster.gpus_per_node: 'eight' is not of type 'integer'"),
    (("{min: 1, max: 4}", "{min: 5, max: 4}"), "inference[0].knobs.replicas: min 5 is above max 4"),
    (("kind: azure-code", "kind: azure"), "inference[0].trace.kind"),
    (("policies: [{name: static}]", "policies: []"), "policies"),
    (("cluster:", "clustr:"), "unknown field(s) clustr"),
    (("kind: azure-code", "kind: request-log, path: nope.csv"), "does not exist"),
    (("name: tiny", "name: tiny\n  bad: [unclosed"), "not valid YAML"),
])
def test_bad_scenarios_name_file_field_and_expectation(tmp_path, edit, expected):
    path = tmp_path / "s.yaml"
    path.write_text(GOOD.replace(*edit))
    with pytest.raises(sc.ScenarioError) as err:
        sc.load(path)
    assert str(path) in str(err.value) and expected in str(err.value)
    result = CliRunner().invoke(main, ["sim", str(path), "--check"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output and expected in result.output


def test_good_scenario_loads_with_stable_digest(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(GOOD)
    a, b = sc.load(path), sc.load(path)
    assert a.digest == b.digest and len(a.digest) == 64
    path.write_text(GOOD.replace("0.99", "0.98"))
    assert sc.load(path).digest != a.digest


def test_unknown_bundled_name_lists_the_bundled_ones():
    result = CliRunner().invoke(main, ["sim", "no-such-scenario", "--check"])
    assert result.exit_code == 2 and "bundled" in result.output
