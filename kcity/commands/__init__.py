"""The verb groups of the `kcity` command, one module each."""

from __future__ import annotations

import typer

from kcity.commands import db, stack
from kcity.commands import devices as devices_cmd
from kcity.commands import pilots as pilots_cmd


def register(app: typer.Typer) -> None:
    stack.register(app)
    app.add_typer(db.app, name="db")
    app.add_typer(pilots_cmd.app, name="pilots")
    app.add_typer(devices_cmd.app, name="devices")
