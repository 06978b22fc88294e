"""The baseline summary of a streetlight pilot, kept in `savings_baseline_cache`.

Why: each luminaire's full power and baseline-night accounting
(`analytics.savings_baseline`) change only when the baseline window's rows do, yet every
savings window needs them. A summary row per luminaire is keyed on the count and latest
`received_at` of its records in the baseline span (readings are only inserted, DESIGN §5),
so a late record inside the window invalidates exactly that luminaire; a changed baseline
window, place, interval or method version invalidates all. Only runs that store results
write here — a GET computes without writing (DESIGN §8) and reads what is valid.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import psycopg

from analytics import queries
from analytics.luminaire_nights import (
    FULL_LEVEL_PCT,
    GAP_FACTOR,
    MIN_FULL_POWER_SAMPLES,
    SOURCES,
    FullPower,
    SavingsParams,
)
from analytics.nights import NightCalendar
from analytics.savings_baseline import (
    BaselineLuminaire,
    BaselineSummary,
    baseline_calendar,
    summarise_baseline,
)
from analytics.savings_result import METHOD_VERSION

Mark = tuple[int, datetime]


@dataclass(frozen=True)
class BaselineRead:
    """Where a baseline summary's rows are and how the reads went."""

    calendar: NightCalendar
    start: datetime
    end: datetime
    lead_s: float
    reused: int = 0
    summarised: int = 0


def baseline_rows_span(params: SavingsParams) -> BaselineRead:
    """The baseline nights and the UTC span of their rows, lead before each dusk included."""
    calendar = baseline_calendar(params)
    lead = GAP_FACTOR * params.record_interval_s
    start = datetime.fromtimestamp(float(calendar.dusk[0]) - lead - 2.0, UTC)
    end = datetime.fromtimestamp(float(calendar.dawn[-1]) + 2.0, UTC)
    return BaselineRead(calendar, start, end, lead)


