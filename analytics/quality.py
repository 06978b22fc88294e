"""Data quality per registered device and day: completeness, sequence gaps, duplicates,
conflicts, `(boot, seq)` reuse, dead letters, clock skew.

Expectation comes from the registry, not from the data: every registered device is expected
for every nominal interval of each day it is in service (from its optional commissioning
date, up to its optional decommissioning date, exclusive), so a device that went dark shows
at 0 % and is named in `silent_devices`. The counting is done in SQL (see
`queries.quality_rows`); this module turns the rows into the result an evaluator reads, as
records — never exceptions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from analytics import skew_sketch

METHOD = "data-quality"
# 2.0: expectation from the registry; conflicts and seq reuse. 2.1: the window's skew
# percentiles from the device-days' sketches. 2.2: the same figures combined over columns;
# the input hash is over the device-day columns' bytes (`DeviceDays.hash_arrays`).
METHOD_VERSION = "2.2"


@dataclass(frozen=True)
class RegisteredDevice:
    """A device of the pilot and the local dates it is expected to report."""

    device_id: str
    commissioned_on: date | None = None  # first day expected; None: the window's start
    decommissioned_on: date | None = None  # first day no longer expected; None: never

    def in_service(self, day: date) -> bool:
        return (self.commissioned_on is None or day >= self.commissioned_on) and (
            self.decommissioned_on is None or day < self.decommissioned_on
        )


@dataclass(frozen=True)
class DeviceDay:
    device_id: str
    day: date
    records: int
    expected: float | None  # None where the kind has no nominal interval; 0 out of service
    seq_gaps: int
    duplicates: int
    dead_letters: int  # conflicts included (they are dead letters of stage `conflict`)
    skew_p50_s: float | None
    skew_p95_s: float | None
    conflicts: int = 0
    seq_reuse: int = 0
    in_service: bool = True

    @property
    def completeness_pct(self) -> float | None:
        if not self.expected:
            return None
        return min(100.0, 100.0 * self.records / self.expected)


COUNTS = ("records", "seq_gaps", "duplicates", "conflicts", "seq_reuse", "dead_letters")
_FIGURES = ("skew_p50_s", "skew_p95_s")
_EPOCH = date(1970, 1, 1)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class DeviceDays:
    """The device-day rows of a window as columns, in (device, day) order: 45,000 rows for
    500 devices over 90 days are combined with array arithmetic, not one object each.

    `device` indexes `ids`; `day` counts days since 1970-01-01; `expected`, `skew_p50_s`
    and `skew_p95_s` hold NaN where a `DeviceDay` holds None."""

    ids: tuple[str, ...]
    device: IntArray
    day: IntArray
    columns: Mapping[str, npt.NDArray[Any]]  # COUNTS (int64), expected and _FIGURES
    in_service: npt.NDArray[np.bool_]

    @classmethod
    def from_rows(cls, rows: Sequence[DeviceDay]) -> DeviceDays:
        ids = tuple(dict.fromkeys(r.device_id for r in rows))
        index = {d: i for i, d in enumerate(ids)}

        def floats(name: str) -> FloatArray:
            values = [getattr(r, name) for r in rows]
            return np.array([np.nan if v is None else v for v in values], np.float64)

        return cls.of(
            ids,
            np.array([index[r.device_id] for r in rows], np.int64),
            np.array([(r.day - _EPOCH).days for r in rows], np.int64),
            {
                **{k: np.array([getattr(r, k) for r in rows], np.int64) for k in COUNTS},
                **{k: floats(k) for k in ("expected", *_FIGURES)},
            },
            np.array([r.in_service for r in rows], np.bool_),
        )

    @classmethod
    def of(
        cls,
        ids: Sequence[str],
        device: npt.NDArray[Any],
        day: npt.NDArray[Any],
        columns: Mapping[str, npt.NDArray[Any]],
        in_service: npt.NDArray[Any],
    ) -> DeviceDays:
        """Columns in native byte order, every missing float the same NaN (the hash reads
        their bytes)."""
        cols: dict[str, npt.NDArray[Any]] = {k: np.asarray(columns[k], np.int64) for k in COUNTS}
        for k in ("expected", *_FIGURES):
            f = np.array(columns[k], np.float64)
            f[np.isnan(f)] = np.nan
            cols[k] = f
        return cls(
            tuple(ids),
            np.asarray(device, np.int64),
            np.asarray(day, np.int64),
            cols,
            np.asarray(in_service, np.bool_),
        )

    def __len__(self) -> int:
        return int(self.device.size)

    def device_ids(self) -> npt.NDArray[np.object_]:
        return np.array(self.ids, dtype=object)[self.device] if self.ids else np.array([], object)

    def rows(self) -> list[DeviceDay]:
        """One `DeviceDay` per row (for tests and small windows)."""
        cols = {k: v.tolist() for k, v in self.columns.items()}
        ids, days = self.device_ids().tolist(), self.day.tolist()

        def opt(v: float) -> float | None:
            return None if v != v else v

        return [
            DeviceDay(
                device_id=ids[i],
                day=_EPOCH + timedelta(days=days[i]),
                records=cols["records"][i],
                expected=opt(cols["expected"][i]),
                seq_gaps=cols["seq_gaps"][i],
                duplicates=cols["duplicates"][i],
                dead_letters=cols["dead_letters"][i],
                skew_p50_s=opt(cols["skew_p50_s"][i]),
                skew_p95_s=opt(cols["skew_p95_s"][i]),
                conflicts=cols["conflicts"][i],
                seq_reuse=cols["seq_reuse"][i],
                in_service=bool(self.in_service[i]),
            )
            for i in range(len(self))
        ]

    def hash_arrays(self) -> list[npt.NDArray[Any]]:
        """What the input hash is over: every column of every row, the device's id as text
        (so the hash does not depend on how `ids` is numbered)."""
        return [
            self.device_ids(),
            self.day,
            *(self.columns[k] for k in ("records", "expected", *COUNTS[1:], *_FIGURES)),
            self.in_service.astype(np.uint8),
        ]


@dataclass(frozen=True)
class QualityResult:
    days: DeviceDays
    devices: tuple[RegisteredDevice, ...] = ()  # every registered device, silent ones too
    skew: Mapping[int, int] = field(default_factory=dict)  # the window's skew sketch

    def silent_devices(self) -> list[str]:
        """In service on some day of the window, and not one record in it."""
        d = self.days
        n = len(d.ids)
        in_service = np.bincount(d.device[d.in_service], minlength=n) > 0
        reporting = np.bincount(d.device[d.columns["records"] > 0], minlength=n) > 0
        return sorted(d.ids[i] for i in np.flatnonzero(in_service & ~reporting))

    def warnings(self) -> list[str]:
        if np.any(self.days.columns["records"] > 0):
            return []
        return ["no records from any device of the pilot in this window"]

    def to_json(self) -> dict[str, Any]:
        """Per device and in total with array sums over the rows; the per-device-day table
        built from columns (a 90-day window of 500 devices holds 45,000 rows)."""
        d = self.days
        n = len(d.ids)
        cols = d.columns
        e = np.nan_to_num(cols["expected"], nan=0.0)
        counted = np.minimum(cols["records"].astype(np.float64), e)
        per_device = {dev.device_id: _device(dev.device_id) for dev in self.devices}
        sums = {k: np.bincount(d.device, weights=cols[k], minlength=n) for k in COUNTS}
        e_dev = np.bincount(d.device, weights=e, minlength=n)
        c_dev = np.bincount(d.device, weights=counted, minlength=n)
        days_in_service = np.bincount(
            d.device, weights=d.in_service.astype(np.float64), minlength=n
        )
        for i, device_id in enumerate(d.ids):
            row = per_device.setdefault(device_id, _device(device_id))
            for k in COUNTS:
                row[k] = int(sums[k][i])
            row["expected"] = expected_d = round(float(e_dev[i]), 1)
            row["days_in_service"] = int(days_in_service[i])
            row["completeness_pct"] = (
                round(100.0 * float(c_dev[i]) / expected_d, 2) if expected_d else None
            )
        expected = math.fsum(e.tolist())
        total_counted = math.fsum(counted.tolist())
        return {
            "method": METHOD,
            "method_version": METHOD_VERSION,
            "devices": len(per_device),
            "records": int(cols["records"].sum()),
            "expected_records": round(expected, 1),
            "completeness_pct": (round(100.0 * total_counted / expected, 2) if expected else None),
            "silent_devices": self.silent_devices(),
            "skew_p50_s": skew_sketch.percentile_s(self.skew, 0.5),
            "skew_p95_s": skew_sketch.percentile_s(self.skew, 0.95),
            "skew_sketch": skew_sketch.describe(),
            **{k: int(cols[k].sum()) for k in COUNTS[1:]},
            "warnings": self.warnings(),
            "per_device": sorted(per_device.values(), key=lambda r: r["device_id"]),
            "per_device_day": self.per_device_day(),
        }

    def per_device_day(self) -> list[dict[str, Any]]:
        """The rows as `DeviceDay`'s fields with the day in ISO form and its completeness."""
        d = self.days
        cols = {k: v.tolist() for k, v in d.columns.items()}
        expected = d.columns["expected"]
        with np.errstate(divide="ignore", invalid="ignore"):
            pct = np.minimum(100.0, 100.0 * d.columns["records"] / expected)
        pct_list = [
            round(p, 2) if x else None
            for p, x in zip(pct.tolist(), (expected > 0).tolist(), strict=True)
        ]
        first = int(d.day.min()) if len(d) else 0
        iso = [
            (_EPOCH + timedelta(days=first + k)).isoformat()
            for k in range(int(d.day.max()) - first + 1 if len(d) else 0)
        ]
        names = d.ids
        nan_free = {k: [None if v != v else v for v in cols[k]] for k in ("expected", *_FIGURES)}
        return [
            {
                "device_id": names[dev],
                "day": iso[day - first],
                "records": rec,
                "expected": exp,
                "seq_gaps": gaps,
                "duplicates": dups,
                "dead_letters": dead,
                "skew_p50_s": p50,
                "skew_p95_s": p95,
                "conflicts": conf,
                "seq_reuse": reuse,
                "in_service": serving,
                "completeness_pct": p,
            }
            for dev, day, rec, exp, gaps, dups, dead, p50, p95, conf, reuse, serving, p in zip(
                d.device.tolist(),
                d.day.tolist(),
                cols["records"],
                nan_free["expected"],
                cols["seq_gaps"],
                cols["duplicates"],
                cols["dead_letters"],
                nan_free["skew_p50_s"],
                nan_free["skew_p95_s"],
                cols["conflicts"],
                cols["seq_reuse"],
                d.in_service.tolist(),
                pct_list,
                strict=True,
            )
        ]


def _device(device_id: str) -> dict[str, Any]:
    """A registered device without rows in the window (out of service throughout)."""
    return {
        "device_id": device_id,
        **dict.fromkeys(COUNTS, 0),
        "expected": 0.0,
        "days_in_service": 0,
        "completeness_pct": None,
    }
