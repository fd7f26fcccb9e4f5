"""scripts/capacity_calibration.py: the reliability table of slo-rl's capacity posterior on a scenario's seeds
(how issue 11's session 29 found the bundled checkpoint's over-prediction)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from script_loader import load_script

from learners.slo_capacity import CapacityModel

ROOT = Path(__file__).resolve().parents[3]
cc = load_script("capacity_calibration")


def test_recording_keeps_the_prediction_made_before_each_update_and_puts_the_method_back():
    original = CapacityModel.update
    model = CapacityModel(1)
    x = np.array([[0.3], [-0.2]])
    before = model.predict(x)
    with cc.recording() as rows:
        model.update(x, np.array([0.9, 0.1]))
    assert CapacityModel.update is original
    assert rows["p"] == pytest.approx(before.tolist()) and rows["y"] == [0.9, 0.1] and rows["sharpness"] == [4.0, 4.0]
    assert model.samples == 2  # the real update ran


def test_reliability_bins_count_every_prediction_once():
    p = np.array([0.01, 0.03, 0.04, 0.15, 0.6, 1.0])
    over = np.array([0.0, 0.0, 1.0, 0.0, 1.0, 1.0])
    table = cc.reliability(p, over)
    assert sum(n for _, _, n, _, _ in table) == p.size
    lo, hi, n, mean_p, share = table[1]
    assert (lo, hi, n, share) == (0.02, 0.05, 2, 0.5) and mean_p == pytest.approx(0.035)


def test_the_script_prints_the_table_for_a_checkpoint_on_a_day_and_draws_it(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    png = tmp_path / "reliability.png"
    assert cc.main(["inference-diurnal-train", "simulator/checkpoints/slo-rl-diurnal.ckpt", "--seeds", "11",
                    "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = capsys.readouterr().out
    assert "seed 11: attainment" in out and "predicted P(over)" in out and "met/missed label" in out
    learned = int(out.split(" intervals learned from")[0].rsplit("\n", 1)[-1])
    assert 200 <= learned <= 240  # one a minute over the 4-hour day, less the ones a restart mixed


@pytest.mark.parametrize("argv", [
    ["inference-diurnal-train", "no-such.ckpt"],
    ["no-such-scenario", "simulator/checkpoints/slo-rl-diurnal.ckpt"],
    ["inference-diurnal-train", "simulator/checkpoints/slo-rl-diurnal.ckpt", "--seeds", "x"],
    ["inference-diurnal-train", "simulator/checkpoints/slo-rl-diurnal.ckpt", "--plot", "no-such-folder/r.png"],
])
def test_bad_input_is_a_usage_error_not_a_traceback(argv, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as exc:
        cc.main(argv)
    assert exc.value.code == 2 and "Traceback" not in capsys.readouterr().err
