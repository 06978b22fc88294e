"""What every route gets from the app: a pooled database connection and the settings.

Both live on `app.state`, set by `create_app`; nothing here reads the environment. The
pool belongs to the app's lifespan: opened by the first running lifespan and closed by the
last, so an app can be started, stopped and started again (psycopg pools cannot reopen),
and test clients that each run a lifespan of the same app do not close it under each other.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Final

import psycopg
from fastapi import Depends, Request
from psycopg_pool import ConnectionPool

from kcity.api.jobs import HeavyWork
from kcity.errors import DatabaseError
from kcity.settings import Settings

API_PREFIX: Final = "/api/v1"  # every route of version 1, so metrics see whole route templates
LIGHT_CONNECTIONS: Final = 8  # pooled connections beyond the heavy-work slots
POOL_TIMEOUT_S: Final = 10.0


class SharedPool:
    """A connection pool leased by the app's running lifespans."""

    def __init__(self, conninfo: str, max_size: int = LIGHT_CONNECTIONS + 2) -> None:
        self._conninfo = conninfo
        self._max_size = max_size
        self._lock = threading.Lock()
        self._leases = 0
        self._pool: ConnectionPool | None = None

    @property
    def conninfo(self) -> str:
        return self._conninfo

    @contextmanager
    def lease(self) -> Iterator[None]:
        with self._lock:
            if self._leases == 0:
                self._pool = ConnectionPool(
                    self._conninfo,
                    min_size=1,
                    max_size=self._max_size,
                    open=False,
                    name="kcity-api",
                    kwargs={"connect_timeout": 5},
                )
                self._pool.open(wait=False)  # a database still starting must not keep us down
            self._leases += 1
        try:
            yield
        finally:
            with self._lock:
                self._leases -= 1
                if self._leases == 0 and self._pool is not None:
                    pool, self._pool = self._pool, None
                    pool.close()

    @contextmanager
    def connection(self, timeout: float = POOL_TIMEOUT_S) -> Iterator[psycopg.Connection]:
        pool = self._pool
        if pool is None:
            raise DatabaseError("the API is not serving (its lifespan has not started)")
        with pool.connection(timeout=timeout) as conn:
            yield conn


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_conn(request: Request) -> Iterator[psycopg.Connection]:
    """A connection for the whole request, shared by its dependencies (auth, scope, route).

    The pool rolls back when the request fails; routes that write commit before answering.
    """
    pool: SharedPool = request.app.state.pool
    with pool.connection() as conn:
        yield conn


def get_pool(request: Request) -> SharedPool:
    pool: SharedPool = request.app.state.pool
    return pool


def get_heavy(request: Request) -> HeavyWork:
    heavy: HeavyWork = request.app.state.heavy
    return heavy


def heavy_slot(request: Request) -> Iterator[None]:
    """Hold one of the heavy-work slots for the request, or answer 429 at once. Declared as
    a route dependency, it is solved before the route takes a database connection."""
    with get_heavy(request).slot("analyses"):
        yield


Conn = Annotated[psycopg.Connection, Depends(get_conn)]
AppSettings = Annotated[Settings, Depends(get_settings)]
Pool = Annotated[SharedPool, Depends(get_pool)]
Heavy = Annotated[HeavyWork, Depends(get_heavy)]
HEAVY_SLOT: Final = Depends(heavy_slot)
