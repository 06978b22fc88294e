"""`kcity portfolio`: the ministry's brief over every pilot, as HTML and PDF."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from kcity.window import Window

DATE = {"formats": ["%Y-%m-%d"], "metavar": "YYYY-MM-DD"}


def register(app: typer.Typer) -> None:
    app.command()(portfolio)


def portfolio(
    ctx: typer.Context,
    start: Annotated[
        datetime, typer.Option("--from", help="First local date of the window.", **DATE)
    ],
    end: Annotated[datetime, typer.Option("--to", help="First local date excluded.", **DATE)],
    out: Annotated[Path, typer.Option("--out", help="Directory for the HTML, PDF and map.")],
    lang: Annotated[str, typer.Option("--lang", help="Language of the brief: ko or en.")] = "ko",
) -> None:
    """Portfolio brief: every pilot's state now and its verified figures of the window."""
    from kcity.db import connect
    from kcity.reports.brief import build_brief  # matplotlib and WeasyPrint load only here

    window = Window.parse(start.date(), end.date())
    with connect(ctx.obj.database_url) as conn:
        files = build_brief(conn, window, out, lang)
    print(files.html)
    print(files.pdf)
