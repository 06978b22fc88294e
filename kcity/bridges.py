"""The LoRaWAN bridges kept in step with the registry: one thread per pilot that declares
`[lorawan]`, started when such a pilot is applied, restarted when its section changes and
stopped when it goes. A pilot registered while the stack runs is therefore bridged without
a restart (the network server keeps no session for a bridge that never connected: its
uplinks would be lost), and one pilot's missing credentials leave the others bridged.

The network server's credentials are the values of the variables the pilot names
(`username_env`, `password_env`): from the environment, or from `<data_dir>/lorawan.env`,
reread at every refresh; read here, at the edge, and never stored in the database. At every
refresh the supervisor writes its state to `<data_dir>/run/bridges.json`, which
`kcity status` and the compose health check read.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from dotenv import dotenv_values

from devices.pilots import Pilot
from ingest.lorawan_bridge import Bridge, BridgeConfig
from kcity import registry
from kcity.db import connect
from kcity.errors import KcityError
from kcity.settings import Settings
from kcity.stack.bridge_state import REFRESH_S, STATE_FILE, write_state

log = logging.getLogger(__name__)
CREDENTIALS_FILE = "lorawan.env"  # under the data directory


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
                f" (or write {name}=… in {settings.data_dir / CREDENTIALS_FILE})"
            )
        else:
            found[key] = env[name]
    return BridgeConfig(
        settings.ingest_db_url, pilot.id, lorawan, found["username"], found["password"]
    )


def credentials(settings: Settings, env: Mapping[str, str]) -> dict[str, str]:
    """`env` with `<data_dir>/lorawan.env` (KEY=VALUE lines) over it, read at every refresh:
    a secret written there is picked up by the running bridges, where an exported variable
    would need them restarted."""
    path = settings.data_dir / CREDENTIALS_FILE
    found = dotenv_values(path) if path.is_file() else {}
    return {**env, **{k: v for k, v in found.items() if v is not None}}


def registered_pilots(settings: Settings) -> list[Pilot]:
    with connect(settings.ingest_db_url) as conn:
        return [registry.get_pilot(conn, p.id) for p in registry.list_pilots(conn)]


@dataclass(frozen=True, slots=True)
class _Running:
    config: BridgeConfig
    bridge: Bridge
    stop: threading.Event
    thread: threading.Thread


class Supervisor:
    """The bridges of the registered LoRaWAN pilots (or of ``only`` those)."""

    def __init__(
        self, settings: Settings, env: Mapping[str, str], only: Collection[str] = ()
    ) -> None:
        self.settings = settings
        self.env = env
        self.only = frozenset(only)
        self.running: dict[str, _Running] = {}
        self.problems: dict[str, str] = {}  # pilot -> why it is not bridged

    def sync(self, pilots: list[Pilot]) -> bool:
        """Start, restart and stop bridges to match ``pilots``; True if any changed."""
        wanted: dict[str, BridgeConfig] = {}
        problems: dict[str, str] = {}
        env = credentials(self.settings, self.env)
        for pilot in pilots:
            if pilot.lorawan is None or (self.only and pilot.id not in self.only):
                continue
            try:
                wanted[pilot.id] = bridge_config(self.settings, pilot, env)
            except KcityError as exc:
                problems[pilot.id] = str(exc)
                if self.problems.get(pilot.id) != str(exc):
                    log.error("%s", exc)
        self.problems = problems
        changed = [p for p, r in self.running.items() if wanted.get(p) != r.config]
        retired = {p: self._stop(p).lorawan.topic_filters for p in changed}
        new = [c for p, c in wanted.items() if p not in self.running]
        for config in new:
            self._start(config, retired.get(config.pilot_id, ()))
        return bool(changed or new)

    def _start(self, config: BridgeConfig, retired: tuple[str, ...] = ()) -> None:
        bridge, stop = Bridge(config, retired), threading.Event()
        thread = threading.Thread(
            target=bridge.run, args=(stop,), name=config.client_id, daemon=True
        )
        thread.start()
        self.running[config.pilot_id] = _Running(config, bridge, stop, thread)
        log.info("bridging %s", config.pilot_id)

    def _stop(self, pilot_id: str) -> BridgeConfig:
        running = self.running.pop(pilot_id)
        running.stop.set()
        running.thread.join(timeout=15)
        log.info("stopped the bridge of %s", pilot_id)
        return running.config

    def state(self) -> dict[str, object]:
        """Each LoRaWAN pilot: bridged and connected, or the problem that keeps it out."""
        pilots: dict[str, dict[str, object]] = {
            p: {"bridged": True, "connected": r.bridge.connected, "problem": None}
            for p, r in self.running.items()
        }
        for pilot_id, problem in self.problems.items():
            pilots[pilot_id] = {"bridged": False, "connected": False, "problem": problem}
        return {"updated": datetime.now(UTC).isoformat(), "pilots": dict(sorted(pilots.items()))}

    def run(self, stop: threading.Event, refresh_s: float = REFRESH_S) -> None:
        """Follow the registry until ``stop``; a database outage keeps what runs running."""
        state_file = self.settings.data_dir / STATE_FILE
        first = True
        try:
            while True:
                try:
                    if self.sync(registered_pilots(self.settings)) or first:
                        first = False
                        bridged = ", ".join(sorted(self.running)) or "no pilot"
                        print(f"bridging {bridged}", flush=True)
                except (KcityError, psycopg.Error) as exc:
                    log.warning("cannot read the registry (%s); bridges keep running", exc)
                write_state(state_file, self.state())
                if stop.wait(refresh_s):
                    break
        finally:
            for pilot_id in list(self.running):
                self._stop(pilot_id)
