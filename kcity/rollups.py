"""Rollups kept up to date by an incremental refresh (migration 007), because the Apache-2
edition has no continuous aggregates: data quality per device and local day
(`quality_device_day`), and for the dashboards streetlight hours (`streetlight_hourly`),
drone minutes (`drone_minutely`, migration 011) and messages by hour of arrival
(`ingest_messages_hourly`, recomputed from the hour of the last horizon on: arrival hours
only grow at the end).

A refresh finds the (device, local day) pairs that rows received since the last refresh
touch — readings, `ingest_messages` (inserted, or updated by a duplicate: `changed_at`) and
dead letters — and recomputes those buckets whole from the raw rows. A late row, a
duplicate or a conflict therefore updates its own bucket, and every bucket equals a full
recomputation. Devices never rolled up, or whose pilot changed time zone, are rebuilt whole.

Rows are stamped `received_at` by ingest before they commit, so the horizon the next refresh
starts from is held back by `slack_s` (and by the oldest open transaction the server shows),
and further to the oldest stamp of a batch ingest committed later than that (held through a
database outage; `kcity.late_commits`). Refreshes take an advisory lock, so the job and a
reader's refresh-before-read never interleave.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

from analytics.queries import DAY_COUNTS, READINGS_TABLE, SKEW_US
from analytics.skew_sketch import EDGES_US
from kcity import dashboard_rollups
from kcity.db import index_scans
from kcity.dropped import frozen
from kcity.late_commits import lookback

LOCK_ID = 7_240_007
SOURCE = "device_day"
SLACK_S = 300.0  # ingest stamps before it commits; a batch held longer is noted late

# Buckets whose raw rows retention dropped (`raw_dropped`) are kept as they were: a late row
# there cannot be counted against rows that are gone (kcity.dropped).
_KIND_TABLE = (
    "CASE s.kind "
    + " ".join(f"WHEN '{kind}' THEN '{table}'" for kind, table in READINGS_TABLE.items())
    + " END"
)


def _frozen_day(table: str, day: str, tz: str) -> str:
    """SQL: whether the local `day` in zone `tz` overlaps a dropped span of `table`."""
    start, end = (f"(({day} + {n})::timestamp AT TIME ZONE {tz})" for n in (0, 1))
    return frozen(table, start, end)


# The buckets to recompute: per device, a span of its rows [lo, hi) cut in its local days.
_SCOPE = """
CREATE TEMP TABLE IF NOT EXISTS rollup_scope (
    device_id text NOT NULL, kind text NOT NULL, tz text NOT NULL,
    lo timestamptz NOT NULL, hi timestamptz NOT NULL, whole boolean NOT NULL
) ON COMMIT DELETE ROWS
"""

_DEVICES = """
    SELECT d.id AS device_id, p.kind, p.timezone AS tz
    FROM devices d JOIN pilots p ON p.id = d.pilot_id
