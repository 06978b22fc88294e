"""The file through which the LoRaWAN bridge supervisor (`kcity.bridges`) tells `kcity
status` and the compose health check how each pilot's bridge is doing."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from kcity.settings import Settings

STATE_FILE = "run/bridges.json"  # under the data directory
REFRESH_S = 5.0  # the supervisor rereads the registry and rewrites the file this often


def write_state(path: Path, state: Mapping[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(path)


def read_state(settings: Settings) -> dict[str, object] | None:
    try:
        found: dict[str, object] = json.loads((settings.data_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return found
