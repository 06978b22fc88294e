"""The pilot and device registry in the database: who may stream, for which pilot, as what.

Functions take a psycopg connection and run in the caller's transaction (or autocommit).
Device passwords are never stored: only a salted scrypt hash, so a database leak does not
leak broker credentials. Re-provisioning an existing device of the same pilot *rotates*
its password (and re-activates it if it was revoked); a device id belongs to one pilot for
ever, since it is also the MQTT username that its readings are filed under.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

import psycopg
from psycopg.types.json import Jsonb

from devices.ids import validate_device_id
from devices.kinds import get_kind
from devices.pilots import Pilot
from kcity.errors import DatabaseError, KcityError, NotFound

_SCRYPT_N: Final = 2**14
_SCRYPT_R: Final = 8
_SCRYPT_P: Final = 1
PASSWORD_BYTES: Final = 24  # 192 bits, 32 URL-safe characters


class DeviceConflict(KcityError):
    """A device id of this pilot already used in a way the request contradicts (other kind)."""


class IdUnavailable(KcityError):
    """A device id taken by another pilot: refused like an invalid id, its owner not named."""


class DeviceDates(KcityError):
    """Commissioning dates that contradict each other."""


@dataclass(frozen=True, slots=True)
class PilotSummary:
    """One registered pilot, as `kcity pilots list` shows it."""

    id: str
    name: str
    kind: str
    country: str
    city: str
    devices: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Device:
    """One registered device; `last_seen` is its latest message or status, if any."""

    id: str
    pilot_id: str
    kind: str
    created_at: datetime
    revoked_at: datetime | None
    last_seen: datetime | None
    # Expected to report from/until these local dates (DESIGN §4); None: the whole window.
    commissioned_on: date | None = None
    decommissioned_on: date | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


# --- passwords ---------------------------------------------------------------------------


def new_password() -> str:
    """A strong random MQTT password."""
    return secrets.token_urlsafe(PASSWORD_BYTES)


def hash_password(password: str) -> str:
    """Salted scrypt hash, self-describing: `scrypt$N$r$p$salt$hash` (base64)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32
    )
    b64 = base64.b64encode
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """True when `password` matches a hash made by `hash_password`."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        want = base64.b64decode(digest)
        got = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(want),
        )
    except ValueError:
        return False
    return hmac.compare_digest(got, want)


# --- pilots ------------------------------------------------------------------------------


def apply_pilot(conn: psycopg.Connection, pilot: Pilot) -> bool:
    """Register or update a pilot from its validated definition; True when it was new."""
    row = _one(
        conn,
        "INSERT INTO pilots (id, name, kind, country, city, timezone, latitude, longitude,"
        " definition) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, kind = EXCLUDED.kind,"
        " country = EXCLUDED.country, city = EXCLUDED.city, timezone = EXCLUDED.timezone,"
        " latitude = EXCLUDED.latitude, longitude = EXCLUDED.longitude,"
        " definition = EXCLUDED.definition, updated_at = now()"
        " RETURNING (xmax = 0)",
        (
            pilot.id,
            pilot.name,
            pilot.kind,
            pilot.country,
            pilot.city,
            pilot.timezone,
            pilot.latitude,
            pilot.longitude,
            Jsonb(pilot.to_json()),
        ),
    )
    return bool(row and row[0])


def get_pilot(conn: psycopg.Connection, pilot_id: str) -> Pilot:
    """The registered definition of `pilot_id`; `NotFound` if it was never applied."""
    row = _one(conn, "SELECT definition FROM pilots WHERE id = %s", (pilot_id,))
    if row is None:
        raise NotFound(
            f"unknown pilot {pilot_id!r}: register it first with 'kcity pilots apply FILE'"
        )
    return Pilot.from_json(row[0])


def list_pilots(conn: psycopg.Connection) -> list[PilotSummary]:
    """Every registered pilot with its number of active devices, by id."""
    rows = _all(
        conn,
        "SELECT p.id, p.name, p.kind, p.country, p.city,"
        " count(d.id) FILTER (WHERE d.revoked_at IS NULL), p.updated_at"
        " FROM pilots p LEFT JOIN devices d ON d.pilot_id = p.id"
        " GROUP BY p.id ORDER BY p.id",
        (),
    )
    return [PilotSummary(*row) for row in rows]


# --- devices -----------------------------------------------------------------------------


def create_device(
    conn: psycopg.Connection,
    pilot_id: str,
    device_id: str,
    kind: str | None = None,
    *,
    commissioned_on: date | None = None,
    decommissioned_on: date | None = None,
) -> str:
    """Register a device (or rotate the password of an existing one); return the password.

    The kind defaults to the pilot's. Re-provisioning a device of the same pilot issues a new
    password and re-activates it; a device of another pilot, or of another kind, is refused.
    Commissioning dates given are stored (on re-provisioning too); dates not given are kept.
    """
    validate_device_id(device_id, "device id")
    if commissioned_on and decommissioned_on and decommissioned_on <= commissioned_on:
        raise DeviceDates(
            f"decommissioned on {decommissioned_on} must be after commissioned on {commissioned_on}"
        )
    pilot = get_pilot(conn, pilot_id)
    kind = get_kind(kind or pilot.kind).name
    password = new_password()
    hashed = hash_password(password)
    with conn.transaction():
        existing = _one(
            conn, "SELECT pilot_id, kind FROM devices WHERE id = %s FOR UPDATE", (device_id,)
        )
        if existing is None:
            _exec(
                conn,
                "INSERT INTO devices (id, pilot_id, kind, password_hash, commissioned_on,"
                " decommissioned_on) VALUES (%s, %s, %s, %s, %s, %s)",
                (device_id, pilot_id, kind, hashed, commissioned_on, decommissioned_on),
            )
            return password
        if existing[0] != pilot_id:
            raise IdUnavailable(
                f"invalid device id {device_id!r}: not available (device ids are unique"
                " across pilots); choose another id"
            )
        if existing[1] != kind:
            raise DeviceConflict(
                f"device {device_id!r} is a {existing[1]!r} device, not {kind!r}; choose another id"
            )
        _exec(
            conn,
            "UPDATE devices SET password_hash = %s, revoked_at = NULL,"
            " commissioned_on = coalesce(%s, commissioned_on),"
            " decommissioned_on = coalesce(%s, decommissioned_on) WHERE id = %s",
            (hashed, commissioned_on, decommissioned_on, device_id),
        )
    return password


def device_exists(conn: psycopg.Connection, device_id: str) -> bool:
    return _one(conn, "SELECT 1 FROM devices WHERE id = %s", (device_id,)) is not None


def get_device(conn: psycopg.Connection, device_id: str) -> Device:
    """One device; `NotFound` if it was never provisioned."""
    found = _devices(conn, "WHERE d.id = %s", (device_id,))
    if not found:
        raise NotFound(f"unknown device {device_id!r}")
    return found[0]


def check_password(conn: psycopg.Connection, device_id: str, password: str) -> bool:
    """True when `password` is the active device's current password."""
    row = _one(
        conn,
        "SELECT password_hash FROM devices WHERE id = %s AND revoked_at IS NULL",
        (device_id,),
    )
    return row is not None and verify_password(password, row[0])


