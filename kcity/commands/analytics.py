"""`kcity savings`, `kcity coverage`, `kcity quality`: the evaluation figures of a window."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from kcity.window import Window

DATE = {"formats": ["%Y-%m-%d"], "metavar": "YYYY-MM-DD"}
Start = Annotated[
    datetime,
    typer.Option(
        "--from", help="First date included: a local date in the pilot's time zone.", **DATE
    ),
]
End = Annotated[
    datetime,
    typer.Option(
        "--to",
        help="First date excluded (exclusive): a local date in the pilot's time zone.",
        **DATE,
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def register(app: typer.Typer) -> None:
    app.command()(savings)
    app.command()(coverage)
    app.command()(quality)


def _window(start: datetime, end: datetime) -> Window:
    from kcity.window import Window

    return Window.parse(start.date(), end.date())


def _warn_if_empty(body: dict[str, Any]) -> None:
    """A window without data says so on stderr, in one line: never silent zeros."""
    empty = [w for w in body.get("warnings", ()) if str(w).endswith("in this window")]
    if empty:
        print(
            f"kcity: warning: {body['pilot']} {body['from']} → {body['to']}: {empty[0]}",
            file=sys.stderr,
        )


def _print(body: dict[str, Any], as_json: bool, title: str, rows: list[tuple[str, str]]) -> None:
    if as_json:
        print(json.dumps(body, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("figure", "value", title=title)
    for name, value in rows:
        table.add_row(name, value)
    Console().print(table)


def _num(value: Any, fmt: str = ",.1f") -> str:
    return "—" if value is None else format(value, fmt)


def savings(
    ctx: typer.Context,
    pilot: Annotated[str, typer.Argument(help="Pilot id, e.g. madiun.")],
    start: Start,
    end: End,
    as_json: AsJson = False,
) -> None:
    """Verified energy savings of a streetlight pilot (IPMVP Option B)."""
    from kcity.db import connect

    window = _window(start, end)
    with connect(ctx.obj.database_url) as conn:
        from kcity.analyses import run_savings  # scipy and shapely load only when needed

        body, _ = run_savings(conn, pilot, window)
    _warn_if_empty(body)
    lo, hi = body["ci90_kwh"]
    _print(
        body,
        as_json,
        f"Verified savings — {pilot} {window.start} → {window.end}",
        [
            ("luminaires", str(body["luminaires"])),
            ("baseline (counterfactual) kWh", _num(body["baseline_kwh"])),
            ("actual kWh", _num(body["actual_kwh"])),
            ("savings kWh", f"{_num(body['savings_kwh'])} (90 % CI {_num(lo)} – {_num(hi)})"),
            ("savings %", _num(body["savings_pct"])),
            ("CO₂ avoided kg", _num(body["co2_kg"])),
            ("cost saved", f"{_num(body['cost_saved'], ',.0f')} {body['currency']}"),
            ("data completeness %", _num(body["completeness_pct"])),
            ("excluded luminaire-nights", str(len(body["excluded_nights"]))),
        ],
    )


def coverage(
    ctx: typer.Context,
    pilot: Annotated[str, typer.Argument(help="Pilot id, e.g. mukdahan.")],
    start: Start,
    end: End,
    as_json: AsJson = False,
) -> None:
    """Patrol coverage and hybrid energy of a drone pilot."""
    from kcity.db import connect

    window = _window(start, end)
    with connect(ctx.obj.database_url) as conn:
        from kcity.analyses import run_coverage

        body, _ = run_coverage(conn, pilot, window)
    for warning in body.get("warnings", []):
        typer.echo(f"warning: {warning}", err=True)
    revisit = body["revisit_s"]
    _print(
        body,
        as_json,
        f"Patrol coverage — {pilot} {window.start} → {window.end}",
        [
            ("area of interest km²", _num(body["aoi_km2"], ",.2f")),
            ("covered km²", _num(body["covered_km2"], ",.2f")),
            ("area coverage %", _num(body["area_coverage_pct"])),
            (
                "border km / covered km",
                f"{_num(body['border_km'])} / {_num(body['border_covered_km'])}",
            ),
            ("linear coverage %", _num(body["linear_coverage_pct"])),
            (
                "revisit mean / p95 / max (min)",
                " / ".join(
                    _num(None if revisit[k] is None else revisit[k] / 60)
                    for k in ("mean", "p95", "max")
                ),
            ),
            ("flight hours", _num(body["flight_hours"])),
            ("distance km", _num(body["distance_km"])),
            ("detections", str(body["detections"])),
            (
                "battery / generator kWh",
                f"{_num(body['battery_kwh'], ',.2f')} / {_num(body['generator_kwh'], ',.2f')}",
            ),
            ("fuel L", _num(body["fuel_l"])),
            ("generator share %", _num(body["generator_share_pct"])),
            ("energy split", body["energy_split"]),
            (
                "sensor source",
                ", ".join(f"{d}: {s}" for d, s in body["sensor_source"].items()) or "—",
            ),
        ],
    )


def quality(
    ctx: typer.Context,
    pilot: Annotated[str, typer.Argument(help="Pilot id.")],
    start: Start,
    end: End,
    as_json: AsJson = False,
) -> None:
    """Data quality per device and day: completeness, gaps, duplicates, dead letters, skew."""
    from kcity.db import connect

    window = _window(start, end)
    with connect(ctx.obj.database_url) as conn:
        from kcity.analyses import run_quality

        body = run_quality(conn, pilot, window)
    _warn_if_empty(body)
    _print(
        body,
        as_json,
        f"Data quality — {pilot} {window.start} → {window.end}",
        [
            ("devices", str(body["devices"])),
            (
                "records / expected",
                f"{body['records']:,} / {_num(body['expected_records'], ',.0f')}",
            ),
            ("completeness %", _num(body["completeness_pct"])),
            ("sequence gaps (lost messages)", str(body["seq_gaps"])),
            ("duplicate messages", str(body["duplicates"])),
            ("dead letters", str(body["dead_letters"])),
        ],
    )
