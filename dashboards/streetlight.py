"""The streetlight pilot dashboard: what the luminaires do and what it saves.

Raw telemetry (power, dim level, vehicles) is bucketed with ``time_bucket`` at the panel's
``$__interval`` over short ranges and read from the hourly rollups over long ones (the
pilot's sums when every device is selected, each device's hours otherwise), so a
90-day range neither scans 13 million rows nor draws more than a few thousand points;
nightly energy and savings come from the persisted analytics (``savings_nightly``,
``analytics_summary``), not from a rescan or the stored result documents.
Faults, detections and outages are drawn as annotations (dashboards/events.py).
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import geomap

from dashboards.events import event_annotations
from dashboards.long_range import HOUR_BUCKET, LONG_RANGE, hours
from dashboards.panels import (
    Labels,
    device_links,
    device_variable,
    fields,
    map_panel,
    markers,
    new_dashboard,
    pilot_variable,
    right_axis,
    stat,
    table,
    timeseries,
)
from dashboards.sql import Sql

UID = "kcity-streetlight"
KIND = "streetlight"

# Whether the selection is exactly the devices the pilot's hourly sums hold (the `device`
# variable's "All", as of the last refresh): then a long range reads one row an hour.
ALL_DEVICES = """coalesce((SELECT array_agg(device_id ORDER BY device_id)
                FROM streetlight_pilot_devices WHERE pilot_id = '$pilot')
               = (SELECT array_agg(DISTINCT x ORDER BY x) FROM unnest(ARRAY[$device]::text[]) x),
               false)"""

# Long ranges read the hourly rollups (dashboards/long_range.py): the pilot's sums for all
# its devices, each device's hours for a narrower selection.
HOURS = f"""FROM streetlight_hourly
    WHERE {hours()} AND device_id IN ($device) AND NOT {ALL_DEVICES}
    GROUP BY 1"""
PILOT_HOURS = f"""FROM streetlight_pilot_hourly
    WHERE {hours()} AND pilot_id = '$pilot' AND {ALL_DEVICES}
    GROUP BY 1"""

POWER_SQL = f"""
    SELECT time_bucket('$__interval'::interval, ts) AS time,
           avg(power_w) AS power_w,
           avg(dim_pct) AS dim_pct
    FROM streetlight_readings
    WHERE $__timeFilter(ts) AND device_id IN ($device) AND NOT {LONG_RANGE}
    GROUP BY 1
    UNION ALL
    SELECT {HOUR_BUCKET} AS time,
           sum(power_sum) / sum(records) AS power_w,
           sum(dim_sum) / sum(records) AS dim_pct
    {HOURS}
    UNION ALL
    SELECT {HOUR_BUCKET} AS time,
           sum(power_sum) / sum(records) AS power_w,
           sum(dim_sum) / sum(records) AS dim_pct
    {PILOT_HOURS}
    ORDER BY 1
"""

VEHICLES_SQL = f"""
    SELECT time_bucket('$__interval'::interval, ts) AS time,
           sum(vehicles) AS vehicles
    FROM streetlight_readings
    WHERE $__timeFilter(ts) AND device_id IN ($device) AND NOT {LONG_RANGE}
    GROUP BY 1
    UNION ALL
    SELECT {HOUR_BUCKET} AS time,
           sum(vehicles)::bigint AS vehicles
    {HOURS}
    UNION ALL
    SELECT {HOUR_BUCKET} AS time,
           sum(vehicles)::bigint AS vehicles
    {PILOT_HOURS}
    ORDER BY 1
"""

NIGHTLY_SQL = """
    SELECT night::timestamp AS time,
           actual_kwh,
           baseline_kwh,
           savings_kwh
    FROM savings_nightly
    WHERE pilot_id = '$pilot'
      AND night BETWEEN $__timeFrom()::timestamptz::date AND $__timeTo()::timestamptz::date
    ORDER BY 1
"""

SAVINGS_SQL = """
    SELECT savings_kwh, savings_pct, co2_kg, cost_saved, completeness_pct
    FROM analytics_summary
    WHERE pilot_id = '$pilot' AND analysis = 'savings'
    ORDER BY computed_at DESC
    LIMIT 1
"""

SAVINGS_WINDOW_SQL = """
    SELECT window_from AS "from", window_to AS "to", method, method_version,
           currency, input_hash, computed_at
    FROM analytics_summary
    WHERE pilot_id = '$pilot' AND analysis = 'savings'
    ORDER BY computed_at DESC
    LIMIT 1
"""

# The latest stored savings run's per-luminaire rows (not its JSON document).
LUMINAIRES_SQL = """
    SELECT l.device_id, s.pilot_id, l.savings_kwh, l.savings_pct, l.full_power_w,
           l.full_power_source, l.full_power_samples, l.completeness_pct
    FROM savings_luminaires l
    JOIN (SELECT result_id, pilot_id FROM analytics_summary
          WHERE pilot_id = '$pilot' AND analysis = 'savings'
          ORDER BY computed_at DESC, result_id DESC LIMIT 1) s USING (result_id)
    WHERE l.device_id IN ($device)
    ORDER BY l.savings_pct NULLS FIRST, l.device_id
