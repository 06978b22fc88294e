"""`kcity simulate streetlights|drones PILOT`: stream a seeded pilot simulation over MQTT."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from kcity.settings import Settings

app = typer.Typer(help="Stream simulated pilot devices through MQTT.", no_args_is_help=True)

DATE = {"formats": ["%Y-%m-%d"], "metavar": "YYYY-MM-DD"}


def run(
    settings: Settings,
    pilot_id: str,
    kind: str,
    *,
    devices: int,
    days: int,
    start: date,
    seed: int,
    realtime: bool,
    truth: Path | None,
    faults: bool = True,
) -> int:
    """Simulate and stream; return the number of records published."""
    from kcity.db import connect
    from kcity.device_commands import profile_in_force
    from kcity.progress import progress_bar
    from kcity.registry import get_pilot
    from kcity.simulation import simulator, stream

    with connect(settings.database_url) as conn:
        pilot = get_pilot(conn, pilot_id)
        options: dict[str, object] = {}
        if kind == "streetlights":
            # The luminaires obey the pilot's newest acknowledged dimming profile, if any.
            options["dimming"] = profile_in_force(conn, pilot_id)
            if options["dimming"] is not None:
                print("luminaires follow the pilot's acknowledged dimming profile")
        sim = simulator(
            pilot,
            kind,
            devices=devices,
            days=days,
            start=start,
            seed=seed,
            faults=faults,
            **options,
        )
        if omitted := sim.truth_data.get("faults_omitted"):
            print(f"faults left out of this short run: {'; '.join(omitted)}")
        if truth:
            truth.parent.mkdir(parents=True, exist_ok=True)
            truth.write_text(json.dumps(sim.truth()))
        batches = list(sim.batches())
        with progress_bar() as bar:
            task = bar.add_task(
                f"streaming {pilot_id} {kind}", total=sum(len(b.items) for b in batches)
            )
            streamed = stream(
                conn,
                settings,
                pilot,
                batches,
                realtime=realtime,
                progress=lambda n: bar.advance(task, n),
            )
    return streamed.total_records


def _command(kind: str, devices_default: int, days_default: int) -> None:
    def command(
        ctx: typer.Context,
        pilot: Annotated[str, typer.Argument(help="Pilot id.")],
        devices: Annotated[int, typer.Option(min=1, help="How many devices.")] = devices_default,
        days: Annotated[int, typer.Option(min=1, help="How many days.")] = days_default,
        start: Annotated[
            datetime | None, typer.Option(help="First day (default: DAYS ago).", **DATE)
        ] = None,
        seed: Annotated[
            int, typer.Option(help="Random seed: the same seed gives the same data.")
        ] = 1,
        realtime: Annotated[
            bool, typer.Option(help="Send at the pace of the simulated clock.")
        ] = False,
        truth: Annotated[
            Path | None, typer.Option(help="Write the ground truth here as JSON.")
        ] = None,
        faults: Annotated[bool, typer.Option(help="Inject faults, outages and glitches.")] = True,
    ) -> None:
        first = start.date() if start else date.today() - timedelta(days=days)
        n = run(
            ctx.obj,
            pilot,
            kind,
            devices=devices,
            days=days,
            start=first,
            seed=seed,
            realtime=realtime,
            truth=truth,
            faults=faults,
        )
        print(f"published {n:,} records")

    command.__doc__ = f"Stream simulated {kind} of PILOT through MQTT with the device SDK."
    app.command(kind)(command)


_command("streetlights", 60, 14)
_command("drones", 2, 7)