"""

# Devices never rolled up, or cut in another zone: rebuilt whole.
_STALE = f"""
INSERT INTO rollup_scope
SELECT x.device_id, x.kind, x.tz, '-infinity', 'infinity', true
FROM ({_DEVICES}) x LEFT JOIN rollup_devices r USING (device_id)
WHERE r.timezone IS DISTINCT FROM x.tz
"""


def _touched_days(table: str, day: str, where: str) -> str:
    """(device, local day) pairs of `table` rows matching `where`, as scope rows."""
    return f"""
    INSERT INTO rollup_scope
    SELECT DISTINCT t.device_id, x.kind, x.tz,
           (t.d::timestamp AT TIME ZONE x.tz), ((t.d + 1)::timestamp AT TIME ZONE x.tz), false
    FROM (SELECT s.device_id, ({day} AT TIME ZONE x0.tz)::date AS d
          FROM {table} s JOIN ({_DEVICES}) x0 USING (device_id)
          WHERE {where}) t
    JOIN ({_DEVICES}) x USING (device_id)
    WHERE NOT EXISTS (SELECT 1 FROM rollup_scope w WHERE w.device_id = t.device_id AND w.whole)
    """


def _touched(horizon: str) -> list[str]:
    tables = [
        _touched_days(t, "s.ts", f"s.received_at >= {horizon}")
        for t in dict.fromkeys(READINGS_TABLE.values())
    ]
    return [
        *tables,
        _touched_days(
            "ingest_messages",
            "coalesce(s.first_ts, s.sent_at, s.received_at)",
            f"s.channel = 'telemetry' AND (s.received_at >= {horizon}"
            f" OR s.changed_at >= {horizon})",
        ),
        _touched_days(
            "dead_letters",
            "coalesce(s.record_ts, s.received_at)",
            f"s.device_id IS NOT NULL AND s.received_at >= {horizon}",
        ),
    ]


def _recompute(kind: str, table: str) -> str:
    """Every quality bucket of the scope's devices of `kind`, from the raw rows."""
    drone = kind == "hybrid_drone"
    day = "(r.ts AT TIME ZONE s.tz)::date"
    return f"""
    WITH sc AS (SELECT DISTINCT * FROM rollup_scope WHERE kind = '{kind}'),
    r AS (
        SELECT r.device_id, {day} AS day, r.ts, r.received_at,
               {"r.flight_id," if drone else ""}
               {SKEW_US.format(row="r.")} AS us
        FROM sc s JOIN {table} r
          ON r.device_id = s.device_id AND r.ts >= s.lo AND r.ts < s.hi
    ),
    {DAY_COUNTS},
    sketch AS (
        SELECT device_id, day, array_agg(b ORDER BY b)::smallint[] AS bins,
               array_agg(n ORDER BY b)::integer[] AS counts
        FROM (SELECT device_id, day,
                     sign(us)::int * width_bucket(abs(us), %(edges)s::bigint[]) AS b,
                     count(*) AS n
              FROM r GROUP BY 1, 2, 3) h
        GROUP BY device_id, day
    ),
    flights AS (
        SELECT device_id, day, sum(span) AS span, count(*) AS flights FROM (
            SELECT device_id, day, extract(epoch FROM max(ts) - min(ts)) AS span FROM r
            {"GROUP BY device_id, day, flight_id" if drone else "WHERE false GROUP BY 1, 2"}
        ) f GROUP BY device_id, day
    ),
    msgs AS (
        SELECT m.device_id,
               (coalesce(m.first_ts, m.sent_at, m.received_at) AT TIME ZONE s.tz)::date AS day,
               m.boot, max(m.seq) - min(m.seq) + 1 - count(*) AS gaps,
               sum(m.copies - 1) AS dups, sum(m.reuses) AS reuses
        FROM sc s JOIN ingest_messages m
          ON m.device_id = s.device_id
         AND coalesce(m.first_ts, m.sent_at, m.received_at) >= s.lo
         AND coalesce(m.first_ts, m.sent_at, m.received_at) < s.hi
        WHERE m.channel = 'telemetry'
        GROUP BY 1, 2, 3
    ),
    seqs AS (
        SELECT device_id, day, sum(gaps) AS gaps, sum(dups) AS dups, sum(reuses) AS reuses
        FROM msgs GROUP BY 1, 2
    ),
    dead AS (
        SELECT l.device_id, (coalesce(l.record_ts, l.received_at) AT TIME ZONE s.tz)::date AS day,
               count(*) AS n, count(*) FILTER (WHERE l.stage = 'conflict') AS conflicts
        FROM sc s JOIN dead_letters l
          ON l.device_id = s.device_id
         AND coalesce(l.record_ts, l.received_at) >= s.lo
         AND coalesce(l.record_ts, l.received_at) < s.hi
        GROUP BY 1, 2
    ),
    keys AS (
        SELECT device_id, day FROM counts UNION SELECT device_id, day FROM seqs
        UNION SELECT device_id, day FROM dead
    )
    INSERT INTO quality_device_day (device_id, day, records, skew_p50_s, skew_p95_s,
        skew_bins, skew_counts, flight_span_s, flights, seq_gaps, duplicates, seq_reuse,
        dead_letters, conflicts)
    SELECT k.device_id, k.day, coalesce(c.records, 0), c.p50, c.p95,
           coalesce(h.bins, '{{}}'), coalesce(h.counts, '{{}}'), f.span, f.flights,
           coalesce(q.gaps, 0), coalesce(q.dups, 0), coalesce(q.reuses, 0),
           coalesce(d.n, 0), coalesce(d.conflicts, 0)
    FROM keys k
    JOIN (SELECT DISTINCT device_id, tz FROM sc) z USING (device_id)
    LEFT JOIN counts c USING (device_id, day)
    LEFT JOIN sketch h USING (device_id, day)
    LEFT JOIN flights f USING (device_id, day)
    LEFT JOIN seqs q USING (device_id, day)
    LEFT JOIN dead d USING (device_id, day)
    WHERE NOT {_frozen_day(f"'{table}'", "k.day", "z.tz")}
    """


