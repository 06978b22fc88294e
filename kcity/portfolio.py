"""The ministry's portfolio as data: the home dashboard's rows plus each pilot's verified
figures of a window, for `kcity portfolio` (the brief for a ministry meeting).

The rows come from the dashboard's own query (`dashboards.portfolio.portfolio_sql`), with
Grafana's "now" (``$__timeTo()``) bound to the brief's instant, so the brief and the home
dashboard cannot disagree. The window's figures come from `kcity.analyses` (not stored:
a brief writes nothing), so they are the numbers of `kcity savings|coverage|quality --json`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg

from analytics.errors import AnalyticsError
from dashboards.portfolio import portfolio_sql
from kcity.analyses import run_coverage, run_quality, run_savings
from kcity.errors import DatabaseError, KcityError
from kcity.window import Window

# The figures of a window each kind's brief shows, by analysis: JSON keys of its --json.
WINDOW_KEYS = {
    "savings": ("savings_kwh", "savings_pct", "ci90_kwh", "co2_kg"),
    "coverage": ("linear_coverage_pct", "area_coverage_pct", "flight_hours", "detections"),
    "quality": ("completeness_pct",),
}


@dataclass(frozen=True)
class PilotBrief:
    """One pilot: its portfolio row (the dashboard's columns) and its window's figures."""

    row: dict[str, Any]
    figures: dict[str, dict[str, Any]]  # analysis -> the window's JSON keys shown
    problems: tuple[str, ...]  # warnings of the analyses, and any analysis that failed


def rows(
    conn: psycopg.Connection, labels: dict[str, str], now: dt.datetime
) -> list[dict[str, Any]]:
    """The home dashboard's table as of `now`, one dict per pilot."""
    sql = portfolio_sql(labels, now="$__timeTo()").replace("%", "%%")
    sql = sql.replace("$__timeTo()", "%(now)s::timestamptz")
    try:
        cur = conn.execute(sql, {"now": now})
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DatabaseError(f"portfolio query failed: {first}") from exc
    names = [c.name for c in cur.description or []]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _window_figures(
    conn: psycopg.Connection, pilot: str, kind: str, window: Window
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    runs = {"streetlight": "savings", "hybrid_drone": "coverage"}
    figures: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for analysis in (runs.get(kind), "quality"):
        if analysis is None:
            continue
        try:
            if analysis == "savings":
                body = run_savings(conn, pilot, window, persist=False)[0]
            elif analysis == "coverage":
                body = run_coverage(conn, pilot, window, persist=False)[0]
            else:
                body = run_quality(conn, pilot, window, persist=False)
        except (KcityError, AnalyticsError) as exc:
            conn.rollback()
            problems.append(f"{analysis}: {exc}")
            continue
        figures[analysis] = {k: body.get(k) for k in WINDOW_KEYS[analysis]}
        problems += [f"{analysis}: {w}" for w in body.get("warnings", [])]
    return figures, problems


def brief(
    conn: psycopg.Connection, labels: dict[str, str], window: Window, now: dt.datetime
) -> list[PilotBrief]:
    """Every pilot's row as of `now` and its verified figures over `window`."""
    out = []
    for row in rows(conn, labels, now):
        figures, problems = _window_figures(conn, row["pilot"], row["solution"], window)
        out.append(PilotBrief(row, figures, tuple(problems)))
    return out


__all__ = ["WINDOW_KEYS", "PilotBrief", "brief", "rows"]
