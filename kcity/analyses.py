"""Running the analytics for a pilot and window: read the registry, load arrays through
`analytics.queries`, compute, persist with method version, parameters and input hash.

The CLI, the API, the reports and the demo all come through here, so their numbers agree.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from analytics import queries
from analytics.coverage import CoverageParams, CoverageResult, compute_coverage
from analytics.luminaire_nights import GAP_FACTOR, FloatArray, PoolSource, pool_parts
from analytics.nights import NightCalendar, night_calendar
from analytics.quality import METHOD as QUALITY_METHOD
from analytics.quality import DeviceDay, DeviceDays, QualityResult, RegisteredDevice
from analytics.results import input_hash, save_result
from analytics.savings import (
    LuminaireSeries,
    NonRoutineEvent,
    SavingsParams,
    SavingsResult,
    combine_savings,
    compute_savings,
)
from analytics.savings_baseline import BaselineSummary
from analytics.savings_frame import savings_calendar
from analytics.tracks import DroneSeries
from devices.pilots import Pilot
from kcity import quality_days, rollups
from kcity.device_commands import profiles_by_night
from kcity.dropped import require_raw
from kcity.registry import get_pilot
from kcity.savings_cache import BaselineRead, baseline_rows_span, baseline_summary
from kcity.savings_nights import Validity, night_accounts, read_run, stored_run
from kcity.window import Window, WindowError


def _devices(conn: psycopg.Connection, pilot_id: str) -> list[str]:
    rows = conn.execute("SELECT id FROM devices WHERE pilot_id = %s ORDER BY id", (pilot_id,))
    return [r[0] for r in rows.fetchall()]


def _registered(conn: psycopg.Connection, pilot_id: str) -> list[RegisteredDevice]:
    """Every registered device of the pilot with its service dates: what is expected."""
    rows = conn.execute(
        "SELECT id, commissioned_on, decommissioned_on FROM devices WHERE pilot_id = %s"
        " ORDER BY id",
        (pilot_id,),
    )
    return [RegisteredDevice(*r) for r in rows.fetchall()]


def _require_kind(pilot: Pilot, kind: str, what: str) -> None:
    if pilot.kind != kind:
        raise WindowError(f"{what} needs a {kind} pilot; {pilot.id} is a {pilot.kind} pilot")


def savings_params(pilot: Pilot) -> SavingsParams:
    sl = pilot.streetlight
    assert sl is not None
    return SavingsParams(
        timezone=pilot.timezone,
        latitude=pilot.latitude,
        longitude=pilot.longitude,
        rated_power_w=sl.rated_power_w,
        record_interval_s=float(sl.record_interval_s),
        control_group=tuple(sl.control_group),
        baseline_start=sl.baseline_start,
        baseline_end=sl.baseline_end,
        road_area_m2=sl.road_area_m2,
        grid_kg_co2_per_kwh=sl.grid_kg_co2_per_kwh,
        tariff_per_kwh=sl.tariff_per_kwh,
        currency=sl.currency,
    )


def savings_span(pilot: Pilot, window: Window) -> tuple[datetime, datetime]:
    """The UTC span of every row savings may read: the window's nights and the baseline
    window's, wherever it lies (the control group's pooled full power reads all of it)."""
    params = savings_params(pilot)
    first = min(window.start, params.baseline_start or window.start)
    last = max(window.end, (params.baseline_end or window.start) + timedelta(days=1))
    return Window(first, last).utc(pilot.timezone, extra_days=1)


@dataclass(frozen=True)
class SavingsReads:
    """What one savings computation reads: the window's rows (its nights, `lead_s` before
    each dusk, and its lamp-on records) in [start, end), the baseline nights' rows (or a
    summary of them), and the control group's lamp-on rows over `pool_span` if needed."""

    start: datetime
    end: datetime
    nights: NightCalendar
    lead_s: float
    baseline: BaselineRead | None
    pool_span: tuple[datetime, datetime]
    control: tuple[str, ...]


