"""Rollups of the rollups for long dashboard ranges (migration 010, issue #19): a 90-day
panel over 500 devices read a million device-hours from migration 007's hourly tables and
took seconds. Kept inside `kcity.rollups.refresh` (same transaction, same lock), each from
the hourly tables just brought up to date, so each equals a recomputation from them:

- `streetlight_pilot_hourly`: a pilot's hours over its devices not revoked (the `device`
  variable's "All"), recomputed for the hours the refresh's scope touched (late data lands
  in its hour), and whole for a pilot whose set of devices changed;
- `ingest_messages_daily`, `ingest_pilot_hourly`, `ingest_outages`: by arrival, which only
  grows at the end, so they are recomputed from the hour (day) of this job's last horizon.
  A device's pilot is the one its topic names and never changes, so messages are summed
  under the pilot their device has now.

With nothing new a refresh spends 25-55 ms here (500 luminaires × 90 days, 2026-12-02).
"""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg

from kcity.late_commits import lookback

SOURCE = "dashboards"

# Who the pilot sums hold: the devices not revoked of every streetlight pilot.
_MEMBERS = """
CREATE TEMP TABLE dash_members ON COMMIT DROP AS
SELECT d.id AS device_id, d.pilot_id
FROM devices d JOIN pilots p ON p.id = d.pilot_id
WHERE p.kind = 'streetlight' AND d.revoked_at IS NULL
"""

# Pilots rebuilt whole: all of them on the first refresh, else those whose set changed or
# one of whose devices the main refresh rebuilt whole.
_WHOLE = """
CREATE TEMP TABLE dash_whole ON COMMIT DROP AS
SELECT DISTINCT pilot_id FROM (
    SELECT m.pilot_id FROM dash_members m WHERE %(first)s
    UNION ALL
    SELECT unnest(ARRAY[m.pilot_id, s.pilot_id])
    FROM dash_members m FULL JOIN streetlight_pilot_devices s USING (device_id)
    WHERE m.pilot_id IS DISTINCT FROM s.pilot_id
    UNION ALL
    SELECT m.pilot_id FROM rollup_scope r JOIN dash_members m USING (device_id)
    WHERE r.kind = 'streetlight' AND r.whole
) x WHERE pilot_id IS NOT NULL
"""

# The other pilots' hours that the scope's device-days overlap.
_TOUCHED = """
CREATE TEMP TABLE dash_hours ON COMMIT DROP AS
SELECT DISTINCT m.pilot_id, g.hour
FROM rollup_scope r
JOIN dash_members m USING (device_id)
CROSS JOIN LATERAL generate_series(time_bucket('1 hour', r.lo),
                                   r.hi - interval '1 microsecond', interval '1 hour') g(hour)
WHERE r.kind = 'streetlight' AND NOT r.whole
  AND m.pilot_id NOT IN (SELECT pilot_id FROM dash_whole)
"""

_STREETLIGHT = [
    _MEMBERS,
    _WHOLE,
    _TOUCHED,
    "DELETE FROM streetlight_pilot_hourly WHERE pilot_id IN (SELECT pilot_id FROM dash_whole)",
    """INSERT INTO streetlight_pilot_hourly
       SELECT m.pilot_id, h.hour, sum(h.records), sum(h.power_sum), sum(h.dim_sum),
              sum(h.lamp_on), sum(h.vehicles)
       FROM streetlight_hourly h JOIN dash_members m USING (device_id)
       WHERE m.pilot_id IN (SELECT pilot_id FROM dash_whole)
       GROUP BY 1, 2""",
    """DELETE FROM streetlight_pilot_hourly p USING dash_hours t
       WHERE p.pilot_id = t.pilot_id AND p.hour = t.hour""",
    """INSERT INTO streetlight_pilot_hourly
       SELECT t.pilot_id, t.hour, sum(h.records), sum(h.power_sum), sum(h.dim_sum),
              sum(h.lamp_on), sum(h.vehicles)
       FROM dash_hours t
       JOIN streetlight_hourly h ON h.hour = t.hour
       JOIN dash_members m ON m.device_id = h.device_id AND m.pilot_id = t.pilot_id
       GROUP BY 1, 2""",
    "DELETE FROM streetlight_pilot_devices",
    "INSERT INTO streetlight_pilot_devices SELECT device_id, pilot_id FROM dash_members",
]