def _buckets(rollup: str, kind: str, width: str, column: str, select: str, group: str,
             join: str = "") -> list[str]:  # fmt: skip
    """Statements rebuilding `rollup`'s buckets of `width` (column `column`) for the scope's
    devices of `kind` from their raw rows: per device one span of whole buckets (half-hour
    zones cut days inside an hour), buckets of dropped spans kept as they were."""
    readings = READINGS_TABLE[kind]
    keep = frozen(f"'{readings}'", f"b.{column}", f"b.{column} + interval '{width}'")
    return [
        f"""CREATE TEMP TABLE rollup_span ON COMMIT DROP AS
        SELECT device_id,
               CASE WHEN bool_or(whole) THEN '-infinity'::timestamptz
                    ELSE time_bucket('{width}', min(lo)) END AS lo,
               CASE WHEN bool_or(whole) THEN 'infinity'::timestamptz
                    ELSE time_bucket('{width}', max(hi) - interval '1 microsecond')
                         + interval '{width}'
               END AS hi
        FROM rollup_scope WHERE kind = '{kind}' GROUP BY device_id""",
        f"""DELETE FROM {rollup} b USING rollup_span s
        WHERE b.device_id = s.device_id AND b.{column} >= s.lo AND b.{column} < s.hi
          AND NOT {keep}""",
        f"""INSERT INTO {rollup}
        SELECT * FROM (
            SELECT r.device_id, time_bucket('{width}', r.ts) AS {column}, {select}
            FROM rollup_span s JOIN {readings} r
              ON r.device_id = s.device_id AND r.ts >= s.lo AND r.ts < s.hi
            {join}
            GROUP BY {group}
        ) b WHERE NOT {keep}""",
        "DROP TABLE rollup_span",
    ]


# Streetlight hours and drone minutes (migration 011) of the scope's devices.
_BUCKETS = [
    *_buckets(
        "streetlight_hourly", "streetlight", "1 hour", "hour",
        "count(*), sum(r.power_w), sum(r.dim_pct), count(*) FILTER (WHERE r.lamp_on),"
        " sum(r.vehicles)",
        "1, 2",
    ),
    *_buckets(
        "drone_minutely", "hybrid_drone", "1 minute", "minute",
        """coalesce(r.mode, ''), count(*), count(*) FILTER (WHERE f.fix),
           sum(r.lat) FILTER (WHERE f.fix), sum(r.lon) FILTER (WHERE f.fix),
           sum(r.agl_m) FILTER (WHERE f.fix), count(r.agl_m) FILTER (WHERE f.fix),
           sum(r.battery_v * r.battery_a), count(r.battery_v * r.battery_a),
           sum(r.gen_power_w), count(r.gen_power_w), sum(r.fuel_l), count(r.fuel_l),
           sum(r.rssi_dbm), count(r.rssi_dbm), min(r.rssi_dbm)""",
        "1, 2, 3",
        "CROSS JOIN LATERAL (SELECT coalesce(r.gps_fix >= 3, false) AS fix) f",
    ),
]  # fmt: skip

