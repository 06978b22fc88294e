"""Each luminaire-night's savings accounting, kept in `savings_nights` (migration 013).

Why: a window of 90 nights read 6.5 million rows for figures that change only where rows
do. A unit (luminaire, night; `analytics.night_accounts`) is kept with its pilot's
`horizon`: every row received before it is in the kept units. A read looks for rows
received since (the BRIN index on `received_at`, migration 007) inside its window, takes
the units they could touch (the local date of each row and the one before) as stale,
and accounts those and the missing ones from their rows; the rest are summed as kept.
Readings are only inserted (DESIGN §5), so nothing else can change a unit. Only stored
runs write (they drop the units touched since the last horizon, keep their window's new
units and move the horizon); a GET computes without writing (DESIGN §8). As with the
rollups, a row committed more than `SLACK_S` after ingest stamped it would be missed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import psycopg

from analytics import queries
from analytics.luminaire_nights import (
    FULL_LEVEL_PCT,
    GAP_FACTOR,
    SOURCES,
    FloatArray,
    IntArray,
    NightTable,
    SavingsParams,
)
from analytics.night_accounts import BURN_FIELDS, DIGEST_BYTES, NightAccounts, account_series
from analytics.nights import NightCalendar
from analytics.savings_baseline import BaselineSummary
from analytics.savings_result import METHOD_VERSION
from kcity.db import index_scans
from kcity.late_commits import lookback
from kcity.rollups import NEXT_HORIZON, SLACK_S

LOCK_ID = 7_240_013
_EPOCH_DAY = date(2000, 1, 1)

# Local dates of rows received since a horizon: their units and the ones before are stale.
# Only `received_at` in the inner scan, so that its BRIN index is what finds them.
_TOUCHED = """
WITH r AS MATERIALIZED (
    SELECT device_id, ts FROM streetlight_readings WHERE received_at >= %(since)s
)
SELECT DISTINCT device_id, (ts AT TIME ZONE %(tz)s)::date FROM r
WHERE device_id = ANY(%(ids)s) AND ts >= %(lo)s AND ts < %(hi)s
"""

_COLUMNS = (
    "night, records, valid, burning, actual_wh, sources[1], sources[2], sources[3],"
    " sources[4], burn_records, burn_power_sum_w, burn_first, burn_last, rows_sha256"
)


def params_key(params: SavingsParams) -> str:
    """What a unit depends on besides its rows: change any and every unit is stale."""
    what = {
        "method_version": METHOD_VERSION,
        "place": [params.timezone, params.latitude, params.longitude],
        "record_interval_s": params.record_interval_s,
        "gap_factor": GAP_FACTOR,
        "full_level_pct": FULL_LEVEL_PCT,
        "day_burning_tolerance_min": params.day_burning_tolerance_min,
        # the baseline rows the same horizon vouches for (`Validity.trusted`)
        "baseline": [str(params.baseline_start), str(params.baseline_end)],
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class NightsRead:
    """How a window's units were had: kept, or accounted from their rows."""

    kept: int
    accounted: int


@dataclass
class _Units:
    """Units by (device, night index), as columns of one luminaire-night each."""

    nights: int
    valid: dict[str, FloatArray]
    burning: dict[str, FloatArray]
    actual: dict[str, FloatArray]
    sources: dict[str, FloatArray]
    digests: dict[str, np.ndarray]
    records: dict[str, IntArray]
    burns: dict[str, FloatArray]
    have: dict[str, np.ndarray]  # which nights are filled

    @classmethod
    def empty(cls, nights: int) -> _Units:
        return cls(nights, {}, {}, {}, {}, {}, {}, {}, {})

    def row(self, device_id: str) -> None:
        if device_id in self.have:
            return
        n = self.nights
        self.valid[device_id] = np.zeros(n)
        self.burning[device_id] = np.zeros(n)
        self.actual[device_id] = np.zeros(n)
        self.sources[device_id] = np.zeros((n, len(SOURCES)))
        self.digests[device_id] = np.zeros((n, DIGEST_BYTES), dtype=np.uint8)
        self.records[device_id] = np.zeros(n, dtype=np.int64)
        self.burns[device_id] = np.zeros((n, len(BURN_FIELDS)))
        self.have[device_id] = np.zeros(n, dtype=bool)


