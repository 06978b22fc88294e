"""`kcity import log FILE --pilot P --device D` (alias `import tlog`): a drone's flight log.

Reads a MAVLink .tlog, an ArduPilot DataFlash .bin or a PX4 .ulg (the format is detected
from the content), converts it with the pilot's settings (patrol modes, gap and speed
limits) and stores it for a provisioned drone through the ingest pipeline, in-process
(`kcity.log_import`): no device password, no broker account, the same validation, dedupe
and dead letters as live data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.progress import TaskID

    from devices.flight_log import FlightLog
    from kcity.log_import import ImportSummary
    from kcity.settings import Settings

app = typer.Typer(help="Import recorded device data.", no_args_is_help=True)

File = Annotated[Path, typer.Argument(help="Flight log: .tlog, DataFlash .bin or PX4 .ulg.")]
PilotOpt = Annotated[str, typer.Option("--pilot", help="Pilot id (a hybrid_drone pilot).")]
DeviceOpt = Annotated[str, typer.Option("--device", help="Device id of a provisioned drone.")]
FlightOpt = Annotated[
    str | None, typer.Option("--flight-id", help="Flight id (default: the file name).")
]
HfovOpt = Annotated[
    float | None, typer.Option("--hfov", help="Camera horizontal field of view [deg].")
]
FuelOpt = Annotated[
    float | None, typer.Option("--fuel-capacity-l", help="Tank size, for fuel remaining.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


@app.command("log")
def log_(
    ctx: typer.Context,
    file: File,
    pilot: PilotOpt,
    device: DeviceOpt,
    flight_id: FlightOpt = None,
    hfov: HfovOpt = None,
    fuel_capacity_l: FuelOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Store a drone's flight log as records and events of one provisioned device."""
    from kcity import log_import  # numpy, pymavlink, pyulog: only for this verb
    from kcity.db import connect
    from kcity.progress import progress_bar

    s: Settings = ctx.obj
    flight = flight_id or file.stem[:64] or "flight"
    bar = progress_bar(stderr=True)
    tasks: list[TaskID] = []

    def progress(done: int, total: int) -> None:
        if not tasks:  # only once the log is read: refusals stay one clean line
            bar.start()
            tasks.append(bar.add_task(f"importing {file.name}", total=total))
        bar.update(tasks[0], completed=done, total=total)

    try:
        with connect(s.database_url) as conn:
            flight_log, summary = log_import.import_file(
                conn,
                pilot,
                device,
                file,
                flight_id=flight,
                hfov_deg=hfov,
                fuel_capacity_l=fuel_capacity_l,
                progress=progress,
            )
    finally:
        bar.stop()
    _report(file, flight, pilot, device, flight_log, summary, as_json)


app.command("tlog", help="Alias of `kcity import log` (kept for scripts written against it).")(log_)


def _report(
    file: Path,
    flight: str,
    pilot: str,
    device: str,
    log: FlightLog,
    summary: ImportSummary,
    as_json: bool,
) -> None:
    body: dict[str, Any] = {
        "file": str(file),
        "pilot": pilot,
        "device_id": device,
        "flight_id": flight,
        **log.summary(),
        **summary.to_json(),
    }
    if as_json:
        print(json.dumps(body, indent=2))
        return
    skipped = ", ".join(f"{n} {why.replace('_', ' ')}" for why, n in body["skipped"].items())
    dead = ", ".join(f"{n} {why}" for why, n in body["dead_letters"].items())
    dups = summary.duplicate_messages
    print(
        f"{file.name} ({log.fmt}, {log.vehicle}): sent {len(log.records)} records and "
        f"{len(log.events)} events of flight {flight} as {device}; stored "
        f"{body['stored_records']} records, {body['stored_events']} events"
        f"{f'; {summary.duplicate_messages} messages already stored' if dups else ''}"
        f"; skipped {skipped or 'none'}{f'; dead letters: {dead}' if dead else ''}"
    )
    if log.unknown_modes:
        names = ", ".join(f"{m} ({n} points)" for m, n in log.unknown_modes.items())
        print(f"unknown flight modes (no patrol/transit class): {names}")
