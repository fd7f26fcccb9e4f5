"""A fast start: the ``autocm`` commands and the simulator import no heavy library they do not use
(scipy's statistics and optimiser only when used, matplotlib only
when a plot is drawn), and the lazily registered operator commands still work."""

from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from controller.cli import main

HEAVY = ("torch", "scipy.stats", "scipy.optimize", "scipy.linalg", "matplotlib", "controller.run_cmd",
         "controller.parallel_cmd")


def _loaded_after(code: str) -> list[str]:
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_registering_every_learner_and_loading_the_simulator_imports_nothing_heavy():
    code = ("import controller.cli, simulator.runner, simulator.report, simulator.results\n"
            "from learners.base import registered\nassert 'vconf' in registered() and 'bayesopt' in registered()")
    assert _loaded_after(code) == []


def test_help_imports_nothing_heavy_and_the_lazy_commands_still_answer():
    assert _loaded_after("from controller.cli import main\nmain(['--help'], standalone_mode=False)") == \
        ["controller.parallel_cmd", "controller.run_cmd"]  # listed with their help lines, nothing more
    runner = CliRunner()
    for cmd in (["run", "--help"], ["push-checkpoint", "--help"], ["learn-parallel", "--help"]):
        res = runner.invoke(main, cmd)
        assert res.exit_code == 0 and "Usage:" in res.output, (cmd, res.output)
    assert runner.invoke(main, ["no-such-command"]).exit_code == 2


def test_a_vconf_learner_builds_and_decides_without_torch():
    """VCONF's networks are numpy (learners/mlp.py): the operator image carries no torch at all."""
    code = ("from learners import ConfigSpace, Knob, Objective\nfrom learners.base import create\n"
            "from learners.types import Observation\n"
            "space = ConfigSpace((Knob('replicas', 1, 4, 1),))\n"
            "v = create('vconf', space, Objective(metric='ttft_p99_seconds', target=1.0), {})\n"
            "v.decide(Observation(0.0, {'replicas': 2.0}, {'ttft_p99_seconds': 0.5}))")
    assert "torch" not in _loaded_after(code)
