"""One look for the progress bars of long work (streaming, waiting for ingest, reports)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def progress_bar(*, stderr: bool = False) -> Progress:
    """A bar; ``stderr`` keeps stdout clean for ``--json`` output."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True) if stderr else None,
    )
