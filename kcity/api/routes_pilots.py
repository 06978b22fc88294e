"""Pilots and their devices: read the registry, provision and revoke devices.

Provisioning goes through `kcity.provisioning`, like `kcity devices provision`: the
registry and the running broker change together, and the password is returned once.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, status
from pydantic import BaseModel, ConfigDict, Field, field_validator

from devices.ids import ID_PATTERN, validate_device_id
from devices.pilots import Pilot
from kcity import provisioning, registry
from kcity.api.auth import Action, Caller, allowed, allowed_on_pilot
from kcity.api.deps import API_PREFIX, AppSettings, Conn
from kcity.api.errors import COMMON_ERRORS, error_responses
from kcity.api.params import is_id
from kcity.errors import NotFound
from kcity.registry import Device, PilotSummary
from kcity.settings import Settings
from kcity.stack.broker_admin import platform_admin

router = APIRouter(prefix=API_PREFIX, tags=["pilots and devices"], responses=COMMON_ERRORS)


class PilotOut(BaseModel):
    id: str
    name: str
    kind: str
    country: str
    city: str
    devices: int = Field(description="Active (unrevoked) devices.")
    updated_at: datetime

    @classmethod
    def of(cls, s: PilotSummary) -> PilotOut:
        return cls(
            id=s.id,
            name=s.name,
            kind=s.kind,
            country=s.country,
            city=s.city,
            devices=s.devices,
            updated_at=s.updated_at,
        )


class PilotDetail(PilotOut):
    timezone: str
    latitude: float
    longitude: float
    definition: dict[str, Any] = Field(description="The registered pilot definition (TOML).")


class DeviceOut(BaseModel):
    device_id: str
    pilot: str
    kind: str
    active: bool
    created_at: datetime
    revoked_at: datetime | None
    last_seen: datetime | None
    commissioned_on: date | None = None
    decommissioned_on: date | None = None

    @classmethod
    def of(cls, d: Device) -> DeviceOut:
        return cls(
            device_id=d.id,
            pilot=d.pilot_id,
            kind=d.kind,
            active=d.active,
            created_at=d.created_at,
            revoked_at=d.revoked_at,
            last_seen=d.last_seen,
            commissioned_on=d.commissioned_on,
            decommissioned_on=d.decommissioned_on,
        )


class DeviceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device_id: str = Field(pattern=ID_PATTERN, description="Also the device's MQTT username.")
    kind: str | None = Field(None, description="Device kind; defaults to the pilot's.")
    commissioned_on: date | None = Field(
        None, description="First local date it is expected to report (not provisioning time)."
    )
    decommissioned_on: date | None = Field(
        None, description="First local date it is no longer expected to report (exclusive)."
    )

    @field_validator("device_id")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        return validate_device_id(value)  # `kcity-…` is the platform's: 422 before any work


class CredentialsOut(BaseModel):
    device_id: str
    pilot: str
    kind: str
    username: str
    password: str = Field(description="Shown only in this answer; store it on the device.")
    mqtt_host: str
    mqtt_port: int
    mqtt_tls_port: int
    topic_prefix: str
    rotated: bool = Field(description="The device existed: its old password no longer works.")


def pilot_of(conn: psycopg.Connection, pilot: str) -> Pilot:
    """The registered pilot, or 404."""
    if not is_id(pilot):
        raise NotFound(f"unknown pilot {pilot!r}")
    return registry.get_pilot(conn, pilot)


def device_of(conn: psycopg.Connection, pilot: str, device: str) -> Device:
    """The device of that pilot, or 404 (also for a device of another pilot)."""
    pilot_of(conn, pilot)
    found = registry.get_device(conn, device) if is_id(device) else None
    if found is None or found.pilot_id != pilot:
        raise NotFound(f"pilot {pilot!r} has no device {device!r}")
    return found


@router.get("/pilots", response_model=list[PilotOut], responses=error_responses(401, 403))
def list_pilots(
    conn: Conn, caller: Annotated[Caller, Depends(allowed(Action.LIST_PILOTS))]
) -> list[PilotOut]:
    """Registered pilots (an operator sees its own only)."""
    return [PilotOut.of(s) for s in registry.list_pilots(conn) if caller.sees(s.id)]


@router.get("/pilots/{pilot}", response_model=PilotDetail, responses=error_responses(401, 403, 404))
def get_pilot(
    pilot: str, conn: Conn, _: Annotated[Caller, Depends(allowed_on_pilot(Action.READ_PILOT))]
) -> PilotDetail:
    """One pilot with its definition."""
    p = pilot_of(conn, pilot)
    summary = next(s for s in registry.list_pilots(conn) if s.id == p.id)
    return PilotDetail(
        **PilotOut.of(summary).model_dump(),
        timezone=p.timezone,
        latitude=p.latitude,
        longitude=p.longitude,
        definition=p.to_json(),
    )


@router.get(
    "/pilots/{pilot}/devices",
    response_model=list[DeviceOut],
    responses=error_responses(401, 403, 404),
)
def list_devices(
    pilot: str, conn: Conn, _: Annotated[Caller, Depends(allowed_on_pilot(Action.READ_DEVICES))]
) -> list[DeviceOut]:
    """The pilot's devices, revoked ones included; never their credentials."""
    pilot_of(conn, pilot)
    return [DeviceOut.of(d) for d in registry.list_devices(conn, pilot)]


