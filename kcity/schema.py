"""Versioned, idempotent schema migrations (`kcity db migrate`).

Each `migrations/NNN_name.sql` runs once, in order, in its own transaction, recorded in
`schema_migrations`. An advisory lock keeps two migrators from racing.
"""

from __future__ import annotations

from importlib import resources

import psycopg

from kcity.errors import DatabaseError

LOCK_ID = 7_240_001

# Grafana's read-only login (deploy/timescaledb/initdb) reads every table through default
# privileges; that must not include secrets: nothing of api_tokens, and every column of
# devices but password_hash. Run after every migration, so that columns added later count.
RESTRICT_READERS = """
DO $$
DECLARE cols text;
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'grafana_reader') THEN
    REVOKE ALL ON api_tokens FROM grafana_reader;
    REVOKE ALL ON devices FROM grafana_reader;
    SELECT string_agg(quote_ident(column_name), ', ') INTO cols
      FROM information_schema.columns
     WHERE table_schema = current_schema() AND table_name = 'devices'
       AND column_name <> 'password_hash';
    EXECUTE format('GRANT SELECT (%s) ON devices TO grafana_reader', cols);
  END IF;
END $$
"""


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
            for version, name, sql in migration_files():
                if version in done:
                    continue
                conn.execute(sql)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name)
                )
                applied.append(name)
            conn.execute(RESTRICT_READERS)
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
