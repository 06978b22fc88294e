"""Downlink commands in the database: queued → sent → acked | rejected | expired.

A command is stored first (``queued``), then delivered: on the device's MQTT ``cmd`` topic
at once by whoever created it (the CLI, the API), or — for a pilot behind a LoRaWAN network
server — by that pilot's bridge, which holds the network server's connection. The device's
``command_ack`` event closes it, whichever way it arrives: a trigger on ``events``
(migration 008) does it, unless the command has expired. Expiry is computed when read
(no read writes): a queued or sent command past ``expires_at`` reads as ``expired``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from psycopg.types.json import Jsonb

from devices.commands import DimmingProfile, check_params, command_message
from devices.ids import cmd_topic
from kcity import registry
from kcity.errors import BrokerError, KcityError, NotFound
from kcity.settings import Settings

DEFAULT_EXPIRES_MIN: Final = 60
MAX_EXPIRES_MIN: Final = 7 * 24 * 60
_STATE: Final = (
    "CASE WHEN state IN ('queued', 'sent') AND expires_at <= now() THEN 'expired' ELSE state END"
)
_COLUMNS: Final = (
    f"id, pilot_id, device_id, type, params, created_by, {_STATE}, via, reason,"
    " created_at, expires_at, sent_at, closed_at"
)


class CommandError(KcityError):
    """A command that cannot be queued (unknown type, bad parameters, bad expiry)."""


@dataclass(frozen=True, slots=True)
class Command:
    """One command and where it stands."""

    id: uuid.UUID
    pilot_id: str
    device_id: str
    type: str
    params: dict[str, Any]
    created_by: str
    state: str
    via: str | None
    reason: str | None
    created_at: datetime
    expires_at: datetime
    sent_at: datetime | None
    closed_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        def iso(t: datetime | None) -> str | None:
            return t.isoformat() if t is not None else None

        return {
            "id": str(self.id),
            "pilot": self.pilot_id,
            "device_id": self.device_id,
            "type": self.type,
            "params": self.params,
            "created_by": self.created_by,
            "state": self.state,
            "via": self.via,
            "reason": self.reason,
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
            "sent_at": iso(self.sent_at),
            "closed_at": iso(self.closed_at),
        }

    @property
    def message(self) -> bytes:
        """What the device receives on its ``cmd`` topic."""
        return command_message(str(self.id), self.type, self.params, self.expires_at)

    @property
    def topic(self) -> str:
        return cmd_topic(self.pilot_id, self.device_id)


def queue_command(
    conn: psycopg.Connection,
    pilot_id: str,
    device_id: str,
    command_type: str,
    params: dict[str, Any],
    *,
    created_by: str,
    expires_min: int = DEFAULT_EXPIRES_MIN,
) -> Command:
    """Store a checked command for an active device of the pilot; it is not sent yet."""
    checked = check_params(command_type, params)  # PayloadError (a 422) names what is wrong
    if not 1 <= expires_min <= MAX_EXPIRES_MIN:
        raise CommandError(f"expires must be 1 to {MAX_EXPIRES_MIN} minutes, not {expires_min}")
    device = registry.get_device(conn, device_id)
    if device.pilot_id != pilot_id:
        raise NotFound(f"pilot {pilot_id!r} has no device {device_id!r}")
    if not device.active:
        raise registry.DeviceConflict(f"device {device_id!r} is revoked")
    expires = datetime.now(UTC) + timedelta(minutes=expires_min)
    row = conn.execute(
        "INSERT INTO commands (id, pilot_id, device_id, type, params, created_by, expires_at)"
        f" VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
        (uuid.uuid4(), pilot_id, device_id, command_type, Jsonb(checked), created_by, expires),
    ).fetchone()
    conn.commit()
    assert row is not None
    return Command(*row)


def mark_sent(conn: psycopg.Connection, command_id: uuid.UUID, via: str) -> Command:
    """The broker (or the network server) took the command."""
    conn.execute(
        "UPDATE commands SET state = 'sent', via = %s, sent_at = now()"
        " WHERE id = %s AND state = 'queued'",
        (via, command_id),
    )
    conn.commit()
    return get_command(conn, command_id)


def get_command(conn: psycopg.Connection, command_id: uuid.UUID) -> Command:
    row = conn.execute(f"SELECT {_COLUMNS} FROM commands WHERE id = %s", (command_id,)).fetchone()
    if row is None:
        raise NotFound(f"unknown command {command_id}")
    return Command(*row)


def list_commands(
    conn: psycopg.Connection, pilot_id: str, device_id: str | None = None, limit: int = 100
) -> list[Command]:
    """Newest first."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM commands WHERE pilot_id = %s"
        " AND (%s::text IS NULL OR device_id = %s) ORDER BY created_at DESC LIMIT %s",
        (pilot_id, device_id, device_id, limit),
    ).fetchall()
    return [Command(*r) for r in rows]


