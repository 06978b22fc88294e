"""`kcity ingest run`: the MQTT → TimescaleDB ingest service, in the foreground."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import typer

from ingest.errors import IngestError
from kcity.errors import KcityError

app = typer.Typer(help="The MQTT ingest service.", no_args_is_help=True)


@app.command()
def run(
    ctx: typer.Context,
    worker: str = typer.Option(
        "main",
        envvar="KCITY_INGEST_WORKER",
        help="Worker name: its MQTT session is kcity-ingest-NAME (unique per shared worker).",
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every connection event."),
) -> None:
    """Consume device messages from MQTT and store them; SIGTERM/SIGINT flush and stop."""
    from ingest.service import run as run_service  # paho, prometheus: only for this verb
    from kcity.stack.ingest_workers import ingest_config

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = ingest_config(ctx.obj, worker)
    except IngestError as exc:
        raise KcityError(str(exc)) from exc
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        totals = run_service(config, stop)
    except IngestError as exc:
        raise KcityError(str(exc)) from exc
    print(
        f"ingest stopped: received {totals.received}, stored {totals.stored}, "
        f"duplicates {totals.duplicates}, dead-lettered {totals.dead_lettered}"
    )
