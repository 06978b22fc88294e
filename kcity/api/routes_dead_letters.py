"""A pilot's rejected data and the payload checker: what a firm needs to fix a gateway.

Dead letters are read newest first, with their reason and raw payload as text (capped);
the checker runs ingest's own validation on a payload and stores nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from devices.payloads import MAX_PAYLOAD_BYTES
from kcity import dead_letters
from kcity.api.auth import Action, Caller, allowed_on_pilot
from kcity.api.deps import API_PREFIX, Conn
from kcity.api.errors import COMMON_ERRORS, error_responses
from kcity.api.params import unprocessable
from kcity.api.routes_pilots import device_of, pilot_of
from kcity.payload_check import check_payload

router = APIRouter(prefix=API_PREFIX, tags=["dead letters"], responses=COMMON_ERRORS)


class DeadLetterOut(BaseModel):
    id: int
    received_at: datetime
    topic: str
    device_id: str | None
    stage: str
    reason: str
    payload: str = Field(description="The raw bytes as text (invalid UTF-8 replaced), capped.")
    payload_bytes: int
    truncated: bool


class CheckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device: str = Field(description="The device the payload would come from.")
    channel: Literal["telemetry", "event", "status"] = "telemetry"
    payload: Any = Field(
        description="The message: a JSON object, or a string holding it exactly as sent."
    )


class RecordVerdictOut(BaseModel):
    index: int
    accepted: bool
    stage: str | None
    reason: str | None


class CheckOut(BaseModel):
    accepted: bool = Field(
        description="The message is usable; its accepted records would be stored."
    )
    stage: str | None = Field(description="Where the whole message was refused, if it was.")
    reason: str | None
    records_accepted: int
    records_rejected: int
    records: list[RecordVerdictOut]


@router.get(
    "/pilots/{pilot}/dead-letters",
    response_model=list[DeadLetterOut],
    responses=error_responses(401, 403, 404, 422),
)
def list_dead_letters(
    pilot: str,
    conn: Conn,
    _: Annotated[Caller, Depends(allowed_on_pilot(Action.READ_TELEMETRY))],
    device: Annotated[str | None, Query(description="Only this device's.")] = None,
    stage: Annotated[str | None, Query(description="Only this stage's.")] = None,
    since: Annotated[
        datetime | None, Query(alias="from", description="Received at or after.")
    ] = None,
    until: Annotated[datetime | None, Query(alias="to", description="Received before.")] = None,
    before: Annotated[int | None, Query(ge=1, description="Page on: ids below this one.")] = None,
    limit: Annotated[int, Query(ge=1, le=dead_letters.MAX_LIMIT)] = 100,
) -> list[DeadLetterOut]:
    """The pilot's dead letters, newest first (page with `before` = the last id seen)."""
    pilot_of(conn, pilot)
    if stage is not None and stage not in dead_letters.STAGES:
        raise unprocessable(
            f"unknown stage {stage[:50]!r}; one of {', '.join(dead_letters.STAGES)}"
        )
    for name, value in (("from", since), ("to", until)):
        if value is not None and value.tzinfo is None:
            raise unprocessable(f"{name} needs a UTC offset (e.g. 2026-10-01T00:00:00Z)")
    rows = dead_letters.list_dead_letters(
        conn,
        pilot,
        device=device,
        stage=stage,
        since=since,
        until=until,
        before_id=before,
        limit=limit,
    )
    return [DeadLetterOut(**r.to_json()) for r in rows]


@router.get(
    "/pilots/{pilot}/dead-letters/{letter_id}",
    response_model=DeadLetterOut,
    responses=error_responses(401, 403, 404, 422),
)
def get_dead_letter(
    pilot: str,
    letter_id: int,
    conn: Conn,
    _: Annotated[Caller, Depends(allowed_on_pilot(Action.READ_TELEMETRY))],
) -> DeadLetterOut:
    """One dead letter of the pilot."""
    pilot_of(conn, pilot)
    return DeadLetterOut(**dead_letters.get_dead_letter(conn, pilot, letter_id).to_json())


@router.post(
    "/pilots/{pilot}/payloads/check",
    response_model=CheckOut,
    responses=error_responses(401, 403, 404, 422),
)
def check(
    pilot: str,
    body: CheckIn,
    conn: Conn,
    _: Annotated[Caller, Depends(allowed_on_pilot(Action.READ_DEVICES))],
) -> CheckOut:
    """Run ingest's validation on a payload as if the device had sent it now; store nothing."""
    device_of(conn, pilot, body.device)
    raw = (
        body.payload.encode("utf-8", "surrogateescape")
        if isinstance(body.payload, str)
        else json.dumps(body.payload).encode()
    )
    if len(raw) > 4 * MAX_PAYLOAD_BYTES:
        raise unprocessable(
            f"the payload is {len(raw)} bytes; the checker takes at most {4 * MAX_PAYLOAD_BYTES}"
        )
    report = check_payload(conn, pilot, body.device, raw, datetime.now(UTC), body.channel)
    return CheckOut(**report.to_json())
