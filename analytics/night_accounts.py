"""Each luminaire-night accounted on its own, so that a window can combine kept nights.

Why: a savings window's figures are sums, medians and lists over luminaire-nights whose
inputs are disjoint spans of rows. Unit `n` of a luminaire is its records with
``dawn[n-1] < ts <= dawn[n]`` that the method reads — night `n` from `GAP_FACTOR`
intervals before its dusk (the record whose register difference starts the night) and the
lamp-on records of day `n` before it (day-burning). Accounted unit by unit, a unit whose
rows did not change can be kept (`kcity.savings_nights`), and a window reads only the
units that did; combined, the accounts give the figures the rows give, to the last bit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from analytics.luminaire_nights import (
    GAP_FACTOR,
    FloatArray,
    IntArray,
    LuminaireSeries,
    NightTable,
    SavingsParams,
    full_level,
    night_table,
)
from analytics.nights import NightCalendar, assign_days

DIGEST_BYTES = 32
_ROW = np.dtype(
    [("ts", "<f8"), ("power_w", "<f8"), ("energy_wh", "<f8"), ("dim_pct", "<f8"), ("lamp_on", "?")]
)  # packed, little-endian: the bytes a unit's hash covers, the same on every machine
DigestArray = npt.NDArray[np.uint8]  # ... × DIGEST_BYTES; all zero: a unit without rows


BURN_FIELDS = ("records", "power_sum_w", "first", "last")
"""Day-burning of day `n` per luminaire-night: lamp-on records deeper into daylight than the
tolerance, Σ of their power [W] (summed in time order), first and last epoch seconds [s]."""


@dataclass(frozen=True)
class NightAccounts:
    """Per luminaire (rows of `table`) and night: what `analytics.savings` combines.

    `full_w`/`full_night`: power [W] of each lit 100 % record inside a night, in time order,
    and its night index; `burns`: luminaires × nights × `BURN_FIELDS`; `digests`:
    luminaires × nights × 32 sha256 of each unit's rows (zeros without any); `pool_w`: every
    lit 100 % record's power per luminaire (the default control pool), None when not loaded.
    """

    table: NightTable
    full_w: tuple[FloatArray, ...]
    full_night: tuple[IntArray, ...]
    burns: FloatArray
    digests: DigestArray
    rows: IntArray  # luminaires × nights: rows of each unit
    pool_w: tuple[FloatArray, ...] | None = None

    @property
    def device_ids(self) -> tuple[str, ...]:
        return self.table.device_ids


def unit_of(
    ts: FloatArray, lamp_on: npt.NDArray[np.bool_], calendar: NightCalendar, lead_s: float
) -> IntArray:
    """The unit (night index) each record belongs to, -1 for records no unit reads."""
    bounds = calendar.boundaries()
    pos = np.searchsorted(bounds, ts, side="left").astype(np.int64) - 1
    nights = len(calendar)
    in_night = (pos >= 0) & (pos % 2 == 0) & (pos < 2 * nights)
    day = np.where(pos == -1, 0, (pos + 1) // 2)  # daylight before night `day`
    in_day = ((pos == -1) | (pos % 2 == 1)) & (day < nights)
    dusk = calendar.dusk[np.minimum(day, nights - 1)] if nights else np.empty(0)
    read = in_day & (lamp_on | (ts > dusk - lead_s))
    return np.where(in_night, pos // 2, np.where(read, day, -1)).astype(np.int64)


def unit_digests(
    s: LuminaireSeries, calendar: NightCalendar, lead_s: float
) -> tuple[DigestArray, IntArray]:
    """sha256 of each unit's rows (device, night, then per row its time, power, register,
    dim level as float64 and lamp state as a byte) and its row count, per night."""
    out = np.zeros((len(calendar), DIGEST_BYTES), dtype=np.uint8)
    counts = np.zeros(len(calendar), dtype=np.int64)
    lamp_on = np.asarray(s.lamp_on, dtype=np.bool_)
    unit = unit_of(s.ts, lamp_on, calendar, lead_s)
    sel = np.flatnonzero(unit >= 0)
    if not sel.size:
        return out, counts
    rows = np.empty(sel.size, dtype=_ROW)
    rows["ts"], rows["power_w"] = s.ts[sel], s.power_w[sel]
    rows["energy_wh"], rows["dim_pct"], rows["lamp_on"] = (
        s.energy_wh[sel],
        s.dim_pct[sel],
        lamp_on[sel],
    )
    blob = memoryview(rows.tobytes())
    units, first, count = np.unique(unit[sel], return_index=True, return_counts=True)
    prefix = s.device_id.encode() + b"\x1f"
    size = _ROW.itemsize
    for n, lo, k in zip(units.tolist(), first.tolist(), count.tolist(), strict=True):
        digest = hashlib.sha256(prefix + calendar.dates[n].isoformat().encode() + b"\x1e")
        digest.update(blob[lo * size : (lo + k) * size])
        out[n] = np.frombuffer(digest.digest(), dtype=np.uint8)
        counts[n] = k
    return out, counts


def day_burns(
    s: LuminaireSeries, record_nights: IntArray, calendar: NightCalendar, params: SavingsParams
) -> FloatArray:
    """Lamp-on records more than the tolerance into daylight: nights × `BURN_FIELDS`."""
    out = np.zeros((len(calendar), len(BURN_FIELDS)))
    tolerance = params.day_burning_tolerance_min * 60.0
    lit = np.flatnonzero(np.asarray(s.lamp_on, dtype=bool) & (record_nights < 0))
    day, depth = assign_days(s.ts[lit], calendar)
    flag = (day >= 0) & (depth > tolerance)
    if not flag.any():
        return out
    day, at = day[flag], lit[flag]
    days, first, count = np.unique(day, return_index=True, return_counts=True)
    out[days, 0] = count
    out[days, 1] = np.add.reduceat(s.power_w[at], first)
    out[days, 2] = s.ts[at][first]
    out[days, 3] = s.ts[at][first + count - 1]
    return out


def account_series(
    series: Sequence[LuminaireSeries], calendar: NightCalendar, params: SavingsParams
) -> NightAccounts:
    """Every unit of `calendar` accounted from the rows of `series` (one per luminaire)."""
    table = night_table(series, calendar, params.record_interval_s)
    lead = GAP_FACTOR * params.record_interval_s
    full_w, full_night, burns, digests, pool, rows = [], [], [], [], [], []
    for s, idx in zip(series, table.record_nights, strict=True):
        full = full_level(s)
        inside = full & (idx >= 0)
        full_w.append(np.asarray(s.power_w[inside], dtype=np.float64))
        full_night.append(idx[inside])
        pool.append(np.asarray(s.power_w[full], dtype=np.float64))
        burns.append(day_burns(s, idx, calendar, params))
        digest, count = unit_digests(s, calendar, lead)
        digests.append(digest)
        rows.append(count)
    burned = np.stack(burns) if burns else np.zeros((0, len(calendar), len(BURN_FIELDS)))
    grid = (
        np.stack(digests) if digests else np.zeros((0, len(calendar), DIGEST_BYTES), dtype=np.uint8)
    )
    counts = np.stack(rows) if rows else np.zeros((0, len(calendar)), dtype=np.int64)
    return NightAccounts(table, tuple(full_w), tuple(full_night), burned, grid, counts, tuple(pool))


def units_sha256(accounts: NightAccounts, nights: npt.NDArray[np.bool_]) -> str:
    """Hash of the rows of every unit in `nights` (in luminaire, then night order)."""
    grid = accounts.digests[:, nights].reshape(-1, DIGEST_BYTES)
    return hashlib.sha256(grid[grid.any(axis=1)].tobytes()).hexdigest()


__all__ = [
    "BURN_FIELDS",
    "DIGEST_BYTES",
    "NightAccounts",
    "account_series",
    "day_burns",
    "unit_digests",
    "unit_of",
    "units_sha256",
]
