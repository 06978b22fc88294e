"""Data quality of a window from the per-device-day rollup (`quality_device_day`), not from
the raw rows: `analytics.queries.quality_rows` counts the same things over the raw rows and
stays the reference a test holds this to, row for row.

What the registry decides (which days a device is expected, how many records a day holds)
is applied here at read time, so re-registering a device or re-applying a pilot needs no
refresh. Only the clock-skew percentiles over many days come from a sketch (see
`analytics.skew_sketch` for their bound); each device-day's own percentiles are exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import psycopg

from analytics.quality import DeviceDay, RegisteredDevice
from analytics.queries import READINGS_TABLE, device_day, quality_params
from analytics.skew_sketch import EDGES_US

_GRID = """
    dev AS (
        SELECT * FROM unnest(%(ids)s::text[], %(from)s::date[], %(until)s::date[])
            AS d(device_id, c_on, d_on)
    ),
    grid AS (
        SELECT dev.device_id, day::date AS day,
               extract(epoch FROM ((day + interval '1 day')::timestamp AT TIME ZONE %(tz)s)
                                - (day::timestamp AT TIME ZONE %(tz)s)) AS seconds
        FROM dev, generate_series(%(start)s::date, %(end)s::date - 1, interval '1 day') day
        WHERE (c_on IS NULL OR day >= c_on) AND (d_on IS NULL OR day < d_on)
    )"""


def quality_rows(
    conn: psycopg.Connection,
    *,
    kind: str,
    devices: Sequence[RegisteredDevice],
    timezone: str,
    interval_s: float | None,
    start: date,
    end: date,
) -> list[DeviceDay]:
    """`analytics.queries.quality_rows`, read from the rollup (refresh it first)."""
    expected = (
        "coalesce(q.flight_span_s / %(interval)s + q.flights, 0)"
        if kind == "hybrid_drone"
        else "g.seconds / %(interval)s"
        if interval_s
        else "NULL"
    )
    sql = f"""
    WITH {_GRID},
    q AS (
        SELECT * FROM quality_device_day
        WHERE device_id = ANY(%(ids)s) AND day >= %(start)s AND day < %(end)s
    ),
    keys AS (SELECT device_id, day FROM grid UNION SELECT device_id, day FROM q)
    SELECT k.device_id, k.day, coalesce(q.records, 0),
           CASE WHEN g.device_id IS NULL THEN {"NULL" if not interval_s else "0.0"}
                ELSE {expected} END,
           coalesce(q.seq_gaps, 0), coalesce(q.duplicates, 0), coalesce(q.dead_letters, 0),
           q.skew_p50_s, q.skew_p95_s, coalesce(q.conflicts, 0), coalesce(q.seq_reuse, 0),
           g.device_id IS NOT NULL
    FROM keys k
    LEFT JOIN grid g USING (device_id, day)
    LEFT JOIN q USING (device_id, day)
    ORDER BY k.device_id, k.day
    """
    params = quality_params(devices, timezone, interval_s, start, end)
    return [device_day(r) for r in conn.execute(sql, params).fetchall()]


def skew_histogram(
    conn: psycopg.Connection, *, device_ids: Sequence[str], start: date, end: date
) -> dict[int, int]:
    """The window's skew sketch: the device-days' bin counts added up."""
    rows = conn.execute(
        "SELECT b, sum(n) FROM quality_device_day q, unnest(q.skew_bins, q.skew_counts) u(b, n)"
        " WHERE q.device_id = ANY(%s) AND q.day >= %s AND q.day < %s GROUP BY b",
        (list(device_ids), start, end),
    ).fetchall()
    return {int(b): int(n) for b, n in rows}


def skew_histogram_raw(
    conn: psycopg.Connection,
    *,
    kind: str,
    device_ids: Sequence[str],
    timezone: str,
    start: date,
    end: date,
) -> dict[int, int]:
    """The same sketch counted over the raw readings (the full recomputation)."""
    rows = conn.execute(
        f"SELECT sign(us)::int * width_bucket(abs(us), %(edges)s::bigint[]) AS b, count(*)"
        f" FROM (SELECT (extract(epoch FROM received_at - ts) * 1000000)::bigint AS us"
        f"       FROM {READINGS_TABLE[kind]} WHERE device_id = ANY(%(ids)s)"
        f"         AND ts >= (%(start)s::timestamp AT TIME ZONE %(tz)s)"
        f"         AND ts < (%(end)s::timestamp AT TIME ZONE %(tz)s)) r GROUP BY 1",
        {
            "edges": list(EDGES_US),
            "ids": list(device_ids),
            "start": start,
            "end": end,
            "tz": timezone,
        },
    ).fetchall()
    return {int(b): int(n) for b, n in rows}
