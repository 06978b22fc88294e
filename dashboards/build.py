"""Turn the dashboard builders into Grafana JSON and write one file per dashboard.

The JSON written here is what file provisioning loads (``deploy/grafana/dashboards``) and
what ``push`` sends to a running Grafana, so both deployments show the same dashboards.
Output is deterministic (sorted keys, numbered panels) so the committed files diff cleanly.
Words come from the ``labels`` the caller passes (one language of the shell's translation
table), so this package holds no language of its own.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from dashboards import drone, ingest_health, overview, portfolio, streetlight
from dashboards.errors import WriteError
from dashboards.panels import Labels

INTERVAL_ONLY = ("auto", "auto_count", "auto_min")

BUILDERS: dict[str, Callable[[Labels], Any]] = {
    portfolio.UID: portfolio.build,
    overview.UID: overview.build,
    streetlight.UID: streetlight.build,
    drone.UID: drone.build,
    ingest_health.UID: ingest_health.build,
}


def to_json(model: Dashboard) -> dict[str, Any]:
    """The dashboard as plain JSON data, panels numbered in order (Grafana needs ids)."""
    data: dict[str, Any] = json.loads(json.dumps(model, cls=JSONEncoder))
    for number, panel in enumerate(data.get("panels", []), start=1):
        panel["id"] = number
    for variable in data.get("templating", {}).get("list", []):
        if variable.get("type") != "interval":
            # The SDK writes the interval variable's auto settings on every variable; the
            # schema (and Grafana) know them only on interval variables.
            for key in INTERVAL_ONLY:
                variable.pop(key, None)
    return data


def build_all(labels: Labels) -> dict[str, dict[str, Any]]:
    """Every dashboard in the language of ``labels``, uid → dashboard JSON."""
    return {uid: to_json(build(labels).build()) for uid, build in BUILDERS.items()}


def dump(dashboard: dict[str, Any]) -> str:
    """The file text of one dashboard: stable key order, trailing newline."""
    return json.dumps(dashboard, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write(out_dir: Path, labels: Labels) -> list[Path]:
    """Write ``<uid>.json`` per dashboard into ``out_dir`` (created); return the paths."""
    written = []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for uid, dashboard in build_all(labels).items():
            path = out_dir / f"{uid}.json"
            path.write_text(dump(dashboard), encoding="utf-8")
            written.append(path)
    except OSError as exc:
        raise WriteError(f"cannot write dashboards to {out_dir}: {exc.strerror}") from exc
    return written