@router.get(
    "/pilots/{pilot}/devices/{device}",
    response_model=DeviceOut,
    responses=error_responses(401, 403, 404),
)
def get_device(
    pilot: str,
    device: str,
    conn: Conn,
    _: Annotated[Caller, Depends(allowed_on_pilot(Action.READ_DEVICES))],
) -> DeviceOut:
    """One device of the pilot."""
    return DeviceOut.of(device_of(conn, pilot, device))


@router.post(
    "/pilots/{pilot}/devices",
    response_model=CredentialsOut,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(401, 403, 404, 409, 422, 503),
)
def provision_device(
    pilot: str,
    body: DeviceCreate,
    conn: Conn,
    settings: AppSettings,
    _: Annotated[Caller, Depends(allowed_on_pilot(Action.MANAGE_DEVICES))],
) -> CredentialsOut:
    """Provision a device (or rotate an existing one's password) in the registry and the
    broker; the MQTT password is in this answer only."""
    pilot_of(conn, pilot)
    creds = provision_via_broker(
        conn,
        settings,
        pilot,
        body.device_id,
        body.kind,
        commissioned_on=body.commissioned_on,
        decommissioned_on=body.decommissioned_on,
    )
    return CredentialsOut(**creds.to_json())


def provision_via_broker(
    conn: psycopg.Connection,
    s: Settings,
    pilot: str,
    device: str,
    kind: str | None = None,
    *,
    commissioned_on: date | None = None,
    decommissioned_on: date | None = None,
) -> provisioning.Credentials:
    """Provision (or rotate) through the running broker; used by routes and the console."""
    conn.commit()  # end the read transaction: provisioning commits its own, broker included
    with platform_admin(s) as admin:
        creds = provisioning.provision_device(
            conn,
            admin,
            pilot,
            device,
            kind,
            mqtt_host=s.mqtt_host,
            mqtt_port=s.mqtt_port,
            mqtt_tls_port=s.mqtt_tls_port,
            commissioned_on=commissioned_on,
            decommissioned_on=decommissioned_on,
        )
    conn.commit()
    return creds


@router.delete(
    "/pilots/{pilot}/devices/{device}",
    response_model=DeviceOut,
    responses=error_responses(401, 403, 404, 503),
)
def revoke_device(
    pilot: str,
    device: str,
    conn: Conn,
    settings: AppSettings,
    _: Annotated[Caller, Depends(allowed_on_pilot(Action.MANAGE_DEVICES))],
) -> DeviceOut:
    """Revoke a device: the broker drops its credentials (and its connection) at once."""
    device_of(conn, pilot, device)
    conn.commit()
    s = settings
    with platform_admin(s) as admin:
        revoked = provisioning.revoke_device(conn, admin, device)
    conn.commit()
    return DeviceOut.of(revoked)
