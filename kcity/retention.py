"""Retention of raw readings on the Apache edition (`kcity retention apply`), which has no
retention policies: a chunk of a readings hypertable is dropped only when every pilot with
rows in it allows it (its `retain_raw_days` horizon has passed the chunk's end) and a
verifying evidence bundle of that pilot holds every one of those rows. Stored results,
per-night and per-day series and rollups are other tables: they stay.

Chunks are shared by the pilots of one kind, so one pilot that keeps its raw data keeps
the chunk. Each decision is one line saying why. The licensed edition (the compose
deployment) uses its own retention policy instead (`kcity.schema`).
"""

from __future__ import annotations

import datetime as dt
import json
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from devices.pilots import Pilot
from kcity.analyses import savings_params
from kcity.errors import DatabaseError
from kcity.evidence.bundle import Bundle
from kcity.evidence.inputs import epoch_us
from kcity.evidence.tables import READINGS
from kcity.registry import get_pilot, list_pilots
from kcity.rollups import refresh
from kcity.savings_cache import baseline_rows_span

TABLES = {kind: table.name for kind, table in READINGS.items()}


@dataclass(frozen=True)
class Chunk:
    table: str
    name: str  # schema-qualified chunk table
    start: dt.datetime
    end: dt.datetime


@dataclass(frozen=True)
class Decision:
    chunk: Chunk
    action: str  # "drop", "keep" (not due) or "refuse" (due, but not safely exported)
    reason: str
    bundles: tuple[str, ...] = ()  # of a drop: the verified exports that hold its rows

    def line(self) -> str:
        span = f"{self.chunk.start:%Y-%m-%d %H:%M}–{self.chunk.end:%Y-%m-%d %H:%M} UTC"
        return f"{self.action:<6} {self.chunk.table} {span}: {self.reason}"


@dataclass(frozen=True)
class Evidence:
    """A bundle found on disk: whose rows of which span it holds (from its manifest)."""

    path: Path
    pilot: str
    table: str
    start: dt.datetime
    end: dt.datetime


def chunks(conn: psycopg.Connection, table: str) -> list[Chunk]:
    rows = conn.execute(
        "SELECT chunk_schema || '.' || chunk_name, range_start, range_end"
        " FROM timescaledb_information.chunks WHERE hypertable_name = %s ORDER BY range_start",
        (table,),
    ).fetchall()
    return [Chunk(table, name, start, end) for name, start, end in rows]


def find_bundles(folder: Path) -> list[Evidence]:
    """Every evidence bundle under `folder` (manifests only; verified when needed)."""
    found = []
    for path in sorted(folder.rglob("*.zip")):
        try:
            with zipfile.ZipFile(path) as z:
                m = json.loads(z.read("manifest.json"))
            start, end = (dt.datetime.fromisoformat(t) for t in m["span_utc"])
            table = TABLES[m["kind"]]
        except (OSError, KeyError, ValueError, zipfile.BadZipFile):
            continue  # not a bundle
        found.append(Evidence(path, m["pilot"], table, start, end))
    return found


def _rows_by_pilot(
    conn: psycopg.Connection, chunk: Chunk
) -> dict[str | None, tuple[int, dt.datetime, dt.datetime]]:
    query = sql.SQL(
        "SELECT d.pilot_id, count(*), min(r.ts), max(r.ts) FROM {} r"
        " LEFT JOIN devices d ON d.id = r.device_id"
        " WHERE r.ts >= %s AND r.ts < %s GROUP BY 1"
    ).format(sql.Identifier(chunk.table))
    rows = conn.execute(query, (chunk.start, chunk.end)).fetchall()
    return {pilot: (int(n), lo, hi) for pilot, n, lo, hi in rows}


def _spans_cover(spans: Iterable[tuple[dt.datetime, dt.datetime]], lo: dt.datetime,
                 hi: dt.datetime) -> bool:  # fmt: skip
    """Whether the union of [start, end) spans holds every instant of [lo, hi]."""
    reach = lo
    for start, end in sorted(spans):
        if start > reach:
            break
        reach = max(reach, end)
        if reach > hi:
            return True
    return False


