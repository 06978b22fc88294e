"""`kcity retention apply`: drop raw chunks past each pilot's `retain_raw_days`, only where a
verifying evidence bundle holds their rows (Apache edition). Dry run unless `--yes`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from kcity.errors import KcityError

app = typer.Typer(help="Raw-data retention for the Apache edition.", no_args_is_help=True)


@app.command("apply")
def apply(
    ctx: typer.Context,
    bundles: Annotated[
        Path, typer.Option("--bundles", help="Folder searched for evidence bundles (*.zip).")
    ] = Path("reports"),
    yes: Annotated[
        bool, typer.Option("--yes", help="Drop the chunks; without it, only say what it would do.")
    ] = False,
) -> None:
    """One line per chunk: drop, keep (not due) or refuse (due, but no verifying export)."""
    from kcity.db import connect
    from kcity.evidence.verify import verify_bundle
    from kcity.retention import drop, find_bundles, plan
    from kcity.schema import licensed

    with connect(ctx.obj.database_url) as conn:
        if licensed(conn):
            raise KcityError(
                "this server carries the Timescale license: its retention policy applies"
                " (KCITY_RETAIN_RAW_DAYS at kcity db migrate); retention apply is for the"
                " Apache edition"
            )
        now = dt.datetime.now(dt.UTC)
        decisions = plan(conn, find_bundles(bundles), lambda p: verify_bundle(p).ok, now)
        for d in decisions:
            print(d.line())
        due = [d for d in decisions if d.action == "drop"]
        if yes:
            for d in due:
                drop(conn, d)
            print(f"dropped {len(due)} chunk(s)")
        else:
            print(f"dry run: {len(due)} chunk(s) would be dropped; add --yes to drop them")
    refused = sum(d.action == "refuse" for d in decisions)
    if refused:
        raise KcityError(f"{refused} chunk(s) past their horizon refused: no verifying export")
