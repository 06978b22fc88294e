"""The savings loader against a real TimescaleDB: which rows it reads, and that reading a
window over several connections gives what one connection gives."""

from __future__ import annotations

import datetime as dt

import numpy as np
import psycopg
import pytest

from analytics import queries
from analytics.nights import NightCalendar

T0 = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
STEP = 300.0
IDS = ("q-sl-1", "q-sl-2", "q-sl-3")
# Two "nights" of six hours each, the second starting a day after the first.
DUSK = np.array([T0.timestamp() + 12 * 3600, T0.timestamp() + 36 * 3600])
NIGHTS = NightCalendar("UTC", (dt.date(2026, 10, 1), dt.date(2026, 10, 2)), DUSK, DUSK + 6 * 3600)
END = T0 + dt.timedelta(days=2)


@pytest.fixture(scope="module")
def readings(db_url: str) -> dict[str, np.ndarray]:
    """Two days of 5-minute rows per luminaire, stored out of time order."""
    ts = T0.timestamp() + STEP * np.arange(2 * 288)
    lit = np.zeros(ts.size, dtype=bool)
    for dusk, dawn in zip(NIGHTS.dusk, NIGHTS.dawn, strict=True):
        lit |= (ts > dusk) & (ts <= dawn)
    lit[30:33] = True  # a little day-burning
    rng = np.random.default_rng(3)
    with psycopg.connect(db_url) as conn, conn.cursor() as cur:
        for k, device in enumerate(IDS):
            power = np.where(lit, 100.0 + k, 0.5)
            energy = np.cumsum(power * STEP / 3600.0)
            for i in rng.permutation(ts.size):
                cur.execute(
                    "INSERT INTO streetlight_readings"
                    " (device_id, ts, power_w, energy_wh, dim_pct, lamp_on)"
                    " VALUES (%s, to_timestamp(%s), %s, %s, %s, %s)",
                    (device, ts[i], power[i], energy[i], 100.0 if lit[i] else 0.0, bool(lit[i])),
                )
    return {"ts": ts, "lit": lit}


def test_the_loader_reads_nights_the_lead_before_dusk_and_lamp_on_rows(
    db_url: str, readings: dict[str, np.ndarray]
) -> None:
    with psycopg.connect(db_url) as conn:
        every = queries.load_luminaires(conn, IDS, T0, END)
        read = queries.load_luminaires(conn, IDS, T0, END, NIGHTS, 1.5 * STEP)
    ts, lit = readings["ts"], readings["lit"]
    lead = np.zeros(ts.size, dtype=bool)
    for dusk in NIGHTS.dusk:
        lead |= (ts > dusk - 1.5 * STEP - 1.0) & (ts <= dusk)
    expected = ts[lit | lead]
    assert [s.device_id for s in read] == list(IDS)
    for whole, part in zip(every, read, strict=True):
        np.testing.assert_array_equal(whole.ts, ts)  # sorted, though stored shuffled
        np.testing.assert_array_equal(part.ts, expected)
        keep = np.isin(whole.ts, part.ts)
        np.testing.assert_array_equal(part.energy_wh, whole.energy_wh[keep])
        np.testing.assert_array_equal(part.lamp_on, whole.lamp_on[keep])


@pytest.mark.parametrize("workers", [2, 3, 7])
def test_reading_over_several_connections_equals_one(
    db_url: str, readings: dict[str, np.ndarray], workers: int
) -> None:
    arrays = queries._Arrays("streetlight_readings", ("power_w", "energy_wh", "lamp_on"), IDS)
    with psycopg.connect(db_url) as conn:
        one = queries._per_device(conn, arrays, T0, END)
        many = queries._per_device(conn, arrays, T0, END, workers)
    assert [d for d, _ in many] == [d for d, _ in one]
    for (_, a), (_, b) in zip(one, many, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


def test_uncommitted_rows_of_the_callers_transaction_are_read(
    db_url: str, readings: dict[str, np.ndarray]
) -> None:
    late = END - dt.timedelta(seconds=1)
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "INSERT INTO streetlight_readings (device_id, ts, power_w, energy_wh, dim_pct,"
            " lamp_on) VALUES ('q-sl-9', %s, 1, 1, 0, false)",
            (late,),
        )
        series = queries.load_luminaires(conn, ["q-sl-9"], T0, END)
        conn.rollback()
    assert [s.ts.tolist() for s in series] == [[late.timestamp()]]