def revoke_device(conn: psycopg.Connection, device_id: str) -> Device:
    """Mark a device revoked (idempotent); `NotFound` if it does not exist."""
    _exec(
        conn,
        "UPDATE devices SET revoked_at = coalesce(revoked_at, now()) WHERE id = %s",
        (device_id,),
    )
    return get_device(conn, device_id)


def list_devices(conn: psycopg.Connection, pilot_id: str | None = None) -> list[Device]:
    """Devices (of one pilot, or all), revoked ones included, by pilot and id."""
    if pilot_id is None:
        return _devices(conn, "", ())
    get_pilot(conn, pilot_id)  # NotFound for an unknown pilot, rather than an empty list
    return _devices(conn, "WHERE d.pilot_id = %s", (pilot_id,))


def _devices(conn: psycopg.Connection, where: str, params: tuple[object, ...]) -> list[Device]:
    rows = _all(
        conn,
        "SELECT d.id, d.pilot_id, d.kind, d.created_at, d.revoked_at,"
        " greatest(d.last_seen, s.received_at), d.commissioned_on, d.decommissioned_on"
        " FROM devices d LEFT JOIN device_status s ON s.device_id = d.id "
        f"{where} ORDER BY d.pilot_id, d.id",
        params,
    )
    return [Device(*row) for row in rows]


# --- driver errors become one line ------------------------------------------------------


def _failed(exc: psycopg.Error) -> DatabaseError:
    detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if isinstance(exc, psycopg.errors.UndefinedTable):
        detail += " (run 'kcity db migrate')"
    return DatabaseError(f"registry query failed: {detail}")


def _exec(conn: psycopg.Connection, sql: str, params: tuple[object, ...]) -> None:
    try:
        conn.execute(sql, params)
    except psycopg.Error as exc:
        raise _failed(exc) from exc


def _one(conn: psycopg.Connection, sql: str, params: tuple[object, ...]) -> tuple[Any, ...] | None:
    try:
        row: tuple[Any, ...] | None = conn.execute(sql, params).fetchone()
    except psycopg.Error as exc:
        raise _failed(exc) from exc
    return row


def _all(conn: psycopg.Connection, sql: str, params: tuple[object, ...]) -> list[tuple[Any, ...]]:
    try:
        rows: list[tuple[Any, ...]] = conn.execute(sql, params).fetchall()
    except psycopg.Error as exc:
        raise _failed(exc) from exc
    return rows
