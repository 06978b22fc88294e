"""Built dashboards as TypeScript literals typed with Grafana's own ``@grafana/schema``.

``tsc --strict`` then checks them the way Grafana's frontend code is checked: excess keys,
wrong types, ``null`` where an object belongs, and a panel's ``options`` and
``fieldConfig.defaults.custom`` against the options of its plugin (stat, table, ...).
Queries (panel targets, annotation targets) are checked against the PostgreSQL data
source's saved query shape, written out in the prelude because @grafana/schema does not
publish it.

Each value is written as a literal in place (``const d: Json<Dashboard> = {...}``), never
imported from a ``.json`` file: JSON imports are typed by widening (``"value"`` becomes
``string``), which hides exactly the errors this check is for. Grafana's string enums are
compared by their values (``Json<T>`` maps an enum to the union of its member strings),
because the saved JSON holds the value, not the TypeScript member.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dashboards.errors import DashboardsError
from dashboards.version import GRAFANA_VERSION, TYPESCRIPT_VERSION

PACKAGES = {"@grafana/schema": GRAFANA_VERSION, "typescript": TYPESCRIPT_VERSION}

# Panel plugin id → module of @grafana/schema holding its Options and FieldConfig.
PANEL_TYPES = {
    "stat": "stat/panelcfg/x/StatPanelCfg_types.gen",
    "table": "table/panelcfg/x/TablePanelCfg_types.gen",
    "timeseries": "timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen",
    "geomap": "geomap/panelcfg/x/GeomapPanelCfg_types.gen",
}
# Plugins whose FieldConfig the schema package exports (the others have no custom fields).
_CUSTOM = {"table", "timeseries"}

PRELUDE = """\
import type { AnnotationQuery, Dashboard, DataQuery } from '@grafana/schema';

// The PostgreSQL data source's saved query (SQLQuery of Grafana's @grafana/sql, which
// @grafana/schema does not publish): panel targets and annotation targets are checked
// against it, annotations through the schema's own AnnotationQuery<TQuery> parameter.
export interface SqlQuery extends DataQuery {
  rawSql: string;
  format: 'time_series' | 'table';
  rawQuery: boolean;
  editorMode: 'code' | 'builder';
}
type Board = Omit<Dashboard, 'annotations'> & {
  annotations?: { list?: Array<AnnotationQuery<SqlQuery>> };
};

// Grafana's saved JSON holds an enum's value: compare string enums by value, keep the rest.
type IsAny<T> = 0 extends 1 & T ? true : false;
export type Json<T> =
  IsAny<T> extends true ? T
  : T extends string ? `${T}`
  : T extends number | boolean | null | undefined ? T
  : T extends ReadonlyArray<infer U> ? Array<Json<U>>
  : T extends object ? { [K in keyof T]: Json<T[K]> }
  : T;
"""


def _ident(name: str) -> str:
    return re.sub(r"\W", "_", name)


def _literal(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def typescript_source(name: str, dashboard: Mapping[str, Any]) -> str:
    """One ``.ts`` module checking a dashboard and each panel's plugin options."""
    kinds = sorted({str(p.get("type")) for p in dashboard.get("panels", [])} & set(PANEL_TYPES))
    lines = [PRELUDE]
    for kind in kinds:
        lines.append(
            f"import type * as {kind} from "
            f"'@grafana/schema/dist/esm/raw/composable/{PANEL_TYPES[kind]}';"
        )
    lines.append(f"\nexport const {_ident(name)}: Json<Board> = {_literal(dashboard)};\n")
    for panel in dashboard.get("panels", []):
        kind = str(panel.get("type"))
        tag = f"{_ident(name)}_panel_{panel.get('id')}"
        if kind not in PANEL_TYPES:
            lines.append(f"// panel {panel.get('id')}: no published options type for {kind!r}")
            continue
        lines.append(
            f"export const {tag}_targets: Json<SqlQuery[]> = {_literal(panel.get('targets'))};\n"
        )
        lines.append(
            f"export const {tag}_options: Json<{kind}.Options> = "
            f"{_literal(panel.get('options'))};\n"
        )
        custom = panel.get("fieldConfig", {}).get("defaults", {}).get("custom")
        if kind in _CUSTOM and custom is not None:
            lines.append(
                f"export const {tag}_custom: Json<{kind}.FieldConfig> = {_literal(custom)};\n"
            )
    return "\n".join(lines)


@dataclass(frozen=True)
class CheckResult:
    """What ``tsc --strict`` said about a set of sources."""

    files: int
    errors: tuple[str, ...]
    output: str


def install(cache: Path) -> None:
    """``npm install`` the pinned schema and compiler into ``cache`` unless already there."""
    manifest = cache / "package.json"
    if (
        manifest.is_file()
        and json.loads(manifest.read_text(encoding="utf-8")).get("dependencies") == PACKAGES
        and (cache / "node_modules" / ".bin" / "tsc").exists()
    ):
        return
    npm = shutil.which("npm")
    if npm is None:
        raise DashboardsError("npm is not installed: it is needed to fetch @grafana/schema")
    cache.mkdir(parents=True, exist_ok=True)
    body = {"private": True, "dependencies": PACKAGES}
    manifest.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    run = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--silent"],
        cwd=cache,
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        raise DashboardsError(f"npm install in {cache} failed: {run.stderr.strip()[-500:]}")


def check(sources: Mapping[str, str], cache: Path, workdir: Path) -> CheckResult:
    """Write ``name.ts`` per source into ``workdir`` and compile them with ``tsc --strict``
    against the packages installed in ``cache``."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    for name, text in sources.items():
        (workdir / f"{name}.ts").write_text(text, encoding="utf-8")
    modules = (cache / "node_modules").resolve()
    tsconfig = {
        "compilerOptions": {
            "strict": True,
            "noEmit": True,
            "target": "ES2022",
            "module": "ES2022",
            "moduleResolution": "node",
            "skipLibCheck": True,
            "types": [],
            "baseUrl": str(modules),
            "paths": {
                "@grafana/schema": ["@grafana/schema"],
                "@grafana/schema/*": ["@grafana/schema/*"],
            },
        },
        "include": [str(workdir.resolve() / "*.ts")],
    }
    config = workdir / "tsconfig.json"
    config.write_text(json.dumps(tsconfig, indent=2) + "\n", encoding="utf-8")
    run = subprocess.run(
        [str(modules / ".bin" / "tsc"), "-p", str(config)], capture_output=True, text=True
    )
    errors = tuple(line for line in run.stdout.splitlines() if ": error TS" in line)
    if run.returncode != 0 and not errors:
        raise DashboardsError(f"tsc failed: {(run.stdout + run.stderr).strip()[-500:]}")
    return CheckResult(len(sources), errors, run.stdout)