def savings_reads(pilot: Pilot, window: Window) -> SavingsReads:
    params = savings_params(pilot)
    start, end = window.utc(pilot.timezone, extra_days=1)
    nights = night_calendar(
        window.start - timedelta(days=1),
        window.end - timedelta(days=1),
        timezone=params.timezone,
        latitude=params.latitude,
        longitude=params.longitude,
    )
    baseline = baseline_rows_span(params) if params.baseline_start else None
    lead = GAP_FACTOR * params.record_interval_s
    span = savings_span(pilot, window)
    return SavingsReads(start, end, nights, lead, baseline, span, params.control_group)


def savings_from(
    pilot: Pilot,
    window: Window,
    series: Sequence[LuminaireSeries],
    events: Sequence[NonRoutineEvent],
    expected: Sequence[str] = (),
    *,
    baseline: BaselineSummary | None = None,
    pool: PoolSource | None = None,
) -> tuple[dict[str, Any], SavingsResult]:
    """Savings from loaded rows: the one call the database path and `kcity verify` share.
    `expected`: the registered luminaires (a silent treated one is named, not dropped)."""
    result = compute_savings(
        series,
        events,
        savings_params(pilot),
        window.start,
        window.end,
        expected,
        baseline=baseline,
        pool=pool,
    )
    return _savings_body(pilot, window, result), result


def _savings_body(pilot: Pilot, window: Window, result: SavingsResult) -> dict[str, Any]:
    return {**result.to_json(), **window.keys(pilot.id), "window": window.describe(pilot.timezone)}


def run_savings(
    conn: psycopg.Connection,
    pilot_id: str,
    window: Window,
    *,
    persist: bool = True,
    reuse_baseline: bool = True,
) -> tuple[dict[str, Any], SavingsResult]:
    """Savings of a window; the baseline summary comes from `kcity.savings_cache` and the
    reporting nights' accounts from `kcity.savings_nights` where they are still valid
    (`reuse_baseline`; without it, every row is read as before both existed), and a stored
    run writes both back."""
    pilot = get_pilot(conn, pilot_id)
    _require_kind(pilot, "streetlight", "savings")
    params = savings_params(pilot)
    ids = _devices(conn, pilot.id)
    reads = savings_reads(pilot, window)
    require_raw(conn, pilot.kind, reads.start, reads.end, "savings")
    if reads.baseline is not None:
        require_raw(conn, pilot.kind, reads.baseline.start, reads.baseline.end, "its baseline")
    if params.control_group:
        require_raw(conn, pilot.kind, *reads.pool_span, "its control group's pool")
    nights = reuse_baseline or persist  # from kept luminaire-nights, else every row as before
    span = (reads.start, reads.end)
    if reads.baseline is not None:
        span = (min(span[0], reads.baseline.start), max(span[1], reads.baseline.end))
    validity = (
        stored_run(conn, pilot.id)
        if persist
        else read_run(conn, pilot.id, params, ids, span)
        if reuse_baseline
        else Validity(None)
    )
    baseline = None
    if params.baseline_start is not None and params.baseline_end is not None:
        trusted = validity.trusted(
            ids, params.baseline_start - timedelta(days=1), params.baseline_end + timedelta(days=1)
        )
        baseline, _ = baseline_summary(
            conn, pilot.id, params, ids, reuse=reuse_baseline, store=persist, trusted=trusted
        )
    events = queries.load_events(conn, ids, reads.start, reads.end)
    control = set(params.control_group)

    def pool() -> list[FloatArray]:
        lit = queries.load_lamp_on(conn, sorted(control & set(ids)), *reads.pool_span)
        return pool_parts(lit, control)

    if nights:
        calendar = savings_calendar(params, window.start, window.end)
        first = calendar.index(window.start)
        reporting = list(range(first, first + (window.end - window.start).days))
        accounts, _ = night_accounts(
            conn,
            pilot.id,
            params,
            ids,
            calendar,
            reporting,
            (reads.start, reads.end),
            baseline,
            validity,
            reuse=reuse_baseline,
        )
        result = combine_savings(
            accounts, events, params, window.start, window.end, ids, baseline=baseline, pool=pool
        )
        body = _savings_body(pilot, window, result)
    else:
        series = queries.load_luminaires(
            conn, ids, reads.start, reads.end, reads.nights, reads.lead_s
        )
        body, result = savings_from(
            pilot, window, series, events, ids, baseline=baseline, pool=pool
        )
    # What was commanded beside what was measured: the dimming profiles in force per night.
    days = [window.start + timedelta(days=d) for d in range((window.end - window.start).days)]
    body["dimming_profiles"] = profiles_by_night(conn, pilot.id, days, pilot.timezone)
    if persist:
        body["result_id"] = _persist(conn, pilot.id, "savings", window, asdict(params), body)
        _upsert(
            conn,
            "savings_nightly",
            "night",
            pilot.id,
            result.per_night,
            ("actual_kwh", "baseline_kwh", "savings_kwh", "luminaires"),
        )
        conn.commit()
    return body, result


