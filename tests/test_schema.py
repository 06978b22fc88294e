"""The schema: migrations are idempotent, readings are hypertables, keys reject duplicates."""

from __future__ import annotations

import psycopg
import pytest

from kcity.schema import migrate, migration_files

HYPERTABLES = {
    "streetlight_readings",
    "drone_readings",
    "generic_readings",
    "events",
    "ingest_stats",
}


def test_second_migration_is_a_no_op(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        assert migrate(conn) == []
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
    assert versions == [v for v, _, _ in migration_files()]


def test_readings_and_events_are_hypertables(conn: psycopg.Connection) -> None:
    rows = conn.execute(
        "SELECT hypertable_name FROM timescaledb_information.hypertables"
    ).fetchall()
    assert {r[0] for r in rows} >= HYPERTABLES


def test_timescaledb_is_loaded(conn: psycopg.Connection) -> None:
    row = conn.execute(
        "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
    ).fetchone()
    assert row is not None and row[0].startswith("2.")


@pytest.mark.parametrize(
    ("table", "columns", "values"),
    [
        (
            "streetlight_readings",
            "device_id, ts, power_w, dim_pct, lamp_on",
            "('d1', '2024-01-01T00:00Z', 1, 30, true)",
        ),
        (
            "drone_readings",
            "device_id, ts, flight_id, lat, lon",
            "('d1', '2024-01-01T00:00Z', 'f', 1, 2)",
        ),
        ("generic_readings", "device_id, ts, metric, value", "('d1', '2024-01-01T00:00Z', 'm', 1)"),
        ("events", "device_id, ts, type", "('d1', '2024-01-01T00:00Z', 'fault')"),
    ],
)
def test_keys_reject_duplicates(
    conn: psycopg.Connection, table: str, columns: str, values: str
) -> None:
    conn.execute(f"INSERT INTO {table} ({columns}) VALUES {values}")
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(f"INSERT INTO {table} ({columns}) VALUES {values}")
    conn.execute(f"DELETE FROM {table}")
