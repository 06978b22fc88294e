"""The few extra queries an evaluation report needs beyond the analytics results.

Savings and coverage come from `kcity.analyses` (so the report shows the numbers of
`--json`); what they do not carry — the operating profile by hour of night (EN 13201-5
Annex D asks for it) and the completeness of every luminaire-night — is read here, with
the same night boundaries as the savings method so the completeness map matches the
excluded-nights list.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, LiteralString

import numpy as np
import numpy.typing as npt
import psycopg

from analytics.nights import NightCalendar
from kcity.errors import DatabaseError

FloatArray = npt.NDArray[np.float64]
NIGHT_HOURS = (*range(12, 24), *range(0, 12))  # local hours in the order a night runs


@dataclass(frozen=True)
class HourProfile:
    """Per night (rows) and local hour of night (columns): mean dim level of the treated
    luminaires while lit [%] and vehicle detections per luminaire-hour (NaN: no data)."""

    nights: tuple[dt.date, ...]
    hours: tuple[int, ...]
    dim_pct: FloatArray
    vehicles_per_h: FloatArray


@dataclass(frozen=True)
class CompletenessGrid:
    """Share of expected records [%] per luminaire (rows) and night (columns)."""

    device_ids: tuple[str, ...]
    nights: tuple[dt.date, ...]
    pct: FloatArray


def _rows(conn: psycopg.Connection, sql: LiteralString, params: dict[str, Any]) -> list[Any]:
    try:
        return conn.execute(sql, params).fetchall()
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DatabaseError(f"report query failed: {first}") from exc


_PROFILE_SQL: LiteralString = """
SELECT ((ts AT TIME ZONE %(tz)s) - interval '12 hours')::date AS night,
       extract(hour FROM time_bucket('1 hour', ts, %(tz)s) AT TIME ZONE %(tz)s)::int AS hour,
       avg(dim_pct) FILTER (WHERE device_id = ANY(%(treated)s)) AS dim,
       sum(vehicles)::float8 / nullif(count(vehicles), 0) * 3600.0 / %(interval)s AS per_h
FROM streetlight_readings
WHERE device_id = ANY(%(ids)s) AND lamp_on
  AND ts >= (%(start)s::timestamp AT TIME ZONE %(tz)s)
  AND ts < (%(end)s::timestamp AT TIME ZONE %(tz)s)
GROUP BY 1, 2
"""


def hour_profile(
    conn: psycopg.Connection,
    *,
    device_ids: Sequence[str],
    treated_ids: Sequence[str],
    timezone: str,
    interval_s: float,
    start: dt.date,
    end: dt.date,
) -> HourProfile:
    """Dim level and traffic by local hour for the nights of local dates [start, end).

    A night here runs from local noon to the next noon (lamps burn only in the dark part),
    and a record falls in the hour bucket of its timestamp (``time_bucket`` in local time).
    """
    noon = dt.time(12)
    rows = _rows(conn, _PROFILE_SQL, {
        "tz": timezone, "ids": list(device_ids), "treated": list(treated_ids),
        "interval": float(interval_s),
        "start": dt.datetime.combine(start, noon), "end": dt.datetime.combine(end, noon),
    })  # fmt: skip
    return profile_from_rows(rows, start, end)


def profile_from_rows(
    rows: Sequence[tuple[dt.date, int, float | None, float | None]], start: dt.date, end: dt.date
) -> HourProfile:
    """The profile grid of (night, local hour, mean dim of treated, vehicles per hour) rows."""
    nights = tuple(start + dt.timedelta(days=k) for k in range((end - start).days))
    present = {int(r[1]) for r in rows}
    order = [h for h in NIGHT_HOURS if h in present]
    hours = tuple(NIGHT_HOURS[NIGHT_HOURS.index(order[0]) : NIGHT_HOURS.index(order[-1]) + 1]
                  if order else ())  # fmt: skip
    dim = np.full((len(nights), len(hours)), np.nan)
    per_h = np.full_like(dim, np.nan)
    for night, hour, mean_dim, rate in rows:
        if night in nights and hour in hours:
            i, j = nights.index(night), hours.index(hour)
            dim[i, j] = np.nan if mean_dim is None else float(mean_dim)
            per_h[i, j] = np.nan if rate is None else float(rate)
    return HourProfile(nights, hours, dim, per_h)


_COMPLETENESS_SQL: LiteralString = """
WITH n AS (
    SELECT * FROM unnest(%(nights)s::date[], %(dusk)s::timestamptz[], %(dawn)s::timestamptz[])
        AS n(night, dusk, dawn)
)
SELECT r.device_id, n.night, count(*)
FROM n JOIN streetlight_readings r ON r.ts > n.dusk AND r.ts <= n.dawn
WHERE r.device_id = ANY(%(ids)s)
GROUP BY 1, 2
"""


def night_completeness(
    conn: psycopg.Connection,
    *,
    device_ids: Sequence[str],
    calendar: NightCalendar,
    interval_s: float,
) -> CompletenessGrid:
    """Records between sunset and sunrise ÷ expected records, per luminaire and night.

    Same rule as the savings method: a record stamped ``ts`` covers the interval ending at
    ``ts``, so night n holds ``dusk < ts <= dawn``, and a complete night has
    ⌊night length / interval⌋ of them; the share is capped at 100 %.
    """
    ids = tuple(sorted(device_ids))
    utc = dt.UTC
    rows = _rows(conn, _COMPLETENESS_SQL, {
        "nights": list(calendar.dates), "ids": list(ids),
        "dusk": [dt.datetime.fromtimestamp(t, utc) for t in calendar.dusk.tolist()],
        "dawn": [dt.datetime.fromtimestamp(t, utc) for t in calendar.dawn.tolist()],
    })  # fmt: skip
    return grid_from_counts(rows, ids, calendar, interval_s)


def grid_from_counts(
    rows: Sequence[tuple[str, dt.date, int]],
    ids: Sequence[str],
    calendar: NightCalendar,
    interval_s: float,
) -> CompletenessGrid:
    """The completeness grid of (device, night, records in the night) rows; `ids` sorted."""
    ids = tuple(ids)
    counts = np.zeros((len(ids), len(calendar)))
    for device, night, n in rows:
        counts[ids.index(device), calendar.index(night)] = n
    expected = np.maximum(np.floor(calendar.hours * 3600.0 / interval_s), 1.0)
    pct = 100.0 * np.minimum(counts / expected[None, :], 1.0)
    return CompletenessGrid(ids, calendar.dates, pct)


__all__ = ["CompletenessGrid", "HourProfile", "grid_from_counts", "hour_profile",
           "night_completeness", "profile_from_rows"]  # fmt: skip
