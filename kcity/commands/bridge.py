"""`kcity bridge run`: the LoRaWAN bridges, following the registry (`kcity.bridges`)."""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from kcity.errors import KcityError

if TYPE_CHECKING:
    from kcity.settings import Settings

app = typer.Typer(help="LoRaWAN network-server bridges.", no_args_is_help=True)


@app.command()
def run(
    ctx: typer.Context,
    pilot: Annotated[list[str] | None, typer.Option("--pilot", help="Only these pilots.")] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log connection events.")
    ] = False,
) -> None:
    """Bridge each LoRaWAN pilot's network server until SIGTERM/SIGINT.

    Pilots applied, changed or removed while it runs are picked up within seconds. Named
    with --pilot, each must be registered with its credentials set, or nothing starts.
    """
    from kcity.bridges import Supervisor, bridge_config, credentials, registered_pilots

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    s: Settings = ctx.obj
    if pilot:
        found = {p.id: p for p in registered_pilots(s)}
        for pilot_id in pilot:
            if pilot_id not in found:
                raise KcityError(f"pilot {pilot_id} is not registered")
            bridge_config(s, found[pilot_id], credentials(s, os.environ))
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    Supervisor(s, os.environ, pilot or ()).run(stop)