def _horizon(conn: psycopg.Connection, pilot_id: str, key: str) -> datetime | None:
    """Where rows that may have changed kept units are looked for from: the pilot's
    horizon, or the oldest stamp of a late batch committed since (`kcity.late_commits`)."""
    row = conn.execute(
        "SELECT params_key, horizon FROM savings_night_horizons WHERE pilot_id = %s",
        (pilot_id,),
    ).fetchone()
    return lookback(conn, row[1]) if row is not None and row[0] == key else None


def _touched(
    conn: psycopg.Connection,
    ids: Sequence[str],
    tz: str,
    since: datetime,
    lo: datetime,
    hi: datetime,
) -> set[tuple[str, date]]:
    """(device, night) units rows received since `since` in [lo, hi) may have changed
    (through the BRIN index: 30 pages where the planner scanned a bulk-loaded chunk whole,
    0.2 s at 13 M rows)."""
    with index_scans(conn):
        rows = conn.execute(
            _TOUCHED, {"tz": tz, "since": since, "ids": list(ids), "lo": lo, "hi": hi}
        ).fetchall()
    return {(r[0], r[1] - timedelta(days=k)) for r in rows for k in (0, 1)}


def _read_kept(
    conn: psycopg.Connection,
    pilot_id: str,
    ids: Sequence[str],
    calendar: NightCalendar,
    nights: Sequence[int],
    units: _Units,
) -> None:
    """The kept units of `nights` (calendar indices) into `units`."""
    dates = [calendar.dates[n] for n in nights]
    aggs = ", ".join(f"array_agg({c.strip()} ORDER BY night)" for c in _COLUMNS.split(","))
    query = (
        f"SELECT device_id, {aggs} FROM savings_nights WHERE pilot_id = %s"
        " AND device_id = ANY(%s) AND night = ANY(%s) GROUP BY device_id"
    )
    first = calendar.dates[0]
    for device_id, a in queries.copy_arrays(conn, query, (pilot_id, list(ids), dates)):
        units.row(device_id)
        offset = (_EPOCH_DAY - first).days
        cols = a[0].astype(np.int64) + offset
        units.records[device_id][cols] = a[1]
        units.valid[device_id][cols] = a[2]
        units.burning[device_id][cols] = a[3]
        units.actual[device_id][cols] = a[4]
        units.sources[device_id][cols] = np.stack(a[5:9], axis=1)
        units.burns[device_id][cols] = np.stack([a[9].astype(np.float64), *a[10:13]], axis=1)
        units.digests[device_id][cols] = np.frombuffer(a[13].tobytes(), dtype=np.uint8).reshape(
            -1, DIGEST_BYTES
        )
        units.have[device_id][cols] = True


def _runs(nights: Iterable[int]) -> list[tuple[int, int]]:
    """Consecutive runs [a, b] of sorted night indices."""
    out: list[tuple[int, int]] = []
    for n in sorted(set(nights)):
        if out and out[-1][1] == n - 1:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return out


