"""Versioned, idempotent schema migrations (`kcity db migrate`).

Each `migrations/NNN_name.sql` runs once, in order, in its own transaction, recorded in
`schema_migrations`. An advisory lock keeps two migrators from racing.
"""

from __future__ import annotations

from importlib import resources

import psycopg

from kcity.errors import DatabaseError
from kcity.grants import apply_grants, drop_reader_views

LOCK_ID = 7_240_001


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every shipped migration, in order."""
    found = []
    for entry in resources.files("kcity.migrations").iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text()))
    return sorted(found)


def migrate(conn: psycopg.Connection, *, retain_raw_days: int = 0) -> list[str]:
    """Apply the migrations not yet applied; return their names (empty when up to date)."""
    applied: list[str] = []
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_ID,))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            pending = [m for m in migration_files() if m[0] not in done]
            if pending:  # the reader's views would pin the tables a migration changes
                drop_reader_views(conn)
            for version, name, sql in pending:
                conn.execute(sql)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name)
                )
                applied.append(name)
            apply_grants(conn)  # after all migrations: their tables are covered too
            if licensed(conn):
                _enable_extras(conn, retain_raw_days)
    except psycopg.Error as exc:
        raise DatabaseError(f"migration failed: {exc}") from exc
    return applied


def licensed(conn: psycopg.Connection) -> bool:
    """Whether the server carries the Timescale license (policies, compression)."""
    row = conn.execute("SELECT current_setting('timescaledb.license', true)").fetchone()
    return bool(row and row[0] == "timescale")


def _enable_extras(conn: psycopg.Connection, retain_raw_days: int = 0) -> None:
    """Where the Timescale license allows it (Docker image): compression of old raw
    readings, and a retention policy dropping them after `retain_raw_days` (0: none)."""
    for table, segment in (("streetlight_readings", "device_id"), ("drone_readings", "device_id")):
        conn.execute(
            f"ALTER TABLE {table} SET (timescaledb.compress,"
            f" timescaledb.compress_segmentby = '{segment}')"
        )
        conn.execute(
            f"SELECT add_compression_policy('{table}', interval '30 days', if_not_exists => true)"
        )
    for table in ("streetlight_readings", "drone_readings", "generic_readings"):
        conn.execute(f"SELECT remove_retention_policy('{table}', if_exists => true)")
        if retain_raw_days > 0:
            conn.execute(
                f"SELECT add_retention_policy('{table}', make_interval(days => %s))",
                (retain_raw_days,),
            )
