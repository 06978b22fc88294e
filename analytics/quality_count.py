"""Data-quality counts per device and local day over raw rows as arrays: the counting that
`queries.quality_rows` does in SQL, for re-computing a result away from the database (an
evidence bundle). Tests hold both to the same rows; the percentiles follow PostgreSQL's
`percentile_cont` arithmetic exactly.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from analytics import skew_sketch
from analytics.quality import DeviceDay, RegisteredDevice

IntArray = npt.NDArray[np.int64]
StrArray = npt.NDArray[np.str_]


@dataclass(frozen=True)
class Readings:
    """Telemetry rows: times as epoch microseconds; `flight` for drones (else None)."""

    device_id: StrArray
    ts_us: IntArray
    received_us: IntArray
    flight: StrArray | None = None


@dataclass(frozen=True)
class Messages:
    """Ingest message rows of the telemetry channel; `day_us` is coalesce(first record,
    sent, received) as epoch microseconds."""

    device_id: StrArray
    boot: IntArray
    seq: IntArray
    copies: IntArray
    day_us: IntArray
    reuses: IntArray | None = None  # arrivals of a (boot, seq) with other content


@dataclass(frozen=True)
class DeadLetters:
    """`received_us` is coalesce(record time, received time), as data quality counts it."""

    device_id: StrArray
    received_us: IntArray
    conflict: npt.NDArray[np.bool_] | None = None  # stage `conflict`


def day_edges_us(start: dt.date, end: dt.date, timezone: str) -> IntArray:
    """Epoch microseconds of each local midnight from `start` to `end` inclusive."""
    zone = ZoneInfo(timezone)
    days = (end - start).days
    return np.array(
        [
            int(dt.datetime.combine(start + dt.timedelta(days=k), dt.time(), zone).timestamp())
            * 1_000_000
            for k in range(days + 1)
        ],
        dtype=np.int64,
    )


def percentile_cont(sorted_values: npt.NDArray[np.float64], fraction: float) -> float:
    """PostgreSQL's `percentile_cont` of sorted values: lo + (hi − lo) · proportion."""
    position = fraction * (len(sorted_values) - 1)
    first = int(np.floor(position))
    second = int(np.ceil(position))
    lo, hi = float(sorted_values[first]), float(sorted_values[second])
    return lo if first == second else lo + (hi - lo) * (position - first)


def _keys(
    device_id: StrArray, t_us: IntArray, ids: Sequence[str], edges: IntArray
) -> tuple[IntArray, npt.NDArray[np.bool_]]:
    """Key device·days + day of each row, and which rows are the pilot's and in the window
    (`ids` sorted)."""
    known = np.array(ids, dtype=str)  # sorted by the caller: a binary search per row
    dev = np.full(len(device_id), -1, dtype=np.int64)
    if len(known):
        at = np.minimum(np.searchsorted(known, device_id), len(known) - 1)
        dev = np.where(known[at] == device_id, at, -1).astype(np.int64)
    day = np.searchsorted(edges, t_us, side="right") - 1
    inside = (dev >= 0) & (day >= 0) & (day < len(edges) - 1)
    return dev * (len(edges) - 1) + day, inside


def _sums(keys: IntArray, values: IntArray) -> dict[int, int]:
    """Sum of `values` per distinct key (every key present, zero sums included)."""
    distinct, at = np.unique(keys, return_inverse=True)
    totals = np.bincount(at.reshape(-1), weights=values, minlength=len(distinct))
    return dict(zip(distinct.tolist(), totals.astype(np.int64).tolist(), strict=True))