def _exported_keys(evidence: list[Evidence], chunk: Chunk) -> set[tuple[str, int]]:
    """Distinct (device, time [µs]) rows of the chunk's range the bundles hold."""
    keys: set[tuple[str, int]] = set()
    lo, hi = epoch_us(chunk.start), epoch_us(chunk.end)
    for e in evidence:
        with Bundle(e.path) as bundle:
            table = bundle.table(chunk.table, ["device_id", "ts"])
        ts = pc.cast(table["ts"], pa.int64())
        table = table.filter(pc.and_(pc.greater_equal(ts, lo), pc.less(ts, hi)))
        stamps = np.asarray(pc.cast(table["ts"], pa.int64()).to_numpy(), np.int64).tolist()
        keys.update(zip(table["device_id"].to_pylist(), stamps, strict=True))
    return keys


def _stored_keys(conn: psycopg.Connection, chunk: Chunk, pilot_id: str) -> set[tuple[str, int]]:
    """The pilot's (device, time [µs]) rows in the chunk's range. Compared key by key, not
    by count: after a drop, a late row lands in a new chunk beside no others, and a count
    would call it exported because the bundle holds the dropped rows of that range."""
    query = sql.SQL(
        "SELECT r.device_id, (extract(epoch FROM r.ts) * 1000000)::bigint FROM {} r"
        " JOIN devices d ON d.id = r.device_id"
        " WHERE d.pilot_id = %s AND r.ts >= %s AND r.ts < %s"
    ).format(sql.Identifier(chunk.table))
    rows = conn.execute(query, (pilot_id, chunk.start, chunk.end)).fetchall()
    return {(str(device), int(us)) for device, us in rows}


def _export_hint(pilot: Pilot, chunk: Chunk) -> str:
    zone = ZoneInfo(pilot.timezone)
    frm = chunk.start.astimezone(zone).date()
    to = chunk.end.astimezone(zone).date() + dt.timedelta(days=1)
    return f"kcity export {pilot.id} --from {frm} --to {to} --out {pilot.id}-{frm}-{to}.zip"


def _savings_needs(pilot: Pilot, chunk: Chunk) -> str | None:
    """Why every savings run of the pilot still reads this chunk, if it does: its baseline
    nights, and with a control group everything from them on (the pooled full power)."""
    if pilot.streetlight is None:
        return None
    params = savings_params(pilot)
    if params.baseline_start is None:
        return None
    span = baseline_rows_span(params)
    until = dt.datetime.max.replace(tzinfo=dt.UTC) if params.control_group else span.end
    if chunk.start >= until or chunk.end <= span.start:
        return None
    nights = f"{params.baseline_start}–{params.baseline_end}"
    if params.control_group:
        return (
            f"pilot {pilot.id}'s savings read every row from its baseline ({nights}) on:"
            " its control group's full power is pooled over them"
        )
    return f"holds pilot {pilot.id}'s savings baseline ({nights}), which every savings run reads"


class _Verified:
    """Bundles verified at most once per run (verification re-computes every figure)."""

    def __init__(self, verify: Callable[[Path], bool]) -> None:
        self._verify = verify
        self._seen: dict[Path, bool] = {}

    def __call__(self, path: Path) -> bool:
        if path not in self._seen:
            self._seen[path] = self._verify(path)
        return self._seen[path]


