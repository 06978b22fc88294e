"""The drone patrol dashboard: where the drones flew, what they covered, at what energy cost.

Tracks are downsampled on the server with ``time_bucket`` (the Geomap gets at most a few
thousand points whatever the range), over long ranges from the minute rollup
(``drone_minutely``), like the power, fuel and link panels. Coverage and revisit figures are
the persisted results of the coverage analysis (``coverage_daily``, ``analytics_summary``),
because footprint geometry is far too heavy to compute in a dashboard query.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import geomap

from dashboards.events import event_annotations
from dashboards.long_range import LONG_RANGE, MINUTE_BUCKET, minutes
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

UID = "kcity-drone"
KIND = "hybrid_drone"
MAP_POINTS = 3000  # the Geomap's maxDataPoints, which sets its $__interval

# Each time-bucketed panel reads the raw 1 Hz rows over short ranges and the minute rollup
# (`drone_minutely`) over long ones; see dashboards/long_range.py.
TRACKS_SQL = f"""
    SELECT time_bucket('$__interval'::interval, ts) AS time,
           device_id,
           avg(lat) AS latitude,
           avg(lon) AS longitude,
           avg(agl_m) AS agl_m,
           mode() WITHIN GROUP (ORDER BY mode) AS flight_mode
    FROM drone_readings
    WHERE $__timeFilter(ts) AND device_id IN ($device) AND gps_fix >= 3 AND NOT {LONG_RANGE}
    GROUP BY 1, device_id
    UNION ALL
    -- The most frequent mode of the bucket, ties to the first in order, as mode() picks it.
    SELECT time, device_id,
           sum(lat_sum) / sum(fix_records), sum(lon_sum) / sum(fix_records),
           sum(agl_sum) / nullif(sum(agl_records), 0),
           (array_agg(mode ORDER BY fix_records DESC, mode) FILTER (WHERE mode <> ''))[1]
    FROM (
      SELECT {MINUTE_BUCKET} AS time, device_id, mode, sum(fix_records) AS fix_records,
             sum(lat_sum) AS lat_sum, sum(lon_sum) AS lon_sum, sum(agl_sum) AS agl_sum,
             sum(agl_records) AS agl_records
      FROM drone_minutely
      WHERE {minutes()} AND device_id IN ($device) AND fix_records > 0
      GROUP BY 1, 2, 3
    ) m
    GROUP BY 1, 2
    ORDER BY 1
"""

DETECTIONS_SQL = """
    SELECT e.ts AS time,
           d.pilot_id,
           e.device_id,
           (e.data->>'lat')::float8 AS latitude,
           (e.data->>'lon')::float8 AS longitude,
           e.data->>'label' AS label,
           (e.data->>'confidence')::float8 AS confidence
    FROM events e
    JOIN devices d ON d.id = e.device_id
    WHERE $__timeFilter(e.ts) AND e.device_id IN ($device) AND d.pilot_id = '$pilot'
      AND e.type = 'detection' AND e.data ? 'lat' AND e.data ? 'lon'
    ORDER BY e.ts
    LIMIT 2000
"""

COVERAGE_DAILY_SQL = """
    SELECT day::timestamp AS time,
           area_coverage_pct,
           linear_coverage_pct
    FROM coverage_daily
    WHERE pilot_id = '$pilot'
      AND day BETWEEN $__timeFrom()::timestamptz::date AND $__timeTo()::timestamptz::date
    ORDER BY 1
"""

ENERGY_DAILY_SQL = """
    SELECT day::timestamp AS time,
           battery_kwh,
           generator_kwh,
           fuel_l
    FROM coverage_daily
    WHERE pilot_id = '$pilot'
      AND day BETWEEN $__timeFrom()::timestamptz::date AND $__timeTo()::timestamptz::date
    ORDER BY 1
"""

COVERAGE_SQL = """
    SELECT area_coverage_pct, linear_coverage_pct, covered_km2,
           revisit_mean_s / 60 AS revisit_mean_min,
           revisit_p95_s / 60 AS revisit_p95_min,
           revisit_max_s / 60 AS revisit_max_min,
           flight_hours, generator_share_pct
    FROM analytics_summary
    WHERE pilot_id = '$pilot' AND analysis = 'coverage'
    ORDER BY computed_at DESC
    LIMIT 1
"""

POWER_SQL = f"""
    SELECT time_bucket('$__interval'::interval, ts) AS time,
           avg(battery_v * battery_a) AS battery_w,
           avg(gen_power_w) AS generator_w
    FROM drone_readings
    WHERE $__timeFilter(ts) AND device_id IN ($device) AND NOT {LONG_RANGE}
    GROUP BY 1
    UNION ALL
    SELECT {MINUTE_BUCKET},
           sum(battery_w_sum) / nullif(sum(battery_w_n), 0),
           sum(gen_w_sum) / nullif(sum(gen_w_n), 0)
    FROM drone_minutely
    WHERE {minutes()} AND device_id IN ($device)
    GROUP BY 1
    ORDER BY 1