"""

FAULTS_SQL = """
    SELECT e.ts AS time, d.pilot_id, e.device_id, e.type, e.data->>'code' AS code,
           e.received_at
    FROM events e
    JOIN devices d ON d.id = e.device_id
    WHERE $__timeFilter(e.ts) AND e.device_id IN ($device) AND d.pilot_id = '$pilot'
      AND e.type IN ('fault', 'fault_cleared')
    ORDER BY e.ts DESC
    LIMIT 500
"""

SILENT_SQL = """
    SELECT d.pilot_id, d.id AS device_id, d.last_seen, s.state, now() - d.last_seen AS silent_for
    FROM devices d
    LEFT JOIN device_status s ON s.device_id = d.id
    WHERE d.pilot_id = '$pilot' AND d.revoked_at IS NULL
      AND (d.last_seen IS NULL OR d.last_seen < now() - interval '1 hour')
    ORDER BY d.last_seen NULLS FIRST, d.id
"""


# Devices with a registered location (devices.latitude/longitude, from bulk onboarding).
DEVICE_MAP_SQL = """
    SELECT d.id AS device_id, d.pilot_id, d.latitude, d.longitude,
           CASE WHEN s.state = 'offline' THEN 'offline'
                WHEN d.last_seen > now() - interval '1 hour' THEN 'online'
                ELSE 'silent' END AS state,
           d.last_seen
    FROM devices d
    LEFT JOIN device_status s ON s.device_id = d.id
    WHERE d.pilot_id = '$pilot' AND d.id IN ($device) AND d.revoked_at IS NULL
      AND d.latitude IS NOT NULL AND d.longitude IS NOT NULL
    ORDER BY d.id
"""


def _map(t: Labels) -> geomap.Panel:
    return (
        map_panel(t["dash_sl_map"], description=t["dash_sl_map_desc"])
        .with_target(Sql(DEVICE_MAP_SQL).ref_id("A").table())
        .layers([markers(t["devices"], "A", "green", 6)])
        .span(24)
        .height(10)
    )


def build(t: Labels) -> dash.Dashboard:
    """The streetlight dashboard, for the pilot and devices picked in its variables."""
    power = right_axis(
        fields(
            timeseries(t["dash_sl_power"], POWER_SQL, "watt"),
            t,
            {"power_w": ("dash_f_power", "watt"), "dim_pct": ("dash_f_dim", "percent")},
        ),
        "dim_pct",
        "percent",
    ).interval("5m")
    savings = fields(
        stat(
            t["dash_sl_savings"],
            SAVINGS_SQL,
            "none",
            description=t["dash_sl_savings_desc"],
            span=16,
        ),
        t,
        {
            "savings_kwh": ("savings_kwh", "kwatth"),
            "savings_pct": ("savings_pct", "percent"),
            "co2_kg": ("co2_kg", "masskg"),
            "cost_saved": ("cost_saved", "none"),
            "completeness_pct": ("dash_f_completeness", "percent"),
        },
    )
    nightly = fields(
        timeseries(
            t["dash_sl_nightly"],
            NIGHTLY_SQL,
            "kwatth",
            bars=True,
            description=t["dash_sl_nightly_desc"],
        ).span(24),
        t,
        {
            "actual_kwh": ("dash_f_actual", "kwatth"),
            "baseline_kwh": ("dash_f_counterfactual", "kwatth"),
            "savings_kwh": ("savings_kwh", "kwatth"),
        },
    )
    luminaires = fields(
        table(t["dash_sl_luminaires"], LUMINAIRES_SQL, description=t["dash_sl_luminaires_desc"]),
        t,
        {
            "savings_kwh": ("savings_kwh", "kwatth"),
            "savings_pct": ("savings_pct", "percent"),
            "full_power_w": ("dash_f_full_power", "watt"),
            "full_power_source": ("dash_f_full_power_source", "string"),
            "full_power_samples": ("dash_f_full_power_samples", "short"),
            "completeness_pct": ("dash_f_completeness", "percent"),
        },
    )
    vehicles = fields(
        timeseries(t["dash_sl_vehicles"], VEHICLES_SQL, "short", bars=True),
        t,
        {"vehicles": ("dash_f_vehicles", "short")},
    )
    board = (
        new_dashboard(
            UID,
            t["dash_sl_title"],
            time_from="now-7d",
            description=t["dash_sl_desc"],
            t=t,
        )
        .with_variable(pilot_variable(KIND, t))
        .with_variable(device_variable(t))
        .with_panel(savings)
        .with_panel(table(t["dash_sl_latest"], SAVINGS_WINDOW_SQL, span=8).height(4))
        .with_panel(power)
        .with_panel(vehicles)
        .with_panel(nightly)
        .with_panel(device_links(luminaires, t, UID))
        .with_panel(_map(t))
        .with_panel(device_links(table(t["dash_sl_faults"], FAULTS_SQL), t, UID))
        .with_panel(
            device_links(
                table(t["dash_sl_silent"], SILENT_SQL, description=t["dash_sl_silent_desc"]),
                t,
                UID,
            )
        )
    )
    for annotation in event_annotations(t):
        board = board.annotation(annotation)
    return board