def count_device_days(
    *,
    kind: str,
    device_ids: Sequence[str],
    timezone: str,
    interval_s: float | None,
    start: dt.date,
    end: dt.date,
    readings: Readings,
    messages: Messages,
    dead_letters: DeadLetters,
    registered: Sequence[RegisteredDevice] = (),
) -> list[DeviceDay]:
    """Per device and local day in [start, end): the counts of `DeviceDay`, for every day a
    registered device is in service and every other day with rows (as the SQL does)."""
    ids = sorted(set(device_ids) | {d.device_id for d in registered})
    edges = day_edges_us(start, end, timezone)
    ndays = len(edges) - 1
    key, inside = _keys(readings.device_id, readings.ts_us, ids, edges)
    key, ts, received = key[inside], readings.ts_us[inside], readings.received_us[inside]
    skew = (received - ts).astype(np.float64) / 1e6
    order = np.lexsort((skew, key))
    key, skew, ts = key[order], skew[order], ts[order]
    flights = readings.flight[inside][order] if readings.flight is not None else None
    groups, first, counts = np.unique(key, return_index=True, return_counts=True)

    mkey, minside = _keys(messages.device_id, messages.day_us, ids, edges)
    mreuses = messages.reuses if messages.reuses is not None else np.zeros_like(messages.seq)
    mkey, boot, seq = mkey[minside], messages.boot[minside], messages.seq[minside]
    reuses = _sums(mkey, mreuses[minside])
    dups = _sums(mkey, messages.copies[minside] - 1)
    # Per device·day and boot, the seq numbers missing between the lowest and the highest.
    pairs, pair = np.unique(np.stack([mkey, boot], axis=1), axis=0, return_inverse=True)
    pair = pair.reshape(-1)
    lo = np.full(len(pairs), np.iinfo(np.int64).max, dtype=np.int64)
    hi = np.full(len(pairs), np.iinfo(np.int64).min, dtype=np.int64)
    np.minimum.at(lo, pair, seq)
    np.maximum.at(hi, pair, seq)
    missing = hi - lo + 1 - np.bincount(pair, minlength=len(pairs))
    gaps = _sums(pairs[:, 0], missing)
    dkey, dinside = _keys(dead_letters.device_id, dead_letters.received_us, ids, edges)
    dead_k, dead_n = np.unique(dkey[dinside], return_counts=True)
    dead = dict(zip(dead_k.tolist(), dead_n.tolist(), strict=True))
    conflict = (
        dead_letters.conflict
        if dead_letters.conflict is not None
        else np.zeros(len(dkey), dtype=bool)
    )
    conf_k, conf_n = np.unique(dkey[dinside & conflict], return_counts=True)
    conflicts = dict(zip(conf_k.tolist(), conf_n.tolist(), strict=True))
    seconds = np.diff(edges) / 1e6
    codes = {d: i for i, d in enumerate(ids)}
    service = {
        codes[d.device_id] * ndays + j
        for d in registered
        for j in range(ndays)
        if d.in_service(start + dt.timedelta(days=j))
    }
    found = dict(
        zip(groups.tolist(), zip(first.tolist(), counts.tolist(), strict=True), strict=True)
    )
    keys = sorted(service | set(found) | set(dups) | set(gaps) | set(dead))

    rows = []
    for k in keys:
        i, n = found.get(k, (0, 0))
        values = skew[i : i + n]
        expected: float | None = None
        if k not in service:
            expected = 0.0 if interval_s else None
        elif not n:
            expected = (
                0.0
                if kind == "hybrid_drone"
                else float(seconds[k % ndays]) / interval_s
                if interval_s
                else None
            )
        elif kind == "hybrid_drone":
            assert flights is not None
            span_us = 0
            names = flights[i : i + n]
            for flight in np.unique(names):
                t = ts[i : i + n][names == flight]
                span_us += int(t.max() - t.min())
            nflights = len(np.unique(names))
            expected = float(span_us) / 1e6 / (interval_s or 1.0) + nflights
        elif interval_s:
            expected = float(seconds[k % ndays]) / interval_s
        rows.append(
            DeviceDay(
                device_id=ids[k // ndays],
                day=start + dt.timedelta(days=k % ndays),
                records=n,
                expected=expected,
                seq_gaps=int(gaps.get(k, 0)),
                duplicates=int(dups.get(k, 0)),
                dead_letters=int(dead.get(k, 0)),
                skew_p50_s=percentile_cont(np.sort(values), 0.5) if n else None,
                skew_p95_s=percentile_cont(np.sort(values), 0.95) if n else None,
                conflicts=int(conflicts.get(k, 0)),
                seq_reuse=int(reuses.get(k, 0)),
                in_service=k in service,
            )
        )
    return rows


def skew_histogram(
    readings: Readings, device_ids: Sequence[str], timezone: str, start: dt.date, end: dt.date
) -> dict[int, int]:
    """The window's clock-skew sketch over the raw rows (`analytics.skew_sketch`)."""
    edges = day_edges_us(start, end, timezone)
    ids = np.array(sorted(set(device_ids)), dtype=str)
    keep = (
        np.isin(readings.device_id.astype(str), ids)
        & (readings.ts_us >= edges[0])
        & (readings.ts_us < edges[-1])
    )
    return skew_sketch.histogram(readings.received_us[keep] - readings.ts_us[keep])
