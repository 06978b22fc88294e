"""Provisioning: the registry and the running broker changed together, or not at all.

A device is written to the database and installed in Mosquitto (credential and ACL, via
the dynamic-security plugin, no restart) inside one database transaction: if the broker
refuses, the registry change is rolled back. Revoking removes the broker client, which
also disconnects the device if it is connected.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

import psycopg

from devices.ids import device_prefix
from kcity import registry
from kcity.registry import Device
from kcity.stack.broker_admin import BrokerAdmin


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a firm needs to connect one device (DESIGN §7 `devices provision --json`)."""

    device_id: str
    pilot: str
    kind: str
    username: str
    password: str
    mqtt_host: str
    mqtt_port: int
    mqtt_tls_port: int
    topic_prefix: str
    rotated: bool  # the device existed: this is a new password, the old one no longer works

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def provision_device(
    conn: psycopg.Connection,
    admin: BrokerAdmin,
    pilot_id: str,
    device_id: str,
    kind: str | None = None,
    *,
    mqtt_host: str = "127.0.0.1",
    mqtt_port: int = 1883,
    mqtt_tls_port: int = 8883,
    commissioned_on: date | None = None,
    decommissioned_on: date | None = None,
) -> Credentials:
    """Create (or rotate) a device in the registry and install it in the running broker."""
    with conn.transaction():
        existed = registry.device_exists(conn, device_id)
        password = registry.create_device(
            conn,
            pilot_id,
            device_id,
            kind,
            commissioned_on=commissioned_on,
            decommissioned_on=decommissioned_on,
        )
        device = registry.get_device(conn, device_id)
        # Re-creates the client of an existing device: whoever uses the old password is cut off.
        admin.add_device(pilot_id, device_id, password)
    return Credentials(
        device_id=device_id,
        pilot=pilot_id,
        kind=device.kind,
        username=device_id,
        password=password,
        mqtt_host=mqtt_host,
        mqtt_port=mqtt_port,
        mqtt_tls_port=mqtt_tls_port,
        topic_prefix=device_prefix(pilot_id, device_id),
        rotated=existed,
    )


def revoke_device(conn: psycopg.Connection, admin: BrokerAdmin, device_id: str) -> Device:
    """Revoke a device: registry first, then the broker drops its client and session."""
    with conn.transaction():
        device = registry.revoke_device(conn, device_id)
        admin.remove_device(device_id)
    return device
