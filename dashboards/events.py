"""Annotations every pilot dashboard draws from stored facts: device events (faults and
their clearing, detections, take-offs and landings, alarms), downlink commands (``commands``)
and communication outages (no message received from a device for over an hour, from
``ingest_messages``, over long ranges from the intervals the rollup refresh keeps).

Outages are read from reception times, not record times: a device that buffered its data
through an outage and sent it later has no hole in its readings, only in what arrived.
"""

from __future__ import annotations

from dashboards.long_range import LONG_RANGE
from dashboards.panels import Labels
from dashboards.sql import SqlAnnotation

EVENTS_SQL = """
    SELECT e.ts AS time,
           e.device_id || ': ' || e.type || coalesce(' (' || (e.data->>'code') || ')', '')
             AS text,
           e.type AS tags
    FROM events e
    JOIN devices d ON d.id = e.device_id
    WHERE $__timeFilter(e.ts) AND d.pilot_id = '$pilot'
      AND e.type IN ('fault', 'fault_cleared', 'detection', 'alarm', 'takeoff', 'landing')
    ORDER BY e.ts
    LIMIT 1000
"""

OUTAGES_SQL = f"""
    SELECT prev_at AS time,
           received_at AS timeend,
           device_id || ': ' || round(extract(epoch FROM received_at - prev_at) / 3600, 1)
             || ' h' AS text,
           'outage' AS tags
    FROM (
      SELECT m.device_id, m.received_at,
             lag(m.received_at) OVER (PARTITION BY m.device_id ORDER BY m.received_at)
               AS prev_at
      FROM ingest_messages m
      JOIN devices d ON d.id = m.device_id
      WHERE d.pilot_id = '$pilot' AND NOT {LONG_RANGE}
        AND m.received_at BETWEEN $__timeFrom()::timestamptz - interval '1 day' AND $__timeTo()
      UNION ALL
      -- The outages the refresh keeps as intervals (kcity/dashboard_rollups.py); as above,
      -- those that end in the range and began at most a day before it.
      SELECT o.device_id, o.end_at, o.start_at
      FROM ingest_outages o
      JOIN devices d ON d.id = o.device_id
      WHERE d.pilot_id = '$pilot' AND {LONG_RANGE}
        AND o.end_at BETWEEN $__timeFrom()::timestamptz AND $__timeTo()
        AND o.start_at >= $__timeFrom()::timestamptz - interval '1 day'
    ) g
    WHERE received_at - prev_at > interval '1 hour'
      AND received_at >= $__timeFrom()::timestamptz
    ORDER BY prev_at
    LIMIT 1000
"""


COMMANDS_SQL = """
    SELECT c.created_at AS time,
           c.device_id || ': ' || c.type || ' (' || c.state || ')' AS text,
           'command' AS tags
    FROM commands c
    WHERE $__timeFilter(c.created_at) AND c.pilot_id = '$pilot'
    ORDER BY c.created_at
    LIMIT 1000
"""


def event_annotations(t: Labels) -> list[SqlAnnotation]:
    """Device events and communication outages of the selected pilot."""
    return [
        SqlAnnotation(t["dash_ann_events"], EVENTS_SQL, "orange"),
        SqlAnnotation(t["dash_ann_outages"], OUTAGES_SQL, "red"),
        SqlAnnotation(t["dash_ann_commands"], COMMANDS_SQL, "blue"),
    ]
