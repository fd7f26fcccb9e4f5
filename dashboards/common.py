"""What both dashboards share: the data-source and namespace variables, and small panel factories.

Every panel reads the ``$datasource`` variable, carries a description and a unit, and every range
uses ``$__rate_interval``: the rules Grafana's dashboard-linter checks (see dashboards/.lint for the
ones we turn off and why). Selectors are Kubernetes ones (namespace, workload via pod names), the
way the operator itself joins series to workloads (controller/prometheus.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.builders import stat, statetimeline, timeseries
from grafana_foundation_sdk.builders.common import ScaleDistributionConfig, StackingConfig
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
"""Every panel and variable queries the data source the user picks (no hard-coded UID)."""

ALL = ".+"
"""The value of "All" in a multi-value variable: a regex that any non-empty label value matches."""

REFRESH = "1m"
"""The operator's control interval is a minute by default; refreshing faster shows nothing new."""


def datasource_variable() -> db.DatasourceVariable:
    return db.DatasourceVariable("datasource").label("Data source").type("prometheus")


def query_variable(name: str, label: str, query: str, regex: str = "") -> db.QueryVariable:
    """A multi-value label variable with "All", refreshed when the time range changes."""
    var = (
        db.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(ALL)
        .current(dm.VariableOption(selected=True, text=["All"], value=["$__all"]))
    )
    if regex:
        var = var.regex(regex)
    return var


def target(expr: str, legend: str, ref_id: str) -> prom.Dataquery:
    return prom.Dataquery().expr(expr).legend_format(legend).ref_id(ref_id).datasource(DATASOURCE).range()


def _targets(queries: Sequence[tuple[str, str]]) -> list[prom.Dataquery]:
    return [target(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(queries)]


def ts(title: str, description: str, unit: str, queries: Sequence[tuple[str, str]], *, width: int = 12,
       height: int = 8, minimum: float | None = None, maximum: float | None = None, stacked: bool = False,
       log_scale: bool = False) -> timeseries.Panel:
    """A time series panel; ``queries`` are (PromQL, legend) pairs."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(width)
        .height(height)
        .targets(_targets(queries))
        .fill_opacity(10)
        .show_points(cm.VisibilityMode.NEVER)
    )
    if minimum is not None:
        panel = panel.min(minimum)
    if maximum is not None:
        panel = panel.max(maximum)
    if stacked:
        panel = panel.stacking(StackingConfig().mode(cm.StackingMode.NORMAL)).fill_opacity(60)
    if log_scale:
        panel = panel.scale_distribution(ScaleDistributionConfig().type(cm.ScaleDistribution.LOG).log(10))
    return panel


def single_stat(title: str, description: str, unit: str, expr: str, legend: str, *,
                width: int = 4, height: int = 4) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(width)
        .height(height)
        .targets(_targets([(expr, legend)]))
    )


def state_timeline(title: str, description: str, expr: str, legend: str, states: dict[str, tuple[str, str]],
                   *, width: int = 12, height: int = 8) -> statetimeline.Panel:
    """Discrete values shown as named, coloured states (``states``: value -> (text, colour))."""
    mapping = dm.ValueMap(options={v: dm.ValueMappingResult(text=t, color=c) for v, (t, c) in states.items()})
    return (
        statetimeline.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit("none")
        .span(width)
        .height(height)
        .mappings([mapping])
        .targets(_targets([(expr, legend)]))
    )


def new_dashboard(uid: str, title: str, description: str, tags: list[str]) -> db.Dashboard:
    return (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["autocm", *tags])
        .readonly()
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .time("now-6h", "now")
        .refresh(REFRESH)
        .timezone("browser")
        .annotation(  # the entry Grafana itself writes into every dashboard: alerts and manual annotations
            db.AnnotationQuery()
            .name("Annotations & Alerts")
            .datasource(dm.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
            .built_in(1)
            .enable(True)
            .hide(True)
            .icon_color("rgba(0, 211, 255, 1)")
            .type("dashboard")
        )
    )
