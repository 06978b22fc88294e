"""Raw readings that retention dropped (`raw_dropped`, migration 015), as the analyses and
the rollups must see them: a span whose rows are gone cannot be recomputed. An analysis that
would read such a span is refused, naming the evidence bundles that hold it; the rollups keep
the buckets there as they were (`frozen`), even when a late row arrives into them.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import psycopg

from analytics.queries import READINGS_TABLE
from kcity.errors import RawDropped


def require_raw(
    conn: psycopg.Connection, kind: str, start: datetime, end: datetime, what: str
) -> None:
    """``RawDropped`` if any raw row of a `kind` pilot in [start, end) was dropped."""
    row = conn.execute(
        "SELECT min(start_ts), max(end_ts), max(dropped_at),"
        " array_agg(DISTINCT b ORDER BY b) FILTER (WHERE b IS NOT NULL)"
        " FROM raw_dropped LEFT JOIN LATERAL unnest(bundles) b ON true"
        " WHERE table_name = %s AND start_ts < %s AND end_ts > %s",
        (READINGS_TABLE[kind], end, start),
    ).fetchone()
    if row is None or row[0] is None:
        return
    lo, hi, when, bundles = row
    names = ", ".join(Path(b).name for b in bundles or ()) or "no bundle recorded"
    raise RawDropped(
        f"{what} would read raw readings of {lo:%Y-%m-%d %H:%M}–{hi:%Y-%m-%d %H:%M} UTC that"
        f" `kcity retention apply` dropped on {when:%Y-%m-%d} (kept in {names}): read the"
        " stored result, or run `kcity verify BUNDLE` / `kcity report --bundle BUNDLE`"
    )


def frozen(table: str, lo: str, hi: str) -> str:
    """SQL: whether the bucket [lo, hi) overlaps a dropped span of `table` (all three SQL
    expressions), so that a rollup keeps it as it was."""
    return (
        f"EXISTS (SELECT 1 FROM raw_dropped x WHERE x.table_name = {table}"
        f" AND x.start_ts < ({hi}) AND x.end_ts > ({lo}))"
    )
