"""`analytics.quality` combines a window's device-day rows with array sums over columns
(`DeviceDays`); held here to a plain loop over the rows, one at a time, on random rows with
every case the columns encode: no nominal interval (None), days out of service, a
registered device without rows, a device with rows that is not registered. The input hash
covers every field of every row."""

from __future__ import annotations

import random
from dataclasses import fields, replace
from datetime import date, timedelta
from typing import Any

import pytest

from analytics import skew_sketch
from analytics.quality import DeviceDay, DeviceDays, QualityResult, RegisteredDevice
from analytics.results import input_hash

COUNTS = ("records", "seq_gaps", "duplicates", "conflicts", "seq_reuse", "dead_letters")


def _rows(seed: int, devices: int = 7, days: int = 9) -> list[DeviceDay]:
    rng = random.Random(seed)
    start = date(2026, 10, 1)
    rows = []
    for d in range(devices):
        interval = rng.choice([None, 288.0, 287.5])
        for k in range(days):
            if rng.random() < 0.1:
                continue  # neither in service nor any record: no row
            serving = rng.random() > 0.2
            records = rng.choice([0, 0, 9, 100, 287, 288, 300])
            p50 = rng.uniform(0.1, 3.0) if records else None
            rows.append(
                DeviceDay(
                    device_id=f"dev-{d:02d}",
                    day=start + timedelta(days=k),
                    records=records,
                    expected=None if interval is None else (interval if serving else 0.0),
                    seq_gaps=rng.randint(0, 3),
                    duplicates=rng.randint(0, 3),
                    dead_letters=rng.randint(0, 3),
                    skew_p50_s=p50,
                    skew_p95_s=None if p50 is None else p50 * 2,
                    conflicts=rng.randint(0, 1),
                    seq_reuse=rng.randint(0, 1),
                    in_service=serving,
                )
            )
    return rows


def _loop(rows: list[DeviceDay], devices: list[RegisteredDevice]) -> dict[str, Any]:
    """The result key by key, one row at a time (the method as METHODS states it)."""

    def empty() -> dict[str, Any]:
        return {"expected": 0.0, "counted": 0.0, "days": 0, **dict.fromkeys(COUNTS, 0)}

    per = {dev.device_id: empty() for dev in devices}
    for r in rows:
        p = per.setdefault(r.device_id, empty())
        for k in COUNTS:
            p[k] += getattr(r, k)
        e = r.expected or 0.0
        p["expected"] += e
        p["counted"] += min(r.records, e)
        p["days"] += r.in_service
    expected = sum(p["expected"] for p in per.values())
    counted = sum(p["counted"] for p in per.values())
    serving = {r.device_id for r in rows if r.in_service}
    reporting = {r.device_id for r in rows if r.records}
    return {
        "devices": len(per),
        "expected_records": round(expected, 1),
        "completeness_pct": round(100 * counted / expected, 2) if expected else None,
        "silent_devices": sorted(serving - reporting),
        **{k: sum(p[k] for p in per.values()) for k in COUNTS},
        "per_device": {
            d: (
                [p[k] for k in COUNTS],
                round(p["expected"], 1),
                p["days"],
                round(100 * p["counted"] / round(p["expected"], 1), 2)
                if round(p["expected"], 1)
                else None,
            )
            for d, p in per.items()
        },
        "per_device_day": [
            {
                **{f.name: getattr(r, f.name) for f in fields(r)},
                "day": r.day.isoformat(),
                "completeness_pct": round(min(100.0, 100 * r.records / r.expected), 2)
                if r.expected
                else None,
            }
            for r in rows
        ],
    }


@pytest.mark.parametrize("seed", range(6))
def test_columns_combine_like_a_loop_over_rows(seed: int) -> None:
    rows = _rows(seed)
    ids = sorted({r.device_id for r in rows})
    devices = [RegisteredDevice(d) for d in ids[1:]] + [RegisteredDevice("dev-zz-unused")]
    skew = {0: 3, 5: 10, 40: 2}
    got = QualityResult(DeviceDays.from_rows(rows), tuple(devices), skew).to_json()
    want = _loop(rows, devices)
    for key in ("devices", "expected_records", "silent_devices", *COUNTS, "per_device_day"):
        assert got[key] == want[key], key
    assert got["completeness_pct"] == pytest.approx(want["completeness_pct"], abs=0.0051)
    assert [d["device_id"] for d in got["per_device"]] == sorted(want["per_device"])
    for d in got["per_device"]:
        counts, expected, days, pct = want["per_device"][d["device_id"]]
        assert [d[k] for k in COUNTS] == counts
        assert (d["expected"], d["days_in_service"]) == (expected, days)
        assert d["completeness_pct"] == pytest.approx(pct, abs=0.0051)
    assert got["skew_p50_s"] == skew_sketch.percentile_s(skew, 0.5)
    assert got["warnings"] == ([] if any(r.records for r in rows) else [got["warnings"][0]])
    # The columns give back the rows they were built from.
    assert DeviceDays.from_rows(rows).rows() == rows


def test_an_empty_window() -> None:
    body = QualityResult(DeviceDays.from_rows([]), (RegisteredDevice("a"),)).to_json()
    assert body["records"] == 0 and body["completeness_pct"] is None
    assert body["per_device_day"] == [] and body["warnings"]
    assert body["per_device"][0]["completeness_pct"] is None


def test_the_input_hash_changes_with_any_field_of_any_row() -> None:
    rows = _rows(1)
    base = input_hash(DeviceDays.from_rows(rows).hash_arrays())
    assert base == input_hash(DeviceDays.from_rows(list(rows)).hash_arrays())
    seen = {base}
    for i in (0, len(rows) // 2, len(rows) - 1):
        r = rows[i]
        changes = {
            "device_id": r.device_id + "x",
            "day": r.day + timedelta(days=30),
            "records": r.records + 1,
            "expected": 1.0 if r.expected is None else r.expected + 1e-9,
            "seq_gaps": r.seq_gaps + 1,
            "duplicates": r.duplicates + 1,
            "dead_letters": r.dead_letters + 1,
            "skew_p50_s": 0.5 if r.skew_p50_s is None else None,
            "skew_p95_s": 0.5 if r.skew_p95_s is None else r.skew_p95_s * 1.01,
            "conflicts": r.conflicts + 1,
            "seq_reuse": r.seq_reuse + 1,
            "in_service": not r.in_service,
        }
        assert set(changes) == {f.name for f in fields(DeviceDay)}
        for name, value in changes.items():
            changed = [*rows[:i], replace(r, **{name: value}), *rows[i + 1 :]]
            digest = input_hash(DeviceDays.from_rows(changed).hash_arrays())
            assert digest not in seen, (i, name)
            seen.add(digest)
    assert input_hash(DeviceDays.from_rows(rows[:-1]).hash_arrays()) not in seen
