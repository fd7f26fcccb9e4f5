"""The report's plots show what was measured as such: the oracle, which measures nothing, is a vertical line
at its GPU-hours bound in cost_vs_slo.png (never a point that reads as a measured attainment), and the legend of
gpus_over_time.png sits beside the axes, never over the lines. Checked on the matplotlib objects write_report
builds (captured through its ``_figure`` factory), not on pixels."""

from __future__ import annotations

from typing import Any

import pytest

from simulator import report
from simulator import scenario as sc
from simulator.results import RunResult

SCENARIO = """
name: plots
description: a scenario for the report's plots.
cluster: {nodes: 2, gpus_per_node: 8}
inference:
  - name: svc
    trace: {kind: load-shape, shape: bursty, mean_rate_per_s: 1.5, duration_s: 300}
    slo: {ttft_seconds: 10.0, attainment: 0.9}
    knobs: {replicas: {min: 1, max: 4}, gpus_per_replica: [4, 8], max_batch_size: {min: 64, max: 64}}
    initial: {replicas: 2, gpus_per_replica: 8}
policies:
  - {name: static}
"""
ORACLE_GPU_HOURS = 0.75


def _runs() -> list[RunResult]:
    gpus = [(0.0, 16.0), (120.0, 8.0), (240.0, 16.0)]
    rate = [(0.0, 1.0), (120.0, 2.0), (240.0, 1.5)]
    static = RunResult("static", "static", {}, 0, {"slo_attainment": 0.95, "gpu_hours": 1.33}, True,
                       {"gpus": gpus, "request_rate_per_second": rate})
    hpa = RunResult("hpa", "hpa", {}, 0, {"slo_attainment": 0.91, "gpu_hours": 1.0}, True, {"gpus": gpus[1:]})
    oracle = RunResult("oracle (lower bound)", "oracle", {}, 0, {"gpu_hours": ORACLE_GPU_HOURS}, None)
    return [static, hpa, oracle]


@pytest.fixture
def figures(tmp_path, monkeypatch) -> dict[str, tuple[Any, Any]]:
    """write_report on two measured policies and the oracle; every figure it built, by the file it went to."""
    built: list[tuple[Any, Any]] = []
    make = report._figure

    def capture(figsize):
        fig, ax = make(figsize)
        built.append((fig, ax))
        return fig, ax

    monkeypatch.setattr(report, "_figure", capture)
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO)
    summary = report.write_report(tmp_path / "out", sc.load(path), _runs(), [0], slo_target=0.9)
    assert len(built) == len(summary["plots"])  # one figure per plot written, in the same order
    return dict(zip(summary["plots"], built, strict=True))


def test_the_oracle_is_a_vertical_line_in_cost_vs_slo_not_a_point(figures):
    _, ax = figures["cost_vs_slo.png"]
    bounds = [line for line in ax.get_lines() if "oracle" in str(line.get_label())]
    assert len(bounds) == 1
    xs, ys = bounds[0].get_data()
    assert list(xs) == [ORACLE_GPU_HOURS, ORACLE_GPU_HOURS] and list(ys) == [0, 1]
    assert bounds[0].get_transform() == ax.get_xaxis_transform()  # axvline: y in axes fraction, bottom to top
    points = [c.get_label() for c in ax.collections]  # ax.scatter's PathCollections
    assert len(points) == 2 and not any("oracle" in p for p in points)
    assert all(abs(x - ORACLE_GPU_HOURS) > 1e-9 for c in ax.collections for x, _ in c.get_offsets())


def test_the_legend_of_gpus_over_time_lies_outside_the_axes(figures):
    fig, ax = figures["gpus_over_time.png"]
    legend = ax.get_legend()
    assert legend is not None and len(legend.get_texts()) == 2
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    box, axes = legend.get_window_extent(renderer), ax.get_window_extent(renderer)
    assert box.x0 >= axes.x1  # entirely to the right of the plotting area
    assert not box.overlaps(axes)
    assert box.x1 <= fig.bbox.x1 + 1  # and still on the figure, not cut off
