"""Long-range streetlight panels read `streetlight_hourly` (migration 007) instead of the raw
rows: on the same data, with Grafana's macros expanded, they must give the numbers computed
here in plain Python from the rows that were stored — including rows that arrived after a
refresh for hours already rolled up (late data updates its bucket) — and short ranges still
read the raw rows."""

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
    text = expand(
        sql,
        start=T0,
        end=T0 + timedelta(hours=hours),
        interval=interval,
        variables={"device": Variable(devices, multi=True, include_all=True)},
    )
    with as_reader(conn):  # as Grafana's login
        return {r[0]: tuple(r[1:]) for r in conn.execute(text).fetchall()}


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

        # The truth, from the stored rows, per UTC hour (in range: the whole 4 days).
        power: dict[datetime, list[float]] = defaultdict(list)
        dim: dict[datetime, list[float]] = defaultdict(list)
        vehicles: dict[datetime, list[int]] = defaultdict(list)
        for _, ts, p, dm, _, v in rows:
            hour = ts.replace(minute=0)
            power[hour].append(p)
            dim[hour].append(dm)
            if v is not None:
                vehicles[hour].append(v)

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
        # A day's buckets are the hours' sums, a 10-minute interval over 4 days reads hours.
        daily = _run(conn, VEHICLES_SQL, devices, hours, timedelta(days=1))
        assert sum(v[0] for v in daily.values()) == sum(sum(v) for v in vehicles.values())
        assert len(_run(conn, POWER_SQL, devices, hours, timedelta(minutes=10))) == hours

        # A short range at 5 minutes still reads the raw rows (one point per record time).
        short = _run(conn, POWER_SQL, devices, 6, timedelta(minutes=5))
        assert len(short) == 6 * 12 + 1  # $__timeFilter is BETWEEN: both ends included
        first = [r for r in rows if r[1] == T0]
        assert short[T0][0] == pytest.approx(sum(r[2] for r in first) / len(first))
