"""The CLI's start-up stays light: building the app (every `kcity …` pays it) and printing
help import none of the heavy libraries; each verb imports what it needs when it runs.

No timing here (bench/cli.py measures it): the modules a fresh interpreter has loaded are
the guard. The option defaults the command modules restate, so as not to import their
source, are checked against that source.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# What the CLI pulled in at start-up before (1.1 s of imports on the 2-core machine).
HEAVY = (
    "numpy",
    "scipy",
    "pyarrow",
    "shapely",
    "pyproj",
    "matplotlib",
    "weasyprint",
    "jinja2",
    "fastapi",
    "starlette",
    "uvicorn",
    "psycopg_pool",
    "grafana_client",
    "grafana_foundation_sdk",
    "niquests",
    "paho",
    "prometheus_client",
    "pymavlink",
    "pyulog",
    "astral",
    "orjson",
    "msgspec",
    "yaml",
)
# Also left out by `import kcity.cli` and `kcity --help`; reading the settings needs pydantic.
DATABASE_AND_SETTINGS = ("psycopg", "pydantic", "pydantic_settings")

PROBE = """
import sys
sys.argv = ["kcity", *sys.argv[1:]]
from kcity.cli import main
if len(sys.argv) > 1:
    try:
        main()
    except SystemExit:
        pass
print("\\n".join(sorted({m.split(".")[0] for m in sys.modules})), file=sys.stderr)
"""


def loaded(tmp_path: Path, *args: str) -> set[str]:
    """Top-level packages a fresh interpreter holds after building the CLI (and `args`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KCITY_")}
    env["KCITY_DATA_DIR"] = str(tmp_path / ".kcity")
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(done.stderr.split())


@pytest.mark.parametrize("args", [(), ("--help",)])
def test_building_the_cli_and_its_help_import_nothing_heavy(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    mods = loaded(tmp_path, *args)
    assert "kcity" in mods and "typer" in mods  # the probe did build the CLI
    assert sorted(mods & {*HEAVY, *DATABASE_AND_SETTINGS}) == []


@pytest.mark.parametrize(
    "args",
    [
        ("status", "--help"),
        ("devices", "provision", "--help"),
        ("retention", "apply", "--help"),
        ("rollups", "refresh", "--help"),
        ("dashboards", "push", "--help"),
        ("import", "log", "--help"),
        ("report", "--help"),
        ("tokens", "create", "--help"),
    ],
)
def test_a_verbs_help_imports_nothing_heavy(tmp_path: Path, args: tuple[str, ...]) -> None:
    """The root callback reads the settings (pydantic) first; nothing heavier follows, not
    even psycopg."""
    mods = loaded(tmp_path, *args)
    assert "pydantic_settings" in mods  # the settings were read: the verb's path was taken
    assert sorted(mods & {*HEAVY, "psycopg"}) == []


def test_a_light_verb_imports_nothing_heavy(tmp_path: Path) -> None:
    """`kcity status` with nothing running: it reads pid files and probes ports (paho loads
    only when the stack talks to the broker)."""
    mods = loaded(tmp_path, "status")
    assert "kcity" in mods and "pydantic_settings" in mods
    assert sorted(mods & set(HEAVY)) == []


def test_restated_defaults_agree_with_their_source() -> None:
    """The command modules restate these for their help; the sources are the truth."""
    import dashboards.push
    import kcity.device_commands
    import kcity.grafana
    import kcity.onboarding
    import kcity.tokens
    from kcity.commands import dashboards as dashboards_cmd
    from kcity.commands import downlink, onboard
    from kcity.commands import tokens as tokens_cmd

    assert dashboards_cmd.DEFAULT_FOLDER == dashboards.push.DEFAULT_FOLDER
    assert dashboards_cmd.DEFAULT_LANG == kcity.grafana.DEFAULT_LANG
    assert tokens_cmd.ROLES == kcity.tokens.ROLES
    assert tokens_cmd.DEFAULT_DAYS == kcity.tokens.DEFAULT_DAYS
    assert downlink.DEFAULT_EXPIRES_MIN == kcity.device_commands.DEFAULT_EXPIRES_MIN
    assert onboard.DEVICE_COLUMNS == kcity.onboarding.COLUMNS