# By arrival, from the hour `since` falls in (`day`: its UTC day) onward.
_MESSAGES = [
    "DELETE FROM ingest_messages_daily WHERE day >= %(day)s",
    """INSERT INTO ingest_messages_daily
       SELECT device_id, channel, boot, time_bucket('1 day', hour), sum(messages), sum(records),
              min(min_seq), max(max_seq), min(first_received), max(last_received),
              min(min_sent), max(max_sent), max(max_skew_s)
       FROM ingest_messages_hourly WHERE hour >= %(day)s
       GROUP BY 1, 2, 3, 4""",
    "DELETE FROM ingest_pilot_hourly WHERE hour >= %(hour)s",
    """INSERT INTO ingest_pilot_hourly
       SELECT d.pilot_id, h.hour, sum(h.messages), sum(h.records)
       FROM ingest_messages_hourly h LEFT JOIN devices d ON d.id = h.device_id
       WHERE h.hour >= %(hour)s
       GROUP BY 1, 2""",
    # An outage over an hour spans an hour boundary: it lies between the last message of one
    # hour with messages and the first of the next. Those ending from `hour` on are redone,
    # each device's silence starting at its last message before `hour`.
    "DELETE FROM ingest_outages WHERE end_at >= %(hour)s",
    """WITH recent AS (
         SELECT device_id, hour, min(first_received) AS first, max(last_received) AS last
         FROM ingest_messages_hourly WHERE hour >= %(hour)s
         GROUP BY 1, 2
       ), before AS (
         SELECT device_id, max(last) AS last FROM (
           SELECT device_id, last_received AS last FROM ingest_messages_hourly
           WHERE hour >= %(day)s AND hour < %(hour)s
           UNION ALL
           SELECT r.device_id, x.last
           FROM (SELECT DISTINCT device_id FROM recent) r
           CROSS JOIN LATERAL (
             SELECT i.last_received AS last FROM ingest_messages_daily i
             WHERE i.device_id = r.device_id AND i.day < %(day)s
             ORDER BY i.day DESC, i.last_received DESC LIMIT 1) x
         ) b GROUP BY device_id
       ), seq AS (
         SELECT device_id, hour, first, last FROM recent
         UNION ALL
         SELECT device_id, '-infinity', NULL, last FROM before
       ), gaps AS (
         SELECT device_id, first,
                lag(last) OVER (PARTITION BY device_id ORDER BY hour) AS prev
         FROM seq
       )
       INSERT INTO ingest_outages (device_id, start_at, end_at)
       SELECT device_id, prev, first FROM gaps WHERE first - prev > interval '1 hour'""",
]


def update(conn: psycopg.Connection, horizon: datetime) -> None:
    """Bring the tables up to date inside the caller's refresh transaction, after the
    hourly rollups and with `rollup_scope` still filled; record `horizon` as done."""
    row = conn.execute(
        "SELECT horizon FROM rollup_horizons WHERE source = %s", (SOURCE,)
    ).fetchone()
    since = lookback(conn, row[0]) if row else datetime(1970, 1, 1, tzinfo=UTC)
    for statement in _STREETLIGHT:
        conn.execute(statement, {"first": row is None} if "%(first)s" in statement else None)
    bounds = conn.execute(
        "SELECT time_bucket('1 hour', %(s)s::timestamptz),"
        " time_bucket('1 day', %(s)s::timestamptz)",
        {"s": since},
    ).fetchone()
    assert bounds is not None
    for statement in _MESSAGES:
        conn.execute(statement, {"hour": bounds[0], "day": bounds[1]})
    conn.execute(
        "INSERT INTO rollup_horizons (source, horizon) VALUES (%s, %s)"
        " ON CONFLICT (source) DO UPDATE SET horizon = excluded.horizon",
        (SOURCE, horizon),
    )
