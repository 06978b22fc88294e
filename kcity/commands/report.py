"""`kcity report`: the signed evaluation report of a pilot's window, as HTML and PDF —
from the database, or from an evidence bundle alone (`--bundle`)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from kcity.errors import KcityError
from kcity.window import Window

DATE = {"formats": ["%Y-%m-%d"], "metavar": "YYYY-MM-DD"}


def register(app: typer.Typer) -> None:
    app.command()(report)


def report(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="Directory for the HTML, PDF and figures.")],
    pilot: Annotated[str | None, typer.Argument(help="Pilot id, e.g. madiun or mukdahan.")] = None,
    start: Annotated[
        datetime | None, typer.Option("--from", help="First local date included.", **DATE)
    ] = None,
    end: Annotated[
        datetime | None, typer.Option("--to", help="First local date excluded.", **DATE)
    ] = None,
    bundle: Annotated[
        Path | None,
        typer.Option("--bundle", help="Regenerate from this evidence bundle alone (no database)."),
    ] = None,
    lang: Annotated[str, typer.Option("--lang", help="Language of the report: en or ko.")] = "en",
) -> None:
    """Evaluation report (savings or coverage, data quality, reproducibility) as HTML and PDF."""
    # matplotlib and WeasyPrint load only for this verb
    if bundle is not None:
        if pilot is not None or start is not None or end is not None:
            raise KcityError("--bundle takes the pilot and window from the bundle: give no"
                             " PILOT, --from or --to with it")  # fmt: skip
        from kcity.reports.from_bundle import build_from_bundle

        files = build_from_bundle(bundle, out, lang)
    else:
        if pilot is None or start is None or end is None:
            raise KcityError("give PILOT, --from and --to (or --bundle FILE.zip)")
        from kcity.db import connect
        from kcity.reports.render import build

        window = Window.parse(start.date(), end.date())
        with connect(ctx.obj.database_url) as conn:
            files = build(conn, pilot, window, out, lang)
    print(files.html)
    print(files.pdf)
