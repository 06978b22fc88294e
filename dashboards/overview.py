"""The ministry's overview: every pilot on one page, with a drill-down to its own dashboard.

Per pilot it answers the questions the K-City programme asks of a demonstration: is the
kit online, is the data arriving, what has been verified so far (savings, coverage) and
when was the last data received. Verified figures are the latest persisted analytics
results; the page never recomputes them.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import geomap
from grafana_foundation_sdk.builders import table as table_panel

from dashboards.long_range import LONG_RANGE, edge_hours, hours, whole_days
from dashboards.panels import (
    Labels,
    dashboard_of_kind,
    fields,
    hidden,
    map_panel,
    markers,
    new_dashboard,
    stat,
    table,
)
from dashboards.sql import Sql

UID = "kcity-overview"
_DASHBOARD_OF_KIND = dashboard_of_kind("p.kind")

# Online: the retained status says so, or data arrived within the hour and the Last Will
# ("offline") has not been received since.
ONLINE = (
    "s.state = 'online' OR (s.state IS DISTINCT FROM 'offline'"
    " AND d.last_seen > now() - interval '1 hour')"
)

# Expected telemetry records: streetlights report around the clock, so every registered
# device counts for the part of the window (up to now) inside its service dates (local
# dates of the pilot; `decommissioned_on` is the first day no longer expected): a silent
# luminaire lowers completeness. Drones report only while powered, so only the span
# between a device's first and last message of each boot counts.
PILOTS_SQL = f"""
    WITH dev AS (
      SELECT d.pilot_id,
             count(*) AS devices,
             count(*) FILTER (WHERE {ONLINE}) AS online,
             max(d.last_seen) AS last_seen
      FROM devices d
      LEFT JOIN device_status s ON s.device_id = d.id
      WHERE d.revoked_at IS NULL
      GROUP BY d.pilot_id
    ), service AS (
      SELECT d.pilot_id,
             sum(greatest(0.0, extract(epoch FROM
               least($__timeTo()::timestamptz, now(),
                     coalesce(d.decommissioned_on::timestamp AT TIME ZONE p.timezone,
                              'infinity'::timestamptz))
               - greatest($__timeFrom()::timestamptz,
                          coalesce(d.commissioned_on::timestamp AT TIME ZONE p.timezone,
                                   '-infinity'::timestamptz))))) AS expected_s
      FROM devices d JOIN pilots p ON p.id = d.pilot_id
      WHERE d.revoked_at IS NULL
      GROUP BY d.pilot_id
    ), boots AS (
      SELECT x.device_id,
             sum(x.records) AS records,
             extract(epoch FROM max(x.hi) - min(x.lo)) AS active_s
      FROM (
        SELECT m.device_id, m.boot, m.records,
               coalesce(m.sent_at, m.received_at) AS lo, coalesce(m.sent_at, m.received_at) AS hi
        FROM ingest_messages m
        WHERE m.channel = 'telemetry' AND $__timeFilter(m.received_at) AND NOT {LONG_RANGE}
        UNION ALL
        SELECT h.device_id, h.boot, h.records, h.min_sent, h.max_sent
        FROM ingest_messages_hourly h
        WHERE h.channel = 'telemetry' AND {edge_hours("h.hour")}
        UNION ALL
        SELECT y.device_id, y.boot, y.records, y.min_sent, y.max_sent
        FROM ingest_messages_daily y
        WHERE y.channel = 'telemetry' AND {whole_days("y.day")}
      ) x
      GROUP BY x.device_id, x.boot
    ), recv AS (
      SELECT d.pilot_id, sum(b.records) AS records, sum(b.active_s) AS active_s,
             count(*) AS boots
      FROM boots b JOIN devices d ON d.id = b.device_id
      GROUP BY d.pilot_id
    )
    SELECT p.id AS pilot,
           p.name,
           p.country,
           p.city,
           (p.definition->>'programme_year')::int AS programme_year,
           p.definition->>'firm' AS firm,
           p.kind AS solution,
           coalesce(dev.devices, 0) AS devices,
           coalesce(dev.online, 0) AS online,
           least(100.0, round((100.0 * coalesce(recv.records, 0) / nullif(
             CASE WHEN p.kind = 'streetlight'
                  THEN service.expected_s / iv.interval_s
                  ELSE recv.active_s / iv.interval_s + recv.boots END, 0))::numeric, 1)
           ) AS completeness_pct,
           sav.savings_kwh,
           sav.savings_pct,
           cov.area_coverage_pct,
           cov.linear_coverage_pct,
           dev.last_seen AS last_data,
           {_DASHBOARD_OF_KIND} AS dashboard
    FROM pilots p
    LEFT JOIN dev ON dev.pilot_id = p.id
    LEFT JOIN recv ON recv.pilot_id = p.id
    LEFT JOIN service ON service.pilot_id = p.id
    CROSS JOIN LATERAL (
      SELECT coalesce(p.definition->'streetlight'->>'record_interval_s',
                      p.definition->'drone'->>'record_interval_s')::float8 AS interval_s) iv
    LEFT JOIN LATERAL (
      SELECT r.savings_kwh, r.savings_pct
      FROM analytics_summary r
      WHERE r.pilot_id = p.id AND r.analysis = 'savings'
      ORDER BY r.computed_at DESC LIMIT 1) sav ON true
    LEFT JOIN LATERAL (
      SELECT r.area_coverage_pct, r.linear_coverage_pct
      FROM analytics_summary r
      WHERE r.pilot_id = p.id AND r.analysis = 'coverage'
      ORDER BY r.computed_at DESC LIMIT 1) cov ON true
    ORDER BY p.country, p.city, p.id
