"""`kcity report`: the signed evaluation report of a pilot's window, as HTML and PDF."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from kcity.db import connect
from kcity.window import Window

DATE = {"formats": ["%Y-%m-%d"], "metavar": "YYYY-MM-DD"}


def register(app: typer.Typer) -> None:
    app.command()(report)


def report(
    ctx: typer.Context,
    pilot: Annotated[str, typer.Argument(help="Pilot id, e.g. madiun or mukdahan.")],
    start: Annotated[
        datetime,
        typer.Option("--from", help="First local date included.", **DATE),
    ],
    end: Annotated[
        datetime,
        typer.Option("--to", help="First local date excluded.", **DATE),
    ],
    out: Annotated[Path, typer.Option("--out", help="Directory for the HTML, PDF and figures.")],
    lang: Annotated[str, typer.Option("--lang", help="Language of the report: en or ko.")] = "en",
) -> None:
    """Evaluation report (savings or coverage, data quality, reproducibility) as HTML and PDF."""
    from kcity.reports.render import build  # matplotlib and WeasyPrint load only for this verb

    window = Window.parse(start.date(), end.date())
    with connect(ctx.obj.database_url) as conn:
        files = build(conn, pilot, window, out, lang)
    print(files.html)
    print(files.pdf)
