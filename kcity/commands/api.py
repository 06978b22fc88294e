"""`kcity api run`: the HTTP API in the foreground (what `kcity up` spawns)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from kcity.settings import Settings

app = typer.Typer(help="The HTTP API.", no_args_is_help=True)


@app.command()
def run(
    ctx: typer.Context,
    host: str | None = typer.Option(None, "--host", help="Listen address (default: settings)."),
    port: int | None = typer.Option(None, "--port", help="Listen port (default: settings)."),
) -> None:
    """Serve the API (OpenAPI at /docs) until interrupted."""
    import uvicorn  # imported here: the web stack is not needed by the other commands

    from kcity.api import create_app

    settings: Settings = ctx.obj
    uvicorn.run(
        create_app(settings),
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_level="info",
    )
