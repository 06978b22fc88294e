"""HTTP ingest (DESIGN §4 "Other ways in"): a device posts the v1 payload it would publish.

The device authenticates as it does to the broker (HTTP Basic: its MQTT username and
password), and may post only under its own pilot and id, as its broker ACL allows. The
body goes through ingest's own validation and batch writer (``ingest.direct``), so the
dedupe and dead letters are the MQTT ones; the answer comes after the commit.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from pydantic import BaseModel, Field

from devices.ids import topic as topic_of
from devices.payloads import MAX_PAYLOAD_BYTES
from ingest import direct
from ingest.registry import DeviceInfo
from kcity import registry
from kcity.api.deps import API_PREFIX, Conn
from kcity.api.device_gate import DeviceGate
from kcity.api.errors import error_responses
from kcity.api.params import is_id

router = APIRouter(prefix=API_PREFIX, tags=["ingest"])
basic = HTTPBasic(auto_error=False, description="The device's MQTT username and password.")
_CHUNK: Final = 64 * 1024


class DeadLetterCount(BaseModel):
    stage: str
    code: str
    count: int


class IngestResult(BaseModel):
    records: int = Field(description="Records (or events) that passed validation.")
    stored: int = Field(description="Of those, rows newly stored.")
    duplicates: int = Field(description="Of those, already stored (same device and time).")
    duplicate_message: bool = Field(description="This (boot, seq, channel) was received before.")
    dead_lettered: int = Field(description="Dead letters written for this message.")
    dead_letters: list[DeadLetterCount]
    reasons: list[str] = Field(description="Why each dead letter was refused.")


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": 'Basic realm="kcity"'}
    )


def device_caller(
    pilot: str,
    device: str,
    request: Request,
    conn: Conn,
    credentials: Annotated[HTTPBasicCredentials | None, Depends(basic)],
) -> DeviceInfo:
    """401 for missing or wrong device credentials, 403 for another device's path, 429 for
    a device over its rate (DeviceGate)."""
    if credentials is None:
        raise _unauthorized("send the device's MQTT username and password (HTTP Basic)")
    user, password = credentials.username, credentials.password
    row = (
        conn.execute(
            "SELECT password_hash, pilot_id, kind FROM devices"
            " WHERE id = %s AND revoked_at IS NULL",
            (user,),
        ).fetchone()
        if is_id(user)
        else None
    )
    conn.commit()  # end the read: the writer commits its own transaction
    gate: DeviceGate = request.app.state.device_gate
    if row is None:
        raise _unauthorized("unknown device, revoked device or wrong password")
    stored, device_pilot, kind = row
    if not gate.known(user, stored, password):
        if not registry.verify_password(password, stored):
            raise _unauthorized("unknown device, revoked device or wrong password")
        gate.remember(user, stored, password)
    if user != device or device_pilot != pilot:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"device {user!r} of pilot {device_pilot!r} may post only to"
            f" {API_PREFIX}/ingest/{device_pilot}/{user}/{{channel}}",
        )
    wait = gate.admit(user)
    if wait > 0:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"device {user!r} posts more than {gate.per_minute} messages a minute",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
    return DeviceInfo(device_pilot, kind, False)


async def _body(request: Request) -> bytes:
    """The request body, refused with 413 as soon as it passes the payload limit."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_PAYLOAD_BYTES:
        raise _too_large(int(declared))
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_PAYLOAD_BYTES:
            raise _too_large(size)
        parts.append(chunk)
    return b"".join(parts)


def _too_large(size: int) -> HTTPException:
    return HTTPException(
        status.HTTP_413_CONTENT_TOO_LARGE,
        f"payload of {size} bytes or more exceeds the {MAX_PAYLOAD_BYTES}-byte limit",
    )


def _ingest(
    conn: psycopg.Connection, info: DeviceInfo, pilot: str, device: str, channel: str, raw: bytes
) -> direct.Stored:
    topic = topic_of(pilot, device, channel)
    now = datetime.now(UTC)
    outcome = direct.judge(topic, raw, {device: info}, now)
    return direct.store(conn, topic, raw, outcome, now)


@router.post(
    "/ingest/{pilot}/{device}/{channel}",
    response_model=IngestResult,
    responses={
        **error_responses(401, 403, 503),
        429: {"description": "The device posts faster than its limit; see Retry-After."},
        413: {"description": "The body exceeds the payload limit (256 KiB)."},
        422: {"description": "Nothing of the message is usable; it was dead-lettered."},
    },
)
async def ingest_message(
    pilot: str,
    device: str,
    channel: Literal["telemetry", "event", "status"],
    request: Request,
    conn: Conn,
    info: Annotated[DeviceInfo, Depends(device_caller)],
) -> Any:
    """Store one v1 message (`{"v":1,"boot":…,"seq":…,"records":[…]}`) from the device.

    Authenticate with HTTP Basic: the device's MQTT username and password. The answer comes
    after the commit; bad records are dead-lettered (listed in `reasons`) and good ones kept.
    """
    raw = await _body(request)
    result = await run_in_threadpool(_ingest, conn, info, pilot, device, channel, raw)
    body = result.to_json()
    if not result.usable:
        detail = "; ".join(result.reasons) or "the message cannot be used"
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail[:1000])
    return body