def uses_lorawan(conn: psycopg.Connection, pilot_id: str) -> bool:
    """Whether the pilot's devices sit behind a network server (its bridge delivers)."""
    return registry.get_pilot(conn, pilot_id).lorawan is not None


def deliver_mqtt(
    conn: psycopg.Connection,
    command: Command,
    *,
    host: str,
    port: int,
    username: str,
    password: str,
    timeout: float = 10.0,
) -> Command:
    """Publish on the device's ``cmd`` topic (QoS 1) with the platform's account; ``sent``
    once the broker has taken it. A broker that cannot be reached leaves it ``queued``."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"kcity-cmd-{uuid.uuid4().hex[:12]}",
        protocol=mqtt.MQTTv5,
    )
    client.username_pw_set(username, password)
    try:
        client.connect(host, port, keepalive=30)
    except OSError as exc:
        raise BrokerError(f"cannot reach the broker at {host}:{port}: {exc}") from exc
    client.loop_start()
    try:
        info = client.publish(command.topic, command.message, qos=1)
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise BrokerError(f"the broker did not take command {command.id} in {timeout:g} s")
    finally:
        client.disconnect()
        client.loop_stop()
    return mark_sent(conn, command.id, "mqtt")


def profile_in_force(conn: psycopg.Connection, pilot_id: str) -> DimmingProfile | None:
    """The pilot's newest dimming profile acknowledged by a device, if any."""
    row = conn.execute(
        "SELECT params FROM commands WHERE pilot_id = %s AND type = 'set_dimming_profile'"
        " AND state = 'acked' ORDER BY closed_at DESC LIMIT 1",
        (pilot_id,),
    ).fetchone()
    conn.commit()
    return DimmingProfile.model_validate(row[0]) if row else None


def profiles_by_night(
    conn: psycopg.Connection, pilot_id: str, nights: list[date], tz: str
) -> list[dict[str, Any]]:
    """For each night (local date of its evening), the dimming profiles in force at its
    18:00 local — each device's newest acknowledged profile by then — with their devices.

    Evidence of what was commanded beside what was measured (savings reports).
    """
    out = []
    for night in nights:
        rows = conn.execute(
            "SELECT DISTINCT ON (device_id) device_id, id::text, params, closed_at FROM commands"
            " WHERE pilot_id = %s AND type = 'set_dimming_profile' AND state = 'acked'"
            " AND closed_at <= (%s::date + time '18:00') AT TIME ZONE %s"
            " ORDER BY device_id, closed_at DESC",
            (pilot_id, night, tz),
        ).fetchall()
        conn.commit()
        groups: dict[str, dict[str, Any]] = {}
        for device, command_id, params, closed in rows:
            group = groups.setdefault(
                command_id,
                {
                    "command_id": command_id,
                    "profile": params,
                    "acked_at": closed.isoformat(),
                    "devices": [],
                },
            )
            group["devices"].append(device)
        out.append({"night": night.isoformat(), "profiles": list(groups.values())})
    return out


def send_command(
    conn: psycopg.Connection,
    settings: Settings,
    pilot_id: str,
    device_id: str,
    command_type: str,
    params: dict[str, Any],
    *,
    created_by: str,
    expires_min: int = DEFAULT_EXPIRES_MIN,
) -> Command:
    """Queue a command, then publish it on the device's ``cmd`` topic — unless the pilot is
    behind a LoRaWAN network server, whose bridge sends it as a downlink."""
    queued = queue_command(
        conn,
        pilot_id,
        device_id,
        command_type,
        params,
        created_by=created_by,
        expires_min=expires_min,
    )
    if uses_lorawan(conn, pilot_id):
        conn.commit()
        return queued
    return deliver_mqtt(
        conn,
        queued,
        host=settings.mqtt_host,
        port=settings.mqtt_port,
        username=settings.mqtt_username,
        password=settings.mqtt_password,
    )
