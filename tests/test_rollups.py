"""The per-device-day rollup against a full recomputation over the raw rows (migration 007,
kcity/rollups.py): the simulators' streetlight and drone data stored through ingest's own
writer in two parts with refreshes between — the second part holds the catch-up after a
two-day link outage (late data into old days), re-sent messages (duplicates), a changed
reading (a conflict) and a reused message number — must give the same quality result,
key for key, from the rollup as from the raw rows. The window's clock-skew percentiles come
from a sketch: held to the exact order statistics of the raw rows within its stated bound.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from analytics import skew_sketch
from devices.payloads import encode_message
from devices.pilots import load_pilot
from devices.sim import DroneSimConfig, StreetlightSimConfig, simulate_drones
from devices.sim.batching import Batch
from devices.sim.streetlights import simulate_streetlights
from ingest.direct import judge, store
from ingest.registry import load_devices
from kcity import quality_days, rollups
from kcity.analyses import Window, _registered, run_quality
from kcity.registry import apply_pilot, create_device

PILOTS = Path(__file__).resolve().parent.parent / "pilots"
START = date(2026, 10, 1)


def _store(conn: psycopg.Connection, pilot: str, batches: list[tuple[Batch, int]]) -> None:
    registry = load_devices(conn)
    for batch, seq in batches:
        raw = encode_message(batch.boot, seq, batch.items, batch.channel)
        topic = f"kcity/v1/{pilot}/{batch.device_id}/{batch.channel}"
        now = datetime.now(UTC)
        store(conn, topic, raw, judge(topic, raw, registry, now), now)


def _numbered(batches: Iterator[Batch]) -> list[tuple[Batch, int]]:
    """Each device numbers its messages per channel within a boot, as the SDK does."""
    seqs: dict[tuple[str, str, int], int] = {}
    out = []
    for b in batches:
        key = (b.device_id, b.channel, b.boot)
        seqs[key] = seqs.get(key, -1) + 1
        out.append((b, seqs[key]))
    return out


def _pilot(conn: psycopg.Connection, name: str, pilot_id: str, ids: list[str]) -> None:
    apply_pilot(conn, load_pilot(PILOTS / f"{name}.toml").model_copy(update={"id": pilot_id}))
    for i, device in enumerate(ids):
        # One device leaves service half way: expectation is the registry's, at read time.
        create_device(
            conn, pilot_id, device, decommissioned_on=START + timedelta(days=3) if i == 1 else None
        )


def _same(a: Any, b: Any, path: str = "") -> None:
    assert type(a) is type(b) or {type(a), type(b)} <= {int, float}, path
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def _compare(conn: psycopg.Connection, pilot: str, window: Window) -> dict[str, Any]:
    fast = run_quality(conn, pilot, window, persist=False)
    full = run_quality(conn, pilot, window, persist=False, from_rollup=False)
    _same(fast, full)
    return fast


def _exact_order_statistics(
    conn: psycopg.Connection, pilot: str, table: str, window: Window, tz: str
) -> np.ndarray:
    lo, hi = window.utc(tz)
    rows = conn.execute(
        f"SELECT extract(epoch FROM r.received_at - r.ts)::float8 FROM {table} r"
        " JOIN devices d ON d.id = r.device_id WHERE d.pilot_id = %s AND r.ts >= %s"
        " AND r.ts < %s",
        (pilot, lo, hi),
    ).fetchall()
    return np.sort(np.array([r[0] for r in rows]))


def _within_bound(sketched: float, values: np.ndarray, fraction: float) -> None:
    """The sketch's bound (analytics/skew_sketch.py) against the raw rows' order statistic."""
    exact = float(values[math.floor(fraction * (len(values) - 1))])
    if abs(exact) < skew_sketch.FLOOR_S:
        assert abs(sketched - exact) <= skew_sketch.FLOOR_S
    else:
        ratio = sketched / exact
        assert 1 / (skew_sketch.MAX_RATIO * 1.0001) <= ratio <= skew_sketch.MAX_RATIO * 1.0001


@pytest.fixture
def rollup_conn(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url) as c:
        yield c


def test_streetlight_rollup_equals_full_recomputation(
    rollup_conn: psycopg.Connection, uid: str
) -> None:
    conn = rollup_conn
    cfg = StreetlightSimConfig(
        start=START, days=6, seed=3, pilot_id=f"r{uid}", devices=8, batch_records=12
    )
    sim = simulate_streetlights(cfg)
    pilot = cfg.pilot_id
    _pilot(conn, "madiun", pilot, cfg.device_ids())
    conn.commit()
    late = sim.truth()["totals"]["records_late"]
    assert late > 0, "the run must hold a link outage caught up later"
    batches = [b for b in _numbered(sim.batches()) if b[0].channel == "telemetry"]
    half = len(batches) // 2
    _store(conn, pilot, batches[:half])
    window = Window(START, START + timedelta(days=7))
    _compare(conn, pilot, window)  # refreshes, with the running stack's slack

    # The rest arrives: the outage's catch-up lands in days rolled up already.
    _store(conn, pilot, batches[half:])
    # Re-sent messages (duplicates of old days), a changed reading (a conflict) and a
    # message number reused with other content.
    _store(conn, pilot, batches[3:6])
    first, seq = batches[0]
    changed = [{**first.items[0], "power_w": first.items[0]["power_w"] + 7.0}]
    _store(conn, pilot, [(Batch(first.device_id, "telemetry", changed, 0.0, 99), 0)])
    reused = Batch(first.device_id, "telemetry", first.items[:1], 0.0, first.boot)
    _store(conn, pilot, [(reused, seq + 1)])
    # No slack: only what arrived after the last horizon is looked at again.
    done = rollups.refresh(conn, slack_s=0.0)
    assert done.rebuilt_devices == 0 and done.touched_days > 0
    devices = _registered(conn, pilot)
    args: dict[str, Any] = {
        "kind": "streetlight",
        "devices": devices,
        "timezone": "Asia/Jakarta",
        "interval_s": 300.0,
        "start": window.start,
        "end": window.end,
    }
    from analytics.queries import quality_rows as raw_rows

    assert quality_days.quality_rows(conn, **args).rows() == raw_rows(conn, **args).rows()

    body = _compare(conn, pilot, window)
    assert body["duplicates"] >= 3 and body["conflicts"] == 1 and body["seq_reuse"] == 1
    values = _exact_order_statistics(conn, pilot, "streetlight_readings", window, "Asia/Jakarta")
    assert len(values) == body["records"]
    for fraction, key in ((0.5, "skew_p50_s"), (0.95, "skew_p95_s")):
        _within_bound(body[key], values, fraction)

    # The pilot's days as the `pilot_day_quality` view gives them (the portfolio's
    # "completeness yesterday"), against the per-device-day rows of the result.
    per_day: dict[str, list[float]] = {}
    for r in body["per_device_day"]:
        expected = r["expected"] or 0.0
        day = per_day.setdefault(r["day"], [0.0, 0.0, 0.0])
        day[0] += min(r["records"], expected)
        day[1] += expected
        day[2] += r["records"]
    view = {
        d.isoformat(): (float(c), int(n))
        for d, c, n in conn.execute(
            "SELECT day, completeness_pct, records FROM pilot_day_quality"
            " WHERE pilot_id = %s AND day >= %s AND day < %s",
            (pilot, window.start, window.end),
        ).fetchall()
    }
    assert view == {
        day: (round(100.0 * counted / expected, 2), int(records))
        for day, (counted, expected, records) in per_day.items()
    }

    # The pilot moves zone: its devices' days are cut again, whole.
    conn.execute("UPDATE pilots SET timezone = 'Asia/Tokyo' WHERE id = %s", (pilot,))
    conn.commit()
    assert rollups.refresh(conn, slack_s=0.0).rebuilt_devices == len(cfg.device_ids())
    tokyo = {**args, "timezone": "Asia/Tokyo"}
    assert quality_days.quality_rows(conn, **tokyo).rows() == raw_rows(conn, **tokyo).rows()


def test_drone_rollup_equals_full_recomputation(
    rollup_conn: psycopg.Connection, db_url: str, uid: str
) -> None:
    conn = rollup_conn
    cfg = DroneSimConfig(start=START, days=1, seed=5, pilot_id=f"d{uid}", devices=1)
    sim = simulate_drones(cfg)
    pilot = cfg.pilot_id
    ids = sorted({b.device_id for b in sim.batches()})
    _pilot(conn, "mukdahan", pilot, ids)
    conn.commit()
    batches = [b for b in _numbered(sim.batches()) if b[0].channel == "telemetry"]
    _store(conn, pilot, batches[: len(batches) // 3])
    window = Window(START, START + timedelta(days=1))
    _compare(conn, pilot, window)
    _store(conn, pilot, batches[len(batches) // 3 :])
    _store(conn, pilot, batches[:2])  # re-sent
    body = _compare(conn, pilot, window)
    assert body["records"] > 0 and body["duplicates"] >= 2
    assert body["completeness_pct"] is not None
    # The API's role refreshes and reads the same (it may write rollups, not create tables).
    _store(conn, pilot, batches[2:4])  # re-sent again: a refresh has work to do
    api_url = db_url.replace("postgresql://kcity@", "postgresql://kcity_api@")
    with psycopg.connect(api_url) as api:
        as_api = run_quality(api, pilot, window, persist=False)
    assert as_api["duplicates"] == body["duplicates"] + 2
    _compare(conn, pilot, window)
