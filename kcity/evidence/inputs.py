"""The analyses' inputs built from a bundle's tables, row for row what `analytics.queries`
loads from the database (same selection, same order, same float arithmetic), so that a
re-computation hashes to the stored result's `input_sha256`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from analytics.nights import NightCalendar
from analytics.quality import DeviceDay, RegisteredDevice
from analytics.quality_count import (
    DeadLetters,
    Messages,
    Readings,
    count_device_days,
    skew_histogram,
)
from analytics.queries import _MODES, night_bounds
from analytics.savings import LuminaireSeries, NonRoutineEvent
from analytics.tracks import DroneSeries

_PG_EPOCH_US = 946_684_800_000_000
_PG_EPOCH = 946_684_800.0


def _us(column: Any) -> np.ndarray:
    """Epoch microseconds of a timestamp column (nulls as the minimum int64)."""
    ints = pc.cast(column, pa.int64())
    return np.asarray(ints.fill_null(np.iinfo(np.int64).min).to_numpy(), dtype=np.int64)


def _f64(table: pa.Table, name: str) -> np.ndarray:
    return np.asarray(pc.cast(table[name], pa.float64()).fill_null(np.nan).to_numpy(), np.float64)


def _str(table: pa.Table, name: str, null: str = "") -> np.ndarray:
    """A text column as a numpy string array, built from its dictionary (few distinct
    values: device ids, modes), not value by value."""
    names, codes = _dictionary(table[name].fill_null(null))
    values: np.ndarray = names[codes]
    return values


def _dictionary(column: Any) -> tuple[np.ndarray, np.ndarray]:
    """(distinct values in code-point order, each row's index into them)."""
    encoded = pc.dictionary_encode(column).combine_chunks()
    names = np.array(encoded.dictionary.to_pylist(), dtype=str)
    order = np.argsort(names, kind="stable")
    rank = np.empty(len(names), dtype=np.int64)
    rank[order] = np.arange(len(names))
    codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    return names[order], rank[codes]


def epoch_us(when: dt.datetime) -> int:
    """Exact epoch microseconds of an aware datetime."""
    return (when - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)


def _pg_seconds(ts_us: np.ndarray) -> np.ndarray:
    """Epoch seconds as the binary-COPY loader computes them from PostgreSQL's epoch."""
    return (ts_us - _PG_EPOCH_US).astype(np.float64) / 1e6 + _PG_EPOCH


def _window(
    table: pa.Table, ids: Sequence[str], start: dt.datetime, end: dt.datetime
) -> tuple[pa.Table, np.ndarray]:
    """Rows of `ids` in [start, end), sorted by device and time, and their epoch µs."""
    ts = _us(table["ts"])
    lo, hi = epoch_us(start), epoch_us(end)
    mine = pc.is_in(table["device_id"], value_set=pa.array(list(ids), pa.string()))
    keep = np.asarray(mine.to_numpy(zero_copy_only=False), bool) & (ts >= lo) & (ts < hi)
    table, ts = table.filter(pa.array(keep)), ts[keep]
    _, device = _dictionary(table["device_id"])
    order = np.lexsort((ts, device))
    return table.take(pa.array(order)), ts[order]


def _split(table: pa.Table) -> list[tuple[str, slice]]:
    """Each device's slice of rows sorted by device."""
    names, device = _dictionary(table["device_id"])
    _, first, counts = np.unique(device, return_index=True, return_counts=True)
    return [(str(names[device[i]]), slice(i, i + n)) for i, n in zip(first, counts, strict=True)]


def luminaires(
    table: pa.Table,
    ids: Sequence[str],
    start: dt.datetime,
    end: dt.datetime,
    nights: NightCalendar,
    lead_s: float,
    *,
    every_lamp_on: bool = True,
) -> list[LuminaireSeries]:
    """`queries.load_luminaires` over a bundle: the night spans' rows and every lamp-on row
    (unless `every_lamp_on` is false)."""
    table, ts = _window(table, ids, start, end)
    bounds = np.array([epoch_us(b) for b in night_bounds(nights, lead_s)], dtype=np.int64)
    lamp_on = np.asarray(table["lamp_on"].to_numpy(zero_copy_only=False), dtype=bool)
    keep = (lamp_on & every_lamp_on) | (np.searchsorted(bounds, ts, side="right") % 2 == 1)
    table, ts, lamp_on = table.filter(pa.array(keep)), ts[keep], lamp_on[keep]
    power, energy, dim = _f64(table, "power_w"), _f64(table, "energy_wh"), _f64(table, "dim_pct")
    seconds = _pg_seconds(ts)
    return [
        LuminaireSeries(
            device_id=device,
            ts=seconds[s],
            power_w=power[s],
            energy_wh=energy[s],
            dim_pct=dim[s],
            lamp_on=lamp_on[s],
        )
        for device, s in _split(table)
    ]


def events(
    table: pa.Table, ids: Sequence[str], start: dt.datetime, end: dt.datetime
) -> list[NonRoutineEvent]:
    """`queries.load_events` over a bundle, in its order (time, device, type)."""
    table, ts = _window(table, ids, start, end)
    out = []
    for device, t, kind, data in zip(
        table["device_id"].to_pylist(), ts.tolist(), table["type"].to_pylist(),
        table["data"].to_pylist(), strict=True,
    ):  # fmt: skip
        code = json.loads(data).get("code") if data else None
        text = code if code is None or isinstance(code, str) else json.dumps(code)
        out.append(NonRoutineEvent(device_id=device, ts=t / 1e6, type=kind, code=text))
    return sorted(out, key=lambda e: (e.ts, e.device_id, e.type))


def count_events(
    table: pa.Table, ids: Sequence[str], kind: str, start: dt.datetime, end: dt.datetime
) -> int:
    table, _ = _window(table, ids, start, end)
    return int(pc.sum(pc.equal(table["type"], kind)).as_py() or 0)


def drones(
    table: pa.Table, ids: Sequence[str], start: dt.datetime, end: dt.datetime
) -> list[DroneSeries]:
    """`queries.load_drones` over a bundle (flights keyed by the exported `flight_key`)."""
    table, ts = _window(table, ids, start, end)
    mode = _str(table, "mode")
    mode = np.where(np.isin(mode, _MODES), mode, "")
    camera = np.asarray(table["camera_on"].fill_null(False).to_numpy(zero_copy_only=False), bool)
    sent = np.asarray(table["camera_on"].is_valid().to_numpy(zero_copy_only=False), bool)
    fix = np.asarray(pc.cast(table["gps_fix"], pa.int64()).fill_null(-1).to_numpy(), np.int64)
    flight = np.asarray(pc.cast(table["flight_key"], pa.int64()).to_numpy(), np.int64).astype(str)
    f64 = {
        name: _f64(table, name)
        for name in ("lat", "lon", "agl_m", "hfov_deg", "battery_v", "battery_a",
                     "gen_power_w", "fuel_l")
    }  # fmt: skip
    seconds = _pg_seconds(ts)
    return [
        DroneSeries(
            device_id=device,
            ts=seconds[s],
            lat=f64["lat"][s],
            lon=f64["lon"][s],
            agl_m=f64["agl_m"][s],
            hfov_deg=f64["hfov_deg"][s],
            mode=mode[s],
            camera_on=camera[s],
            camera_sent=sent[s],
            gps_fix=fix[s],
            flight_id=flight[s],
            battery_v=f64["battery_v"][s],
            battery_a=f64["battery_a"][s],
            gen_power_w=f64["gen_power_w"][s],
            fuel_l=f64["fuel_l"][s],
        )
        for device, s in _split(table)
    ]


def quality_rows(
    *,
    kind: str,
    ids: Sequence[str],
    timezone: str,
    interval_s: float | None,
    start: dt.date,
    end: dt.date,
    readings: pa.Table,
    messages: pa.Table,
    dead_letters: pa.Table,
    registered: Sequence[RegisteredDevice] = (),
) -> list[DeviceDay]:
    """`queries.quality_rows` over a bundle."""
    telemetry = messages.filter(pc.equal(messages["channel"], "telemetry"))
    day = pc.coalesce(telemetry["first_ts"], telemetry["sent_at"], telemetry["received_at"])
    ints = {n: np.asarray(telemetry[n].to_numpy(), np.int64) for n in ("boot", "seq", "copies")}
    return count_device_days(
        kind=kind,
        device_ids=ids,
        timezone=timezone,
        interval_s=interval_s,
        start=start,
        end=end,
        readings=_readings(readings, kind),
        messages=Messages(
            device_id=_str(telemetry, "device_id"),
            boot=ints["boot"],
            seq=ints["seq"],
            copies=ints["copies"],
            day_us=_us(day),
            reuses=np.asarray(telemetry["reuses"].to_numpy(), np.int64)
            if "reuses" in telemetry.column_names
            else None,
        ),
        dead_letters=DeadLetters(
            device_id=_str(dead_letters, "device_id"),
            received_us=_us(
                pc.coalesce(dead_letters["record_ts"], dead_letters["received_at"])
                if "record_ts" in dead_letters.column_names
                else dead_letters["received_at"]
            ),
            conflict=np.asarray(
                pc.fill_null(pc.equal(dead_letters["stage"], "conflict"), False).to_numpy(
                    zero_copy_only=False
                ),
                bool,
            ),
        ),
        registered=registered,
    )


def _readings(readings: pa.Table, kind: str) -> Readings:
    return Readings(
        device_id=_str(readings, "device_id"),
        ts_us=_us(readings["ts"]),
        received_us=_us(readings["received_at"]),
        flight=_str(readings, "flight_id") if kind == "hybrid_drone" else None,
    )


def quality_skew(
    *,
    kind: str,
    ids: Sequence[str],
    timezone: str,
    start: dt.date,
    end: dt.date,
    readings: pa.Table,
) -> dict[int, int]:
    """The window's clock-skew sketch over a bundle's readings."""
    return skew_histogram(_readings(readings, kind), ids, timezone, start, end)


def registered(devices: pa.Table) -> list[RegisteredDevice]:
    """The registry rows of a bundle with their service dates (absent: always in service)."""

    def day(value: object) -> dt.date | None:  # Parquet gives dates, CSV gives text
        if isinstance(value, dt.date):
            return value
        return dt.date.fromisoformat(str(value)[:10]) if value else None

    return [
        RegisteredDevice(
            str(r["id"]), day(r.get("commissioned_on")), day(r.get("decommissioned_on"))
        )
        for r in devices.to_pylist()
    ]