def coverage_params(pilot: Pilot) -> CoverageParams:
    d = pilot.drone
    assert d is not None
    return CoverageParams(
        aoi=d.aoi,
        border=d.border,
        record_interval_s=d.record_interval_s,
        hfov_deg=d.hfov_deg,
        max_gap_s=d.max_gap_s,
        max_speed_mps=d.max_speed_mps,
        grid_cell_m=d.grid_cell_m,
        timezone=pilot.timezone,
        sensor=d.sensor,
        epsg=d.epsg,
    )


def coverage_from(
    pilot: Pilot, window: Window, series: Sequence[DroneSeries], detections: int
) -> tuple[dict[str, Any], CoverageResult]:
    """Coverage from loaded rows: the one call the database path and `kcity verify` share."""
    start_utc, end_utc = window.utc(pilot.timezone)
    result = compute_coverage(
        series,
        coverage_params(pilot),
        start_utc.timestamp(),
        end_utc.timestamp(),
        detections=detections,
    )
    body = {**result.to_json(), **window.keys(pilot.id)}
    if not any(len(s) for s in series):
        body["warnings"] = [
            f"no drone records of pilot {pilot.id} from {window.start} to {window.end} "
            f"(local dates, {pilot.timezone}); the figures are empty, not measured zeros",
            *body["warnings"],
        ]
    return body, result


def run_coverage(
    conn: psycopg.Connection, pilot_id: str, window: Window, *, persist: bool = True
) -> tuple[dict[str, Any], CoverageResult]:
    pilot = get_pilot(conn, pilot_id)
    _require_kind(pilot, "hybrid_drone", "coverage")
    params = coverage_params(pilot)
    start_utc, end_utc = window.utc(pilot.timezone)
    require_raw(conn, pilot.kind, start_utc, end_utc, "coverage")
    ids = _devices(conn, pilot.id)
    series = queries.load_drones(conn, ids, start_utc, end_utc)
    detections = queries.count_events(conn, ids, "detection", start_utc, end_utc)
    body, result = coverage_from(pilot, window, series, detections)
    if persist:
        parameters = {k: v for k, v in asdict(params).items() if k not in ("aoi", "border")}
        body["result_id"] = _persist(
            conn, pilot.id, "coverage", window, parameters, body, method="patrol-coverage"
        )
        _upsert(
            conn,
            "coverage_daily",
            "day",
            pilot.id,
            body["per_day"],
            (
                "covered_km2",
                "area_coverage_pct",
                "linear_coverage_pct",
                "flight_hours",
                "battery_kwh",
                "generator_kwh",
                "fuel_l",
            ),
        )
        conn.commit()
    return body, result


def quality_interval(pilot: Pilot) -> float | None:
    """The nominal record interval data quality expects [s], if the kind has one."""
    if pilot.streetlight:
        return pilot.streetlight.record_interval_s
    return pilot.drone.record_interval_s if pilot.drone else None


def quality_from(
    pilot: Pilot,
    window: Window,
    rows: DeviceDays | Sequence[DeviceDay],
    devices: Sequence[RegisteredDevice] = (),
    skew: Mapping[int, int] | None = None,
) -> dict[str, Any]:
    """Quality from counted rows: the one call the database path and `kcity verify` share."""
    days = rows if isinstance(rows, DeviceDays) else DeviceDays.from_rows(rows)
    body = {
        **QualityResult(days, tuple(devices), dict(skew or {})).to_json(),
        **window.keys(pilot.id),
        "window": window.describe(pilot.timezone),
    }
    body["input_hash"] = input_hash(days.hash_arrays())
    return body


