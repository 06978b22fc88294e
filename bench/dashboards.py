"""Dashboard latency at pilot scale (DESIGN §11, issue #19): the analytics benchmark's data
set (500 luminaires × 90 days of 5-minute data with their ingest messages, two drones for a
week), rollups refreshed, then every query of every dashboard (panels and annotations) with
Grafana's macros expanded as Grafana does (`tests/grafana_macros.py`) for the last 7, 30
and 90 days, at the interval Grafana would pick (range ÷ the panel's data points, rounded
as Grafana rounds, not below the panel's minimum). Warm: each query runs once, then the
median of 3 counts. Targets: each ≤ 300 ms; a whole dashboard's queries one after another
≤ 1 s.

Run: `.venv/bin/python bench/dashboards.py [--keep DIR]`. It starts a private stack; with
`--keep` the stack lives in DIR and stays there, and a later run with the same DIR reuses
its data set (migrations applied, rollups refreshed), so only the queries are timed again.
Remove DIR when done (4-8 GB).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.analytics import BUILT, DAYS, START, build_dataset  # noqa: E402
from bench.common import header, private_stack, verdict  # noqa: E402
from kcity.grafana import build_all  # noqa: E402
from kcity.rollups import refresh  # noqa: E402
from tests.grafana_macros import Variable, expand, parse_interval  # noqa: E402

RANGES = (7, 30, 90)
PANEL_LIMIT_S, DASHBOARD_LIMIT_S = 0.3, 1.0
WIDTH_PX = 1800  # a dashboard 24 columns wide on a 1920 px screen
# Grafana's rangeutil.roundInterval: (upper bound [ms], interval [s]).
_ROUND = (
    (15, 0.01), (35, 0.02), (75, 0.05), (150, 0.1), (250, 0.2), (350, 0.3), (450, 0.4),
    (750, 0.5), (1500, 1), (3500, 2), (7500, 5), (12500, 10), (17500, 15), (25000, 20),
    (45000, 30), (90000, 60), (180000, 120), (450000, 300), (1050000, 600),
    (2100000, 1200), (5400000, 3600), (9000000, 7200), (16200000, 10800),
    (32400000, 21600), (86400000, 43200), (604800000, 86400), (1814400000, 604800),
    (3628800000, 2592000),
)  # fmt: skip


def grafana_interval(span: timedelta, panel: dict[str, Any]) -> timedelta:
    """The `$__interval` Grafana computes for a panel over `span`."""
    points = panel.get("maxDataPoints") or WIDTH_PX * panel.get("gridPos", {}).get("w", 12) / 24
    raw_ms = span.total_seconds() * 1000 / points
    seconds = next((s for bound, s in _ROUND if raw_ms <= bound), 31536000)
    floor = parse_interval(panel["interval"]) if panel.get("interval") else 0.0
    return timedelta(seconds=max(seconds, floor))


def variables(conn: psycopg.Connection, dash: dict[str, Any], pilot: str) -> dict[str, Variable]:
    """The pilot with data, every device ("All"), as Grafana resolves them on load."""
    values: dict[str, Variable] = {}
    now = datetime.now(UTC)
    for var in dash.get("templating", {}).get("list", []):
        if var["name"] == "pilot":
            multi = bool(var.get("multi") or var.get("includeAll"))
            values["pilot"] = Variable([pilot] if multi else pilot, multi=multi)
            continue
        sql = expand(var["query"], start=now - timedelta(days=1), end=now, variables=values)
        cur = conn.execute(sql)
        names = [c.name for c in cur.description or []]
        col = names.index("__value") if "__value" in names else 0
        options = [str(r[col]) for r in cur.fetchall()]
        values[var["name"]] = Variable(options, multi=True, include_all=True)
    return values


def queries(dash: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    """(name, panel, SQL) of every panel query and SQL annotation of a dashboard."""
    out = []
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            out.append((f"{panel['title']} {target['refId']}", panel, target["rawSql"]))
    for ann in dash.get("annotations", {}).get("list", []):
        if "target" in ann:
            out.append((f"annotation {ann['name']}", {}, ann["target"]["rawSql"]))
    return out


def timed(conn: psycopg.Connection, sql: str) -> float:
    conn.execute(sql).fetchall()  # warm
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        conn.execute(sql).fetchall()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


PILOT_OF = {"kcity-streetlight": "madiun", "kcity-drone": "mukdahan", "kcity-ingest": "madiun"}


# The instants the ranges end at: the data set's end; the drones' week (build_dataset flies
# them from day 7 for 7 days) for the drone dashboard, whose panels would otherwise look at
# months without a flight; for the portfolio also mid-patrol, where its border rule reads
# hours of 1 Hz points.
_DRONES = datetime.combine(START + timedelta(days=7), datetime.min.time(), UTC)
ENDS_OF = {
    "kcity-drone": (_DRONES + timedelta(days=7),),
    "kcity-portfolio": (None, _DRONES + timedelta(days=4, hours=12)),
}


def main() -> int:
    parser = argparse.ArgumentParser(description="Dashboard query latency at pilot scale.")
    parser.add_argument("--keep", type=Path, help="keep the stack here and reuse its data")
    parser.add_argument("--only", nargs="*", default=[], help="dashboard uids to time (all)")
    args = parser.parse_args()
    dashboards = build_all("en")
    if unknown := set(args.only) - set(dashboards):
        parser.error(f"no dashboard {', '.join(sorted(unknown))}; uids: {', '.join(dashboards)}")
    header("dashboard benchmark")
    keep: Path | None = args.keep.resolve() if args.keep else None
    with private_stack(keep) as stack, psycopg.connect(stack.settings.database_url) as conn:
        if keep is None or not (keep / BUILT).exists():
            build_dataset(conn)
        t0 = time.perf_counter()
        refresh(conn)
        if keep is not None:
            (keep / BUILT).touch()
        print(f"  data loaded; rollups refreshed in {time.perf_counter() - t0:.1f} s")
        conn.autocommit = True
        last = datetime.combine(START + timedelta(days=DAYS), datetime.min.time(), UTC)
        ok = True
        worst: list[tuple[float, str]] = []
        for uid, dash in dashboards.items():
            if args.only and uid not in args.only:
                continue
            values = variables(conn, dash, PILOT_OF.get(uid, "madiun"))
            for end, days in ((e or last, d) for e in ENDS_OF.get(uid, (last,)) for d in RANGES):
                at = "" if end == last else f" to {end:%m-%d %H:%M}"
                span = timedelta(days=days)
                total = 0.0
                for name, panel, raw in queries(dash):
                    sql = expand(
                        raw,
                        start=end - span,
                        end=end,
                        interval=grafana_interval(span, panel),
                        variables=values,
                    )
                    took = timed(conn, sql)
                    total += took
                    worst.append((took, f"{uid} / {name} / {days} d{at}"))
                    if took > PANEL_LIMIT_S:
                        print(f"    over {PANEL_LIMIT_S * 1000:.0f} ms: {uid} / {name} / {days} d"
                              f"{at} {took * 1000:.0f} ms")  # fmt: skip
                ok &= verdict(f"{uid} {days} d{at}, all queries [s]", total, DASHBOARD_LIMIT_S,
                              higher_is_better=False, unit=" s")  # fmt: skip
        worst.sort(reverse=True)
        for took, name in worst[:8]:
            print(f"  slowest: {took * 1000:7.1f} ms  {name}")
        ok &= verdict("slowest query [s]", worst[0][0], PANEL_LIMIT_S,
                      higher_is_better=False, unit=" s")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
