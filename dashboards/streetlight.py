"""The streetlight pilot dashboard: what the luminaires do and what it saves.

Raw telemetry (power, dim level, vehicles) is bucketed with ``time_bucket`` at the panel's
``$__interval`` so a year stays a few hundred points; nightly energy and savings come from
the persisted analytics (``savings_nightly``, ``analytics_results``), not from a rescan.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash

from dashboards.panels import (
    device_variable,
    new_dashboard,
    pilot_variable,
    right_axis,
    stat,
    table,
    timeseries,
)

UID = "kcity-streetlight"
TITLE = "K-City streetlight pilot"
KIND = "streetlight"

POWER_SQL = """
    SELECT time_bucket('$__interval'::interval, ts) AS time,
           avg(power_w) AS "power [W]",
           avg(dim_pct) AS "dim level [%]"
    FROM streetlight_readings
    WHERE $__timeFilter(ts) AND device_id IN ($device)
    GROUP BY 1
    ORDER BY 1
"""

VEHICLES_SQL = """
    SELECT time_bucket('$__interval'::interval, ts) AS time,
           sum(vehicles) AS vehicles
    FROM streetlight_readings
    WHERE $__timeFilter(ts) AND device_id IN ($device)
    GROUP BY 1
    ORDER BY 1
"""

NIGHTLY_SQL = """
    SELECT night::timestamp AS time,
           actual_kwh AS "actual [kWh]",
           baseline_kwh AS "counterfactual [kWh]",
           savings_kwh AS "saved [kWh]"
    FROM savings_nightly
    WHERE pilot_id = '$pilot'
      AND night BETWEEN $__timeFrom()::timestamptz::date AND $__timeTo()::timestamptz::date
    ORDER BY 1
"""

SAVINGS_SQL = """
    SELECT (result->>'savings_kwh')::float8 AS "saved [kWh]",
           (result->>'savings_pct')::float8 AS "saved [%]",
           (result->>'co2_kg')::float8 AS "CO2 avoided [kg]",
           (result->>'cost_saved')::float8 AS "cost saved",
           (result->>'completeness_pct')::float8 AS "data completeness [%]"
    FROM analytics_results
    WHERE pilot_id = '$pilot' AND analysis = 'savings'
    ORDER BY computed_at DESC
    LIMIT 1
"""

SAVINGS_WINDOW_SQL = """
    SELECT window_from AS "from", window_to AS "to", method, method_version,
           result->>'currency' AS currency, input_hash, computed_at
    FROM analytics_results
    WHERE pilot_id = '$pilot' AND analysis = 'savings'
    ORDER BY computed_at DESC
    LIMIT 1
"""

FAULTS_SQL = """
    SELECT e.ts AS time, e.device_id, e.type, e.data->>'code' AS code, e.received_at
    FROM events e
    WHERE $__timeFilter(e.ts) AND e.device_id IN ($device)
      AND e.type IN ('fault', 'fault_cleared')
    ORDER BY e.ts DESC
    LIMIT 500
"""

SILENT_SQL = """
    SELECT d.id AS device_id, d.last_seen, s.state, now() - d.last_seen AS silent_for
    FROM devices d
    LEFT JOIN device_status s ON s.device_id = d.id
    WHERE d.pilot_id = '$pilot' AND d.revoked_at IS NULL
      AND (d.last_seen IS NULL OR d.last_seen < now() - interval '1 hour')
    ORDER BY d.last_seen NULLS FIRST, d.id
"""


def build() -> dash.Dashboard:
    """The streetlight dashboard, for the pilot and devices picked in its variables."""
    power = right_axis(
        timeseries("Power and dim level", POWER_SQL, "watt"), "dim level [%]", "percent"
    ).interval("5m")
    return (
        new_dashboard(
            UID,
            TITLE,
            time_from="now-7d",
            description="Adaptive streetlights: power, dimming, traffic and verified savings.",
        )
        .with_variable(pilot_variable(KIND))
        .with_variable(device_variable())
        .with_panel(
            stat(
                "Savings to date",
                SAVINGS_SQL,
                "none",
                description="The latest verified savings (IPMVP Option B) for this pilot.",
                span=16,
            )
        )
        .with_panel(table("Latest savings result", SAVINGS_WINDOW_SQL, span=8).height(4))
        .with_panel(power)
        .with_panel(timeseries("Vehicles detected", VEHICLES_SQL, "short", bars=True))
        .with_panel(
            timeseries(
                "Nightly energy: actual vs counterfactual",
                NIGHTLY_SQL,
                "kwatth",
                bars=True,
                description="Per night, from the latest savings run (savings_nightly).",
            ).span(24)
        )
        .with_panel(table("Faults", FAULTS_SQL))
        .with_panel(
            table(
                "Devices silent for more than an hour",
                SILENT_SQL,
                description="Not revoked, and no data for over an hour (or never).",
            )
        )
    )
