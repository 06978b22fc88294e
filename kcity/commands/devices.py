"""`kcity devices provision|revoke|list`: per-device MQTT credentials, issued and withdrawn."""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from kcity.settings import Settings

Commissioned = Annotated[
    datetime | None,
    typer.Option(
        "--commissioned",
        formats=["%Y-%m-%d"],
        metavar="YYYY-MM-DD",
        help="First local date the device is expected to report (not provisioning time).",
    ),
]
Decommissioned = Annotated[
    datetime | None,
    typer.Option(
        "--decommissioned",
        formats=["%Y-%m-%d"],
        metavar="YYYY-MM-DD",
        help="First local date it is no longer expected to report (exclusive).",
    ),
]

app = typer.Typer(help="Devices: MQTT credentials and ACLs.", no_args_is_help=True)


@app.command()
def provision(
    ctx: typer.Context,
    pilot: str = typer.Argument(..., help="Pilot id the device belongs to."),
    device: str = typer.Argument(..., help="Device id, also its MQTT username."),
    kind: str | None = typer.Option(None, "--kind", help="Device kind (default: the pilot's)."),
    commissioned: Commissioned = None,
    decommissioned: Decommissioned = None,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    dev_eui: str | None = typer.Option(
        None, "--dev-eui", help="LoRaWAN DevEUI (16 hex digits), for the pilot's bridge."
    ),
) -> None:
    """Create a device and print its MQTT credentials; on an existing device, rotate them."""
    from kcity import onboarding, provisioning
    from kcity.db import connect
    from kcity.stack.broker_admin import platform_admin

    s: Settings = ctx.obj
    eui = onboarding.normalize_dev_eui(dev_eui) if dev_eui is not None else None
    with (
        connect(s.database_url) as conn,
        platform_admin(s) as admin,
    ):
        if eui is not None:
            onboarding.check_dev_eui(conn, device, eui)
        creds = provisioning.provision_device(
            conn,
            admin,
            pilot,
            device,
            kind,
            mqtt_host=s.mqtt_host,
            mqtt_port=s.mqtt_port,
            mqtt_tls_port=s.mqtt_tls_port,
            commissioned_on=commissioned.date() if commissioned else None,
            decommissioned_on=decommissioned.date() if decommissioned else None,
        )
        if eui is not None:
            onboarding.set_dev_eui(conn, device, eui)
    if as_json:
        print(json.dumps(creds.to_json(), indent=2))
        return
    verb = "rotated the password of" if creds.rotated else "provisioned"
    print(f"{verb} device {creds.device_id} ({creds.kind}) for pilot {creds.pilot}")
    print(f"mqtt: {creds.mqtt_host}:{creds.mqtt_port} (TLS {creds.mqtt_tls_port})")
    print(f"username: {creds.username}")
    print(f"password: {creds.password}")
    print(f"publish under: {creds.topic_prefix}{{telemetry,event,status}}")
    print("the password is shown only once; store it on the device now", file=sys.stderr)


@app.command()
def revoke(
    ctx: typer.Context,
    device: str = typer.Argument(..., help="Device id."),
) -> None:
    """Withdraw a device's credentials; a connected device is disconnected at once."""
    from kcity import provisioning
    from kcity.db import connect
    from kcity.stack.broker_admin import platform_admin

    s: Settings = ctx.obj
    with (
        connect(s.database_url) as conn,
        platform_admin(s) as admin,
    ):
        provisioning.revoke_device(conn, admin, device)
    print(f"revoked device {device}")


@app.command()
def acls(
    ctx: typer.Context,
    pilot: str | None = typer.Argument(None, help="Only this pilot's devices."),
) -> None:
    """Re-apply the broker ACLs of every active device (after an upgrade adds a topic)."""
    from kcity import registry
    from kcity.db import connect
    from kcity.stack.broker_admin import platform_admin

    s: Settings = ctx.obj
    with (
        connect(s.database_url) as conn,
        platform_admin(s) as admin,
    ):
        active = [
            d
            for d in registry.list_devices(conn)
            if d.active and (pilot is None or d.pilot_id == pilot)
        ]
        for d in active:
            admin.sync_device_acls(d.pilot_id, d.id)
    print(f"re-applied the ACLs of {len(active)} device(s)")


@app.command("list")
def list_(
    ctx: typer.Context,
    pilot: str | None = typer.Argument(None, help="Only this pilot's devices."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Devices with their kind, state and when they were last seen."""
    from kcity import registry
    from kcity.db import connect

    with connect(ctx.obj.database_url) as conn:
        found = registry.list_devices(conn, pilot)
    if as_json:
        rows = [
            {
                "device_id": d.id,
                "pilot": d.pilot_id,
                "kind": d.kind,
                "active": d.active,
                "created_at": d.created_at.isoformat(),
                "revoked_at": d.revoked_at.isoformat() if d.revoked_at else None,
                "last_seen": d.last_seen.isoformat() if d.last_seen else None,
                "commissioned_on": _iso(d.commissioned_on),
                "decommissioned_on": _iso(d.decommissioned_on),
            }
            for d in found
        ]
        print(json.dumps(rows, indent=2))
        return
    if not found:
        print("no devices; provision one with 'kcity devices provision PILOT DEVICE'")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("device", "pilot", "kind", "state", "last seen", title="Devices")
    for d in found:
        seen = d.last_seen.isoformat(timespec="seconds") if d.last_seen else "never"
        table.add_row(d.id, d.pilot_id, d.kind, "active" if d.active else "revoked", seen)
    Console(width=160).print(table)


def _iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()
