"""`kcity up`, `kcity down`, `kcity status`: the local stack under `.kcity/`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from kcity.settings import Settings


def register(app: typer.Typer) -> None:
    app.command()(up)
    app.command()(down)
    app.command()(status)


def up(
    ctx: typer.Context,
    services: bool = typer.Option(True, help="Also start the ingest service and the API."),
) -> None:
    """Start the local TimescaleDB, Mosquitto, ingest service and API (whichever is not running)."""
    from kcity.stack.local import LocalStack, ensure_secrets

    settings: Settings = ensure_secrets(ctx.obj)
    ctx.obj = settings
    started = LocalStack(settings).up(services=services)
    print(f"started: {', '.join(started)}" if started else "everything was already running")


def down(ctx: typer.Context) -> None:
    """Stop every service of the local stack."""
    from kcity.stack.local import LocalStack

    stopped = LocalStack(ctx.obj).down()
    print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


def status(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Each service's health and address."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from kcity.stack.local import LocalStack

    info = LocalStack(ctx.obj).status()
    if as_json:
        print(json.dumps(info, indent=2))
        return
    table = Table("service", "healthy", title="K-City local stack")
    services: dict[str, bool] = info["services"]  # type: ignore[assignment]
    workers: dict[str, dict[str, object]] = info["ingest_workers"]  # type: ignore[assignment]
    bridges: dict[str, dict[str, object]] = info["bridges"]  # type: ignore[assignment]
    for name, healthy in services.items():
        table.add_row(name, "[green]yes[/]" if healthy else "[red]no[/]")
        if name == "ingest":
            for worker, w in workers.items():
                ok = "[green]yes[/]" if w["healthy"] else "[red]no[/]"
                table.add_row(f"  ingest {worker}", f"{ok}  {w['metrics_url']}")
        if name == "bridge":
            for pilot, b in bridges.items():
                why = b["problem"] or ("" if b["connected"] else "not connected to its server")
                ok = "[red]no[/]" if why else "[green]yes[/]"
                table.add_row(f"  bridge {pilot}", f"{ok}  {escape(str(why))}".rstrip())
    console = Console()
    console.print(table)
    for key in (
        "database_url",
        "mqtt_host",
        "mqtt_port",
        "mqtt_tls_port",
        "api_url",
        "metrics_url",
    ):
        console.print(f"{key}: {info[key]}")
    if not all(services.values()):
        raise typer.Exit(1)
