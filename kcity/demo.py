"""`kcity demo` (what `make demo` runs after the bootstrap): the main job end to end.

Local stack → pilots → devices → 14 days of Madiun streetlights and 7 days of Mukdahan
patrols streamed through MQTT and the ingest service → savings, coverage, data quality →
reports (HTML and PDF, English and Korean) → an evidence bundle per pilot, verified
offline → dashboards → a summary. Running it twice is
safe: the same seeded data is stored once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console
from rich.table import Table

from devices.pilots import load_pilot
from kcity.analyses import Window, run_coverage, run_quality, run_savings
from kcity.db import connect
from kcity.errors import KcityError
from kcity.evidence.export import export_bundle
from kcity.evidence.verify import verify_bundle
from kcity.grafana import write as write_dashboards
from kcity.progress import progress_bar
from kcity.registry import apply_pilot, get_pilot
from kcity.reports.brief import build_brief
from kcity.reports.render import BundleRef
from kcity.reports.render import build as build_report
from kcity.settings import Settings
from kcity.simulation import Streamed, simulator, stream, wait_until_stored
from kcity.stack.local import LocalStack, ensure_secrets

STREETLIGHT_START = date(2026, 10, 1)  # a week of baseline (dimming off), then a week dimmed
STREETLIGHT_DAYS = 14
DRONE_START = date(2026, 10, 8)
DRONE_DAYS = 7
REPORT_WINDOW = Window(date(2026, 10, 8), date(2026, 10, 15))


@dataclass(frozen=True)
class DemoPaths:
    pilots: Path = Path("pilots")
    reports: Path = Path("reports")
    dashboards: Path = Path("dashboards/build")


def run_demo(
    settings: Settings,
    *,
    keep: bool,
    paths: DemoPaths = DemoPaths(),
    console: Console | None = None,
) -> dict[str, Any]:
    console = console or Console()
    settings = ensure_secrets(settings)
    stack = LocalStack(settings)
    console.print("[bold]1/6[/] starting the local stack (TimescaleDB, Mosquitto, ingest, API)")
    started = stack.up()
    try:
        return _run(settings, console, paths)
    finally:
        if keep:
            _say_where(console, settings)
        elif started:
            stack.down()
            console.print(
                f"stopped what the demo started: {', '.join(started)}"
                " (keep them with `make demo KEEP=1`)"
            )


def _run(settings: Settings, console: Console, paths: DemoPaths) -> dict[str, Any]:
    with connect(settings.database_url) as conn:
        console.print("[bold]2/6[/] registering the Madiun and Mukdahan pilots")
        for name in ("madiun", "mukdahan"):
            apply_pilot(conn, load_pilot(paths.pilots / f"{name}.toml"))
        conn.commit()
        madiun, mukdahan = get_pilot(conn, "madiun"), get_pilot(conn, "mukdahan")

        console.print("[bold]3/6[/] provisioning devices and streaming the field data over MQTT")
        runs = [
            (
                madiun,
                "streetlights",
                "streetlight_readings",
                simulator(
                    madiun,
                    "streetlights",
                    devices=60,
                    days=STREETLIGHT_DAYS,
                    start=STREETLIGHT_START,
                    seed=1,
                ),
            ),
            (
                mukdahan,
                "drones",
                "drone_readings",
                simulator(
                    mukdahan, "drones", devices=2, days=DRONE_DAYS, start=DRONE_START, seed=1
                ),
            ),
        ]
        streamed: list[tuple[str, Streamed]] = []
        with progress_bar() as bar:
            for pilot, kind, table, sim in runs:
                batches = list(sim.batches())
                task = bar.add_task(
                    f"{pilot.id}: {kind} published", total=sum(len(b.items) for b in batches)
                )
                done = stream(conn, settings, pilot, batches, progress=partial(bar.advance, task))
                streamed.append((table, done))
            for table, done in streamed:
                task = bar.add_task(f"{table} committed by ingest", total=done.total_records)
                wait_until_stored(conn, table, done, progress=partial(bar.advance, task))

        console.print("[bold]4/6[/] verified savings, patrol coverage and data quality")
        savings, _ = run_savings(conn, "madiun", REPORT_WINDOW)
        coverage, _ = run_coverage(conn, "mukdahan", REPORT_WINDOW)
        quality = {p: run_quality(conn, p, REPORT_WINDOW) for p in ("madiun", "mukdahan")}

        console.print("[bold]5/6[/] evidence bundles (verified offline) and the evaluation")
        console.print(
            "    reports (HTML and PDF, en and ko) that name them, and the portfolio brief"
        )
        bundles = {pilot_id: write_bundle(conn, pilot_id, REPORT_WINDOW, paths.reports)
                   for pilot_id in ("madiun", "mukdahan")}  # fmt: skip
        reports: list[Path] = []
        with progress_bar() as bar:
            task = bar.add_task("reports", total=5)
            for pilot_id in ("madiun", "mukdahan"):
                ref = BundleRef(Path(bundles[pilot_id]["path"]).name, bundles[pilot_id]["sha256"])
                for lang in ("en", "ko"):
                    files = build_report(
                        conn, pilot_id, REPORT_WINDOW, paths.reports, lang, bundle=ref
                    )
                    reports += [files.html, files.pdf]
                    bar.advance(task)
            brief = build_brief(conn, REPORT_WINDOW, paths.reports, "ko")  # the ministry's
            reports += [brief.html, brief.pdf]
            bar.advance(task)

    console.print("[bold]6/6[/] building the Grafana dashboards")
    dashboards = write_dashboards(paths.dashboards)
    summary = {
        "savings": savings,
        "coverage": coverage,
        "quality": quality,
        "reports": [str(p) for p in reports],
        "bundles": list(bundles.values()),
        "dashboards": [str(p) for p in dashboards],
    }
    _print_summary(console, summary, paths)
    return summary


def write_bundle(
    conn: psycopg.Connection, pilot_id: str, window: Window, out_dir: Path
) -> dict[str, Any]:
    """Export the pilot's evidence bundle beside its reports and verify it offline; a
    bundle that does not verify stops the demo."""
    out = out_dir / f"{pilot_id}-{window.start}-{window.end}-evidence.zip"
    done = export_bundle(conn, pilot_id, window, out)
    verdict = verify_bundle(out)
    figures = sum(c.kind == "figure" for c in verdict.checks)
    if not verdict.ok:
        bad = [f"{c.analysis} {c.name}" for c in verdict.checks if not c.ok]
        raise KcityError(f"the evidence bundle {out} does not verify: {', '.join(bad[:5])}")
    return {
        "path": str(out),
        "sha256": done.sha256,
        "verdict": f"{figures} figures re-computed and matching (kcity verify {out})",
    }


def _print_summary(console: Console, s: dict[str, Any], paths: DemoPaths) -> None:
    sv, cv, q = s["savings"], s["coverage"], s["quality"]
    lo, hi = sv["ci90_kwh"]
    end = date.fromisoformat(sv["to"]) - timedelta(days=1)
    table = Table(
        "pilot",
        "figure",
        "value",
        title=f"K-City pilot evaluation, {sv['from']} to {end} (inclusive)",
    )
    table.add_row(
        "Madiun",
        "verified savings",
        f"{sv['savings_kwh']:,.1f} kWh ({sv['savings_pct']:.1f} %), "
        f"90 % CI {lo:,.1f} – {hi:,.1f} kWh",
    )
    table.add_row(
        "",
        "CO₂ avoided / cost saved",
        f"{sv['co2_kg']:,.0f} kg / {sv['cost_saved']:,.0f} {sv['currency']}",
    )
    table.add_row("", "data completeness", f"{q['madiun']['completeness_pct']:.1f} %")
    rv = cv["revisit_s"]
    table.add_row(
        "Mukdahan",
        "area / border coverage",
        f"{cv['area_coverage_pct']:.1f} % of {cv['aoi_km2']:.0f} km² / "
        f"{cv['linear_coverage_pct']:.1f} % of {cv['border_km']:.1f} km",
    )
    if rv["mean"] is not None:
        table.add_row("", "revisit mean / p95", f"{rv['mean'] / 60:.0f} / {rv['p95'] / 60:.0f} min")
    table.add_row(
        "",
        "flight hours / generator share",
        f"{cv['flight_hours']:.1f} h / {cv['generator_share_pct']:.0f} %",
    )
    table.add_row("", "data completeness", f"{q['mukdahan']['completeness_pct']:.1f} %")
    console.print(table)
    console.print(f"reports:    {paths.reports.resolve()}/")
    for b in s["bundles"]:
        console.print(f"evidence:   {b['path']} (sha256:{b['sha256'][:16]}…): {b['verdict']}")
    console.print(f"dashboards: {paths.dashboards.resolve()}/")


def _say_where(console: Console, settings: Settings) -> None:
    console.print("the stack keeps running (`kcity down` stops it):")
    console.print(f"  database  {settings.database_url}")
    console.print(
        f"  MQTT      mqtt://{settings.mqtt_host}:{settings.mqtt_port}"
        f" (TLS {settings.mqtt_tls_port})"
    )
    console.print(f"  API       {settings.api_url}/docs")
    console.print(f"  metrics   http://127.0.0.1:{settings.metrics_port}/metrics")
