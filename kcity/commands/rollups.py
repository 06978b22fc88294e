"""`kcity rollups refresh | run`: bring the rollups (migration 007) up to date once, or keep
them so in the foreground (`kcity up` runs it beside ingest and the API)."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import typer

from kcity.errors import KcityError

app = typer.Typer(help="Rollups for quality and dashboards.", no_args_is_help=True)
log = logging.getLogger("kcity.rollups")


@app.command()
def refresh(ctx: typer.Context) -> None:
    """Recompute every bucket touched since the last refresh, then print what was done."""
    from kcity.db import connect
    from kcity.rollups import refresh as refresh_rollups  # numpy and scipy: only here

    with connect(ctx.obj.database_url) as conn:
        done = refresh_rollups(conn, slack_s=ctx.obj.rollup_slack_s)
    print(
        f"rolled up: {done.rebuilt_devices} devices rebuilt, {done.touched_days} device-days"
        f" recomputed in {done.seconds:.2f} s"
    )


@app.command()
def run(
    ctx: typer.Context,
    every: float = typer.Option(60.0, "--every", min=1.0, help="Seconds between refreshes."),
) -> None:
    """Refresh every `--every` seconds until stopped (SIGTERM or Ctrl-C)."""
    import psycopg

    from kcity.db import connect
    from kcity.rollups import refresh as refresh_rollups

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stop = threading.Event()

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stop.is_set():
        try:
            with connect(ctx.obj.database_url) as conn:
                done = refresh_rollups(conn, slack_s=ctx.obj.rollup_slack_s)
            log.info("%d device-days recomputed in %.2f s", done.touched_days, done.seconds)
        except (KcityError, psycopg.Error) as exc:  # the database away: try again next round
            log.warning("refresh failed: %s", exc)
        stop.wait(every)
