"""`kcity devices command PILOT DEVICE TYPE` and `kcity devices commands PILOT [DEVICE]`.

A command is queued, then published on the device's `cmd` topic with the platform's
account; for a pilot behind a LoRaWAN network server its bridge sends it as a downlink.
"""

from __future__ import annotations

import getpass
import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kcity.errors import KcityError

if TYPE_CHECKING:
    from kcity.settings import Settings

# kcity.device_commands.DEFAULT_EXPIRES_MIN, restated for the option's default so that
# building the CLI does not import the database layer (tests/test_cli_startup.py checks it).
DEFAULT_EXPIRES_MIN = 60


def command(
    ctx: typer.Context,
    pilot: Annotated[str, typer.Argument(help="Pilot id.")],
    device: Annotated[str, typer.Argument(help="Device id.")],
    command_type: Annotated[
        str, typer.Argument(metavar="TYPE", help="ping, set_level, set_dimming_profile, reboot.")
    ],
    params: Annotated[
        str, typer.Option("--params", help="Parameters as JSON, e.g. '{\"level_pct\": 40}'.")
    ] = "{}",
    expires: Annotated[
        int, typer.Option("--expires", help="Minutes before an unanswered command expires.")
    ] = DEFAULT_EXPIRES_MIN,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Queue a downlink command and send it; the device's command_ack closes it."""
    from kcity import device_commands
    from kcity.db import connect

    s: Settings = ctx.obj
    try:
        parsed: Any = json.loads(params)
    except ValueError as exc:
        raise KcityError(f"--params is not JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise KcityError("--params must be a JSON object")
    with connect(s.database_url) as conn:
        sent = device_commands.send_command(
            conn,
            s,
            pilot,
            device,
            command_type,
            parsed,
            created_by=f"cli:{getpass.getuser()}",
            expires_min=expires,
        )
    if as_json:
        print(json.dumps(sent.to_json(), indent=2))
        return
    print(f"command {sent.id} ({sent.type}) to {sent.device_id}: {sent.state}")


def commands(
    ctx: typer.Context,
    pilot: Annotated[str, typer.Argument(help="Pilot id.")],
    device: Annotated[str | None, typer.Argument(help="Only this device.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Recent commands and their states, newest first."""
    from rich.console import Console
    from rich.table import Table

    from kcity import device_commands
    from kcity.db import connect

    with connect(ctx.obj.database_url) as conn:
        found = device_commands.list_commands(conn, pilot, device)
    if as_json:
        print(json.dumps([c.to_json() for c in found], indent=2))
        return
    table = Table("id", "device", "type", "state", "created", "reason", title="Commands")
    for c in found:
        created = c.created_at.isoformat(timespec="seconds")
        table.add_row(str(c.id), c.device_id, c.type, c.state, created, c.reason or "")
    Console(width=180).print(table)
