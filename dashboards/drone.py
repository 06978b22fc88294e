"""The drone patrol dashboard: where the drones flew, what they covered, at what energy cost.

Tracks are downsampled on the server with ``time_bucket`` (the Geomap gets at most a few
thousand points whatever the range); coverage and revisit figures are the persisted
results of the coverage analysis (``coverage_daily``, ``analytics_results``), because
footprint geometry is far too heavy to compute in a dashboard query.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import geomap

from dashboards.panels import (
    device_variable,
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
TITLE = "K-City drone patrol pilot"
KIND = "hybrid_drone"
MAP_POINTS = 3000  # the Geomap's maxDataPoints, which sets its $__interval

TRACKS_SQL = """
    SELECT time_bucket('$__interval'::interval, ts) AS time,
           device_id,
           avg(lat) AS latitude,
           avg(lon) AS longitude,
           avg(agl_m) AS agl_m,
           mode() WITHIN GROUP (ORDER BY mode) AS flight_mode
    FROM drone_readings
    WHERE $__timeFilter(ts) AND device_id IN ($device) AND gps_fix >= 3
    GROUP BY 1, device_id
    ORDER BY 1
"""

DETECTIONS_SQL = """
    SELECT ts AS time,
           device_id,
           (data->>'lat')::float8 AS latitude,
           (data->>'lon')::float8 AS longitude,
           data->>'label' AS label,
           (data->>'confidence')::float8 AS confidence
    FROM events
    WHERE $__timeFilter(ts) AND device_id IN ($device) AND type = 'detection'
      AND data ? 'lat' AND data ? 'lon'
    ORDER BY ts
    LIMIT 2000
"""

COVERAGE_DAILY_SQL = """
    SELECT day::timestamp AS time,
           area_coverage_pct AS "area coverage [%]",
           linear_coverage_pct AS "border coverage [%]"
    FROM coverage_daily
    WHERE pilot_id = '$pilot'
      AND day BETWEEN $__timeFrom()::timestamptz::date AND $__timeTo()::timestamptz::date
    ORDER BY 1
"""

ENERGY_DAILY_SQL = """
    SELECT day::timestamp AS time,
           battery_kwh AS "battery [kWh]",
           generator_kwh AS "generator [kWh]",
           fuel_l AS "fuel [L]"
    FROM coverage_daily
    WHERE pilot_id = '$pilot'
      AND day BETWEEN $__timeFrom()::timestamptz::date AND $__timeTo()::timestamptz::date
    ORDER BY 1
"""

COVERAGE_SQL = """
    SELECT (result->>'area_coverage_pct')::float8 AS "area coverage [%]",
           (result->>'linear_coverage_pct')::float8 AS "border coverage [%]",
           (result->>'covered_km2')::float8 AS "covered [km²]",
           (result->'revisit_s'->>'mean')::float8 / 60 AS "revisit mean [min]",
           (result->'revisit_s'->>'p95')::float8 / 60 AS "revisit p95 [min]",
           (result->'revisit_s'->>'max')::float8 / 60 AS "revisit max [min]",
           (result->>'flight_hours')::float8 AS "flight hours [h]",
           (result->>'generator_share_pct')::float8 AS "generator share [%]"
    FROM analytics_results
    WHERE pilot_id = '$pilot' AND analysis = 'coverage'
    ORDER BY computed_at DESC
    LIMIT 1
"""

POWER_SQL = """
    SELECT time_bucket('$__interval'::interval, ts) AS time,
           avg(battery_v * battery_a) AS "battery [W]",
           avg(gen_power_w) AS "generator [W]"
    FROM drone_readings
    WHERE $__timeFilter(ts) AND device_id IN ($device)
    GROUP BY 1
    ORDER BY 1
"""

FUEL_SQL = """
    SELECT time_bucket('$__interval'::interval, ts) AS time,
           device_id AS metric,
           avg(fuel_l) AS "fuel [L]"
    FROM drone_readings
    WHERE $__timeFilter(ts) AND device_id IN ($device) AND fuel_l IS NOT NULL
    GROUP BY 1, 2
    ORDER BY 1
"""

LINK_SQL = """
    SELECT time_bucket('$__interval'::interval, ts) AS time,
           avg(rssi_dbm) AS "mean RSSI [dBm]",
           min(rssi_dbm) AS "worst RSSI [dBm]"
    FROM drone_readings
    WHERE $__timeFilter(ts) AND device_id IN ($device) AND rssi_dbm IS NOT NULL
    GROUP BY 1
    ORDER BY 1
"""


def _map() -> geomap.Panel:
    return (
        map_panel(
            "Tracks and detections",
            description="Track points are time-bucketed averages; detections are event positions.",
        )
        .with_target(Sql(TRACKS_SQL).ref_id("A").table())
        .with_target(Sql(DETECTIONS_SQL).ref_id("B").table())
        .max_data_points(MAP_POINTS)
        .interval("1s")
        .layers([markers("Tracks", "A", "blue", 3), markers("Detections", "B", "red", 8)])
        .span(16)
        .height(14)
    )


def build() -> dash.Dashboard:
    """The drone dashboard, for the pilot and devices picked in its variables."""
    return (
        new_dashboard(
            UID,
            TITLE,
            time_from="now-24h",
            description="Hybrid drone patrol: tracks, coverage, revisit, energy and link.",
        )
        .with_variable(pilot_variable(KIND))
        .with_variable(device_variable())
        .with_panel(_map())
        .with_panel(
            stat(
                "Coverage to date",
                COVERAGE_SQL,
                "none",
                description="The latest persisted coverage result for this pilot.",
                span=8,
            ).height(14)
        )
        .with_panel(
            timeseries("Coverage per day", COVERAGE_DAILY_SQL, "percent", bars=True).max(100)
        )
        .with_panel(
            right_axis(
                timeseries(
                    "Energy per day: battery vs generator", ENERGY_DAILY_SQL, "kwatth", bars=True
                ),
                "fuel [L]",
                "litre",
            )
        )
        .with_panel(timeseries("Battery vs generator power", POWER_SQL, "watt").interval("1s"))
        .with_panel(timeseries("Fuel remaining", FUEL_SQL, "litre").interval("1s"))
        .with_panel(timeseries("Link quality", LINK_SQL, "dBm").interval("1s").span(24))
        .with_panel(table("Detections", DETECTIONS_SQL, span=24))
    )
