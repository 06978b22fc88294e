"""Device commands: queue one (operator, admin), list a device's, read one's state.

A command for a native MQTT device is published on its `cmd` topic before the answer; for
a pilot behind a LoRaWAN network server it stays `queued` until the pilot's bridge sends it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, status
from pydantic import BaseModel, ConfigDict, Field

from kcity import device_commands
from kcity.api.auth import Action, Caller, allowed_on_pilot
from kcity.api.deps import API_PREFIX, AppSettings, Conn
from kcity.api.errors import COMMON_ERRORS, error_responses
from kcity.api.routes_pilots import device_of, pilot_of
from kcity.errors import NotFound

router = APIRouter(prefix=API_PREFIX, tags=["commands"], responses=COMMON_ERRORS)


class CommandCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(description="ping, set_level, set_dimming_profile or reboot.")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description='e.g. {"level_pct": 40}, or a dimming profile {"steps": [{"from": "18:00",'
        ' "level_pct": 100}, …], "adaptive": {"on_detect_pct": 100, "hold_s": 60}}',
    )
    expires_min: int = Field(
        device_commands.DEFAULT_EXPIRES_MIN, ge=1, le=device_commands.MAX_EXPIRES_MIN
    )


class CommandOut(BaseModel):
    id: uuid.UUID
    pilot: str
    device_id: str
    type: str
    params: dict[str, Any]
    created_by: str
    state: str = Field(description="queued, sent, acked, rejected or expired.")
    via: str | None
    reason: str | None
    created_at: datetime
    expires_at: datetime
    sent_at: datetime | None
    closed_at: datetime | None

    @classmethod
    def of(cls, c: device_commands.Command) -> CommandOut:
        return cls.model_validate(c.to_json())


@router.post(
    "/pilots/{pilot}/devices/{device}/commands",
    response_model=CommandOut,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(401, 403, 404, 422, 503),
)
def send_command(
    pilot: str,
    device: str,
    body: CommandCreate,
    conn: Conn,
    settings: AppSettings,
    caller: Annotated[Caller, Depends(allowed_on_pilot(Action.SEND_COMMANDS))],
) -> CommandOut:
    """Queue a command and send it (MQTT at once; LoRaWAN through the pilot's bridge)."""
    device_of(conn, pilot, device)
    conn.commit()
    sent = device_commands.send_command(
        conn,
        settings,
        pilot,
        device,
        body.type,
        body.params,
        created_by=f"token:{caller.token_id}",
        expires_min=body.expires_min,
    )
    return CommandOut.of(sent)


@router.get(
    "/pilots/{pilot}/devices/{device}/commands",
    response_model=list[CommandOut],
    responses=error_responses(401, 403, 404),
)
def list_commands(
    pilot: str,
    device: str,
    conn: Conn,
    _: Annotated[Caller, Depends(allowed_on_pilot(Action.READ_DEVICES))],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[CommandOut]:
    """The device's commands, newest first."""
    device_of(conn, pilot, device)
    return [CommandOut.of(c) for c in device_commands.list_commands(conn, pilot, device, limit)]


@router.get(
    "/pilots/{pilot}/commands/{command_id}",
    response_model=CommandOut,
    responses=error_responses(401, 403, 404),
)
def get_command(
    pilot: str,
    command_id: uuid.UUID,
    conn: Conn,
    _: Annotated[Caller, Depends(allowed_on_pilot(Action.READ_DEVICES))],
) -> CommandOut:
    """One command and where it stands."""
    pilot_of(conn, pilot)
    found = device_commands.get_command(conn, command_id)
    if found.pilot_id != pilot:
        raise NotFound(f"unknown command {command_id}")
    return CommandOut.of(found)