def test_a_span_whose_connection_is_refused_is_read_on_the_callers(
    db_url: str, readings: dict[str, np.ndarray]
) -> None:
    with psycopg.connect(db_url, autocommit=True) as admin:
        admin.execute("DROP ROLE IF EXISTS q_single")
        admin.execute("CREATE ROLE q_single LOGIN PASSWORD 'q-pw' CONNECTION LIMIT 1")
        admin.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO q_single")
        admin.execute("GRANT USAGE ON SCHEMA _timescaledb_internal TO q_single")
        admin.execute("GRANT SELECT ON ALL TABLES IN SCHEMA _timescaledb_internal TO q_single")
        every = queries.load_luminaires(admin, IDS, T0, END)
    with psycopg.connect(db_url, user="q_single", password="q-pw") as conn:
        with pytest.raises(psycopg.OperationalError, match="too many connections"):
            psycopg.connect(db_url, user="q_single", password="q-pw")
        limited = queries.load_luminaires(conn, IDS, T0, END)
    assert [s.device_id for s in limited] == list(IDS)
    for a, b in zip(every, limited, strict=True):
        np.testing.assert_array_equal(a.ts, b.ts)
        np.testing.assert_array_equal(a.energy_wh, b.energy_wh)


def test_spans_on_new_connections_read_in_the_callers_snapshot(
    db_url: str, readings: dict[str, np.ndarray]
) -> None:
    """An evidence export reads its rows and computes its figures in one repeatable-read
    snapshot: a row committed meanwhile must reach neither, on whichever connection a span
    is read."""
    late = END - dt.timedelta(minutes=1)  # in the second span of two
    with psycopg.connect(db_url) as conn, psycopg.connect(db_url, autocommit=True) as other:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.execute("SELECT count(*) FROM streetlight_readings")  # the snapshot is taken
        other.execute(
            "INSERT INTO streetlight_readings (device_id, ts, power_w, energy_wh, dim_pct,"
            " lamp_on) VALUES ('q-sl-1', %s, 1, 1, 0, true)",
            (late,),
        )
        try:
            series = queries.load_luminaires(conn, ["q-sl-1"], T0, END)
        finally:
            conn.rollback()
            other.execute("DELETE FROM streetlight_readings WHERE device_id = 'q-sl-1'"
                          " AND ts = %s", (late,))  # fmt: skip
    assert late.timestamp() not in series[0].ts
    assert series[0].ts.size == readings["ts"].size


def test_reads_side_by_side_run_without_parallel_workers_and_leave_the_callers_setting(
    db_url: str,
) -> None:
    def setting(conn: psycopg.Connection) -> str:
        row = conn.execute("SELECT current_setting('max_parallel_workers_per_gather')").fetchone()
        assert row is not None
        return str(row[0])

    def failing(conn: psycopg.Connection) -> str:
        conn.execute("SELECT 1 / 0")
        return "unreachable"

    with psycopg.connect(db_url, options="-c max_parallel_workers_per_gather=3") as conn:
        assert queries.side_by_side(conn, [setting, setting, setting]) == ["0", "0", "0"]
        assert setting(conn) == "3"
        with pytest.raises(psycopg.errors.DivisionByZero):  # not masked by the restoring
            queries.side_by_side(conn, [failing, setting])
        conn.rollback()
        assert setting(conn) == "3"
