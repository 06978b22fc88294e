"""Long-range streetlight panels read `streetlight_hourly` (migration 007), or the pilot's
sums `streetlight_pilot_hourly` (migration 010) when every device is selected, instead of
the raw rows: on the same data, with Grafana's macros expanded, they must give the numbers
computed here in plain Python from the rows that were stored — including rows that arrived
after a refresh for hours already rolled up (late data updates its bucket) and a device
revoked (the pilot's sums are rebuilt without it) — and short ranges still read the raw
rows."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dashboards.streetlight import POWER_SQL, VEHICLES_SQL
from devices.pilots import load_pilot
from kcity.registry import apply_pilot, create_device
from kcity.rollups import refresh
from tests.fixtures.services import as_reader
from tests.grafana_macros import Variable, expand

PILOTS = Path(__file__).resolve().parent.parent / "pilots"
T0 = datetime(2026, 10, 3, tzinfo=UTC)
DAYS = 4


def _rows(devices: list[str], rng: random.Random) -> list[tuple[Any, ...]]:
    out = []
    for device in devices:
        for k in range(DAYS * 288):
            vehicles = None if rng.random() < 0.2 else rng.randint(0, 9)
            lit = rng.random() < 0.5
            out.append(
                (device, T0 + k * timedelta(minutes=5), rng.uniform(5, 120),
                 rng.uniform(0, 100), lit, vehicles)
            )  # fmt: skip
    return out


def _insert(conn: psycopg.Connection, rows: list[tuple[Any, ...]]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO streetlight_readings (device_id, ts, power_w, dim_pct, lamp_on, vehicles)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            rows,
        )
    conn.commit()


def _run(conn: psycopg.Connection, sql: str, devices: list[str], hours: int, interval: timedelta
         ) -> dict[datetime, tuple[Any, ...]]:  # fmt: skip
    text = _expand(sql, devices, hours, interval)
    with as_reader(conn):  # as Grafana's login
        return {r[0]: tuple(r[1:]) for r in conn.execute(text).fetchall()}


def _expand(sql: str, devices: list[str], hours: int, interval: timedelta) -> str:
    pilot = devices[0].rsplit("-", 1)[0]
    return expand(
        sql,
        start=T0,
        end=T0 + timedelta(hours=hours),
        interval=interval,
        variables={
            "pilot": Variable(pilot),
            "device": Variable(devices, multi=True, include_all=True),
        },
    )


def _tables_read(conn: psycopg.Connection, sql: str) -> set[str]:
    """The tables whose scans ran (not skipped by a false one-time filter)."""
    plan = conn.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}").fetchone()
    assert plan is not None
    found: set[str] = set()

    def walk(node: dict[str, Any]) -> None:
        if "Relation Name" in node and node.get("Actual Loops", 0) > 0:
            found.add(node["Relation Name"])
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0][0]["Plan"])
    return found


def _truth(rows: list[tuple[Any, ...]], devices: list[str]) -> tuple[dict[Any, Any], ...]:
    """Per UTC hour, from the stored rows of `devices`: mean power, mean dim, vehicles."""
    power: dict[datetime, list[float]] = defaultdict(list)
    dim: dict[datetime, list[float]] = defaultdict(list)
    vehicles: dict[datetime, list[int]] = defaultdict(list)
    for device, ts, p, dm, _, v in rows:
        if device not in devices:
            continue
        hour = ts.replace(minute=0)
        power[hour].append(p)
        dim[hour].append(dm)
        if v is not None:
            vehicles[hour].append(v)
    return power, dim, vehicles


def _check(conn: psycopg.Connection, rows: list[tuple[Any, ...]], devices: list[str]) -> None:
    power, dim, vehicles = _truth(rows, devices)
    hours = DAYS * 24
    got = _run(conn, POWER_SQL, devices, hours, timedelta(hours=1))
    assert len(got) == hours
    for hour, (p, dm) in got.items():
        assert p == pytest.approx(sum(power[hour]) / len(power[hour]), rel=1e-12)
        assert dm == pytest.approx(sum(dim[hour]) / len(dim[hour]), rel=1e-12)
    got_v = _run(conn, VEHICLES_SQL, devices, hours, timedelta(hours=1))
    assert {h: v[0] for h, v in got_v.items()} == {
        h: sum(vehicles[h]) if vehicles[h] else None for h in power
    }


def test_long_range_panels_read_hours_with_the_raw_numbers(db_url: str, uid: str) -> None:
    rng = random.Random(7)
    devices = [f"h{uid}-{i}" for i in range(3)]
    with psycopg.connect(db_url) as conn:
        apply_pilot(conn, load_pilot(PILOTS / "madiun.toml").model_copy(update={"id": f"h{uid}"}))
        for d in devices:
            create_device(conn, f"h{uid}", d)
        conn.commit()
        rows = _rows(devices, rng)
        late = [r for r in rows if r[1].hour == 13 and r[1].day == 4]  # arrive after a refresh
        _insert(conn, [r for r in rows if r not in late])
        refresh(conn, slack_s=0.0)
        _insert(conn, late)
        refresh(conn, slack_s=0.0)

        # The truth, from the stored rows, per UTC hour (in range: the whole 4 days): every
        # device ("All": the pilot's sums) and two of them (their own hours).
        hours = DAYS * 24
        with as_reader(conn):
            for sql in (POWER_SQL, VEHICLES_SQL):
                every = _tables_read(conn, _expand(sql, devices, hours, timedelta(hours=1)))
                assert "streetlight_pilot_hourly" in every and "streetlight_hourly" not in every
                some = _tables_read(conn, _expand(sql, devices[:2], hours, timedelta(hours=1)))
                assert "streetlight_hourly" in some and "streetlight_pilot_hourly" not in some
        _check(conn, rows, devices)
        _check(conn, rows, devices[:2])
        _, _, vehicles = _truth(rows, devices)
        # A day's buckets are the hours' sums, a 10-minute interval over 4 days reads hours.
        daily = _run(conn, VEHICLES_SQL, devices, hours, timedelta(days=1))
        assert sum(v[0] for v in daily.values()) == sum(sum(v) for v in vehicles.values())
        assert len(_run(conn, POWER_SQL, devices, hours, timedelta(minutes=10))) == hours

        # A short range at 5 minutes still reads the raw rows (one point per record time).
        short = _run(conn, POWER_SQL, devices, 6, timedelta(minutes=5))
        assert len(short) == 6 * 12 + 1  # $__timeFilter is BETWEEN: both ends included
        first = [r for r in rows if r[1] == T0]
        assert short[T0][0] == pytest.approx(sum(r[2] for r in first) / len(first))

        # A device is revoked: "All" is the other two, and the pilot's sums follow.
        conn.execute("UPDATE devices SET revoked_at = now() WHERE id = %s", (devices[2],))
        conn.commit()
        refresh(conn, slack_s=0.0)
        with as_reader(conn):
            kept = _tables_read(conn, _expand(POWER_SQL, devices[:2], hours, timedelta(hours=1)))
        assert "streetlight_pilot_hourly" in kept
        _check(conn, rows, devices[:2])
        _check(conn, rows, devices)  # a URL may still name it: its own hours, all three
