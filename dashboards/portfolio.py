"""The ministry's home dashboard: the K-City portfolio, one row per pilot and a world map.

Per pilot it answers what a ministry meeting asks first — where, which year, which firm,
what solution; is the kit online; did yesterday's data arrive; what has been verified so
far; is anything wrong now — without a time range: "yesterday" is the pilot's local day
before the dashboard's end time, "to date" the latest stored result, "now" the end time.

The alert state is the alert rules themselves (``alerts.RULES``), evaluated in the same
query: a pilot's count is the rule series that would fire now, so the table and the
notifications cannot disagree. Yesterday's completeness is the completeness rule's own
query (the data-quality method's count, from the rollup), for the same reason.
``portfolio_sql`` takes the instant as SQL, so that ``kcity portfolio`` runs the very same
query for its brief.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import geomap
from grafana_foundation_sdk.builders import table as table_panel
from grafana_foundation_sdk.models.dashboard import (
    DynamicConfigValue,
    FieldColorModeId,
    Threshold,
    ThresholdsMode,
)

from dashboards import alert_sql
from dashboards.alerts import RULES
from dashboards.overview import ONLINE, PILOT_FIELDS, pilot_drill
from dashboards.panels import (
    Labels,
    dashboard_of_kind,
    fields,
    hidden,
    map_panel,
    markers,
    new_dashboard,
    table,
)
from dashboards.sql import Sql

UID = "kcity-portfolio"
NOW = "$__timeTo()::timestamptz"
ALERTS_FIRING = {
    "mode": "absolute",
    "steps": [{"color": "green", "value": None}, {"color": "red", "value": 1}],
}


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _firing(t: Labels) -> str:
    """Every firing series of every per-pilot rule, as (pilot, rule title)."""
    return "\n      UNION ALL\n".join(
        f"SELECT f.pilot, {_literal(t[f'alert_{r.key}_title'])} AS rule FROM ({r.firing_sql()}) f"
        for r in RULES
        if r.per_pilot
    )


def portfolio_sql(t: Labels, now: str = NOW) -> str:
    """One row per pilot as of the instant ``now`` (SQL of a timestamptz)."""
    headline = (
        f"CASE p.kind WHEN 'streetlight' THEN {_literal(t['dash_pf_savings'])}"
        f" WHEN 'hybrid_drone' THEN {_literal(t['dash_f_border_cov'])} END"
    )
    return f"""
    WITH t AS (SELECT {now} AS now),
    dev AS (
      SELECT d.pilot_id, count(*) AS registered, count(*) FILTER (WHERE {ONLINE}) AS online
      FROM devices d LEFT JOIN device_status s ON s.device_id = d.id
      WHERE d.revoked_at IS NULL
      GROUP BY d.pilot_id
    ),
    yesterday AS ({alert_sql.COMPLETENESS_YESTERDAY}),
    firing AS (
      {_firing(t)}
    ), per_rule AS (
      SELECT pilot, rule, count(*) AS n FROM firing GROUP BY pilot, rule
    ), alerts AS (
      SELECT pilot, sum(n)::int AS firing,
             string_agg(rule || ' (' || n || ')', ', ' ORDER BY rule) AS rules
      FROM per_rule GROUP BY pilot
    )
    SELECT p.id AS pilot,
           p.country,
           p.city,
           (p.definition->>'programme_year')::int AS programme_year,
           p.definition->>'firm' AS firm,
           p.kind AS solution,
           coalesce(dev.online, 0) AS online,
           coalesce(dev.registered, 0) AS registered,
           coalesce(dev.online, 0) || ' / ' || coalesce(dev.registered, 0) AS online_registered,
           yesterday.completeness_pct AS completeness_yesterday_pct,
           {headline} AS headline,
           h.pct AS headline_pct,
           h.window_from || ' – ' || h.window_to AS headline_window,
           coalesce(alerts.firing, 0) AS alerts_firing,
           coalesce(alerts.rules, '') AS alert_rules,
           p.latitude,
           p.longitude,
           p.name,
           {dashboard_of_kind("p.kind")} AS dashboard
    FROM pilots p
    LEFT JOIN dev ON dev.pilot_id = p.id
    LEFT JOIN yesterday ON yesterday.pilot = p.id
    LEFT JOIN alerts ON alerts.pilot = p.id
    LEFT JOIN LATERAL (
      SELECT CASE r.analysis WHEN 'savings' THEN r.savings_pct
                             ELSE r.linear_coverage_pct END AS pct,
             r.window_from, r.window_to
      FROM analytics_summary r
      WHERE r.pilot_id = p.id
        AND r.analysis = CASE p.kind WHEN 'streetlight' THEN 'savings'
                                     WHEN 'hybrid_drone' THEN 'coverage' END
      ORDER BY r.computed_at DESC, r.result_id DESC LIMIT 1) h ON true
    ORDER BY p.country, p.city, p.id
