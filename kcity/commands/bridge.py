"""`kcity bridge run`: the LoRaWAN bridges of every pilot that declares `[lorawan]`.

One thread per pilot, each with its own network-server connection. The network server's
credentials come from the environment variables the pilot names (`username_env`,
`password_env`), read here, at the edge, and never stored.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Mapping
from types import FrameType
from typing import Annotated

import typer

from devices.pilots import Pilot
from ingest.lorawan_bridge import Bridge, BridgeConfig
from kcity import registry
from kcity.db import connect
from kcity.errors import KcityError
from kcity.settings import Settings

app = typer.Typer(help="LoRaWAN network-server bridges.", no_args_is_help=True)


def bridge_config(settings: Settings, pilot: Pilot, env: Mapping[str, str]) -> BridgeConfig:
    """A pilot's bridge configuration; ``KcityError`` naming a variable that is not set."""
    lorawan = pilot.lorawan
    if lorawan is None:
        raise KcityError(f"pilot {pilot.id} declares no [lorawan] section")
    found: dict[str, str | None] = {}
    for key, name in (("username", lorawan.username_env), ("password", lorawan.password_env)):
        if name is None:
            found[key] = None
        elif name not in env:
            raise KcityError(
                f"pilot {pilot.id}: set the environment variable {name}"
                f" (lorawan.{key}_env) to the network server's {key}"
            )
        else:
            found[key] = env[name]
    return BridgeConfig(
        settings.ingest_db_url, pilot.id, lorawan, found["username"], found["password"]
    )


@app.command()
def run(
    ctx: typer.Context,
    pilot: Annotated[list[str] | None, typer.Option("--pilot", help="Only these pilots.")] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log connection events.")
    ] = False,
) -> None:
    """Bridge each LoRaWAN pilot's network server until SIGTERM/SIGINT."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    s: Settings = ctx.obj
    with connect(s.ingest_db_url) as conn:
        pilots = [registry.get_pilot(conn, p.id) for p in registry.list_pilots(conn)]
    chosen = [p for p in pilots if p.lorawan is not None and (not pilot or p.id in pilot)]
    if not chosen:
        raise KcityError("no registered pilot declares a [lorawan] section")
    configs = [bridge_config(s, p, os.environ) for p in chosen]
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threads = [
        threading.Thread(target=Bridge(c).run, args=(stop,), name=c.client_id, daemon=True)
        for c in configs
    ]
    for t in threads:
        t.start()
    print(f"bridging {', '.join(c.pilot_id for c in configs)}", flush=True)
    stop.wait()
    for t in threads:
        t.join(timeout=15)