# Messages by hour of arrival: every hour from the one holding the last horizon onward.
_MESSAGES = """
DELETE FROM ingest_messages_hourly WHERE hour >= time_bucket('1 hour', %(since)s::timestamptz);
INSERT INTO ingest_messages_hourly
SELECT device_id, channel, boot, time_bucket('1 hour', received_at), count(*), sum(records),
       min(seq), max(seq), min(received_at), max(received_at),
       min(coalesce(sent_at, received_at)), max(coalesce(sent_at, received_at)),
       max(extract(epoch FROM received_at - sent_at))
FROM ingest_messages
WHERE received_at >= time_bucket('1 hour', %(since)s::timestamptz)
GROUP BY 1, 2, 3, 4
"""

_CLEAR = f"""
DELETE FROM quality_device_day q USING rollup_scope s
WHERE q.device_id = s.device_id
  AND (s.whole OR q.day = (s.lo AT TIME ZONE s.tz)::date)
  AND NOT {_frozen_day(_KIND_TABLE, "q.day", "s.tz")}
"""

# The oldest moment a row not yet visible could carry: now, or the start of the oldest
# transaction that has written and not committed (as far as the server shows us), less the
# slack between ingest's stamp and its commit. Idle readers do not hold the horizon back.
NEXT_HORIZON = """
SELECT least(clock_timestamp(),
             (SELECT min(xact_start) FROM pg_stat_activity
              WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()))
       - make_interval(secs => %s)
"""


@dataclass(frozen=True)
class Refresh:
    """What one refresh did."""

    rebuilt_devices: int
    touched_days: int
    seconds: float
    horizon: datetime


def refresh(conn: psycopg.Connection, *, slack_s: float = SLACK_S) -> Refresh:
    """Bring the rollups up to date with every committed row; commits."""
    t0 = time.perf_counter()
    conn.commit()  # a fresh transaction: its snapshot must follow the horizon
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_ID,))
        row = conn.execute(NEXT_HORIZON, (slack_s,)).fetchone()
        assert row is not None
        horizon: datetime = row[0]
        # READ COMMITTED: each statement below sees every commit made before it began.
        conn.execute(_SCOPE)
        conn.execute("DELETE FROM rollup_scope")
        conn.execute(_STALE)
        last = conn.execute(
            "SELECT horizon FROM rollup_horizons WHERE source = %s", (SOURCE,)
        ).fetchone()
        since = lookback(conn, last[0]) if last is not None else None
        if since is not None:
            with index_scans(conn):
                for statement in _touched(f"'{since.isoformat()}'::timestamptz"):
                    conn.execute(statement)
        counted = conn.execute(
            "SELECT count(*) FILTER (WHERE whole), count(*) FILTER (WHERE NOT whole)"
            " FROM rollup_scope"
        ).fetchone()
        assert counted is not None
        if counted[0] or counted[1]:
            conn.execute("ANALYZE rollup_scope")
            conn.execute(_CLEAR)
            for kind, table in READINGS_TABLE.items():
                conn.execute(_recompute(kind, table), {"edges": list(EDGES_US)})
            for statement in _BUCKETS:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO rollup_devices (device_id, timezone)"
                " SELECT DISTINCT device_id, tz FROM rollup_scope WHERE whole"
                " ON CONFLICT (device_id) DO UPDATE SET timezone = excluded.timezone"
            )
        for statement in _MESSAGES.split(";"):
            conn.execute(statement, {"since": since or datetime(1970, 1, 1, tzinfo=UTC)})
        dashboard_rollups.update(conn, horizon)  # migration 010, from the tables above
        conn.execute(
            "INSERT INTO rollup_horizons (source, horizon) VALUES (%s, %s)"
            " ON CONFLICT (source) DO UPDATE SET horizon = excluded.horizon",
            (SOURCE, horizon),
        )
    return Refresh(int(counted[0]), int(counted[1]), time.perf_counter() - t0, horizon)