"""

FUEL_SQL = f"""
    SELECT time_bucket('$__interval'::interval, ts) AS time,
           device_id AS metric,
           avg(fuel_l) AS fuel_l
    FROM drone_readings
    WHERE $__timeFilter(ts) AND device_id IN ($device) AND fuel_l IS NOT NULL
      AND NOT {LONG_RANGE}
    GROUP BY 1, 2
    UNION ALL
    SELECT {MINUTE_BUCKET}, device_id, sum(fuel_sum) / sum(fuel_n)
    FROM drone_minutely
    WHERE {minutes()} AND device_id IN ($device) AND fuel_n > 0
    GROUP BY 1, 2
    ORDER BY 1
"""

LINK_SQL = f"""
    SELECT time_bucket('$__interval'::interval, ts) AS time,
           avg(rssi_dbm) AS rssi_mean_dbm,
           min(rssi_dbm) AS rssi_worst_dbm
    FROM drone_readings
    WHERE $__timeFilter(ts) AND device_id IN ($device) AND rssi_dbm IS NOT NULL
      AND NOT {LONG_RANGE}
    GROUP BY 1
    UNION ALL
    SELECT {MINUTE_BUCKET}, sum(rssi_sum) / sum(rssi_n), min(rssi_min)
    FROM drone_minutely
    WHERE {minutes()} AND device_id IN ($device) AND rssi_n > 0
    GROUP BY 1
    ORDER BY 1
"""


def _map(t: Labels) -> geomap.Panel:
    return (
        map_panel(t["dash_dr_map"], description=t["dash_dr_map_desc"])
        .with_target(Sql(TRACKS_SQL).ref_id("A").table())
        .with_target(Sql(DETECTIONS_SQL).ref_id("B").table())
        .max_data_points(MAP_POINTS)
        .interval("1s")
        .layers(
            [
                markers(t["dash_dr_tracks"], "A", "blue", 3),
                markers(t["dash_dr_detections"], "B", "red", 8),
            ]
        )
        .span(16)
        .height(14)
    )


def build(t: Labels) -> dash.Dashboard:
    """The drone dashboard, for the pilot and devices picked in its variables."""
    coverage = fields(
        stat(
            t["dash_dr_coverage"],
            COVERAGE_SQL,
            "none",
            description=t["dash_dr_coverage_desc"],
            span=8,
        ).height(14),
        t,
        {
            "area_coverage_pct": ("dash_f_area_cov", "percent"),
            "linear_coverage_pct": ("dash_f_border_cov", "percent"),
            "covered_km2": ("dash_f_covered", "areaKM2"),
            "revisit_mean_min": ("dash_f_revisit_mean", "m"),
            "revisit_p95_min": ("dash_f_revisit_p95", "m"),
            "revisit_max_min": ("dash_f_revisit_max", "m"),
            "flight_hours": ("dash_f_flight_hours", "h"),
            "generator_share_pct": ("dash_f_gen_share", "percent"),
        },
    )
    daily = fields(
        timeseries(t["dash_dr_cov_daily"], COVERAGE_DAILY_SQL, "percent", bars=True).max(100),
        t,
        {
            "area_coverage_pct": ("dash_f_area_cov", "percent"),
            "linear_coverage_pct": ("dash_f_border_cov", "percent"),
        },
    )
    energy = right_axis(
        fields(
            timeseries(t["dash_dr_energy"], ENERGY_DAILY_SQL, "kwatth", bars=True),
            t,
            {
                "battery_kwh": ("dash_f_battery", "kwatth"),
                "generator_kwh": ("dash_f_generator", "kwatth"),
                "fuel_l": ("dash_f_fuel", "litre"),
            },
        ),
        "fuel_l",
        "litre",
    )
    power = fields(
        timeseries(t["dash_dr_power"], POWER_SQL, "watt").interval("1s"),
        t,
        {"battery_w": ("dash_f_battery", "watt"), "generator_w": ("dash_f_generator", "watt")},
    )
    fuel = timeseries(t["dash_dr_fuel"], FUEL_SQL, "litre").interval("1s")  # one per device
    link = fields(
        timeseries(t["dash_dr_link"], LINK_SQL, "dBm").interval("1s").span(24),
        t,
        {
            "rssi_mean_dbm": ("dash_f_rssi_mean", "dBm"),
            "rssi_worst_dbm": ("dash_f_rssi_worst", "dBm"),
        },
    )
    board = (
        new_dashboard(
            UID,
            t["dash_dr_title"],
            time_from="now-24h",
            description=t["dash_dr_desc"],
            t=t,
        )
        .with_variable(pilot_variable(KIND, t))
        .with_variable(device_variable(t))
        .with_panel(_map(t))
        .with_panel(coverage)
        .with_panel(daily)
        .with_panel(energy)
        .with_panel(power)
        .with_panel(fuel)
        .with_panel(link)
        .with_panel(device_links(table(t["dash_dr_detections"], DETECTIONS_SQL, span=24), t, UID))
    )
    for annotation in event_annotations(t):
        board = board.annotation(annotation)
    return board