"""


# Column → (label key, unit) of the table and the map's tooltip.
FIELDS = {
    **PILOT_FIELDS,
    "online_registered": ("dash_f_online_registered", "string"),
    "completeness_yesterday_pct": ("dash_f_completeness_yesterday", "percent"),
    "headline": ("dash_f_headline", "string"),
    "headline_pct": ("dash_f_headline_pct", "percent"),
    "headline_window": ("dash_f_headline_window", "string"),
    "alerts_firing": ("dash_f_alerts_firing", "short"),
    "alert_rules": ("dash_f_alert_rules", "string"),
}


def _table(t: Labels) -> table_panel.Panel:
    panel = (
        table(t["dash_pf_pilots"], portfolio_sql(t), description=t["dash_pf_pilots_desc"], span=24)
        .data_links([pilot_drill(t)])
        .height(9)
    )
    for helper in ("dashboard", "latitude", "longitude", "online", "registered"):
        panel = hidden(panel, helper)
    panel = fields(panel, t, FIELDS)
    return panel.override_by_name(
        "alerts_firing",
        [
            DynamicConfigValue(id_val="thresholds", value=ALERTS_FIRING),
            DynamicConfigValue(id_val="color", value={"mode": "thresholds"}),
            DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-background"}),
        ],
    )


def _map(t: Labels) -> geomap.Panel:
    """Every pilot on a world view, red where an alert fires."""
    layer = markers(t["dash_pf_pilots"], "A", "green", 12)
    layer = layer.config(
        {
            "showLegend": True,
            "style": {
                "color": {"field": "alerts_firing", "fixed": "green"},
                "size": {"fixed": 12},
                "symbol": {"fixed": "img/icons/marker/circle.svg", "mode": "fixed"},
                "text": {"field": "city", "fixed": "", "mode": "field"},
                "textConfig": {"fontSize": 12, "offsetY": -16, "textAlign": "center"},
            },
        }
    )
    panel = (
        map_panel(t["dash_pf_map"], description=t["dash_pf_map_desc"])
        .with_target(Sql(portfolio_sql(t)).ref_id("A").table())
        .view(geomap.MapViewConfig().id("coords").lat(10).lon(60).zoom(2))
        .thresholds(
            dash.ThresholdsConfig()
            .mode(ThresholdsMode.ABSOLUTE)
            .steps([Threshold(None, "green"), Threshold(1, "red")])
        )
        .color_scheme(dash.FieldColor().mode(FieldColorModeId.THRESHOLDS))
        .layers([layer])
        .span(24)
        .height(12)
    )
    return fields(panel, t, FIELDS)


def build(t: Labels) -> dash.Dashboard:
    """The portfolio dashboard (no variables: it shows every pilot)."""
    return (
        new_dashboard(
            UID, t["dash_pf_title"], time_from="now-24h", description=t["dash_pf_desc"], t=t
        )
        .with_panel(_table(t))
        .with_panel(_map(t))
    )
