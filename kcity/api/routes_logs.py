"""Flight-log upload: an operator imports a drone's log for its own pilot's device.

Why an endpoint: a firm's operator holds an API token for its pilot, not the drone's MQTT
secret nor database access; the upload goes through `kcity.log_import` exactly as
`kcity import log` does (same validation, dedupe and dead letters).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from starlette.concurrency import run_in_threadpool

from kcity import log_import
from kcity.api.auth import Action, Caller, allowed_on_pilot
from kcity.api.deps import API_PREFIX, Conn
from kcity.api.errors import COMMON_ERRORS, ErrorBody, error_responses
from kcity.api.routes_pilots import device_of

router = APIRouter(prefix=API_PREFIX, tags=["pilots and devices"], responses=COMMON_ERRORS)

MAX_LOG_BYTES = 512 * 1024 * 1024
BINARY = {"schema": {"type": "string", "format": "binary"}}
TOO_LARGE: dict[str, Any] = {"model": ErrorBody, "description": "The log exceeds 512 MiB."}


@router.post(
    "/pilots/{pilot}/devices/{device}/logs",
    responses={**error_responses(401, 403, 404, 422), 413: TOO_LARGE},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def upload_log(
    pilot: str,
    device: str,
    request: Request,
    conn: Conn,
    _: Annotated[Caller, Depends(allowed_on_pilot(Action.MANAGE_DEVICES))],
    flight_id: Annotated[str, Query(min_length=1, max_length=64)] = "upload",
    hfov_deg: Annotated[float | None, Query(gt=0, lt=180)] = None,
) -> dict[str, Any]:
    """Store a .tlog, DataFlash .bin or PX4 .ulg (the body) as the device's records and
    events; answers with what was stored, skipped and dead-lettered."""
    device_of(conn, pilot, device)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "upload.log"
        size = 0
        with path.open("wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_LOG_BYTES:
                    raise log_import.LogImportError(f"log larger than {MAX_LOG_BYTES // 2**20} MiB")
                out.write(chunk)
        try:
            log, summary = await run_in_threadpool(
                log_import.import_file, conn, pilot, device, path, flight_id=flight_id,
                hfov_deg=hfov_deg,
            )  # fmt: skip
        except log_import.LogImportError as exc:  # not a drone pilot, revoked device
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    return {"pilot": pilot, "device_id": device, "flight_id": flight_id, **log.summary(),
            **summary.to_json()}  # fmt: skip
