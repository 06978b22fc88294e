"""Long-range drone panels read `drone_minutely` (migration 011) instead of the 1 Hz rows: on
the same data, with Grafana's macros expanded, they must give the numbers computed here in
plain Python from the rows that were stored — including rows that arrived after a refresh
for minutes already rolled up (late data updates its minute) and NULLs where a record lacks
a value — and short ranges still read the raw rows. The table itself equals a recount of the
stored rows, row for row."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dashboards.drone import FUEL_SQL, LINK_SQL, POWER_SQL, TRACKS_SQL
from devices.pilots import load_pilot
from kcity.registry import apply_pilot, create_device
from kcity.rollups import refresh
from tests.fixtures.services import as_reader
from tests.grafana_macros import Variable, expand

PILOTS = Path(__file__).resolve().parent.parent / "pilots"
T0 = datetime(2026, 10, 3, tzinfo=UTC)
DAYS = 4
MODES = ("patrol", "transit", "hover", None)
COLUMNS = ("device_id", "ts", "flight_id", "lat", "lon", "agl_m", "mode", "gps_fix",
           "battery_v", "battery_a", "gen_power_w", "fuel_l", "rssi_dbm")  # fmt: skip
Row = dict[str, Any]


def _maybe(rng: random.Random, value: float) -> float | None:
    return None if rng.random() < 0.15 else value


def _rows(devices: list[str], rng: random.Random) -> list[Row]:
    """A record every 20 s while flying (six hours a day), with gaps in every column."""
    out = []
    for device in devices:
        for day in range(DAYS):
            takeoff = T0 + timedelta(days=day, hours=2 + rng.random())
            for k in range(6 * 180):
                out.append({
                    "device_id": device,
                    "ts": takeoff + timedelta(seconds=20 * k),
                    "flight_id": f"{device}-{day}",
                    "lat": 16.5 + rng.uniform(0, 0.1),
                    "lon": 104.7 + rng.uniform(0, 0.1),
                    "agl_m": _maybe(rng, rng.uniform(50, 150)),
                    "mode": rng.choice(MODES),
                    "gps_fix": rng.choice((None, 1, 2, 3, 3, 4)),
                    "battery_v": _maybe(rng, rng.uniform(44, 50)),
                    "battery_a": rng.uniform(-5, 30),
                    "gen_power_w": _maybe(rng, rng.uniform(0, 2000)),
                    "fuel_l": _maybe(rng, rng.uniform(0, 10)),
                    "rssi_dbm": _maybe(rng, rng.uniform(-110, -40)),
                })  # fmt: skip
    return out


def _insert(conn: psycopg.Connection, rows: list[Row]) -> None:
    sql = f"COPY drone_readings ({', '.join(COLUMNS)}) FROM STDIN"
    with conn.cursor() as cur, cur.copy(sql) as copy:
        for r in rows:
            copy.write_row([r[c] for c in COLUMNS])
    conn.commit()


def _run(conn: psycopg.Connection, sql: str, devices: list[str], start: datetime,
         end: datetime, interval: timedelta) -> list[tuple[Any, ...]]:  # fmt: skip
    every = {"device": Variable(devices, multi=True, include_all=True)}
    text = expand(sql, start=start, end=end, interval=interval, variables=every)
    with as_reader(conn):  # as Grafana's login
        return [tuple(r) for r in conn.execute(text).fetchall()]


def _bucket(ts: datetime, size: timedelta) -> datetime:
    """time_bucket's buckets: from 2000-01-03 (a Monday), in whole sizes."""
    origin = datetime(2000, 1, 3, tzinfo=UTC)
    return origin + (ts - origin) // size * size


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _truth(rows: list[Row], size: timedelta, key: Callable[[Row], tuple[Any, ...]],
           keep: Callable[[Row], bool]) -> dict[tuple[Any, ...], list[Row]]:  # fmt: skip
    groups: dict[tuple[Any, ...], list[Row]] = defaultdict(list)
    for r in rows:
        if keep(r):
            groups[(_bucket(r["ts"], size), *key(r))].append(r)
    return groups


def _mode(rows: list[Row]) -> str | None:
    """The most frequent mode, ties to the first in order (PostgreSQL's mode())."""
    counts = Counter(r["mode"] for r in rows if r["mode"] is not None)
    return min(counts, key=lambda m: (-counts[m], m)) if counts else None


def _expect(rows: list[Row], size: timedelta) -> dict[str, list[tuple[Any, ...]]]:
    """Every panel's rows, computed here from the stored rows."""
    tracks = _truth(rows, size, lambda r: (r["device_id"],),
                    lambda r: r["gps_fix"] is not None and r["gps_fix"] >= 3)  # fmt: skip
    power = _truth(rows, size, lambda r: (), lambda r: True)
    fuel = _truth(rows, size, lambda r: (r["device_id"],), lambda r: r["fuel_l"] is not None)
    link = _truth(rows, size, lambda r: (), lambda r: r["rssi_dbm"] is not None)

    def product(r: Row) -> float | None:
        if r["battery_v"] is None or r["battery_a"] is None:
            return None
        return float(r["battery_v"] * r["battery_a"])

    return {
        "tracks": [
            (
                t,
                d,
                _mean([r["lat"] for r in g]),
                _mean([r["lon"] for r in g]),
                _mean([r["agl_m"] for r in g if r["agl_m"] is not None]),
                _mode(g),
            )
            for (t, d), g in sorted(tracks.items())
        ],
        "power": [
            (
                t,
                _mean([p for r in g if (p := product(r)) is not None]),
                _mean([r["gen_power_w"] for r in g if r["gen_power_w"] is not None]),
            )
            for (t,), g in sorted(power.items())
        ],
        "fuel": [(t, d, _mean([r["fuel_l"] for r in g])) for (t, d), g in sorted(fuel.items())],
        "link": [
            (t, _mean([r["rssi_dbm"] for r in g]), min(r["rssi_dbm"] for r in g))
            for (t,), g in sorted(link.items())
        ],
    }


