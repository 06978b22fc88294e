"""`kcity payload check FILE --pilot P --device D`: ingest's verdict on a payload, offline
from the broker and storing nothing (the same check as `POST …/payloads/check`)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kcity.errors import KcityError

if TYPE_CHECKING:
    from kcity.settings import Settings

app = typer.Typer(help="Payloads: check one against the contract.", no_args_is_help=True)


@app.command()
def check(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Argument(help="The message as the device would publish it ('-': stdin).")
    ],
    pilot: str = typer.Option(..., "--pilot", help="Pilot id."),
    device: str = typer.Option(..., "--device", help="Device id (registered)."),
    channel: str = typer.Option("telemetry", "--channel", help="telemetry, event or status."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Exit 0 when every record would be stored, 1 when anything would be dead-lettered."""
    from kcity.db import connect
    from kcity.payload_check import check_payload

    s: Settings = ctx.obj
    try:
        raw = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
    except OSError as exc:
        raise KcityError(f"cannot read {file}: {exc.strerror or exc}") from exc
    with connect(s.database_url) as conn:
        report = check_payload(conn, pilot, device, raw, datetime.now(UTC), channel)
    body = report.to_json()
    if as_json:
        print(json.dumps(body, indent=2, ensure_ascii=False))
    elif not report.accepted:
        print(f"rejected whole ({report.stage}): {report.reason}")
    else:
        print(
            f"accepted: {body['records_accepted']} record(s) would be stored,"
            f" {body['records_rejected']} dead-lettered"
        )
        for r in report.records:
            if not r.accepted:
                print(f"  record {r.index} ({r.stage}): {r.reason}")
    ok = report.accepted and body["records_rejected"] == 0
    raise typer.Exit(0 if ok else 1)