def _account(
    conn: psycopg.Connection,
    stale: dict[str, set[int]],
    calendar: NightCalendar,
    params: SavingsParams,
    units: _Units,
    full: dict[str, list[tuple[int, FloatArray]]],
) -> None:
    """Account the `stale` units (device → night indices, each ≥ 1) from their rows."""
    lead = GAP_FACTOR * params.record_interval_s
    for a, b in _runs(n for nights in stale.values() for n in nights):
        devices = sorted(d for d, nights in stale.items() if nights & set(range(a, b + 1)))
        part = NightCalendar(
            calendar.timezone,
            calendar.dates[a : b + 1],
            calendar.dusk[a : b + 1],
            calendar.dawn[a : b + 1],
        )
        lo = datetime.fromtimestamp(float(calendar.dawn[a - 1]) - 2.0, UTC)
        hi = datetime.fromtimestamp(float(calendar.dawn[b]) + 2.0, UTC)
        series = queries.load_luminaires(conn, devices, lo, hi, part, lead)
        got = account_series(series, calendar, params)
        rows = {d: k for k, d in enumerate(got.device_ids)}
        for device_id in devices:
            units.row(device_id)
            take = np.array(sorted(stale[device_id] & set(range(a, b + 1))), dtype=np.int64)
            units.have[device_id][take] = True
            for column in (units.valid, units.burning, units.actual, units.sources):
                column[device_id][take] = 0.0
            units.digests[device_id][take] = 0
            units.records[device_id][take] = 0
            units.burns[device_id][take] = 0.0
            k = rows.get(device_id)
            if k is None:
                continue  # no rows: zeros
            t = got.table
            units.valid[device_id][take] = t.valid[k, take]
            units.burning[device_id][take] = t.burning[k, take]
            units.actual[device_id][take] = t.actual_wh[k, take]
            units.sources[device_id][take] = t.sources[k, take]
            units.digests[device_id][take] = got.digests[k, take]
            units.records[device_id][take] = got.rows[k, take]
            units.burns[device_id][take] = got.burns[k, take]
            for n in take.tolist():
                full.setdefault(device_id, []).append((n, got.full_w[k][got.full_night[k] == n]))


def _store(
    conn: psycopg.Connection,
    pilot_id: str,
    stale: dict[str, set[int]],
    calendar: NightCalendar,
    units: _Units,
    full: dict[str, list[tuple[int, FloatArray]]],
) -> None:
    samples = {(d, n): w for d, parts in full.items() for n, w in parts}
    gone = [(d, calendar.dates[n]) for d, nights in stale.items() for n in nights]
    conn.execute(
        "DELETE FROM savings_nights n USING unnest(%s::text[], %s::date[]) g(d, t)"
        " WHERE n.pilot_id = %s AND n.device_id = g.d AND n.night = g.t",
        ([d for d, _ in gone], [t for _, t in gone], pilot_id),
    )
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY savings_nights (pilot_id, device_id, night, records, valid, burning,"
            " actual_wh, sources, full_w, burn_records, burn_power_sum_w, burn_first,"
            " burn_last, rows_sha256) FROM STDIN"
        ) as copy,
    ):
        for device_id in sorted(stale):
            for n in sorted(stale[device_id]):
                burn = units.burns[device_id][n]
                copy.write_row(
                    (
                        pilot_id, device_id, calendar.dates[n],
                        int(units.records[device_id][n]),
                        float(units.valid[device_id][n]), float(units.burning[device_id][n]),
                        float(units.actual[device_id][n]),
                        units.sources[device_id][n].tolist(),
                        samples.get((device_id, n), np.empty(0)).tolist(),
                        int(burn[0]), float(burn[1]), float(burn[2]), float(burn[3]),
                        units.digests[device_id][n].tobytes(),
                    )
                )  # fmt: skip


def _full_samples(
    conn: psycopg.Connection,
    pilot_id: str,
    ids: Sequence[str],
    calendar: NightCalendar,
    nights: Sequence[int],
    full: dict[str, list[tuple[int, FloatArray]]],
    stale: dict[str, set[int]],
) -> None:
    """The kept lit 100 % samples of `ids` in `nights`, but for the `stale` units (accounted
    here: theirs are in `full`)."""
    dates = [calendar.dates[n] for n in nights]
    rows = conn.execute(
        "SELECT device_id, night, full_w FROM savings_nights WHERE pilot_id = %s"
        " AND device_id = ANY(%s) AND night = ANY(%s)",
        (pilot_id, list(ids), dates),
    ).fetchall()
    for device_id, night, watts in rows:
        n = calendar.index(night)
        if n not in stale.get(device_id, set()):
            full.setdefault(device_id, []).append((n, np.asarray(watts, dtype=np.float64)))


