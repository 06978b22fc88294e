"""Database connections for the shell: one place that turns driver errors into one line."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import psycopg

from kcity.errors import DatabaseError


def connect(url: str, *, autocommit: bool = False) -> psycopg.Connection:
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=5)
    except psycopg.OperationalError as exc:
        where = urlsplit(url)
        detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise DatabaseError(
            f"cannot reach the database at {where.hostname}:{where.port or 5432}: {detail}"
        ) from exc


@contextmanager
def index_scans(conn: psycopg.Connection) -> Iterator[None]:
    """Sequential scans off for the statements inside (in the caller's transaction), then
    as they were. For lookups by `received_at` through its BRIN index: after late rows or a
    bulk load the planner scans whole chunks instead (0.15-0.2 s each, to find little). A
    failure inside aborts the transaction, and the setting with it."""
    row = conn.execute("SELECT current_setting('enable_seqscan')").fetchone()
    conn.execute("SELECT set_config('enable_seqscan', 'off', true)")
    yield
    conn.execute("SELECT set_config('enable_seqscan', %s, true)", (row[0] if row else "on",))