def params_key(params: SavingsParams) -> str:
    """What a summary depends on besides the rows: change any and every row is stale."""
    what = {
        "method_version": METHOD_VERSION,
        "baseline": [str(params.baseline_start), str(params.baseline_end)],
        "place": [params.timezone, params.latitude, params.longitude],
        "record_interval_s": params.record_interval_s,
        "gap_factor": GAP_FACTOR,
        "min_full_power_samples": MIN_FULL_POWER_SAMPLES,
        "full_level_pct": FULL_LEVEL_PCT,
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()


def _cached(
    conn: psycopg.Connection, pilot_id: str, key: str, nights: Sequence[object]
) -> dict[str, tuple[Mark, BaselineLuminaire | None]]:
    rows = conn.execute(
        "SELECT device_id, records, last_received, in_nights, valid, burning, actual_wh,"
        " sources, full_power_w, full_power_samples, full_power_se_w, rows_sha256"
        " FROM savings_baseline_cache WHERE pilot_id = %s AND params_key = %s AND nights = %s",
        (pilot_id, key, list(nights)),
    ).fetchall()
    out: dict[str, tuple[Mark, BaselineLuminaire | None]] = {}
    for r in rows:
        lum = None
        if r[3]:
            fp = None if r[8] is None else FullPower(r[8], "baseline", r[9], r[10], 0.0)
            lum = BaselineLuminaire(
                device_id=r[0],
                valid=np.array(r[4], dtype=np.float64),
                burning=np.array(r[5], dtype=np.float64),
                actual_wh=np.array(r[6], dtype=np.float64),
                sources=np.array(r[7], dtype=np.float64).reshape(-1, len(SOURCES)),
                full_power=fp,
                sha256=r[11],
            )
        out[r[0]] = ((int(r[1]), r[2]), lum)
    return out


def _store(
    conn: psycopg.Connection,
    pilot_id: str,
    key: str,
    summary: BaselineSummary,
    marks: dict[str, Mark],
    stale: Sequence[str],
) -> None:
    """Upsert the rows of `stale` luminaires (in device order: concurrent stored runs wait
    for each other, never deadlock or collide); drop those without baseline records now."""
    conn.execute(
        "DELETE FROM savings_baseline_cache WHERE pilot_id = %s"
        " AND (params_key <> %s OR device_id <> ALL(%s))",
        (pilot_id, key, list(marks)),
    )
    nights, empty = list(summary.nights), [0.0] * len(summary.nights)
    rows = []
    for device_id in stale:
        b = summary.get(device_id)
        fp = None if b is None else b.full_power
        rows.append(
            (
                pilot_id, device_id, key, *marks[device_id], b is not None, nights,
                empty if b is None else b.valid.tolist(),
                empty if b is None else b.burning.tolist(),
                empty if b is None else b.actual_wh.tolist(),
                [0.0] * len(empty) * len(SOURCES) if b is None else b.sources.ravel().tolist(),
                None if fp is None else fp.watts,
                None if fp is None else fp.samples,
                None if fp is None else fp.se_independent,
                "" if b is None else b.sha256,
            )
        )  # fmt: skip
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO savings_baseline_cache (pilot_id, device_id, params_key, records,"
            " last_received, in_nights, nights, valid, burning, actual_wh, sources,"
            " full_power_w, full_power_samples, full_power_se_w, rows_sha256)"
            " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
            " ON CONFLICT (pilot_id, device_id) DO UPDATE SET (params_key, records,"
            " last_received, in_nights, nights, valid, burning, actual_wh, sources,"
            " full_power_w, full_power_samples, full_power_se_w, rows_sha256, computed_at) ="
            " (excluded.params_key, excluded.records, excluded.last_received,"
            " excluded.in_nights, excluded.nights, excluded.valid, excluded.burning,"
            " excluded.actual_wh, excluded.sources, excluded.full_power_w,"
            " excluded.full_power_samples, excluded.full_power_se_w, excluded.rows_sha256,"
            " now())",
            rows,
        )


def baseline_summary(
    conn: psycopg.Connection,
    pilot_id: str,
    params: SavingsParams,
    device_ids: Sequence[str],
    *,
    reuse: bool = True,
    store: bool = False,
    trusted: Collection[str] = (),
) -> tuple[BaselineSummary, BaselineRead]:
    """The pilot's baseline summary: valid cached rows reused (`reuse`), the rest summarised
    from their rows, and written back when `store` (the caller commits). The cached rows of
    `trusted` devices are taken as valid without counting their rows: no row reached their
    baseline span since the last stored run checked them (`kcity.savings_nights.Validity`)."""
    read = baseline_rows_span(params)
    key = params_key(params)
    if not reuse and not store:  # from scratch, nothing kept: no need to know the marks
        marks: dict[str, Mark] = {}
        fresh: dict[str, BaselineLuminaire | None] = {}
        stale = sorted(device_ids)
    else:
        vouched = set() if store else set(trusted) & set(device_ids)
        check = [d for d in device_ids if d not in vouched]
        marks = queries.arrival_marks(conn, check, read.start, read.end) if check else {}
        cached = _cached(conn, pilot_id, key, read.calendar.dates) if reuse else {}
        fresh = {
            d: lum for d, (mark, lum) in cached.items() if d in vouched or marks.get(d) == mark
        }
        stale = sorted(set(marks) - set(fresh))
    rows = queries.load_luminaires(
        conn, stale, read.start, read.end, read.calendar, read.lead_s, every_lamp_on=False
    )
    new = summarise_baseline(rows, params)
    kept = [lum for lum in fresh.values() if lum is not None]
    summary = BaselineSummary(
        new.nights, tuple(sorted([*kept, *new.luminaires], key=lambda b: b.device_id))
    )
    if store:
        _store(conn, pilot_id, key, new, marks, stale)
    return summary, BaselineRead(
        read.calendar, read.start, read.end, read.lead_s, len(fresh), len(stale)
    )


__all__ = ["BaselineRead", "baseline_rows_span", "baseline_summary", "params_key"]
