"""The one module of `analytics` that touches the database: it reads readings and events
into numpy arrays for the pure methods, and counts data quality in SQL.

Bulk reads use binary COPY of fixed-width rows straight into numpy structured arrays: no
per-row Python objects, which is what keeps a 13-million-row window within a few seconds.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import numpy as np
import psycopg
from psycopg.sql import SQL

from analytics.nights import NightCalendar
from analytics.quality import COUNTS as QUALITY_COUNTS
from analytics.quality import DeviceDays, RegisteredDevice
from analytics.savings import LuminaireSeries, NonRoutineEvent
from analytics.tracks import DroneSeries

READINGS_TABLE = {
    "streetlight": "streetlight_readings",
    "hybrid_drone": "drone_readings",
    "generic": "generic_readings",
}
READ_CONNECTIONS = 2  # the development machine's cores (DESIGN §11)
_WORKERS = "max_parallel_workers_per_gather"  # off for reads side by side
T = TypeVar("T")
_COPY_HEADER = 19  # PGCOPY signature (11) + flags (4) + header extension length (4)
_PG_EPOCH = 946_684_800.0  # 2000-01-01T00:00:00Z, the origin of binary timestamps [s]
_ELEMENT = {701: ">f8", 20: ">i8", 1184: ">i8", 16: "?", 23: ">i4", 1082: ">i4", 17: "V32"}
"""Array elements by type oid; `date` comes as days since 2000-01-01, `bytea` only as
32-byte digests."""


def _parse_row(row: memoryview) -> tuple[str, list[np.ndarray]]:
    """One binary COPY row of (text, array, array, …) into a key and numpy arrays.

    The arrays must hold fixed-width elements and no NULLs (COALESCE them to NaN).
    """
    (nfields,) = struct.unpack_from(">h", row, 0)
    (length,) = struct.unpack_from(">i", row, 2)
    key = bytes(row[6 : 6 + length]).decode()
    offset, arrays = 6 + length, []
    for _ in range(nfields - 1):
        (length,) = struct.unpack_from(">i", row, offset)
        _ndim, _nulls, oid, size, _lbound = struct.unpack_from(">iiiii", row, offset + 4)
        element = np.dtype([("len", ">i4"), ("value", _ELEMENT[oid])])
        start = offset + 24
        arrays.append(np.frombuffer(row[start : start + size * element.itemsize], element)["value"])
        offset += 4 + length
    return key, arrays


def copy_arrays(
    conn: psycopg.Connection, query: str, params: Sequence[object]
) -> list[tuple[str, list[np.ndarray]]]:
    """Rows of (text key, array, …) as numpy arrays through binary COPY: one message a row,
    no Python object per element (`_parse_row`: fixed-width elements, no NULLs)."""
    bound = psycopg.ClientCursor(conn).mogrify(query, params)
    out = []
    with conn.cursor() as cur, cur.copy(f"COPY ({bound}) TO STDOUT (FORMAT BINARY)") as copy:
        for i, chunk in enumerate(copy):
            row = memoryview(chunk)[_COPY_HEADER if i == 0 else 0 :]
            if len(row) > 2:  # not the trailer
                out.append(_parse_row(row))
    return out


@dataclass(frozen=True)
class _Arrays:
    """Columns of `table` per device as numpy arrays; `keep` an SQL condition on the rows
    and its parameters."""

    table: str
    columns: Sequence[str]
    device_ids: Sequence[str]
    keep: tuple[str, Sequence[object]] = ("true", ())

    def read(
        self, conn: psycopg.Connection, start: datetime, end: datetime
    ) -> list[tuple[str, dict[str, np.ndarray]]]:
        """Rows in [start, end) per device, sorted by time; `ts` as epoch seconds.

        One `array_agg` row per device through binary COPY: the server sends one message
        per device instead of one per reading, and numpy reads the arrays without Python
        objects.
        """
        aggs = ", ".join(f"array_agg({c})" for c in ("ts", *self.columns))
        query = (
            f"SELECT device_id, {aggs} FROM {self.table} WHERE device_id = ANY(%s)"
            f" AND ts >= %s AND ts < %s AND ({self.keep[0]}) GROUP BY device_id"
        )
        params = (list(self.device_ids), start, end, *self.keep[1])
        out = []
        for device_id, arrays in copy_arrays(conn, query, params):
            ts = arrays[0].astype(np.float64) / 1e6 + _PG_EPOCH
            if np.any(np.diff(ts) < 0):  # rows come in storage order, mostly by time
                order = np.argsort(ts, kind="stable")
                ts, arrays = ts[order], [a[order] for a in arrays]
            named = {"ts": ts}
            named.update({f"c{j}": a for j, a in enumerate(arrays[1:])})
            out.append((device_id, named))
        return sorted(out)


def side_by_side(
    conn: psycopg.Connection, reads: Sequence[Callable[[psycopg.Connection], T]]
) -> list[T]:
    """Each read on its own connection at once, the first on `conn` and the others on new
    connections like it: PostgreSQL runs one query's sorts and aggregates on one core.

    The new connections read in a snapshot `conn`'s transaction exports, when it is in one:
    in a repeatable-read transaction that is `conn`'s own (an evidence export's figures see
    no row its bundle lacks). The reads run without parallel workers: they are the
    parallelism, and workers of their own only contend for the same cores (the README's
    analytics figures). All on `conn`, one after the other, while `conn` holds uncommitted
    writes (which the other connections would not see); a read whose connection cannot be
    opened (e.g. the role's connection limit) runs on `conn` afterwards.
    """
    if len(reads) <= 1 or not _sees_what_others_see(conn):
        return [read(conn) for read in reads]
    in_transaction = conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone() if in_transaction else None

    def on_new_connection(read: Callable[[psycopg.Connection], T]) -> T | None:
        try:
            other = psycopg.connect(
                conn.info.dsn,
                password=conn.info.password or None,
                options=f"-c {_WORKERS}=0",
            )
        except psycopg.OperationalError:
            return None
        with other:
            if snapshot is not None:
                other.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
                other.read_only = True
                other.execute(SQL("SET TRANSACTION SNAPSHOT {}").format(snapshot[0]))
            return read(other)

    with ThreadPoolExecutor(len(reads) - 1) as pool:
        later = [pool.submit(on_new_connection, read) for read in reads[1:]]
        workers = conn.execute(f"SELECT current_setting('{_WORKERS}')").fetchone()
        conn.execute(f"SELECT set_config('{_WORKERS}', '0', true)")
        try:
            first = reads[0](conn)
        finally:  # the caller's transaction goes on with its own setting (a failed one
            # is rolled back, which undoes it)
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.INERROR:
                conn.execute(f"SELECT set_config('{_WORKERS}', %s, true)", workers)
        done = [future.result() for future in later]
    return [first] + [
        read(conn) if r is None else r for read, r in zip(reads[1:], done, strict=True)
    ]


def _per_device(
    conn: psycopg.Connection, arrays: _Arrays, start: datetime, end: datetime, workers: int = 1
) -> list[tuple[str, dict[str, np.ndarray]]]:
    """`arrays` over [start, end), cut into `workers` spans of time read side by side and
    joined per device."""
    cuts = [start + (end - start) * k / workers for k in range(workers + 1)]
    spans = side_by_side(
        conn, [partial(arrays.read, start=a, end=b) for a, b in itertools.pairwise(cuts)]
    )
    joined: dict[str, list[dict[str, np.ndarray]]] = {}
    for span in spans:
        for device_id, named in span:
            joined.setdefault(device_id, []).append(named)
    return [
        (device_id, {k: np.concatenate([n[k] for n in parts]) for k in parts[0]})
        for device_id, parts in sorted(joined.items())
    ]


def _sees_what_others_see(conn: psycopg.Connection) -> bool:
    """Whether `conn`'s transaction has written nothing (has no transaction id yet)."""
    row = conn.execute("SELECT pg_current_xact_id_if_assigned() IS NULL").fetchone()
    return bool(row and row[0])


def night_bounds(nights: NightCalendar, lead_s: float) -> list[datetime]:
    """Alternating starts and ends of the spans whose records savings reads (besides every
    lamp-on record): each night, from `lead_s` before its dusk. A record is read when an odd
    number of bounds are at or before it (SQL `width_bucket`)."""
    bounds = nights.boundaries()
    bounds[0::2] -= lead_s + 1.0  # a second of slack either side: the exact
    bounds[1::2] += 1.0  # assignment to nights is the method's, in numpy
    return [datetime.fromtimestamp(b, tz=UTC) for b in bounds]


def load_luminaires(
    conn: psycopg.Connection,
    device_ids: Sequence[str],
    start: datetime,
    end: datetime,
    nights: NightCalendar | None = None,
    lead_s: float = 0.0,
    *,
    every_lamp_on: bool = True,
) -> list[LuminaireSeries]:
    """5-minute records of `device_ids` in [start, end), one series per device.

    Given `nights`, only the records the savings method reads: those of each night or up
    to `lead_s` before its dusk (a night's first record may take its energy from the record
    before it), and every lamp-on record (day-burning) unless `every_lamp_on` is false (the
    baseline nights). Lamp-off daytime records, about half of all, are left in the database.
    """
    keep: tuple[str, Sequence[object]] = ("true", ())
    if nights is not None:
        stamps = night_bounds(nights, lead_s)
        spans = "width_bucket(ts, %s::timestamptz[]) %% 2 = 1"
        keep = (f"lamp_on OR {spans}" if every_lamp_on else spans, (stamps,))
    return _luminaires(conn, device_ids, keep, start, end)


def _luminaires(
    conn: psycopg.Connection,
    device_ids: Sequence[str],
    keep: tuple[str, Sequence[object]],
    start: datetime,
    end: datetime,
) -> list[LuminaireSeries]:
    columns = ("power_w", "coalesce(energy_wh, 'NaN')", "dim_pct", "lamp_on")
    luminaires = _Arrays("streetlight_readings", columns, device_ids, keep)
    return [
        LuminaireSeries(
            device_id=device_id,
            ts=c["ts"],
            power_w=c["c0"].astype(np.float64),
            energy_wh=c["c1"].astype(np.float64),
            dim_pct=c["c2"].astype(np.float64),
            lamp_on=c["c3"].astype(bool),
        )
        for device_id, c in _per_device(conn, luminaires, start, end, READ_CONNECTIONS)
    ]


def load_lamp_on(
    conn: psycopg.Connection, device_ids: Sequence[str], start: datetime, end: datetime
) -> list[LuminaireSeries]:
    """Every lamp-on record of `device_ids` in [start, end) (the control group's pool)."""
    return _luminaires(conn, device_ids, ("lamp_on", ()), start, end)


def arrival_marks(
    conn: psycopg.Connection, device_ids: Sequence[str], start: datetime, end: datetime
) -> dict[str, tuple[int, datetime]]:
    """Per device with records in [start, end): how many, and the latest `received_at`.

    Readings are only ever inserted (DESIGN §5: the first reading of a key stays), so a
    change inside the span moves one of the two: what a cached summary of it is keyed on.
    """
    rows = conn.execute(
        "SELECT device_id, count(*), max(received_at) FROM streetlight_readings"
        " WHERE device_id = ANY(%s) AND ts >= %s AND ts < %s GROUP BY device_id",
        (list(device_ids), start, end),
    ).fetchall()
    return {r[0]: (int(r[1]), r[2]) for r in rows}


def load_events(
    conn: psycopg.Connection, device_ids: Sequence[str], start: datetime, end: datetime
) -> list[NonRoutineEvent]:
    rows = conn.execute(
        "SELECT device_id, extract(epoch FROM ts)::float8, type, data->>'code' FROM events"
        " WHERE device_id = ANY(%s) AND ts >= %s AND ts < %s ORDER BY ts, device_id, type",
        (list(device_ids), start, end),
    ).fetchall()
    return [NonRoutineEvent(device_id=r[0], ts=r[1], type=r[2], code=r[3]) for r in rows]


def count_events(
    conn: psycopg.Connection,
    device_ids: Sequence[str],
    event_type: str,
    start: datetime,
    end: datetime,
) -> int:
    row = conn.execute(
        "SELECT count(*) FROM events WHERE device_id = ANY(%s) AND type = %s"
        " AND ts >= %s AND ts < %s",
        (list(device_ids), event_type, start, end),
    ).fetchone()
    return int(row[0]) if row else 0


_MODES = ("", "patrol", "transit", "hover", "rtl", "landed")


def load_drones(
    conn: psycopg.Connection, device_ids: Sequence[str], start: datetime, end: datetime
) -> list[DroneSeries]:
    """1 Hz drone records of `device_ids` in [start, end), one series per device."""
    modes = np.array(_MODES, dtype=object)
    mode_list = "'{" + ",".join(m or '""' for m in _MODES) + "}'::text[]"
    out = []
    columns = (
        "lat",
        "lon",
        "coalesce(agl_m, 'NaN')",
        "coalesce(hfov_deg, 'NaN')",
        f"coalesce(array_position({mode_list}, mode), 1)::int4",
        "coalesce(camera_on, false)",
        "coalesce(gps_fix, -1)::int4",
        "hashtext(flight_id)::int4",
        "coalesce(battery_v, 'NaN')",
        "coalesce(battery_a, 'NaN')",
        "coalesce(gen_power_w, 'NaN')",
        "coalesce(fuel_l, 'NaN')",
        "camera_on IS NOT NULL",
    )
    drones = _Arrays("drone_readings", columns, device_ids)
    for device_id, c in _per_device(conn, drones, start, end):
        f64 = [c[f"c{j}"].astype(np.float64) for j in range(12)]
        out.append(
            DroneSeries(
                device_id=device_id,
                ts=c["ts"],
                lat=f64[0],
                lon=f64[1],
                agl_m=f64[2],
                hfov_deg=f64[3],
                mode=modes[c["c4"].astype(np.int64) - 1].astype(str),
                camera_on=c["c5"].astype(bool),
                gps_fix=c["c6"].astype(np.int64),
                flight_id=c["c7"].astype(np.int64).astype(str),
                battery_v=f64[8],
                battery_a=f64[9],
                gen_power_w=f64[10],
                fuel_l=f64[11],
                camera_sent=c["c12"].astype(bool),
            )
        )
    return out


# Clock skew `received_at − ts` of a row in whole microseconds: exactly what
# `extract(epoch …) * 1e6` gives, without its numeric arithmetic (a third of a raw recount's
# time). `date_part` is a float8 within 1e-15 relative of the true seconds, so the rounding
# recovers every microsecond up to 30 years of skew; held to `extract` over the whole
# range in tests/test_quality_skew_sql.py.
SKEW_US = "(date_part('epoch', {row}received_at - {row}ts) * 1e6)::int8"

# Records and exact clock-skew percentiles per device and day of the rows `r` (device_id,
# day, us as `SKEW_US`): the same CTE in the raw count and in the rollup's recount.
# `us / 1e6` is the correctly rounded seconds, as `extract(epoch …)::float8` was; one
# ordered-set call gives both percentiles from one sort.
DAY_COUNTS = """counts AS (
        SELECT device_id, day, records, p[1] AS p50, p[2] AS p95 FROM (
            SELECT device_id, day, count(*) AS records,
                   percentile_cont('{0.5,0.95}'::float8[])
                       WITHIN GROUP (ORDER BY us / 1e6::float8) AS p
            FROM r GROUP BY device_id, day) c
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
) -> DeviceDays:
    """Per registered device and local day in [start, end): the counts `analytics.quality`
    reports. Every day a device is in service is a row, with or without records; a day
    outside its service that has records (or dead letters) is a row expecting nothing."""
    table = READINGS_TABLE[kind]
    # Drones report only while flying: expect records over each flight's span, not all day.
    expected = (
        "coalesce(f.expected, 0)"
        if kind == "hybrid_drone"
        else "g.seconds / %(interval)s"
        if interval_s
        else "NULL"
    )
    flights = (
        """, flights AS (
        SELECT device_id, day, sum(span) / %(interval)s + count(*) AS expected FROM (
            SELECT device_id, day, extract(epoch FROM max(ts) - min(ts)) AS span FROM r
            GROUP BY device_id, day, flight_id) s
        GROUP BY device_id, day)"""
        if kind == "hybrid_drone"
        else ""
    )
    columns = DEVICE_DAY_COLUMNS.format(
        day="k.day",
        records="c.records",
        gaps="q.gaps",
        dups="q.dups",
        dead="d.n",
        p50="c.p50",
        p95="c.p95",
        conflicts="d.conflicts",
        reuses="q.reuses",
        expected=f"CASE WHEN g.device_id IS NULL THEN {'NULL' if not interval_s else '0.0'}"
        f" ELSE {expected} END",
    )
    sql = f"""
    WITH dev AS (
        SELECT * FROM unnest(%(ids)s::text[], %(from)s::date[], %(until)s::date[])
            WITH ORDINALITY AS d(device_id, c_on, d_on, ord)
    ),
    grid AS (
        SELECT dev.device_id, day::date AS day,
               extract(epoch FROM ((day + interval '1 day')::timestamp AT TIME ZONE %(tz)s)
                                - (day::timestamp AT TIME ZONE %(tz)s)) AS seconds
        FROM dev, generate_series(%(start)s::date, %(end)s::date - 1, interval '1 day') day
        WHERE (c_on IS NULL OR day >= c_on) AND (d_on IS NULL OR day < d_on)
    ),
    r AS (
        SELECT device_id, ts, {"flight_id," if kind == "hybrid_drone" else ""}
               {SKEW_US.format(row="")} AS us, (ts AT TIME ZONE %(tz)s)::date AS day
        FROM {table}
        WHERE device_id = ANY(%(ids)s)
          AND ts >= (%(start)s::timestamp AT TIME ZONE %(tz)s)
          AND ts < (%(end)s::timestamp AT TIME ZONE %(tz)s)
    ),
    {DAY_COUNTS}{flights},
    msgs AS (
        SELECT device_id,
               (coalesce(first_ts, sent_at, received_at) AT TIME ZONE %(tz)s)::date AS day,
               boot, max(seq) - min(seq) + 1 - count(*) AS gaps, sum(copies - 1) AS dups,
               sum(reuses) AS reuses
        FROM ingest_messages
        WHERE device_id = ANY(%(ids)s) AND channel = 'telemetry'
          AND coalesce(first_ts, sent_at, received_at) >= (%(start)s::timestamp AT TIME ZONE %(tz)s)
          AND coalesce(first_ts, sent_at, received_at) < (%(end)s::timestamp AT TIME ZONE %(tz)s)
        GROUP BY 1, 2, 3
    ),
    seqs AS (
        SELECT device_id, day, sum(gaps) AS gaps, sum(dups) AS dups, sum(reuses) AS reuses
        FROM msgs GROUP BY 1, 2
    ),
    dead AS (
        SELECT device_id, (coalesce(record_ts, received_at) AT TIME ZONE %(tz)s)::date AS day,
               count(*) AS n, count(*) FILTER (WHERE stage = 'conflict') AS conflicts
        FROM dead_letters
        WHERE device_id = ANY(%(ids)s)
          AND coalesce(record_ts, received_at) >= (%(start)s::timestamp AT TIME ZONE %(tz)s)
          AND coalesce(record_ts, received_at) < (%(end)s::timestamp AT TIME ZONE %(tz)s)
        GROUP BY 1, 2
    ),
    keys AS (
        SELECT device_id, day FROM grid UNION SELECT device_id, day FROM counts
        UNION SELECT device_id, day FROM seqs UNION SELECT device_id, day FROM dead
    )
    SELECT {columns}
    FROM keys k
    JOIN dev USING (device_id)
    LEFT JOIN grid g USING (device_id, day)
    LEFT JOIN counts c USING (device_id, day)
    LEFT JOIN seqs q USING (device_id, day)
    LEFT JOIN dead d USING (device_id, day)
    {"LEFT JOIN flights f USING (device_id, day)" if kind == "hybrid_drone" else ""}
    """
    params = quality_params(devices, timezone, interval_s, start, end)
    reads = [
        partial(_device_day_rows, query=sql, params={**params, "start": a, "end": b})
        for a, b in day_spans(start, end, READ_CONNECTIONS)
    ]
    ids = [d.device_id for d in devices]
    return _device_days(ids, np.concatenate(side_by_side(conn, reads)))


def day_spans(start: date, end: date, parts: int) -> list[tuple[date, date]]:
    """[start, end) cut into at most `parts` spans of whole days: a count per device and day
    reads each span's rows on its own (`side_by_side`)."""
    days = (end - start).days
    cuts = sorted({start + timedelta(days=days * k // parts) for k in range(parts + 1)})
    return list(itertools.pairwise(cuts))


def quality_params(
    devices: Sequence[RegisteredDevice],
    timezone: str,
    interval_s: float | None,
    start: date,
    end: date,
) -> dict[str, object]:
    """The parameters of the device-day quality queries (raw and rollup alike)."""
    return {
        "tz": timezone,
        "ids": [d.device_id for d in devices],
        "from": [d.commissioned_on for d in devices],
        "until": [d.decommissioned_on for d in devices],
        "start": start,
        "end": end,
        "interval": interval_s or 1.0,
    }


# The columns both device-day quality queries end with (`read_device_days` reads them):
# the device's place in the `dev` list, the day as days since 1970, then `DeviceDay`'s
# fields, NaN for a missing float.
DEVICE_DAY_COLUMNS = """(dev.ord - 1)::int8, ({day} - date '1970-01-01')::int8,
           coalesce({records}, 0)::int8, coalesce({expected}, 'NaN')::float8,
           coalesce({gaps}, 0)::int8, coalesce({dups}, 0)::int8, coalesce({dead}, 0)::int8,
           coalesce({p50}, 'NaN')::float8, coalesce({p95}, 'NaN')::float8,
           coalesce({conflicts}, 0)::int8, coalesce({reuses}, 0)::int8,
           g.device_id IS NOT NULL"""
_DEVICE_DAY_ROW = np.dtype(
    [("n", ">i2")]
    + [
        item
        for i, (name, kind) in enumerate(
            [
                ("device", ">i8"),
                ("day", ">i8"),
                ("records", ">i8"),
                ("expected", ">f8"),
                ("seq_gaps", ">i8"),
                ("duplicates", ">i8"),
                ("dead_letters", ">i8"),
                ("skew_p50_s", ">f8"),
                ("skew_p95_s", ">f8"),
                ("conflicts", ">i8"),
                ("seq_reuse", ">i8"),
                ("in_service", "?"),
            ]
        )
        for item in ((f"len{i}", ">i4"), (name, kind))
    ]
)


def read_device_days(conn: psycopg.Connection, query: str, params: dict[str, Any]) -> DeviceDays:
    """The rows of a device-day quality query (ending with `DEVICE_DAY_COLUMNS`) as columns
    in (device, day) order, through binary COPY of fixed-width rows: no Python object per
    row."""
    return _device_days(params["ids"], _device_day_rows(conn, query, params))


def _device_day_rows(conn: psycopg.Connection, query: str, params: dict[str, Any]) -> np.ndarray:
    bound = psycopg.ClientCursor(conn).mogrify(query, params)
    with conn.cursor() as cur, cur.copy(f"COPY ({bound}) TO STDOUT (FORMAT BINARY)") as copy:
        data = b"".join(bytes(chunk) for chunk in copy)
    return np.frombuffer(data[_COPY_HEADER : len(data) - 2], _DEVICE_DAY_ROW)


def _device_days(ids: Sequence[str], rows: np.ndarray) -> DeviceDays:
    rows = rows[np.lexsort((rows["day"], rows["device"]))]  # an SQL sort spills to disk
    return DeviceDays.of(
        ids,
        rows["device"],
        rows["day"],
        {k: rows[k] for k in (*QUALITY_COUNTS, "expected", "skew_p50_s", "skew_p95_s")},
        rows["in_service"],
    )
