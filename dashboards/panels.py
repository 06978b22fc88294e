"""Small panel and variable factories shared by the dashboards.

They keep each dashboard module about *what* it shows (titles, SQL, units) and fix the
conventions in one place: every panel queries the TimescaleDB data source by uid, a
``pilot`` variable lists pilots of one solution kind, a ``device`` variable lists that
pilot's devices (multi-value, "All" by default); words come from the ``Labels`` mapping
the caller passes (the shell's translation table, shared with the reports); numbers are
neutral unless a field has a meaning that colours it (``completeness``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import geomap
from grafana_foundation_sdk.builders import stat as stat_panel
from grafana_foundation_sdk.builders import table as table_panel
from grafana_foundation_sdk.builders import timeseries as ts_panel
from grafana_foundation_sdk.builders.common import (
    FrameGeometrySource,
    MapLayerOptions,
    ReduceDataOptions,
    VizLegendOptions,
    VizTooltipOptions,
)
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import geomap as geomap_model
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DashboardLinkType,
    DynamicConfigValue,
    Threshold,
    ThresholdsMode,
    VariableOption,
    VariableRefresh,
    VariableSort,
)

from dashboards.sql import Sql, datasource

TAGS = ["kcity"]
Labels = Mapping[str, str]
# Data completeness, as the methods read it: below 90 % a day or night is excluded (red),
# below 95 % it is usable but worth a look (amber).
COMPLETENESS_RED = 90.0
COMPLETENESS_AMBER = 95.0
NEUTRAL = {"mode": "absolute", "steps": [{"color": "text", "value": None}]}
COMPLETENESS = {
    "mode": "absolute",
    "steps": [
        {"color": "red", "value": None},
        {"color": "orange", "value": COMPLETENESS_RED},
        {"color": "green", "value": COMPLETENESS_AMBER},
    ],
}

# Dashboard uid of each solution kind's pilot dashboard (the drill-down target).
PILOT_DASHBOARDS = {"streetlight": "kcity-streetlight", "hybrid_drone": "kcity-drone"}


def dashboard_of_kind(kind_column: str) -> str:
    """SQL naming the pilot dashboard of a row's solution kind (ingest health otherwise)."""
    whens = " ".join(f"WHEN '{kind}' THEN '{uid}'" for kind, uid in PILOT_DASHBOARDS.items())
    return f"CASE {kind_column} {whens} ELSE 'kcity-ingest' END"


P = TypeVar("P", stat_panel.Panel, table_panel.Panel, ts_panel.Panel, geomap.Panel)


def new_dashboard(
    uid: str, title: str, *, time_from: str, description: str, t: Labels
) -> dash.Dashboard:
    """A dashboard with the project's tag, a link menu to its siblings and a sane refresh."""
    return (
        dash.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .timezone("browser")
        .time(time_from, "now")
        .refresh("1m")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .link(
            dash.DashboardLink(t["dash_links"])
            .type(DashboardLinkType.DASHBOARDS)
            .tags(TAGS)
            .as_dropdown(True)
            .keep_time(True)
            .include_vars(False)
        )
    )