def _decide(
    conn: psycopg.Connection,
    chunk: Chunk,
    pilots: dict[str, Pilot],
    bundles: list[Evidence],
    verified: _Verified,
    now: dt.datetime,
) -> Decision:
    rows = _rows_by_pilot(conn, chunk)
    if not rows:
        return Decision(chunk, "keep", "no rows")
    for pilot_id in sorted(rows, key=str):
        pilot = pilots.get(pilot_id) if pilot_id else None
        if pilot is None:
            return Decision(chunk, "keep", "holds rows of devices no pilot owns")
        if pilot.retain_raw_days is None:
            return Decision(chunk, "keep", f"pilot {pilot.id} keeps raw data (no retain_raw_days)")
        horizon = now - dt.timedelta(days=pilot.retain_raw_days)
        if chunk.end > horizon:
            return Decision(chunk, "keep", f"newer than {pilot.id}'s {pilot.retain_raw_days}-day"
                                           f" horizon ({horizon:%Y-%m-%d %H:%M} UTC)")  # fmt: skip
        needed = _savings_needs(pilot, chunk)
        if needed:
            return Decision(chunk, "keep", needed)
    for pilot_id, (count, lo, hi) in sorted(rows.items(), key=lambda kv: str(kv[0])):
        pilot = pilots[str(pilot_id)]
        mine = [b for b in bundles if b.pilot == pilot.id and b.table == chunk.table
                and b.start <= hi and b.end > lo]  # fmt: skip
        bad = [b.path.name for b in mine if not verified(b.path)]
        good = [b for b in mine if b.path.name not in bad]
        if not _spans_cover(((b.start, b.end) for b in good), lo, hi):
            why = f"; {', '.join(bad)} does not verify" if bad else ""
            return Decision(chunk, "refuse", f"no verifying export of {pilot.id} holds its"
                            f" {count:,} rows{why}; run {_export_hint(pilot, chunk)}")  # fmt: skip
        missing = len(_stored_keys(conn, chunk, pilot.id) - _exported_keys(good, chunk))
        if missing:
            return Decision(chunk, "refuse", f"{missing:,} of {pilot.id}'s {count:,}"
                            " rows arrived after its export; export again"
                            f" ({_export_hint(pilot, chunk)})")  # fmt: skip
    used = [b for b in bundles if b.table == chunk.table and b.pilot in rows
            and b.start < chunk.end and b.end > chunk.start and verified(b.path)]  # fmt: skip
    names = sorted({b.path.name for b in used})
    return Decision(chunk, "drop", f"every row is in a verified export ({', '.join(names)})",
                    tuple(sorted({str(b.path.resolve()) for b in used})))  # fmt: skip


def plan(conn: psycopg.Connection, bundles: list[Evidence], verify: Callable[[Path], bool],
         now: dt.datetime) -> list[Decision]:  # fmt: skip
    """One decision per chunk of every readings hypertable, oldest first."""
    pilots = {s.id: get_pilot(conn, s.id) for s in list_pilots(conn)}
    verified = _Verified(verify)
    out = []
    try:
        for table in TABLES.values():
            for chunk in chunks(conn, table):
                out.append(_decide(conn, chunk, pilots, bundles, verified, now))
    except psycopg.Error as exc:
        raise DatabaseError(f"retention: {str(exc).strip().splitlines()[0]}") from exc
    return out


def drop(conn: psycopg.Connection, decision: Decision) -> None:
    """Drop one chunk with TimescaleDB's own `drop_chunks`, bounded to exactly its range,
    and record the span with its bundles in `raw_dropped` in the same transaction. The
    rollups are brought up to date first: after the drop their buckets there are final."""
    c = decision.chunk
    refresh(conn)
    try:
        conn.execute(
            "SELECT drop_chunks(%s::regclass, older_than => %s::timestamptz,"
            " newer_than => %s::timestamptz)",
            (c.table, c.end, c.start),
        )
        conn.execute(
            "INSERT INTO raw_dropped (table_name, start_ts, end_ts, bundles)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (table_name, start_ts) DO UPDATE"
            " SET end_ts = greatest(raw_dropped.end_ts, excluded.end_ts),"
            " bundles = excluded.bundles, dropped_at = now()",
            (c.table, c.start, c.end, list(decision.bundles)),
        )
        conn.commit()
    except psycopg.Error as exc:
        raise DatabaseError(f"retention: cannot drop {c.name}: {exc}") from exc


__all__ = ["Chunk", "Decision", "Evidence", "chunks", "drop", "find_bundles", "plan"]
