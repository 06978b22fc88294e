"""Errors of the HTTP API: every failure is `{"detail": "one readable line"}` with a 4xx
status when the caller can fix it, 503 when a service behind the API is down.

The packages raise their own exceptions (`KcityError`, `DevicesError`, `AnalyticsError`);
this module is the one boundary that turns them into statuses, so that no bad input ever
becomes a 500:

    NotFound                        404  unknown pilot, device, token
    DeviceConflict                  409  the device id is this pilot's, of another kind
    IdUnavailable                   422  the device id is taken (its owner is not named)
    WindowError, TokenError         422  bad window, wrong kind of pilot, bad role
    DeviceDates                     422  decommissioned before commissioned
    ReportError                     422  no report for this kind of pilot, bad language
    Busy                            429  every heavy-work slot is taken (with Retry-After)
    RawDropped                      410  the window's raw readings were dropped by retention
    DatabaseError, OperationalError 503  the database is unreachable
    BrokerError                     503  the broker is unreachable or refused
    other KcityError                400
    DevicesError                    422  invalid id, unknown kind, bad payload
    AnalyticsError                  422  inputs the methods cannot use
    RequestValidationError          422  bad parameters, each one named
"""

from __future__ import annotations

import math
from typing import Any, Final

import orjson
import psycopg
from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from analytics.errors import AnalyticsError
from devices.errors import DevicesError
from kcity.api.jobs import Busy
from kcity.errors import BrokerError, DatabaseError, KcityError, NotFound, RawDropped
from kcity.registry import DeviceConflict, DeviceDates, IdUnavailable
from kcity.reports.render import ReportError
from kcity.tokens import TokenError
from kcity.window import WindowError


class ErrorBody(BaseModel):
    """The body of every error response."""

    detail: str


class ValidationErrorBody(ErrorBody):
    """A 422 for bad parameters: `detail` in one line, `errors` one per parameter."""

    errors: list[dict[str, Any]] = []


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for the error statuses a route may answer."""
    described = {
        401: "Missing, unknown, revoked or expired bearer token.",
        403: "The token's role or pilot does not cover this request.",
        404: "Unknown pilot or device.",
        409: "The request contradicts the registry (this device id is of another kind).",
        422: "Bad parameters; `detail` says which and why.",
        429: "Busy with heavy work; retry after the `Retry-After` header's seconds.",
        503: "The database or the broker is unreachable.",
    }
    return {
        code: {
            "model": ValidationErrorBody if code == 422 else ErrorBody,
            "description": described[code],
        }
        for code in codes
    }


COMMON_ERRORS: Final = error_responses(401, 403, 422, 503)
ECHO_LIMIT: Final = 200  # characters of the caller's input an error may repeat (DESIGN §8)
MAX_ERRORS: Final = 10  # parameter errors listed in one 422


def clip(text: str, limit: int = ECHO_LIMIT) -> str:
    """`text` cut to `limit` characters (with an ellipsis), so no body echoes a flood."""
    return text if len(text) <= limit else text[:limit] + "…"


class SafeJSONResponse(JSONResponse):
    """Strict JSON: NaN and infinities (an empty window's ratios) become null, not `NaN`."""

    def render(self, content: Any) -> bytes:
        try:  # orjson writes NaN and infinities as null, 10 MB in tens of milliseconds
            return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:  # a type orjson does not know: FastAPI's encoder, then strict JSON
            return super().render(finite(jsonable_encoder(content)))


def finite(value: Any) -> Any:
    """`value` with every non-finite float replaced by None, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def status_of(exc: Exception) -> int:
    """The HTTP status of an exception raised by our packages."""
    if isinstance(exc, NotFound):
        return status.HTTP_404_NOT_FOUND
    if isinstance(exc, Busy):
        return status.HTTP_429_TOO_MANY_REQUESTS
    if isinstance(exc, RawDropped):
        return status.HTTP_410_GONE
    if isinstance(exc, DeviceConflict):
        return status.HTTP_409_CONFLICT
    if isinstance(
        exc,
        IdUnavailable
        | WindowError
        | TokenError
        | ReportError
        | DevicesError
        | AnalyticsError
        | DeviceDates,
    ):
        return status.HTTP_422_UNPROCESSABLE_CONTENT
    if isinstance(exc, DatabaseError | BrokerError | psycopg.OperationalError):
        return status.HTTP_503_SERVICE_UNAVAILABLE
    return status.HTTP_400_BAD_REQUEST


def _one_line(exc: Exception) -> str:
    if isinstance(exc, psycopg.OperationalError):
        return "the database is unavailable; try again shortly"
    return clip((str(exc).strip().splitlines() or [type(exc).__name__])[0])


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    return error_response(exc)


def error_response(exc: Exception) -> JSONResponse:
    """The answer to one of our exceptions (also for a failed job, when it is fetched)."""
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Busy) else None
    return SafeJSONResponse({"detail": _one_line(exc)}, status_code=status_of(exc), headers=headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "loc": [clip(p, 60) if isinstance(p, str) else p for p in e.get("loc", ())],
            "msg": clip(str(e.get("msg", ""))),
            "type": e.get("type"),
        }
        for e in exc.errors()[:MAX_ERRORS]
    ]
    lines = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors]
    return SafeJSONResponse(
        jsonable_encoder({"detail": "; ".join(lines) or "bad request", "errors": errors}),
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


def install(app: FastAPI) -> None:
    """Register the translations on `app`."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    for exc_type in (KcityError, DevicesError, AnalyticsError, psycopg.OperationalError):
        app.add_exception_handler(exc_type, _domain_error)
