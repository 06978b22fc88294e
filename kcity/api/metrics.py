"""Prometheus counters of the API's own traffic, exposed at `GET /metrics`.

Labels are the route *template* (`/api/v1/pilots/{pilot}`), never the raw path, so that
pilot and device ids neither leak into the metrics nor multiply their series; requests
matching no route count under `other`, and so do methods outside HTTP's standard set
(junk methods must not grow `/metrics` without bound). `/metrics` needs no token: it shows only
request counts and latencies per route and status, which is what a Prometheus scraper
expects to read without credentials.
"""

from __future__ import annotations

import time
from typing import Final

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER: Final = "other"


class ApiMetrics:
    """The metric families of one app (one registry per app, so apps can coexist)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "kcity_api_requests",
            "HTTP requests answered, by method, route template and status.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "kcity_api_request_duration_seconds",
            "Time to answer a request, by method and route template.",
            ("method", "route"),
            registry=self.registry,
        )

    def exposition(self, request: Request) -> Response:
        """The `/metrics` endpoint."""
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    """Pure ASGI middleware (no response buffering) that counts every HTTP request."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = getattr(scope.get("route"), "path", None)
            route = route if isinstance(route, str) else OTHER
            method = str(scope.get("method", ""))
            method = method if method in METHODS else OTHER
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - started)
