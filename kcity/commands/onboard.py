"""`kcity devices import FILE.csv --pilot P`: bulk onboarding, all devices or none.

Credentials go to a file readable by its owner only (`--out`, CSV or JSON by its suffix)
or to stdout as JSON (`--json`); the file is written before the import commits.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kcity.errors import KcityError

if TYPE_CHECKING:
    from kcity.onboarding import DeviceRow
    from kcity.provisioning import Credentials
    from kcity.settings import Settings

# kcity.onboarding.COLUMNS, restated for the help text so that building the CLI does not
# import the database and broker layers (tests/test_cli_startup.py checks they agree).
DEVICE_COLUMNS = (
    "device_id",
    "kind",
    "dev_eui",
    "commissioned_on",
    "latitude",
    "longitude",
    "notes",
)
CREDENTIAL_COLUMNS = ("device_id", "pilot", "kind", "username", "password", "topic_prefix")


def credentials_text(made: list[Credentials], as_csv: bool) -> str:
    """The credentials file's content: CSV (one device a line) or a JSON list."""
    if not as_csv:
        return json.dumps([c.to_json() for c in made], indent=2) + "\n"
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CREDENTIAL_COLUMNS)
    for c in made:
        writer.writerow([getattr(c, name) for name in CREDENTIAL_COLUMNS])
    return out.getvalue()


def write_private(path: Path, text: str) -> None:
    """Create ``path`` readable and writable by its owner only; never overwrite."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KcityError(f"{path} exists; credentials are never written over a file") from None
    except OSError as exc:
        raise KcityError(f"cannot create {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def import_devices(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="CSV: " + ", ".join(DEVICE_COLUMNS) + ".")],
    pilot: Annotated[str, typer.Option("--pilot", help="Pilot id of every device.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write credentials here (0600; .json for JSON, else CSV)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print credentials as JSON.")] = False,
) -> None:
    """Register devices from a CSV file, all or nothing, with fresh MQTT credentials."""
    from kcity import onboarding

    s: Settings = ctx.obj
    if (out is None) == (not as_json):
        raise KcityError("say where the credentials go: --out FILE or --json")
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise KcityError(f"cannot read {file}: {exc}") from exc
    try:
        rows = onboarding.parse_devices_csv(text)
        _run(s, pilot, rows, out, as_json)
    except onboarding.OnboardingError as exc:
        for line in exc.problems:  # one line per bad row, then a non-zero exit
            print(f"kcity: error: {file}: {line}", file=sys.stderr)
        print(f"kcity: error: nothing imported ({len(exc.problems)} problems)", file=sys.stderr)
        raise typer.Exit(1) from None


def _run(s: Settings, pilot: str, rows: list[DeviceRow], out: Path | None, as_json: bool) -> None:
    from kcity import onboarding
    from kcity.db import connect
    from kcity.stack.broker_admin import platform_admin

    def deliver(made: list[Credentials]) -> None:
        if out is not None:
            write_private(out, credentials_text(made, out.suffix.lower() != ".json"))

    with (
        connect(s.database_url) as conn,
        platform_admin(s) as admin,
    ):
        made = onboarding.import_devices(
            conn,
            admin,
            pilot,
            rows,
            deliver,
            mqtt_host=s.mqtt_host,
            mqtt_port=s.mqtt_port,
            mqtt_tls_port=s.mqtt_tls_port,
        )
    if as_json:
        print(credentials_text(made, as_csv=False), end="")
    else:
        print(f"imported {len(made)} devices into pilot {pilot}; credentials in {out} (0600)")
