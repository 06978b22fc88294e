"""Least-privilege database roles, granted after every migration (issue #17).

Why after every migration and from the catalogue: tables added later by any migration are
covered without a GRANT of their own, and a column added to a table later is checked
against the secret rules again. The roles (the same names locally and in
docker-compose; the local stack and deploy/timescaledb/initdb give them logins):

- `kcity_ingest`: reads the registry, writes what ingest stores (an explicit list);
- `kcity_api`: DML on every table but the secret ones, which it may only read;
- `grafana_reader`: nothing in `public`; SELECT on views of the same names in schema
  `grafana` without secret tables or columns, found first through its `search_path`.

The owner (who migrates) must be allowed to create roles (a superuser in both stacks).
"""

from __future__ import annotations

import re
from typing import Final

import psycopg
from psycopg import sql

INGEST_ROLE: Final = "kcity_ingest"
API_ROLE: Final = "kcity_api"
READER_ROLE: Final = "grafana_reader"
ROLES: Final = (INGEST_ROLE, API_ROLE, READER_ROLE)
READER_SCHEMA: Final = "grafana"

# Tables holding secrets or the schema's own bookkeeping: no Grafana view, nothing for ingest.
SECRET_TABLES: Final = frozenset({"api_tokens", "schema_migrations"})
# Columns never shown to Grafana or ingest, in any table.
SECRET_COLUMNS: Final = re.compile(r"password|secret|token")
# What the ingest service (and the LoRaWAN bridge) stores: SELECT, INSERT, UPDATE.
INGEST_WRITES: Final = (
    "streetlight_readings",
    "drone_readings",
    "generic_readings",
    "events",
    "device_status",
    "ingest_messages",
    "dead_letters",
    "ingest_stats",
    "commands",
    "dead_letters_suppressed",
    "late_commits",
)
# What it only reads (secret columns excepted), and the columns it may update there.
INGEST_READS: Final = ("pilots", "devices")
INGEST_UPDATES: Final = {"devices": ("last_seen",)}
# The API may check these but never write them (a token is minted by the CLI only).
API_READ_ONLY: Final = frozenset({"api_tokens"})
API_NONE: Final = frozenset({"schema_migrations"})


def apply_grants(conn: psycopg.Connection) -> None:
    """Create the roles if missing and make their privileges match the catalogue."""
    for role in ROLES:
        conn.execute(
            sql.SQL(
                "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {0})"
                " THEN CREATE ROLE {1} NOLOGIN; END IF; END $$"
            ).format(sql.Literal(role), sql.Identifier(role))
        )
    tables = _public_tables(conn)
    for role in ROLES:
        conn.execute(
            sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {}").format(
                sql.Identifier(role)
            )
        )
        # The deployment's reader once read new tables through default privileges.
        conn.execute(
            sql.SQL(
                "ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM {}"
            ).format(sql.Identifier(role))
        )
    _grant_ingest(conn, tables)
    _grant_api(conn, tables)
    _reader_views(conn, tables)


def _public_tables(conn: psycopg.Connection) -> dict[str, list[str]]:
    """Table, view and materialized view names of `public` → their columns, in order."""
    rows = conn.execute(
        "SELECT c.relname, a.attname FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
        " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm')"
        " ORDER BY c.relname, a.attnum"
    ).fetchall()
    tables: dict[str, list[str]] = {}
    for name, column in rows:
        tables.setdefault(name, []).append(column)
    return tables


def _shown(columns: list[str]) -> list[str]:
    return [c for c in columns if not SECRET_COLUMNS.search(c)]


def _grant_ingest(conn: psycopg.Connection, tables: dict[str, list[str]]) -> None:
    role = sql.Identifier(INGEST_ROLE)
    for name in INGEST_WRITES:
        if name in tables:
            conn.execute(
                sql.SQL("GRANT SELECT, INSERT, UPDATE ON {} TO {}").format(
                    sql.Identifier(name), role
                )
            )
    for name in INGEST_READS:
        if name in tables:
            cols = sql.SQL(", ").join(map(sql.Identifier, _shown(tables[name])))
            conn.execute(
                sql.SQL("GRANT SELECT ({}) ON {} TO {}").format(cols, sql.Identifier(name), role)
            )
    for name, columns in INGEST_UPDATES.items():
        present = [c for c in columns if c in tables.get(name, [])]
        if present:
            conn.execute(
                sql.SQL("GRANT UPDATE ({}) ON {} TO {}").format(
                    sql.SQL(", ").join(map(sql.Identifier, present)), sql.Identifier(name), role
                )
            )
    conn.execute(sql.SQL("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {}").format(role))


def _grant_api(conn: psycopg.Connection, tables: dict[str, list[str]]) -> None:
    role = sql.Identifier(API_ROLE)
    for name in tables:
        if name in API_NONE:
            continue
        what = "SELECT" if name in API_READ_ONLY else "SELECT, INSERT, UPDATE, DELETE"
        conn.execute(
            sql.SQL("GRANT {} ON {} TO {}").format(sql.SQL(what), sql.Identifier(name), role)
        )
    conn.execute(sql.SQL("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {}").format(role))


def drop_reader_views(conn: psycopg.Connection) -> None:
    """Drop the reader's views: before migrations, so that none of them keeps a migration
    from dropping or changing a table; `apply_grants` makes them again."""
    for (name,) in conn.execute(
        "SELECT viewname FROM pg_views WHERE schemaname = %s", (READER_SCHEMA,)
    ).fetchall():
        conn.execute(
            sql.SQL("DROP VIEW {}.{}").format(sql.Identifier(READER_SCHEMA), sql.Identifier(name))
        )


def _reader_views(conn: psycopg.Connection, tables: dict[str, list[str]]) -> None:
    """Views of the same names in `grafana`, re-created so that they follow the tables."""
    schema = sql.Identifier(READER_SCHEMA)
    role = sql.Identifier(READER_ROLE)
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
    conn.execute(sql.SQL("REVOKE CREATE ON SCHEMA {} FROM PUBLIC").format(schema))
    drop_reader_views(conn)
    for name, columns in tables.items():
        shown = _shown(columns)
        if name in SECRET_TABLES or not shown:
            continue
        conn.execute(
            sql.SQL("CREATE VIEW {}.{} AS SELECT {} FROM public.{}").format(
                schema,
                sql.Identifier(name),
                sql.SQL(", ").join(map(sql.Identifier, shown)),
                sql.Identifier(name),
            )
        )
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, role))
    conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(schema, role))
    path = f"{READER_SCHEMA}, public"
    current = conn.execute(
        "SELECT 1 FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole"
        " WHERE r.rolname = %s AND s.setdatabase = 0 AND %s = ANY(s.setconfig)",
        (READER_ROLE, f"search_path={path}"),
    ).fetchone()
    if current is None:  # ALTER ROLE only when needed: it rewrites a cluster-wide row
        conn.execute(sql.SQL("ALTER ROLE {} SET search_path = {}, public").format(role, schema))