def pilot_variable(kind: str | None, t: Labels, *, multi: bool = False) -> dash.QueryVariable:
    """The ``pilot`` variable: pilots of one solution kind (or all pilots), by id."""
    where = f"WHERE kind = '{kind}' " if kind else ""
    var = (
        dash.QueryVariable("pilot")
        .label(t["pilot"])
        .datasource(datasource())
        .query(f"SELECT id AS __value, name AS __text FROM pilots {where}ORDER BY id")
        .refresh(VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(VariableSort.ALPHABETICAL_ASC)
    )
    if multi:
        var = var.multi(True).include_all(True).current(_all())
    return var


def device_variable(t: Labels) -> dash.QueryVariable:
    """The ``device`` variable: the selected pilot's devices that are not revoked."""
    return (
        dash.QueryVariable("device")
        .label(t["device"])
        .datasource(datasource())
        .query(
            "SELECT id FROM devices WHERE pilot_id = '$pilot' AND revoked_at IS NULL ORDER BY id"
        )
        .refresh(VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .current(_all())
    )


def _all() -> VariableOption:
    return VariableOption(selected=True, text="All", value="$__all")


def timeseries(
    title: str, sql: str, unit: str, *, bars: bool = False, description: str = ""
) -> ts_panel.Panel:
    """A time-series panel over one SQL query that returns a ``time`` column."""
    panel = (
        ts_panel.Panel()
        .title(title)
        .description(description)
        .datasource(datasource())
        .with_target(Sql(sql).time_series())
        .unit(unit)
        .span(12)
        .height(8)
        .fill_opacity(10)
        .span_nulls(False)
        .legend(
            VizLegendOptions()
            .show_legend(True)
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
            .calcs([])
        )
        .tooltip(
            VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI).sort(common.SortOrder.NONE)
        )
    )
    if bars:
        panel = panel.draw_style(common.GraphDrawStyle.BARS).fill_opacity(60)
    return panel


def right_axis(panel: ts_panel.Panel, field: str, unit: str) -> ts_panel.Panel:
    """Put one series of a time-series panel on its own right-hand axis and unit."""
    return panel.override_by_name(
        field,
        [
            DynamicConfigValue(id_val="unit", value=unit),
            DynamicConfigValue(id_val="custom.axisPlacement", value="right"),
        ],
    )


def stat(
    title: str, sql: str, unit: str, *, description: str = "", span: int = 6
) -> stat_panel.Panel:
    """A stat panel showing the last non-null value of every numeric column of one row."""
    return (
        stat_panel.Panel()
        .title(title)
        .description(description)
        .datasource(datasource())
        .with_target(Sql(sql).table())
        .unit(unit)
        .span(span)
        .height(4)
        .graph_mode(common.BigValueGraphMode.NONE)
        .color_mode(common.BigValueColorMode.VALUE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .reduce_options(ReduceDataOptions().values(False).calcs(["lastNotNull"]).fields(""))
        .thresholds(neutral())
    )


def table(title: str, sql: str, *, description: str = "", span: int = 12) -> table_panel.Panel:
    """A table panel over one SQL query."""
    return (
        table_panel.Panel()
        .title(title)
        .description(description)
        .datasource(datasource())
        .with_target(Sql(sql).table())
        .span(span)
        .height(8)
        .frame_index(0)
        .show_header(True)
        .cell_height(common.TableCellHeight.SM)
    )


def neutral() -> dash.ThresholdsConfig:
    """One threshold in the text colour: a count is neither good nor bad (Grafana's default
    would paint everything from 80 red)."""
    return dash.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps([Threshold(None, "text")])


def fields(panel: P, t: Labels, spec: Mapping[str, tuple[str, str]]) -> P:
    """Name and unit per column: ``{column: (label key, unit)}``; a ``completeness_*``
    column is coloured red below 90 % and amber below 95 %."""
    for column, (key, unit) in spec.items():
        props = [
            DynamicConfigValue(id_val="displayName", value=t[key]),
            DynamicConfigValue(id_val="unit", value=unit),
        ]
        if column.startswith("completeness"):
            props += [
                DynamicConfigValue(id_val="thresholds", value=COMPLETENESS),
                DynamicConfigValue(id_val="color", value={"mode": "thresholds"}),
            ]
            if isinstance(panel, table_panel.Panel):
                props.append(
                    DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-text"})
                )
        panel = panel.override_by_name(column, props)
    return panel


def device_links(panel: table_panel.Panel, t: Labels, dashboard: str) -> table_panel.Panel:
    """Every ``device_id`` cell opens the device's pilot dashboard filtered to it
    (``var-device``); ``dashboard`` is a uid or a ``${__data.fields...}`` reference."""
    link = {
        "title": t["dash_open_device"],
        "url": f"/d/{dashboard}?var-pilot=${{__data.fields.pilot_id}}"
        "&var-device=${__value.raw}&${__url_time_range}",
    }
    return panel.override_by_name("device_id", [DynamicConfigValue(id_val="links", value=[link])])


def hidden(panel: table_panel.Panel, field: str) -> table_panel.Panel:
    """Hide a helper column (e.g. a link target) from a table."""
    return panel.override_by_name(field, [DynamicConfigValue(id_val="custom.hidden", value=True)])


def map_panel(title: str, *, description: str = "") -> geomap.Panel:
    """A Geomap on the default basemap that zooms to fit its data, with details tooltips."""
    return (
        geomap.Panel()
        .title(title)
        .description(description)
        .datasource(datasource())
        .basemap(MapLayerOptions().type("default").name("Basemap").config({}))
        .view(geomap.MapViewConfig().id("fit").all_layers(True))
        .controls(geomap.ControlsOptions().show_zoom(True).mouse_wheel_zoom(True).show_scale(True))
        .tooltip(geomap.TooltipOptions().mode(geomap_model.TooltipMode.DETAILS))
    )


def markers(name: str, ref_id: str, color: str, size: int) -> MapLayerOptions:
    """A marker layer placed by the ``latitude``/``longitude`` columns of one query."""
    return (
        MapLayerOptions()
        .type("markers")
        .name(name)
        .location(
            FrameGeometrySource()
            .mode(common.FrameGeometrySourceMode.COORDS)
            .latitude("latitude")
            .longitude("longitude")
        )
        .filter_data({"id": "byRefId", "options": ref_id})
        .config(
            {
                "showLegend": True,
                "style": {
                    "color": {"fixed": color},
                    "size": {"fixed": size},
                    "symbol": {"fixed": "img/icons/marker/circle.svg", "mode": "fixed"},
                },
            }
        )
        .tooltip(True)
    )
