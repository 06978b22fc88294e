"""`kcity db migrate`: apply the schema."""

from __future__ import annotations

import typer

app = typer.Typer(help="The database schema.", no_args_is_help=True)


@app.command()
def migrate(ctx: typer.Context) -> None:
    """Apply the schema migrations not yet applied (idempotent)."""
    from kcity.db import connect
    from kcity.schema import migrate as apply_migrations

    with connect(ctx.obj.database_url) as conn:
        applied = apply_migrations(conn, retain_raw_days=ctx.obj.retain_raw_days)
    print(f"applied: {', '.join(applied)}" if applied else "schema is up to date")
