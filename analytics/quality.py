"""Data quality per device and day: completeness, sequence gaps, duplicates, dead letters,
clock skew. The counting is done in SQL (see `queries.quality_rows`); this module turns the
rows into the result an evaluator reads, as records — never exceptions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

METHOD = "data-quality"
METHOD_VERSION = "1.0"


@dataclass(frozen=True)
class DeviceDay:
    device_id: str
    day: date
    records: int
    expected: float | None  # None where the kind has no nominal interval
    seq_gaps: int
    duplicates: int
    dead_letters: int
    skew_p50_s: float | None
    skew_p95_s: float | None

    @property
    def completeness_pct(self) -> float | None:
        if not self.expected:
            return None
        return min(100.0, 100.0 * self.records / self.expected)


@dataclass(frozen=True)
class QualityResult:
    rows: tuple[DeviceDay, ...]

    def to_json(self) -> dict[str, Any]:
        expected = sum(r.expected or 0.0 for r in self.rows if r.expected)
        counted = sum(min(float(r.records), r.expected or 0.0) for r in self.rows if r.expected)
        per_device: dict[str, dict[str, Any]] = {}
        for r in self.rows:
            d = per_device.setdefault(
                r.device_id,
                {
                    "device_id": r.device_id,
                    "records": 0,
                    "expected": 0.0,
                    "seq_gaps": 0,
                    "duplicates": 0,
                    "dead_letters": 0,
                },
            )
            d["records"] += r.records
            d["expected"] += r.expected or 0.0
            d["seq_gaps"] += r.seq_gaps
            d["duplicates"] += r.duplicates
            d["dead_letters"] += r.dead_letters
        for d in per_device.values():
            d["completeness_pct"] = (
                round(min(100.0, 100.0 * d["records"] / d["expected"]), 2)
                if d["expected"]
                else None
            )
        return {
            "method": METHOD,
            "method_version": METHOD_VERSION,
            "devices": len(per_device),
            "records": sum(r.records for r in self.rows),
            "expected_records": round(expected, 1),
            "completeness_pct": round(100.0 * counted / expected, 2) if expected else None,
            "seq_gaps": sum(r.seq_gaps for r in self.rows),
            "duplicates": sum(r.duplicates for r in self.rows),
            "dead_letters": sum(r.dead_letters for r in self.rows),
            "per_device": sorted(per_device.values(), key=lambda d: d["device_id"]),
            "per_device_day": [
                {
                    **asdict(r),
                    "day": r.day.isoformat(),
                    "completeness_pct": _round(r.completeness_pct),
                }
                for r in self.rows
            ],
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