def _present(
    conn: psycopg.Connection,
    ids: Sequence[str],
    span: tuple[datetime, datetime],
    nights: NightCalendar,
    lead_s: float,
) -> set[str]:
    """Which of `ids` have a row the window's read would load (`queries.load_luminaires`):
    a luminaire with rows in the window but none in its reporting nights still has a row."""
    if not ids:
        return set()
    rows = conn.execute(
        "SELECT d FROM unnest(%s::text[]) d WHERE EXISTS (SELECT 1 FROM streetlight_readings r"
        " WHERE r.device_id = d AND r.ts >= %s AND r.ts < %s"
        " AND (r.lamp_on OR width_bucket(r.ts, %s::timestamptz[]) %% 2 = 1))",
        (list(ids), *span, queries.night_bounds(nights, lead_s)),
    ).fetchall()
    return {r[0] for r in rows}


@dataclass(frozen=True)
class Validity:
    """What kept units, and the baseline rows of `kcity.savings_cache`, are valid for.

    `since`: the pilot's horizon (None: nothing kept with these parameters); `touched`:
    (device, night) units that rows received since may have changed (a read's); `new`: a
    stored run's horizon, kept with its units."""

    since: datetime | None
    touched: frozenset[tuple[str, date]] = frozenset()
    new: datetime | None = None

    def trusted(self, device_ids: Sequence[str], first: date, last: date) -> list[str]:
        """Devices no row received since the horizon touches in the nights `first` … `last`:
        a stored run (which checks every device's baseline rows) left them as they are."""
        if self.since is None:
            return []
        moved = {d for d, night in self.touched if first <= night <= last}
        return [d for d in device_ids if d not in moved]


def stored_run(conn: psycopg.Connection, pilot_id: str, *, slack_s: float = SLACK_S) -> Validity:
    """Begin a stored run: wait for the pilot's other stored runs (a transaction lock), and
    take the horizon its kept units and baseline rows will be valid for."""
    conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (LOCK_ID, pilot_id))
    row = conn.execute(NEXT_HORIZON, (slack_s,)).fetchone()
    assert row is not None
    return Validity(None, new=row[0])


def read_run(
    conn: psycopg.Connection,
    pilot_id: str,
    params: SavingsParams,
    device_ids: Sequence[str],
    span: tuple[datetime, datetime],
) -> Validity:
    """A read's view: the horizon, and the units rows received since touch within `span`."""
    since = _horizon(conn, pilot_id, params_key(params))
    if since is None:
        return Validity(None)
    lo, hi = span[0] - timedelta(days=1), span[1]
    return Validity(since, frozenset(_touched(conn, device_ids, params.timezone, since, lo, hi)))