def _same(got: list[tuple[Any, ...]], want: list[tuple[Any, ...]]) -> None:
    """Equal row for row: keys and text exactly, numbers to the last few bits."""
    got = sorted(got, key=lambda r: tuple(str(v) for v in r[:2]))
    want = sorted(want, key=lambda r: tuple(str(v) for v in r[:2]))
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert list(g) == [pytest.approx(v, rel=1e-12) if isinstance(v, float) else v for v in w]


PANELS = {"tracks": TRACKS_SQL, "power": POWER_SQL, "fuel": FUEL_SQL, "link": LINK_SQL}


def test_long_range_drone_panels_read_minutes_with_the_raw_numbers(db_url: str, uid: str) -> None:
    rng = random.Random(11)
    pilot = f"d{uid}"
    devices = [f"{pilot}-uav-{i}" for i in range(2)]
    with psycopg.connect(db_url) as conn:
        apply_pilot(conn, load_pilot(PILOTS / "mukdahan.toml").model_copy(update={"id": pilot}))
        for d in devices:
            create_device(conn, pilot, d)
        conn.commit()
        rows = _rows(devices, rng)
        # Late: one device's afternoon of day 2 arrives after its minutes were rolled up,
        # and a record of another device slipped in between two rolled-up records.
        late = [r for r in rows if r["device_id"] == devices[0] and r["ts"].day == 4
                and r["ts"].hour == 4]  # fmt: skip
        _insert(conn, [r for r in rows if not any(r is x for x in late)])
        refresh(conn, slack_s=0.0)
        extra = {**rows[100], "ts": rows[100]["ts"] + timedelta(seconds=7), "mode": "rtl",
                 "gps_fix": 3, "fuel_l": 99.0, "rssi_dbm": -130.0}  # fmt: skip
        _insert(conn, [*late, extra])
        rows.append(extra)
        refresh(conn, slack_s=0.0)

        # The table itself, row for row, against a recount of the stored rows.
        recount: dict[tuple[Any, ...], list[Any]] = {}
        for r in rows:
            key = (r["device_id"], r["ts"].replace(second=0, microsecond=0), r["mode"] or "")
            fix = r["gps_fix"] is not None and r["gps_fix"] >= 3
            power = None if r["battery_v"] is None else r["battery_v"] * r["battery_a"]
            acc = recount.setdefault(key, [0, 0, [], [], [], [], [], [], []])
            acc[0] += 1
            acc[1] += fix
            at_fix = [r[c] if fix else None for c in ("lat", "lon", "agl_m")]
            values = [*at_fix, power, r["gen_power_w"], r["fuel_l"], r["rssi_dbm"]]
            for slot, value in enumerate(values, start=2):
                if value is not None:
                    acc[slot].append(value)
        stored = conn.execute(
            "SELECT device_id, minute, mode, records, fix_records, lat_sum, lon_sum, agl_sum,"
            " agl_records, battery_w_sum, battery_w_n, gen_w_sum, gen_w_n, fuel_sum, fuel_n,"
            " rssi_sum, rssi_n, rssi_min FROM drone_minutely WHERE device_id = ANY(%s)",
            (devices,),
        ).fetchall()
        assert {tuple(r[:3]) for r in stored} == set(recount)
        for r in stored:
            n, fix, lat, lon, agl, power, gen, fuel, rssi = recount[tuple(r[:3])]
            total = [sum(v) if v else None for v in (lat, lon, agl, power, gen, fuel, rssi)]
            assert r[3:] == (
                n, fix, pytest.approx(total[0]), pytest.approx(total[1]), pytest.approx(total[2]),
                len(agl), pytest.approx(total[3]), len(power), pytest.approx(total[4]), len(gen),
                pytest.approx(total[5]), len(fuel), pytest.approx(total[6]), len(rssi),
                min(rssi, default=None),
            )  # fmt: skip

        start, end = T0, T0 + timedelta(days=DAYS) - timedelta(microseconds=1)
        for size in (timedelta(hours=1), timedelta(minutes=5), timedelta(days=1)):
            want = _expect(rows, size)  # 4 days: the rollup, whatever the interval
            for name, sql in PANELS.items():
                _same(_run(conn, sql, devices, start, end, size), want[name])

        # A short range at a small interval still reads the raw rows (20 s buckets).
        short_end = T0 + timedelta(hours=6) - timedelta(microseconds=1)
        short = [r for r in rows if r["ts"] <= short_end]
        want = _expect(short, timedelta(seconds=20))
        for name, sql in PANELS.items():
            _same(_run(conn, sql, devices, T0, short_end, timedelta(seconds=20)), want[name])
