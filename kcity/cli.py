"""The `kcity` command: one Typer app; each verb group lives in `kcity/commands/`.

Settings are read once here and handed to the commands through the Typer context. User
mistakes end as one line on stderr and a non-zero exit, never a traceback.

Building the app imports only Typer and the thin command modules: each verb imports what
it needs when it runs, so `kcity --help`, `kcity status` or a cron job's verb do not pay
for numpy, scipy, the web stack or Grafana's client (tests/test_cli_startup.py).
"""

from __future__ import annotations

import sys

import typer

# Typer ≥ 0.29 vendors its own Click; its usage errors are only importable from there.
from typer._click.exceptions import ClickException, NoArgsIsHelpError

from analytics.errors import AnalyticsError
from devices.errors import DevicesError
from kcity.commands import register
from kcity.errors import KcityError

app = typer.Typer(
    name="kcity",
    help="K-City Pilot Telemetry: ingest, verify and report smart-city pilots.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def root(ctx: typer.Context) -> None:
    """Read the settings once for every command."""
    from kcity.settings import load_settings  # pydantic: not needed by `kcity --help`

    ctx.obj = load_settings()


register(app)

USER_ERRORS = (KcityError, DevicesError, AnalyticsError)


def fail(message: str, code: int = 1) -> None:
    print(f"kcity: error: {message}", file=sys.stderr)
    sys.exit(code)


def main() -> None:
    try:
        code = app(standalone_mode=False)
    except NoArgsIsHelpError:  # Typer has printed the help already
        sys.exit(0)
    except ClickException as exc:
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx else ""
        fail(f"{exc.format_message()}{hint}".replace("\n", " "), 2)
    except typer.Abort:
        fail("aborted", 130)
    except USER_ERRORS as exc:
        fail(str(exc))
    except Exception as exc:
        # A psycopg error no layer translated: still one line, not a traceback. psycopg is
        # loaded only by verbs that reach the database; if it is not, none was raised.
        psycopg = sys.modules.get("psycopg")
        if psycopg is None or not isinstance(exc, psycopg.Error):
            raise
        detail = str(exc).strip().splitlines()
        fail(f"database error: {detail[0] if detail else type(exc).__name__}")
    sys.exit(code if isinstance(code, int) else 0)