def night_accounts(
    conn: psycopg.Connection,
    pilot_id: str,
    params: SavingsParams,
    device_ids: Sequence[str],
    calendar: NightCalendar,
    reporting: Sequence[int],
    span: tuple[datetime, datetime],
    baseline: BaselineSummary | None,
    validity: Validity,
    *,
    reuse: bool = True,
) -> tuple[NightAccounts, NightsRead]:
    """The accounts of the `reporting` nights (indices of `calendar`, the computation's) of
    the pilot's luminaires: kept units where `validity` says so (and `reuse`), the rest from
    their rows, and written back in a stored run (`validity.new`; the caller commits).
    `span` is the window's read span (which luminaires appear); the luminaires of `baseline`
    appear too, as in `compute_savings`."""
    key = params_key(params)
    units = _Units.empty(len(calendar))
    full: dict[str, list[tuple[int, FloatArray]]] = {}
    store = validity.new is not None
    since = _horizon(conn, pilot_id, key) if store else validity.since
    touched: frozenset[tuple[str, date]] = frozenset() if store else validity.touched
    if store:
        if since is None:
            conn.execute("DELETE FROM savings_nights WHERE pilot_id = %s", (pilot_id,))
        else:  # every kept unit touched since the last horizon goes, in any window
            far = datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC)
            gone = _touched(conn, device_ids, params.timezone, since, *far)
            if gone:
                conn.execute(
                    "DELETE FROM savings_nights n USING unnest(%s::text[], %s::date[]) g(d, t)"
                    " WHERE n.pilot_id = %s AND n.device_id = g.d AND n.night = g.t",
                    ([d for d, _ in gone], [t for _, t in gone], pilot_id),
                )
    if since is not None and reuse:
        _read_kept(conn, pilot_id, device_ids, calendar, reporting, units)
    stale: dict[str, set[int]] = {}
    for device_id in device_ids:
        have = units.have.get(device_id)
        for n in reporting:
            if have is None or not have[n] or (device_id, calendar.dates[n]) in touched:
                stale.setdefault(device_id, set()).add(n)
    _account(conn, stale, calendar, params, units, full)
    if store:
        _store(conn, pilot_id, stale, calendar, units, full)
        conn.execute(
            "INSERT INTO savings_night_horizons (pilot_id, params_key, horizon)"
            " VALUES (%s, %s, %s) ON CONFLICT (pilot_id) DO UPDATE SET"
            " params_key = excluded.params_key, horizon = excluded.horizon",
            (pilot_id, key, validity.new),
        )
    with_rows = {d for d, r in units.records.items() if r[list(reporting)].any()}
    listed = {b.device_id for b in baseline.luminaires} if baseline is not None else set()
    rest = sorted(set(device_ids) - with_rows - listed)
    reads_nights = NightCalendar(
        calendar.timezone,
        calendar.dates[reporting[0] - 1 : reporting[-1] + 1],
        calendar.dusk[reporting[0] - 1 : reporting[-1] + 1],
        calendar.dawn[reporting[0] - 1 : reporting[-1] + 1],
    )
    present = _present(conn, rest, span, reads_nights, GAP_FACTOR * params.record_interval_s)
    ids = sorted(with_rows | listed | present)
    own = {
        i for i in ids if baseline is None or (b := baseline.get(i)) is None or b.full_power is None
    }
    if own and reuse:
        _full_samples(conn, pilot_id, sorted(own), calendar, reporting, full, stale)
    return _assemble(ids, calendar, units, full), NightsRead(
        len(reporting) * len(device_ids) - sum(len(s) for s in stale.values()),
        sum(len(s) for s in stale.values()),
    )


def _assemble(
    ids: Sequence[str],
    calendar: NightCalendar,
    units: _Units,
    full: dict[str, list[tuple[int, FloatArray]]],
) -> NightAccounts:
    for device_id in ids:
        units.row(device_id)
    shape = (len(ids), len(calendar))
    table = NightTable(
        tuple(ids),
        calendar,
        tuple(np.empty(0, dtype=np.int64) for _ in ids),
        np.stack([units.valid[i] for i in ids]) if ids else np.zeros(shape),
        np.stack([units.burning[i] for i in ids]) if ids else np.zeros(shape),
        np.stack([units.actual[i] for i in ids]) if ids else np.zeros(shape),
        np.stack([units.sources[i] for i in ids]) if ids else np.zeros((*shape, len(SOURCES))),
    )
    full_w, full_night = [], []
    for device_id in ids:
        parts = sorted(full.get(device_id, []), key=lambda p: p[0])
        full_w.append(
            np.concatenate([w for _, w in parts]) if parts else np.empty(0, dtype=np.float64)
        )
        full_night.append(
            np.concatenate([np.full(w.size, n, dtype=np.int64) for n, w in parts])
            if parts
            else np.empty(0, dtype=np.int64)
        )
    digests = (
        np.stack([units.digests[i] for i in ids])
        if ids
        else np.zeros((*shape, DIGEST_BYTES), dtype=np.uint8)
    )
    return NightAccounts(
        table,
        tuple(full_w),
        tuple(full_night),
        np.stack([units.burns[i] for i in ids]) if ids else np.zeros((*shape, len(BURN_FIELDS))),
        digests,
        np.stack([units.records[i] for i in ids]) if ids else np.zeros(shape, dtype=np.int64),
    )


__all__ = [
    "LOCK_ID",
    "NightsRead",
    "Validity",
    "night_accounts",
    "params_key",
    "read_run",
    "stored_run",
]