"""

TOTALS_SQL = f"""
    SELECT (SELECT count(*) FROM pilots) AS pilots,
           count(*) AS devices,
           count(*) FILTER (WHERE {ONLINE}) AS online
    FROM devices d
    LEFT JOIN device_status s ON s.device_id = d.id
    WHERE d.revoked_at IS NULL
"""

VERIFIED_SQL = """
    SELECT sum(l.savings_kwh) FILTER (WHERE l.analysis = 'savings') AS savings_kwh,
           sum(l.co2_kg) FILTER (WHERE l.analysis = 'savings') AS co2_kg,
           sum(l.covered_km2) FILTER (WHERE l.analysis = 'coverage') AS covered_km2
    FROM (SELECT DISTINCT ON (pilot_id, analysis) pilot_id, analysis, savings_kwh, co2_kg,
                 covered_km2
          FROM analytics_summary
          WHERE analysis IN ('savings', 'coverage')
          ORDER BY pilot_id, analysis, computed_at DESC) l
"""

INGEST_SQL = f"""
    SELECT ((SELECT count(*) FROM ingest_messages
             WHERE $__timeFilter(received_at) AND NOT {LONG_RANGE})
            + (SELECT coalesce(sum(messages), 0) FROM ingest_pilot_hourly
               WHERE {hours()}))::bigint AS messages,
           (SELECT count(*) FROM dead_letters WHERE $__timeFilter(received_at)) AS dead_letters
"""

MAP_SQL = """
    SELECT p.id AS pilot, p.name, p.city, p.kind AS solution,
           p.latitude AS latitude, p.longitude AS longitude,
           (SELECT count(*) FROM devices d
            WHERE d.pilot_id = p.id AND d.revoked_at IS NULL) AS devices
    FROM pilots p
    ORDER BY p.id
"""


# Who and where a pilot is: the first columns of every per-pilot table (and the portfolio).
PILOT_FIELDS = {
    "pilot": ("pilot", "string"),
    "name": ("dash_f_name", "string"),
    "country": ("dash_f_country", "string"),
    "city": ("city", "string"),
    "programme_year": ("programme_year", "none"),
    "firm": ("firm", "string"),
    "solution": ("dash_f_solution", "string"),
}


def pilot_drill(t: Labels) -> dash.DashboardLink:
    """A row's link to its pilot's dashboard (the ``dashboard`` and ``pilot`` columns)."""
    return dash.DashboardLink(t["dash_ov_open"]).url(
        "/d/${__data.fields.dashboard}?var-pilot=${__data.fields.pilot}&${__url_time_range}"
    )


def _pilots_table(t: Labels) -> table_panel.Panel:
    panel = (
        table(t["dash_ov_pilots"], PILOTS_SQL, description=t["dash_ov_pilots_desc"], span=24)
        .data_links([pilot_drill(t)])
        .height(10)
    )
    panel = hidden(panel, "dashboard")
    return fields(
        panel,
        t,
        {
            **PILOT_FIELDS,
            "devices": ("devices", "short"),
            "online": ("dash_f_online", "short"),
            "completeness_pct": ("dash_f_completeness", "percent"),
            "savings_kwh": ("savings_kwh", "kwatth"),
            "savings_pct": ("savings_pct", "percent"),
            "area_coverage_pct": ("dash_f_area_cov", "percent"),
            "linear_coverage_pct": ("dash_f_border_cov", "percent"),
            "last_data": ("dash_f_last_data", "dateTimeFromNow"),
        },
    )


def _map(t: Labels) -> geomap.Panel:
    return (
        map_panel(t["dash_ov_map"])
        .with_target(Sql(MAP_SQL).ref_id("A").table())
        .layers([markers(t["dash_ov_pilots"], "A", "green", 10)])
        .span(24)
        .height(10)
    )


def build(t: Labels) -> dash.Dashboard:
    """The overview dashboard (no variables: it shows every pilot)."""
    totals = fields(
        stat(t["dash_ov_totals"], TOTALS_SQL, "none", span=8),
        t,
        {
            "pilots": ("dash_f_pilots", "short"),
            "devices": ("devices", "short"),
            "online": ("dash_f_online", "short"),
        },
    )
    verified = fields(
        stat(
            t["dash_ov_verified"],
            VERIFIED_SQL,
            "none",
            description=t["dash_ov_verified_desc"],
            span=8,
        ),
        t,
        {
            "savings_kwh": ("savings_kwh", "kwatth"),
            "co2_kg": ("co2_kg", "masskg"),
            "covered_km2": ("dash_f_covered", "areaKM2"),
        },
    )
    ingest = fields(
        stat(t["dash_ov_ingest"], INGEST_SQL, "none", span=8),
        t,
        {
            "messages": ("dash_f_messages", "short"),
            "dead_letters": ("dash_f_dead_letters", "short"),
        },
    )
    return (
        new_dashboard(
            UID, t["dash_ov_title"], time_from="now-24h", description=t["dash_ov_desc"], t=t
        )
        .with_panel(totals)
        .with_panel(verified)
        .with_panel(ingest)
        .with_panel(_pilots_table(t))
        .with_panel(_map(t))
    )
