"""`kcity pilots apply FILE`, `kcity pilots list`: register pilots from their TOML definition."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Pilots: register a pilot definition, list them.", no_args_is_help=True)


@app.command()
def apply(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Argument(help="Pilot definition (TOML); GeoJSON paths are relative to it.")
    ],
) -> None:
    """Register a pilot, or update it if its id is already registered."""
    from devices.pilots import load_pilot
    from kcity import registry
    from kcity.db import connect

    pilot = load_pilot(file)
    with connect(ctx.obj.database_url) as conn:
        created = registry.apply_pilot(conn, pilot)
    print(f"pilot {pilot.id} {'registered' if created else 'updated'} ({pilot.kind}, {pilot.city})")


@app.command("list")
def list_(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """The registered pilots and how many active devices each has."""
    from kcity import registry
    from kcity.db import connect

    with connect(ctx.obj.database_url) as conn:
        pilots = registry.list_pilots(conn)
    if as_json:
        rows = [
            {
                "id": p.id,
                "name": p.name,
                "kind": p.kind,
                "country": p.country,
                "city": p.city,
                "devices": p.devices,
                "updated_at": p.updated_at.isoformat(),
            }
            for p in pilots
        ]
        print(json.dumps(rows, indent=2))
        return
    if not pilots:
        print("no pilots registered; add one with 'kcity pilots apply FILE'")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "name", "kind", "country", "city", "devices", title="Pilots")
    for p in pilots:
        table.add_row(p.id, p.name, p.kind, p.country, p.city, str(p.devices))
    Console(width=160).print(table)
