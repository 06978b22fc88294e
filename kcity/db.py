"""Database connections for the shell: one place that turns driver errors into one line."""

from __future__ import annotations

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
