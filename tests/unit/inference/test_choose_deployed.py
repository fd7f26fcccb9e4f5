"""scripts/choose_deployed.py: deployment-only settings for an existing checkpoint, chosen on a training
scenario by the suite's rule and recorded in the checkpoint's provenance (what the bundled diurnal
checkpoint's ``down_evidence`` came from)."""

from __future__ import annotations

from pathlib import Path

import pytest
from script_loader import load_script

from controller.checkpoint import decode

ROOT = Path(__file__).resolve().parents[3]


def _script():
    return load_script("choose_deployed")


def test_the_cheapest_passing_setting_is_kept_and_recorded(tmp_path, capsys):
    src = ROOT / "simulator" / "checkpoints" / "slo-rl-diurnal.ckpt"
    out = tmp_path / "chosen.ckpt"
    # risk 0.9 misses on these days (0.958, 92 GPU-h), 0.2 meets (49 GPU-h): the one that meets is kept
    assert _script().main(["inference-diurnal-train", str(src), "--seeds", "11,12",
                           "--choose", "risk=0.2,0.9", "--choose", "risk_max=0.95", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    lines = [line for line in text.splitlines() if line.startswith("{")]
    assert len(lines) == 2, text
    assert "kept {'risk': 0.2, 'risk_max': 0.95}" in text, text
    ck = decode(out.read_bytes(), "slo-rl")
    assert ck.recorded_settings["risk"] == 0.2 and ck.recorded_settings["risk_max"] == 0.95
    assert ck.state["provenance"]["deployed"] == {"risk": 0.2, "risk_max": 0.95}
    before = decode(src.read_bytes(), "slo-rl")
    assert ck.state["capacity"] == before.state["capacity"]  # only the provenance changes


@pytest.mark.parametrize("argv", [
    ["inference-diurnal-train", "simulator/checkpoints/slo-rl-diurnal.ckpt", "--choose", "risk"],
    ["inference-diurnal-train", "no-such.ckpt", "--choose", "risk=0.2"],
    ["no-such-scenario", "simulator/checkpoints/slo-rl-diurnal.ckpt", "--choose", "risk=0.2"],
])
def test_bad_input_is_a_usage_error_not_a_traceback(argv, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as exc:
        _script().main(argv)
    assert exc.value.code == 2 and "Traceback" not in capsys.readouterr().err


def test_also_a_second_scenario_counts_every_seed_of_both(capsys):
    """``--also``: session 29's stricter rule in one command. Each combination runs the seeds on both scenarios,
    and its GPU-hours are the mean over all of them."""
    src = ROOT / "simulator" / "checkpoints" / "slo-rl-diurnal.ckpt"
    script = _script()
    assert script.main(["inference-diurnal-train", str(src), "--seeds", "11", "--choose", "risk=0.2"]) == 0
    alone = capsys.readouterr().out
    assert script.main(["inference-diurnal-train", str(src), "--seeds", "11", "--choose", "risk=0.2",
                        "--also", "inference-diurnal-train-levels"]) == 0
    both = capsys.readouterr().out
    assert "meets on 1/1" in alone and "/2," in both, both
    one = float(alone.split(" GPU-h mean")[0].rsplit(", ", 1)[-1])
    two = float(both.split(" GPU-h mean")[0].rsplit(", ", 1)[-1])
    assert two != one  # the levels day (another mean rate) enters the mean


def test_an_unknown_also_scenario_is_a_usage_error(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as exc:
        _script().main(["inference-diurnal-train", "simulator/checkpoints/slo-rl-diurnal.ckpt", "--choose", "risk=0.2",
                        "--also", "no-such-scenario"])
    assert exc.value.code == 2 and "Traceback" not in capsys.readouterr().err
