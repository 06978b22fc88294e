"""The dashboards are built for, and checked against, the Grafana that compose deploys.

One constant (dashboards/version.py) names the version; the compose image, the SDK pin in
pyproject.toml, the installed SDK and the built dashboards' schemaVersion must agree with
it, and the type check must catch what it exists to catch (a wrong enum value, a
``null`` options object, an unknown top-level key).
"""

from __future__ import annotations

import json
import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import yaml

from dashboards.typescript import check, install, typescript_source
from dashboards.version import GRAFANA_VERSION, SDK_BUILD
from kcity.grafana import build_all

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "grafana-schema"


def test_compose_sdk_pin_and_installed_sdk_name_one_version() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert compose["services"]["grafana"]["image"] == f"grafana/grafana-oss:{GRAFANA_VERSION}"
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = [d for d in deps if d.startswith("grafana-foundation-sdk")]
    assert pins == [f"grafana-foundation-sdk=={SDK_BUILD}"]
    assert SDK_BUILD.endswith(f"!{GRAFANA_VERSION}")
    assert version("grafana-foundation-sdk") == SDK_BUILD


def test_dashboards_carry_the_schema_version_of_that_grafana() -> None:
    """Grafana's own default dashboard of that version states its current schemaVersion."""
    install(CACHE)
    gen = CACHE / "node_modules/@grafana/schema/dist/esm/raw/dashboard/x/dashboard_types.gen.mjs"
    published = re.search(r"schemaVersion:\s*(\d+)", gen.read_text())
    assert published
    for dash in build_all().values():
        assert dash["schemaVersion"] == int(published[1])
        assert "style" not in dash
        assert all(p.get("options") is not None for p in dash["panels"])


def test_type_check_passes_the_built_dashboards_and_catches_errors(tmp_path: Path) -> None:
    install(CACHE)
    built = build_all()
    good = {
        uid.replace("-", "_"): typescript_source(uid.replace("-", "_"), d)
        for uid, d in built.items()
    }
    assert check(good, CACHE, tmp_path / "good").errors == ()

    # tsc reports the first mismatch of each literal: one fault per checked literal.
    styled = {**built["kcity-ingest"], "style": "dark"}  # Grafana 10's top-level key
    bad = json.loads(json.dumps(built["kcity-streetlight"]))
    stat = next(p for p in bad["panels"] if p["type"] == "stat")
    stat["options"]["textMode"] = "value_and_title"  # not a BigValueTextMode
    table = next(p for p in bad["panels"] if p["type"] == "table")
    table["options"] = None
    sources = {n: typescript_source(n, d) for n, d in (("styled", styled), ("bad", bad))}
    result = check(sources, CACHE, tmp_path / "bad")
    text = "\n".join(result.errors)
    # options: null fails twice: as a panel of the dashboard and against the table's Options.
    assert len(result.errors) == 4, text
    assert "'\"style\"'" in text and "value_and_title" in text and "'null'" in text
