"""The verb groups of the `kcity` command, one module each."""

from __future__ import annotations

import typer

from kcity.commands import db, stack


def register(app: typer.Typer) -> None:
    stack.register(app)
    app.add_typer(db.app, name="db")