def run_quality(
    conn: psycopg.Connection,
    pilot_id: str,
    window: Window,
    *,
    persist: bool = True,
    from_rollup: bool = True,
) -> dict[str, Any]:
    """Quality of the window: from the per-device-day rollup, refreshed first so that
    nothing committed is missed; `from_rollup=False` counts the raw rows instead (the
    full recomputation the rollup is held to)."""
    pilot = get_pilot(conn, pilot_id)
    interval = quality_interval(pilot)
    devices = _registered(conn, pilot.id)
    ids = [d.device_id for d in devices]
    args: dict[str, Any] = {
        "kind": pilot.kind,
        "devices": devices,
        "timezone": pilot.timezone,
        "interval_s": interval,
        "start": window.start,
        "end": window.end,
    }
    if from_rollup:
        rollups.refresh(conn)
        rows = quality_days.quality_rows(conn, **args)
        skew = quality_days.skew_histogram(conn, device_ids=ids, start=window.start, end=window.end)
    else:  # the rollup keeps days whose raw rows were dropped; a recount cannot
        require_raw(conn, pilot.kind, *window.utc(pilot.timezone), "quality")
        rows = queries.quality_rows(conn, **args)
        skew = quality_days.skew_histogram_raw(
            conn,
            kind=pilot.kind,
            device_ids=ids,
            timezone=pilot.timezone,
            start=window.start,
            end=window.end,
        )
    body = quality_from(pilot, window, rows, devices, skew)
    if persist:
        parameters = {"record_interval_s": interval, "timezone": pilot.timezone}
        body["result_id"] = _persist(
            conn,
            pilot.id,
            "quality",
            window,
            parameters,
            body,
            method=QUALITY_METHOD,
            digest=body["input_hash"],
        )
        conn.commit()
    return body


def latest_result(conn: psycopg.Connection, pilot_id: str, analysis: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT result FROM analytics_results WHERE pilot_id = %s AND analysis = %s"
        " ORDER BY computed_at DESC LIMIT 1",
        (pilot_id, analysis),
    ).fetchone()
    return None if row is None else dict(row[0])


def latest_headline(
    conn: psycopg.Connection, pilot_id: str, analysis: str
) -> dict[str, Any] | None:
    """The latest stored result without its tables (`analytics_summary`, kept by a trigger):
    what a page or panel showing figures needs, at a few hundred bytes instead of megabytes.
    `table_rows` counts each table left out; `result_id` names the full document."""
    row = conn.execute(
        "SELECT result_id, headline FROM analytics_summary WHERE pilot_id = %s"
        " AND analysis = %s ORDER BY computed_at DESC, result_id DESC LIMIT 1",
        (pilot_id, analysis),
    ).fetchone()
    return None if row is None else {**dict(row[1]), "result_id": row[0]}


def _persist(
    conn: psycopg.Connection,
    pilot_id: str,
    analysis: str,
    window: Window,
    parameters: dict[str, Any],
    body: dict[str, Any],
    *,
    method: str | None = None,
    digest: str | None = None,
) -> int:
    """Store a result with its method version, parameters and input hash; return its id."""
    return save_result(
        conn,
        pilot_id=pilot_id,
        analysis=analysis,
        method=method or str(body["method"]),
        method_version=str(body["method_version"]),
        window=(window.start, window.end),
        parameters=json.loads(json.dumps(parameters, default=str)),
        input_digest=digest or str(body["input_sha256"]),
        result=body,
    )


def _upsert(
    conn: psycopg.Connection,
    table: str,
    key: str,
    pilot_id: str,
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
) -> None:
    """Replace the per-night or per-day series of the latest run, for the dashboards."""
    names = sql.SQL(", ").join(map(sql.Identifier, ("pilot_id", key, *columns)))
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = excluded.{0}").format(sql.Identifier(c)) for c in columns
    )
    query = sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT (pilot_id, {}) DO UPDATE SET {}")
    with conn.cursor() as cur:
        cur.executemany(
            query.format(
                sql.Identifier(table),
                names,
                sql.SQL(", ").join(sql.Placeholder() * (len(columns) + 2)),
                sql.Identifier(key),
                updates,
            ),
            [(pilot_id, row[key], *(row[c] for c in columns)) for row in rows],
        )


__all__ = [
    "Window",
    "WindowError",
    "latest_headline",
    "latest_result",
    "run_coverage",
    "run_quality",
    "run_savings",
]
