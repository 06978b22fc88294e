"""Device status and credential rotation: what a firm does without calling the operator."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends
from pydantic import BaseModel

from kcity.api.auth import Action, Caller, allowed_on_pilot
from kcity.api.deps import API_PREFIX, AppSettings, Conn
from kcity.api.errors import COMMON_ERRORS, error_responses
from kcity.api.routes_pilots import CredentialsOut, device_of, pilot_of, provision_via_broker
from kcity.device_status import device_statuses
from kcity.provisioning import Credentials
from kcity.registry import Device, DeviceConflict
from kcity.settings import Settings

router = APIRouter(prefix=API_PREFIX, tags=["pilots and devices"], responses=COMMON_ERRORS)


class LastDeadLetterOut(BaseModel):
    id: int
    received_at: datetime
    stage: str
    reason: str


class DeviceStatusOut(BaseModel):
    device_id: str
    kind: str
    active: bool
    last_seen: datetime | None
    state: str | None
    silent: bool
    completeness_today_pct: float | None
    completeness_yesterday_pct: float | None
    last_dead_letter: LastDeadLetterOut | None


def _out(status: dict[str, Any]) -> DeviceStatusOut:
    return DeviceStatusOut(**status)


@router.get(
    "/pilots/{pilot}/device-status",
    response_model=list[DeviceStatusOut],
    responses=error_responses(401, 403, 404),
)
def list_status(
    pilot: str,
    conn: Conn,
    _: Annotated[Caller, Depends(allowed_on_pilot(Action.READ_DEVICES))],
) -> list[DeviceStatusOut]:
    """Every device of the pilot with its status; silent devices first."""
    pilot_of(conn, pilot)
    return [_out(s.to_json()) for s in device_statuses(conn, pilot, datetime.now(UTC))]


@router.get(
    "/pilots/{pilot}/devices/{device}/status",
    response_model=DeviceStatusOut,
    responses=error_responses(401, 403, 404),
)
def get_status(
    pilot: str,
    device: str,
    conn: Conn,
    _: Annotated[Caller, Depends(allowed_on_pilot(Action.READ_DEVICES))],
) -> DeviceStatusOut:
    """Last seen, completeness today (so far) and yesterday, last dead letter."""
    device_of(conn, pilot, device)
    return _out(device_statuses(conn, pilot, datetime.now(UTC), device)[0].to_json())


@router.post(
    "/pilots/{pilot}/devices/{device}/credentials",
    response_model=CredentialsOut,
    responses=error_responses(401, 403, 404, 409, 503),
)
def rotate(
    pilot: str,
    device: str,
    conn: Conn,
    settings: AppSettings,
    _: Annotated[Caller, Depends(allowed_on_pilot(Action.MANAGE_DEVICES))],
) -> CredentialsOut:
    """A new MQTT password for the device, shown only in this answer; the old one stops
    working at once (its connection is dropped)."""
    found = device_of(conn, pilot, device)
    return CredentialsOut(**rotate_credentials(conn, settings, found).to_json())


def rotate_credentials(conn: psycopg.Connection, s: Settings, device: Device) -> Credentials:
    """Rotate an active device's password in the registry and the broker (API and console)."""
    if not device.active:
        raise DeviceConflict(
            f"device {device.id!r} is revoked; provision it again to re-activate it"
        )
    return provision_via_broker(conn, s, device.pilot_id, device.id)
