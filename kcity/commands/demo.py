"""`kcity demo`: the main job end to end on the local stack (see `kcity.demo`)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    app.command()(demo)


def demo(
    ctx: typer.Context,
    keep: bool = typer.Option(False, "--keep", help="Leave the services running."),
) -> None:
    """Stream two simulated pilots, verify them, write reports and dashboards."""
    from kcity.demo import run_demo  # the whole platform: load it only for this verb

    run_demo(ctx.obj, keep=keep)
