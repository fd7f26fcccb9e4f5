"""scripts/training_table.py: pairs two schedulers' compare_training rows and computes the issue's ratios."""

from __future__ import annotations

import pytest
from script_loader import load_script

tt = load_script("training_table")

OUT = """\
# shared-goodput: SharedSettings(...)
      policy load  wl seed  mean_s   p99_s makespan_s   gpu_h restarts/job wall_s  per-class mean JCT
shared-goodput  0.5   3    0     900    9000      30000   400.0         2.00     16  bert=1000 ncf=100
      pollux  0.5   3    0    1000   10000      30000   380.0         4.00     16  bert=800 ncf=100
shared-goodput  0.5   3    1    1100    9000      31000   400.0         2.00     16  bert=1000 ncf=100
      pollux  0.5   3    1    1000   10000      31000   380.0         4.00     16  bert=800 ncf=100
shared-goodput  1.0   3    0     500    9000      31000   400.0         2.00     16  bert=1000
garbage line that is not a row at all but has many words in it ok
"""


def test_rows_pair_on_load_workload_and_seed_and_ratios_are_of_seed_means():
    pairs = tt.pair(tt.parse(OUT), "shared-goodput", "pollux")
    assert len(pairs) == 1  # 1.0x has no pollux row
    p = pairs[0]
    assert p.seeds == (0, 1) and p.mean_ratio == pytest.approx(1.0)
    assert p.mean_ratio_range == pytest.approx((0.9, 1.1))
    assert p.p99_ratio == pytest.approx(0.9) and p.makespan_ratio == pytest.approx(1.0)
    assert p.worst_class == ("bert", pytest.approx(1.25)) and p.restarts == (2.0, 4.0)
    table = tt.render(pairs, "shared-goodput", "pollux")
    assert "| 0.5 | 3 | 0,1 | 1.000 | 0.900-1.100 | 0.900 | 1.000 |" in table
    assert "| 0.5 | 1 | 1.000 | 0 | 1 | 1 | 0 |" in table  # the class target is missed (bert 1.25)


def test_no_common_rows_is_an_error_not_an_empty_table(tmp_path, capsys):
    f = tmp_path / "out.txt"
    f.write_text(OUT)
    assert tt.main([str(f), "--baseline", "tiresias"]) == 2
    assert "no (load, workload, seed)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tt.main([str(tmp_path / "missing.txt")])
