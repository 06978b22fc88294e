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

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from analytics import skew_sketch

METHOD = "data-quality"
# 2.0: expectation from the registry; conflicts and seq reuse. 2.1: the window's skew
# percentiles from the device-days' sketches.
METHOD_VERSION = "2.1"


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


_COUNTS = ("records", "seq_gaps", "duplicates", "conflicts", "seq_reuse", "dead_letters")


@dataclass(frozen=True)
class QualityResult:
    rows: tuple[DeviceDay, ...]
    devices: tuple[RegisteredDevice, ...] = ()  # every registered device, silent ones too
    skew: Mapping[int, int] = field(default_factory=dict)  # the window's skew sketch

    def silent_devices(self) -> list[str]:
        """In service on some day of the window, and not one record in it."""
        in_service = {r.device_id for r in self.rows if r.in_service}
        reporting = {r.device_id for r in self.rows if r.records}
        return sorted(in_service - reporting)

    def warnings(self) -> list[str]:
        if any(r.records for r in self.rows):
            return []
        return ["no records from any device of the pilot in this window"]

    def to_json(self) -> dict[str, Any]:
        """One pass over the rows (a 90-day window of 500 devices holds 45,000)."""
        expected = counted = 0.0
        totals = dict.fromkeys(_COUNTS, 0)
        per_device = {d.device_id: _device(d.device_id) for d in self.devices}
        per_day = []
        for r in self.rows:
            row = r.__dict__  # not dataclasses.asdict: it deep-copies every row
            d = per_device.get(r.device_id)
            if d is None:
                d = per_device[r.device_id] = _device(r.device_id)
            e = r.expected or 0.0
            c = min(float(r.records), e)
            for key in _COUNTS:
                d[key] += row[key]
                totals[key] += row[key]
            d["expected"] += e
            d["counted"] += c
            d["days_in_service"] += int(r.in_service)
            expected += e
            counted += c
            per_day.append(
                {**row, "day": r.day.isoformat(), "completeness_pct": _round(r.completeness_pct)}
            )
        for d in per_device.values():
            counted_d = d.pop("counted")
            d["expected"] = round(d["expected"], 1)
            d["completeness_pct"] = (
                round(100.0 * counted_d / d["expected"], 2) if d["expected"] else None
            )
        return {
            "method": METHOD,
            "method_version": METHOD_VERSION,
            "devices": len(per_device),
            "records": totals["records"],
            "expected_records": round(expected, 1),
            "completeness_pct": round(100.0 * counted / expected, 2) if expected else None,
            "silent_devices": self.silent_devices(),
            "skew_p50_s": skew_sketch.percentile_s(self.skew, 0.5),
            "skew_p95_s": skew_sketch.percentile_s(self.skew, 0.95),
            "skew_sketch": skew_sketch.describe(),
            **{key: totals[key] for key in _COUNTS[1:]},
            "warnings": self.warnings(),
            "per_device": sorted(per_device.values(), key=lambda d: d["device_id"]),
            "per_device_day": per_day,
        }


def _device(device_id: str) -> dict[str, Any]:
    return {
        "device_id": device_id,
        **dict.fromkeys(_COUNTS, 0),
        "expected": 0.0,
        "counted": 0.0,
        "days_in_service": 0,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
