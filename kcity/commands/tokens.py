"""`kcity tokens create|revoke|list`: the bearer tokens of the HTTP API."""

from __future__ import annotations

import json

import typer

# kcity.tokens' roles and default lifetime, restated for the options' help so that building
# the CLI does not import the database layer (tests/test_cli_startup.py checks they agree).
ROLES = ("admin", "operator", "evaluator", "viewer")
DEFAULT_DAYS = 90

app = typer.Typer(help="Bearer tokens of the HTTP API.", no_args_is_help=True)


@app.command()
def create(
    ctx: typer.Context,
    role: str = typer.Option(..., "--role", help=f"One of: {', '.join(ROLES)}."),
    pilot: str | None = typer.Option(None, "--pilot", help="The pilot an operator token is for."),
    label: str | None = typer.Option(None, "--label", help="Who or what the token is for."),
    expires: int = typer.Option(DEFAULT_DAYS, "--expires", help="Days until it expires."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Create a token and print it once: only its hash is stored."""
    from kcity.db import connect
    from kcity.tokens import create_token

    with connect(ctx.obj.database_url) as conn:
        secret, token = create_token(conn, role, pilot, label, days=expires)
    if as_json:
        print(json.dumps({**token.to_json(), "token": secret}, indent=2))
        return
    scope = f" for pilot {token.pilot_id}" if token.pilot_id else ""
    print(
        f"token {token.id} ({token.role}{scope}), expires {token.expires_at:%Y-%m-%d};"
        " it is shown only now:"
    )
    print(secret)


@app.command()
def revoke(ctx: typer.Context, token_id: int = typer.Argument(..., help="The token's id.")) -> None:
    """Revoke a token: the API refuses it from the next request on."""
    from kcity.db import connect
    from kcity.tokens import revoke_token

    with connect(ctx.obj.database_url) as conn:
        token = revoke_token(conn, token_id)
    print(f"token {token.id} ({token.role}) revoked")


@app.command("list")
def list_(
    ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Machine-readable.")
) -> None:
    """Every token, revoked ones included (never the secrets)."""
    from kcity.db import connect
    from kcity.tokens import list_tokens

    with connect(ctx.obj.database_url) as conn:
        tokens = list_tokens(conn)
    if as_json:
        print(json.dumps([t.to_json() for t in tokens], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(
        "id", "role", "pilot", "label", "created", "expires", "revoked", title="API tokens"
    )
    for t in tokens:
        table.add_row(
            str(t.id),
            t.role,
            t.pilot_id or "",
            t.label or "",
            f"{t.created_at:%Y-%m-%d %H:%M}",
            f"{t.expires_at:%Y-%m-%d %H:%M}",
            f"{t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "",
        )
    Console().print(table)
