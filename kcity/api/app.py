"""The FastAPI application: `create_app(settings)` wires routes, auth, errors and metrics.

The settings are passed in (the CLI reads them once); the database pool is opened in the
app's lifespan, so building an app is cheap and touches nothing until it starts serving.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from kcity.api import (
    console,
    errors,
    routes_analytics,
    routes_commands,
    routes_dead_letters,
    routes_device_ops,
    routes_evidence,
    routes_ingest,
    routes_logs,
    routes_pilots,
    routes_reports,
    routes_telemetry,
)
from kcity.api.console import pages as console_pages
from kcity.api.deps import LIGHT_CONNECTIONS, SharedPool
from kcity.api.device_gate import DeviceGate
from kcity.api.jobs import HeavyWork
from kcity.api.metrics import ApiMetrics, MetricsMiddleware
from kcity.errors import DatabaseError
from kcity.settings import Settings

HEALTH_TIMEOUT_S: Final = 2.0

DESCRIPTION: Final = """
Telemetry, verified savings and patrol coverage of K-City Network overseas pilots.

**Authentication**: `Authorization: Bearer TOKEN`, a token made with
`kcity tokens create --role ROLE [--pilot PILOT]`. Roles:

- `admin`: everything;
- `operator`: everything about the token's own pilot (devices: list, provision, revoke;
  telemetry; summaries; reports), nothing about other pilots;
- `evaluator`: read everything, download reports; no provisioning;
- `viewer`: pilots and their savings, coverage and quality; no devices, no raw telemetry,
  no reports.

**Errors** are `{"detail": "..."}`: 401 without a valid token, 403 outside the token's
scope, 404 for an unknown pilot or device, 409 for a device id of this pilot of another
kind, 422 for bad parameters (`errors` lists them; a reserved `kcity-` id or one taken by
another pilot is refused like any bad id), 503 when the database or broker is unreachable.
Error bodies repeat at most 200 characters of the caller's input.

`GET /health` and `GET /metrics` (Prometheus) need no token. The firm's console is at
`/console/` (sign in there with an operator or evaluator token).
"""


def create_app(settings: Settings) -> FastAPI:
    """A new application serving `settings.database_url`; its pool opens on startup."""
    slots = settings.api_heavy_slots or os.cpu_count() or 1
    heavy = HeavyWork(slots, settings.api_max_jobs or 2 * slots)
    # Heavy work holds at most `slots` connections; the rest stay free for light requests.
    pool = SharedPool(settings.api_db_url, max_size=heavy.slots + LIGHT_CONNECTIONS)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with pool.lease():
            try:
                yield
            finally:
                heavy.shutdown()  # no report child outlives the server

    metrics = ApiMetrics()
    app = FastAPI(
        title="K-City Pilot Telemetry API",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        default_response_class=errors.SafeJSONResponse,
    )
    app.state.settings = settings
    app.state.pool = pool
    app.state.heavy = heavy
    app.state.metrics = metrics
    app.state.device_gate = DeviceGate(settings.http_ingest_per_minute)
    errors.install(app)
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    for module in (
        routes_pilots,
        routes_device_ops,
        routes_telemetry,
        routes_analytics,
        routes_reports,
        routes_ingest,
        routes_dead_letters,
        routes_commands,
        routes_evidence,
        routes_logs,
    ):
        app.include_router(module.router)
    app.include_router(console.router)
    console_pages.install(app)

    @app.get("/health", tags=["service"], responses={503: {"description": "No database."}})
    def health() -> Any:
        """Liveness and database reachability; no token needed (`kcity up` polls it)."""
        try:
            with pool.connection(timeout=HEALTH_TIMEOUT_S) as conn:
                conn.execute("SELECT 1")
        except (psycopg.Error, DatabaseError):
            return JSONResponse({"status": "unavailable", "database": False}, status_code=503)
        return {"status": "ok", "database": True}

    @app.get("/metrics", tags=["service"], response_class=PlainTextResponse)
    def prometheus(request: Request) -> Response:
        """Prometheus exposition of the API's request counters and latencies; no token."""
        return metrics.exposition(request)

    return app
