"""`kcity export` and `kcity verify`: evidence bundles an evaluator re-computes offline."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from kcity.evidence.verify import Verdict

DATE = {"formats": ["%Y-%m-%d"], "metavar": "YYYY-MM-DD"}


def register(app: typer.Typer) -> None:
    app.command("export")(export)
    app.command("verify")(verify)


def export(
    ctx: typer.Context,
    pilot: Annotated[str, typer.Argument(help="Pilot id, e.g. madiun.")],
    start: Annotated[datetime, typer.Option("--from", help="First local date included.", **DATE)],
    end: Annotated[datetime, typer.Option("--to", help="First local date excluded.", **DATE)],
    out: Annotated[Path, typer.Option("--out", help="The bundle to write (a .zip).")],
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Evidence bundle: the raw rows, definition, registry and results of a window."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from kcity.db import connect
    from kcity.errors import BundleError
    from kcity.evidence.export import FORMATS, export_bundle
    from kcity.window import Window

    window = Window.parse(start.date(), end.date())
    if fmt not in FORMATS:
        raise BundleError(f"unknown --format {fmt!r}; use one of: {', '.join(FORMATS)}")
    console = Console(stderr=True)
    bar = Progress(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=quiet,
        transient=True,
    )
    tasks: dict[str, Any] = {}

    def progress(table: str, done: int, total: int) -> None:
        if not tasks:
            bar.start()  # only once there is something to show
        if table not in tasks:
            tasks[table] = bar.add_task(table, total=total)
        bar.update(tasks[table], completed=done)

    try:
        with connect(ctx.obj.database_url) as conn:
            done = export_bundle(conn, pilot, window, out, fmt=fmt, progress=progress)
    finally:
        if tasks:
            bar.stop()
    rows = sum(t["rows"] for t in done.manifest["tables"].values())
    console.print(f"{rows:,} rows in {len(done.manifest['files'])} files")
    print(done.path)
    print(f"sha256:{done.sha256}")


def _show(value: Any) -> str:
    if isinstance(value, list | dict):
        return f"[{len(value)} items]" if isinstance(value, list) else f"{{{len(value)} keys}}"
    text = "—" if value is None else str(value)
    return text if len(text) <= 24 else text[:21] + "…"


def print_verdict(verdict: Verdict, console: Console) -> None:
    from rich.table import Table

    table = Table("check", "figure", "stored", "recomputed", "match", title=str(verdict.bundle))
    for c in verdict.checks:
        if c.kind == "file" and c.ok:
            continue  # a line per good file is noise; a count follows
        mark = "[green]✓[/]" if c.ok else "[red]✗ MISMATCH[/]"
        table.add_row(c.analysis or c.kind, c.name, _show(c.stored), _show(c.recomputed), mark)
    console.print(table)
    files = [c for c in verdict.checks if c.kind == "file"]
    good = sum(c.ok for c in files)
    console.print(f"files: {good}/{len(files)} match the manifest's SHA-256")
    console.print(f"bundle sha256:{verdict.sha256}")
    console.print(
        "[green]verified: every figure re-computed and matching[/]"
        if verdict.ok
        else f"[red]NOT verified: {sum(not c.ok for c in verdict.checks)} mismatch(es)[/]"
    )


def verify(
    bundle: Annotated[Path, typer.Argument(help="An evidence bundle written by kcity export.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Re-compute every figure of a bundle offline; exit 1 on any mismatch or tampering."""
    from rich.console import Console

    from kcity.evidence.verify import verify_bundle

    verdict = verify_bundle(bundle)
    if as_json:
        print(json.dumps(verdict.to_json(), indent=2, default=str))
    else:
        print_verdict(verdict, Console())
    if not verdict.ok:
        raise typer.Exit(1)
