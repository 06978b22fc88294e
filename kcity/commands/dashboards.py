"""`kcity dashboards build|push`: the Grafana dashboards as JSON files or on a live Grafana."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dashboards.errors import DashboardsError
from kcity.errors import KcityError

# The defaults of dashboards.push and kcity.grafana, restated so that building the CLI does
# not import Grafana's client and SDK (tests/test_cli_startup.py checks they still agree).
DEFAULT_FOLDER = "K-City"
DEFAULT_LANG = "ko"
LANG_HELP = "Language of titles, panels and descriptions: ko or en."

app = typer.Typer(
    help="Grafana dashboards (built with Grafana's Foundation SDK).", no_args_is_help=True
)


@app.command()
def build(
    out: Annotated[Path, typer.Option("--out", help="Directory for the <uid>.json files.")] = Path(
        "dashboards/build"
    ),
    lang: Annotated[str, typer.Option("--lang", help=LANG_HELP)] = DEFAULT_LANG,
    alerting: Annotated[
        Path | None,
        typer.Option("--alerting", help="Also write the alert rules, contact point and policy."),
    ] = None,
) -> None:
    """Write every dashboard as Grafana JSON (what file provisioning loads)."""
    from kcity.grafana import write, write_alerting

    try:
        paths = write(out, lang)
        if alerting is not None:
            paths.append(write_alerting(alerting, lang))
    except DashboardsError as exc:
        raise KcityError(str(exc)) from exc
    for path in paths:
        print(path)


@app.command(name="push")
def push_command(
    ctx: typer.Context,
    url: Annotated[
        str,
        typer.Option(
            "--url", envvar="KCITY_GRAFANA_URL", help="Grafana base URL, e.g. http://grafana:3000"
        ),
    ],
    token: Annotated[
        str,
        typer.Option(
            "--token", envvar="KCITY_GRAFANA_TOKEN", help="Service-account token (Editor or Admin)."
        ),
    ],
    folder: Annotated[str, typer.Option("--folder", help="Folder title.")] = DEFAULT_FOLDER,
    create_datasource: Annotated[
        bool,
        typer.Option(
            "--create-datasource", help="Also create or update the TimescaleDB data source."
        ),
    ] = False,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="Database and login the data source uses (default: the grafana_reader"
            " login of KCITY_DATABASE_URL's database).",
        ),
    ] = None,
    lang: Annotated[str, typer.Option("--lang", help=LANG_HELP)] = DEFAULT_LANG,
) -> None:
    """Create or update the dashboards in a folder of a running Grafana (idempotent)."""
    from dashboards.push import connect, datasource_definition, push
    from kcity.grafana import build_all

    try:
        datasource = (
            datasource_definition(database_url or ctx.obj.grafana_db_url)
            if create_datasource
            else None
        )
        result = push(connect(url, token), build_all(lang), folder=folder, datasource=datasource)
    except DashboardsError as exc:
        raise KcityError(str(exc)) from exc
    if result.datasource:
        print(f"data source kcity-timescaledb: {result.datasource}")
    state = "created" if result.folder_created else "exists"
    print(f"folder {folder!r} (uid {result.folder_uid}): {state}")
    for uid in result.dashboards:
        print(f"dashboard {uid}: saved")
