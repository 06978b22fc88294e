"""The one module of `analytics` that touches the database: it reads readings and events
into numpy arrays for the pure methods, and counts data quality in SQL.

Bulk reads use binary COPY of fixed-width rows straight into numpy structured arrays: no
per-row Python objects, which is what keeps a 13-million-row window within a few seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import numpy as np
import psycopg

from analytics.quality import DeviceDay
from analytics.savings import LuminaireSeries, NonRoutineEvent
from analytics.tracks import DroneSeries

READINGS_TABLE = {
    "streetlight": "streetlight_readings",
    "hybrid_drone": "drone_readings",
    "generic": "generic_readings",
}
_COPY_HEADER = 19  # PGCOPY signature (11) + flags (4) + header extension length (4)


def _split(rows: np.ndarray, device_ids: Sequence[str]) -> list[tuple[str, np.ndarray]]:
    """Slices of `rows` (ordered by device) per device index (1-based, as array_position)."""
    bounds = np.searchsorted(rows["dev"], np.arange(1, len(device_ids) + 2))
    return [(d, rows[bounds[i]:bounds[i + 1]]) for i, d in enumerate(device_ids)
            if bounds[i + 1] > bounds[i]]


def copy_arrays(conn: psycopg.Connection, query: str, params: Sequence[Any],
                fields: Sequence[tuple[str, str]]) -> np.ndarray:
    """Run `query` through binary COPY and return its rows as a numpy structured array.

    Every column must be fixed-width and NOT NULL (COALESCE nulls to NaN in the query);
    `fields` are (name, big-endian numpy type) in select order, e.g. ("ts", ">f8").
    """
    row = [("_n", ">i2")]
    for name, kind in fields:
        row += [(f"_len_{name}", ">i4"), (name, kind)]
    dtype = np.dtype(row)
    with conn.cursor() as cur:
        sql = psycopg.sql.SQL("COPY ({}) TO STDOUT (FORMAT BINARY)").format(
            psycopg.sql.SQL(cur.mogrify(query, params)))  # type: ignore[arg-type]
        with cur.copy(sql) as copy:
            data = b"".join(bytes(chunk) for chunk in copy)
    body = memoryview(data)[_COPY_HEADER:-2]  # trailer: int16 -1
    return np.frombuffer(body, dtype=dtype)


def load_luminaires(conn: psycopg.Connection, device_ids: Sequence[str], start: datetime,
                    end: datetime) -> list[LuminaireSeries]:
    """5-minute records of `device_ids` in [start, end), one series per device."""
    device_ids = sorted(device_ids)
    rows = copy_arrays(
        conn,
        "SELECT array_position(%s::text[], device_id)::int4, extract(epoch FROM ts)::float8,"
        " power_w, coalesce(energy_wh, 'NaN'), dim_pct, lamp_on"
        " FROM streetlight_readings WHERE device_id = ANY(%s) AND ts >= %s AND ts < %s"
        " ORDER BY device_id, ts",
        (list(device_ids), list(device_ids), start, end),
        [("dev", ">i4"), ("ts", ">f8"), ("power_w", ">f8"), ("energy_wh", ">f8"),
         ("dim_pct", ">f8"), ("lamp_on", "?")],
    )
    out = []
    for device_id, sel in _split(rows, device_ids):
        out.append(LuminaireSeries(
            device_id=device_id,
            ts=sel["ts"].astype(np.float64),
            power_w=sel["power_w"].astype(np.float64),
            energy_wh=sel["energy_wh"].astype(np.float64),
            dim_pct=sel["dim_pct"].astype(np.float64),
            lamp_on=sel["lamp_on"].astype(bool),
        ))
    return out


def load_events(conn: psycopg.Connection, device_ids: Sequence[str], start: datetime,
                end: datetime) -> list[NonRoutineEvent]:
    rows = conn.execute(
        "SELECT device_id, extract(epoch FROM ts)::float8, type, data->>'code' FROM events"
        " WHERE device_id = ANY(%s) AND ts >= %s AND ts < %s ORDER BY ts",
        (list(device_ids), start, end),
    ).fetchall()
    return [NonRoutineEvent(device_id=r[0], ts=r[1], type=r[2], code=r[3]) for r in rows]


def count_events(conn: psycopg.Connection, device_ids: Sequence[str], event_type: str,
                 start: datetime, end: datetime) -> int:
    row = conn.execute(
        "SELECT count(*) FROM events WHERE device_id = ANY(%s) AND type = %s"
        " AND ts >= %s AND ts < %s",
        (list(device_ids), event_type, start, end),
    ).fetchone()
    return int(row[0]) if row else 0


_MODES = ("", "patrol", "transit", "hover", "rtl", "landed")


def load_drones(conn: psycopg.Connection, device_ids: Sequence[str], start: datetime,
                end: datetime) -> list[DroneSeries]:
    """1 Hz drone records of `device_ids` in [start, end), one series per device."""
    device_ids = sorted(device_ids)
    rows = copy_arrays(
        conn,
        "SELECT array_position(%s::text[], device_id)::int4, extract(epoch FROM ts)::float8,"
        " lat, lon, coalesce(agl_m, 'NaN'), coalesce(hfov_deg, 'NaN'),"
        " coalesce(array_position(%s::text[], mode), 1)::int4, coalesce(camera_on, false),"
        " coalesce(gps_fix, -1)::int4, hashtext(flight_id)::int4,"
        " coalesce(battery_v, 'NaN'), coalesce(battery_a, 'NaN'), coalesce(gen_power_w, 'NaN'),"
        " coalesce(fuel_l, 'NaN')"
        " FROM drone_readings WHERE device_id = ANY(%s) AND ts >= %s AND ts < %s"
        " ORDER BY device_id, ts",
        (list(device_ids), list(_MODES), list(device_ids), start, end),
        [("dev", ">i4"), ("ts", ">f8"), ("lat", ">f8"), ("lon", ">f8"), ("agl_m", ">f8"),
         ("hfov_deg", ">f8"), ("mode", ">i4"), ("camera_on", "?"), ("gps_fix", ">i4"),
         ("flight", ">i4"), ("battery_v", ">f8"), ("battery_a", ">f8"), ("gen_power_w", ">f8"),
         ("fuel_l", ">f8")],
    )
    modes = np.array(_MODES, dtype=object)
    out = []
    for device_id, sel in _split(rows, device_ids):
        f64 = {name: sel[name].astype(np.float64) for name in
               ("ts", "lat", "lon", "agl_m", "hfov_deg", "battery_v", "battery_a",
                "gen_power_w", "fuel_l")}
        out.append(DroneSeries(
            device_id=device_id,
            mode=modes[sel["mode"].astype(np.int64) - 1].astype(str),
            camera_on=sel["camera_on"].astype(bool),
            gps_fix=sel["gps_fix"].astype(np.int64),
            flight_id=sel["flight"].astype(np.int64).astype(str),
            **f64,
        ))
    return out


def quality_rows(conn: psycopg.Connection, *, kind: str, device_ids: Sequence[str],
                 timezone: str, interval_s: float | None, start: date, end: date) -> list[DeviceDay]:
    """Per device and local day in [start, end): the counts `analytics.quality` reports."""
    table = READINGS_TABLE[kind]
    # Drones report only while flying: expect records over each flight's span, not all day.
    expected = (
        "sum(span) / %(interval)s + count(*)" if kind == "hybrid_drone"
        else "86400.0 / %(interval)s" if interval_s else "NULL"
    )
    span_sql = (
        "SELECT device_id, day, extract(epoch FROM max(ts) - min(ts)) AS span FROM r"
        " GROUP BY device_id, day, flight_id" if kind == "hybrid_drone"
        else "SELECT device_id, day, 0.0 AS span FROM r GROUP BY device_id, day"
    )
    sql = f"""
    WITH r AS (
        SELECT device_id, ts, received_at, {"flight_id," if kind == "hybrid_drone" else ""}
               (ts AT TIME ZONE %(tz)s)::date AS day
        FROM {table}
        WHERE device_id = ANY(%(ids)s)
          AND ts >= (%(start)s::timestamp AT TIME ZONE %(tz)s)
          AND ts < (%(end)s::timestamp AT TIME ZONE %(tz)s)
    ),
    counts AS (
        SELECT device_id, day, count(*) AS records,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM received_at - ts)) AS p50,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM received_at - ts)) AS p95
        FROM r GROUP BY device_id, day
    ),
    spans AS (
        SELECT device_id, day, {expected} AS expected FROM ({span_sql}) s GROUP BY device_id, day
    ),
    msgs AS (
        SELECT device_id, (coalesce(sent_at, received_at) AT TIME ZONE %(tz)s)::date AS day,
               boot, max(seq) - min(seq) + 1 - count(*) AS gaps, sum(copies - 1) AS dups
        FROM ingest_messages
        WHERE device_id = ANY(%(ids)s) AND channel = 'telemetry'
          AND coalesce(sent_at, received_at) >= (%(start)s::timestamp AT TIME ZONE %(tz)s)
          AND coalesce(sent_at, received_at) < (%(end)s::timestamp AT TIME ZONE %(tz)s)
        GROUP BY 1, 2, 3
    ),
    seqs AS (SELECT device_id, day, sum(gaps) AS gaps, sum(dups) AS dups FROM msgs GROUP BY 1, 2),
    dead AS (
        SELECT device_id, (received_at AT TIME ZONE %(tz)s)::date AS day, count(*) AS n
        FROM dead_letters
        WHERE device_id = ANY(%(ids)s)
          AND received_at >= (%(start)s::timestamp AT TIME ZONE %(tz)s)
          AND received_at < (%(end)s::timestamp AT TIME ZONE %(tz)s)
        GROUP BY 1, 2
    )
    SELECT c.device_id, c.day, c.records, s.expected, coalesce(q.gaps, 0), coalesce(q.dups, 0),
           coalesce(d.n, 0), c.p50, c.p95
    FROM counts c
    JOIN spans s USING (device_id, day)
    LEFT JOIN seqs q USING (device_id, day)
    LEFT JOIN dead d USING (device_id, day)
    ORDER BY c.device_id, c.day
    """
    params = {"tz": timezone, "ids": list(device_ids), "start": start, "end": end,
              "interval": interval_s or 1.0}
    return [
        DeviceDay(device_id=r[0], day=r[1], records=int(r[2]),
                  expected=None if r[3] is None else float(r[3]), seq_gaps=int(r[4]),
                  duplicates=int(r[5]), dead_letters=int(r[6]),
                  skew_p50_s=None if r[7] is None else float(r[7]),
                  skew_p95_s=None if r[8] is None else float(r[8]))
        for r in conn.execute(sql, params).fetchall()  # type: ignore[call-overload]
    ]
