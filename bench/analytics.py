"""Analytics benchmark (DESIGN §11, issue #23), printed as ratios against limits measured in
this run:

- savings for windows of 1, 7, 30 and 90 days through the HTTP API with an evaluator token
  (the baseline summary and the luminaire-nights kept by first stored runs, as `kcity
  savings` leaves them) within 1 s, and computed from scratch (every row of the window and
  the baseline read) within 3× a plain `GROUP BY` scan of the rows it reads; the stored
  90-day result's full document against its `?view=summary`;

- savings over 500 luminaires × 90 days of 5-minute data within 3× a plain
  `SELECT … GROUP BY device_id, day` scan of the same rows;
- coverage of one week of 1 Hz patrol telemetry from two drones within 3× the time to read
  those rows from the database with the project's own fastest loader (`analytics.queries.
  load_drones`: one `array_agg` row per drone through binary COPY into numpy), so the
  ratio is what coverage adds to reading, not a comparison with slow `fetchall()` tuples.

Run: `.venv/bin/python bench/analytics.py` (or `make bench`). It starts a private stack.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path

import httpx
import numpy as np
import psycopg
import uvicorn

# Run as a script, this file's folder would shadow the `analytics` package: use the repo root.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from analytics.queries import load_drones as read_drones  # noqa: E402
from bench.common import best_of, header, private_stack, verdict  # noqa: E402
from devices.payload_models import DroneRecord  # noqa: E402
from devices.pilots import load_pilot  # noqa: E402
from devices.sim import DroneSimConfig, simulate_drones  # noqa: E402
from kcity.analyses import (  # noqa: E402
    Window,
    run_coverage,
    run_quality,
    run_savings,
    savings_params,
)
from kcity.api import create_app  # noqa: E402
from kcity.api.deps import API_PREFIX  # noqa: E402
from kcity.registry import apply_pilot, get_pilot  # noqa: E402
from kcity.rollups import refresh  # noqa: E402
from kcity.savings_cache import baseline_rows_span  # noqa: E402
from kcity.settings import Settings  # noqa: E402
from kcity.stack.processes import free_port  # noqa: E402
from kcity.tokens import create_token  # noqa: E402

PILOTS = Path(__file__).resolve().parent.parent / "pilots"
LUMINAIRES, DAYS, INTERVAL = 500, 90, 300
START = date(2026, 10, 1)
PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC).timestamp()


# The data set runs to the end of December 2026; nothing can have arrived after the load.
RECEIVED_BY = datetime.now(UTC).timestamp() - 3600


def _receipts(i: int, ts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """When each record arrived [epoch s]: 0.2–3 s after its time; every 50th luminaire was
    cut off for two days (days 40–42) and caught up when its link came back. Records dated
    after the load arrived an hour before it (as from a device whose clock runs ahead)."""
    received = ts + rng.uniform(0.2, 3.0, ts.size)
    if i % 50 == 7:
        lost = ts[0] + 40 * 86400
        back = lost + 2 * 86400
        held = (ts >= lost) & (ts < back)
        received[held] = back + np.arange(held.sum()) * 0.01
    return np.minimum(received, RECEIVED_BY)


def luminaire_rows(i: int, rng: np.random.Generator) -> np.ndarray:
    """90 days of one luminaire as PostgreSQL binary COPY rows (fixed width, no Python loop)."""
    t0 = datetime(2026, 10, 1, tzinfo=UTC).timestamp() - 7 * 3600
    ts = t0 + INTERVAL * np.arange(DAYS * 86400 // INTERVAL, dtype=np.float64)
    local_h = ((ts + 7 * 3600) % 86400) / 3600
    on = (local_h >= 18) | (local_h < 6)
    baseline = ts < t0 + 7 * 86400
    dim = np.where(on, np.where(baseline | (i < 6), 100.0, rng.uniform(30, 100, ts.size)), 0.0)
    p_full = 120.0 * rng.uniform(0.95, 1.05)
    power = np.where(on, p_full * (0.1 + 0.9 * dim / 100), 0.5)
    energy = np.round(np.cumsum(power * INTERVAL / 3600))
    row = np.dtype(
        [
            ("n", ">i2"),
            ("l0", ">i4"),
            ("dev", "S13"),
            ("l1", ">i4"),
            ("ts", ">i8"),
            ("l2", ">i4"),
            ("p", ">f8"),
            ("l3", ">i4"),
            ("e", ">f8"),
            ("l4", ">i4"),
            ("d", ">f8"),
            ("l5", ">i4"),
            ("on", "?"),
            ("l6", ">i4"),
            ("rec", ">i8"),
        ]
    )
    out = np.zeros(ts.size, dtype=row)
    out["n"], out["dev"] = 7, f"madiun-sl-{i + 1:03d}".encode()
    out["l0"], out["l1"], out["l2"], out["l3"], out["l4"], out["l5"] = 13, 8, 8, 8, 8, 1
    out["l6"] = 8
    out["ts"] = ((ts - PG_EPOCH) * 1e6).astype(np.int64)
    out["p"], out["e"], out["d"], out["on"] = power, energy, dim, on
    out["rec"] = ((_receipts(i, ts, rng) - PG_EPOCH) * 1e6).astype(np.int64)
    return out


def message_rows(lum: np.ndarray) -> np.ndarray:
    """The `ingest_messages` rows of one luminaire's records: one record a message, as live
    luminaires send them (boot 0, seq in order, one message in 500 lost)."""
    keep = np.ones(lum.size, dtype=bool)
    keep[250::500] = False
    lum = lum[keep]
    row = np.dtype(
        [
            ("n", ">i2"),
            ("l0", ">i4"),
            ("dev", "S13"),
            ("l1", ">i4"),
            ("boot", ">i4"),
            ("l2", ">i4"),
            ("seq", ">i8"),
            ("l3", ">i4"),
            ("ch", "S9"),
            ("l4", ">i4"),
            ("rec", ">i8"),
            ("l5", ">i4"),
            ("sent", ">i8"),
            ("l6", ">i4"),
            ("records", ">i4"),
            ("l7", ">i4"),
            ("first", ">i8"),
        ]
    )
    out = np.zeros(lum.size, dtype=row)
    out["n"], out["dev"], out["ch"] = 8, lum["dev"], b"telemetry"
    out["l0"], out["l1"], out["l2"], out["l3"], out["l4"] = 13, 4, 8, 9, 8
    out["l5"], out["l6"], out["l7"] = 8, 4, 8
    out["seq"] = np.flatnonzero(keep)
    out["rec"], out["sent"] = lum["rec"], lum["rec"] - 100_000
    out["records"], out["first"] = 1, lum["ts"]
    return out


def _copy_luminaires(
    conn: psycopg.Connection, sql: str, rows_of: Callable[[np.ndarray], np.ndarray]
) -> int:
    rng = np.random.default_rng(1)  # the same luminaires on every call
    total = 0
    with conn.cursor() as cur, cur.copy(sql) as copy:
        copy.write(b"PGCOPY\n\xff\r\n\x00" + bytes(8))
        for i in range(LUMINAIRES):
            rows = rows_of(luminaire_rows(i, rng))
            copy.write(rows.tobytes())
            total += rows.size
        copy.write(b"\xff\xff")
    conn.commit()
    return total


def load_streetlights(conn: psycopg.Connection) -> int:
    return _copy_luminaires(
        conn,
        "COPY streetlight_readings"
        " (device_id, ts, power_w, energy_wh, dim_pct, lamp_on, received_at)"
        " FROM STDIN (FORMAT BINARY)",
        lambda rows: rows,
    )


def load_messages(conn: psycopg.Connection) -> int:
    """The `ingest_messages` rows of the same luminaires' records."""
    return _copy_luminaires(
        conn,
        "COPY ingest_messages (device_id, boot, seq, channel, received_at, sent_at,"
        " records, first_ts) FROM STDIN (FORMAT BINARY)",
        message_rows,
    )


DRONE_COLUMNS = tuple(f for f in DroneRecord.model_fields if f != "ts")


def load_drones(conn: psycopg.Connection, start: date) -> int:
    sim = simulate_drones(DroneSimConfig(start=start, days=7, seed=1))
    total = 0
    with (
        conn.cursor() as cur,
        cur.copy(
            f"COPY drone_readings (device_id, ts, received_at, {', '.join(DRONE_COLUMNS)})"
            " FROM STDIN"
        ) as copy,
    ):
        for batch in sim.batches():
            if batch.channel != "telemetry":
                continue
            for r in batch.items:
                sent = datetime.fromisoformat(str(r["ts"]).replace("Z", "+00:00")).timestamp()
                received = min(sent + 0.5, RECEIVED_BY)  # arrived with the flight, not now
                copy.write_row(
                    [
                        batch.device_id,
                        r["ts"],
                        datetime.fromtimestamp(received, UTC),
                        *(r.get(c) for c in DRONE_COLUMNS),
                    ]
                )
                total += 1
    conn.commit()
    return total


SAVINGS_DAYS = (1, 7, 30, 90)


def _median_of(n: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


@contextmanager
def api_server(settings: Settings) -> Iterator[str]:
    """The project's API on a free port in a thread of this process; its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=free_port(), log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.config.port}{API_PREFIX}"
    finally:
        server.should_exit = True
        thread.join()


def _get(http: httpx.Client, url: str, headers: dict[str, str]) -> None:
    http.get(url, headers=headers).raise_for_status()


def _scan(conn: psycopg.Connection, spans: list[tuple[datetime, datetime]]) -> float:
    """A plain GROUP BY per device and day over each span, best of 3 [s]."""
    sql = (
        "SELECT device_id, time_bucket('1 day', ts) AS day, sum(power_w), count(*)"
        " FROM streetlight_readings WHERE ts >= %s AND ts < %s GROUP BY 1, 2"
    )
    return best_of(3, lambda: [conn.execute(sql, span).fetchall() for span in spans])


def _scan_messages(conn: psycopg.Connection, lo: datetime, hi: datetime) -> float:
    """A plain GROUP BY per device and day of the ingest messages quality counts sequence
    gaps and duplicates over (stamped in the window), best of 3 [s]: the faster of two
    forms, with quality's own condition on devices and channel (which the planner may answer
    through an index, slowly) and without it (the same rows here: every message in the data
    set is a Madiun luminaire's telemetry)."""
    stamp = "coalesce(first_ts, sent_at, received_at)"
    ids = [f"madiun-sl-{i + 1:03d}" for i in range(LUMINAIRES)]

    def scan(where: str, args: tuple[object, ...]) -> None:
        conn.execute(
            f"SELECT device_id, time_bucket('1 day', {stamp}) AS day, count(*), sum(seq)"
            f" FROM ingest_messages WHERE {where} {stamp} >= %s AND {stamp} < %s GROUP BY 1, 2",
            args,
        ).fetchall()

    quality_condition = "device_id = ANY(%s) AND channel = 'telemetry' AND"
    return min(
        best_of(3, partial(scan, quality_condition, (ids, lo, hi))),
        best_of(3, partial(scan, "", (lo, hi))),
    )


def savings_figures(conn: psycopg.Connection, settings: Settings) -> bool:
    """Savings windows through the API and from scratch (issue #23)."""
    end = START + timedelta(days=DAYS)
    run_savings(conn, "madiun", Window(end - timedelta(days=1), end))  # stores the summary
    run_savings(conn, "madiun", Window(end - timedelta(days=90), end))  # result, nights kept
    secret, _ = create_token(conn, "evaluator", label="bench")
    conn.commit()
    pilot = get_pilot(conn, "madiun")
    base = baseline_rows_span(savings_params(pilot))
    ok = True
    with api_server(settings) as url, httpx.Client(timeout=600) as http:
        auth = {"Authorization": f"Bearer {secret}"}
        for days in SAVINGS_DAYS:
            window = Window(end - timedelta(days=days), end)
            query = f"{url}/pilots/madiun/savings?from={window.start}&to={window.end}"
            size = len(http.get(query, headers=auth).content)
            api = _median_of(3, partial(_get, http, query, auth))
            scratch = best_of(
                2, partial(run_savings, conn, "madiun", window, persist=False, reuse_baseline=False)
            )
            lo, hi = window.utc(pilot.timezone, extra_days=1)
            spans = [(lo, hi)] if base.start >= lo else [(base.start, base.end), (lo, hi)]
            scan = _scan(conn, spans)
            print(
                f"  savings {days:>2} d: API {api:.2f} s ({size / 1e6:.1f} MB body);"
                f" from scratch {scratch:.2f} s; GROUP BY of its rows {scan:.2f} s"
            )
            ok &= verdict(f"savings {days} d through the API [s]", api, 1.0,
                          higher_is_better=False, unit=" s")  # fmt: skip
            ok &= verdict(f"savings {days} d from scratch ÷ GROUP BY scan", scratch / scan, 3.0,
                          higher_is_better=False)  # fmt: skip
        stored = f"{url}/pilots/madiun/results/savings"
        for view in ("full", "summary"):
            q = f"{stored}?view={view}"
            size = len(http.get(q, headers=auth).content)
            took = _median_of(3, partial(_get, http, q, auth))
            print(f"  stored 90 d savings result, view={view}: {took:.2f} s, {size / 1e3:,.0f} kB")
    return ok


QUALITY_DAYS = (1, 7, 30, 90)


def quality_figures(conn: psycopg.Connection, settings: Settings) -> bool:
    """Quality windows through the API (from the per-device-day rollup, refreshed on read)
    and counted from scratch over the raw rows, against a GROUP BY scan of the same rows;
    the two results compared key for key (issue #23)."""
    t0 = time.perf_counter()
    built = refresh(conn)
    print(
        f"  quality rollup built once: {built.rebuilt_devices} devices in"
        f" {time.perf_counter() - t0:.1f} s; a refresh with nothing new:"
        f" {best_of(3, partial(refresh, conn)):.3f} s"
    )
    secret, _ = create_token(conn, "evaluator", label="bench-quality")
    conn.commit()
    end = START + timedelta(days=DAYS)
    ok = True
    with api_server(settings) as url, httpx.Client(timeout=600) as http:
        auth = {"Authorization": f"Bearer {secret}"}
        for days in QUALITY_DAYS:
            window = Window(end - timedelta(days=days), end)
            query = f"{url}/pilots/madiun/quality?from={window.start}&to={window.end}"
            size = len(http.get(query, headers=auth).content)
            api = _median_of(3, partial(_get, http, query, auth))
            fast = run_quality(conn, "madiun", window, persist=False)
            full = run_quality(conn, "madiun", window, persist=False, from_rollup=False)
            raw = best_of(
                2, partial(run_quality, conn, "madiun", window, persist=False, from_rollup=False)
            )
            lo, hi = window.utc("Asia/Jakarta")
            scan = _scan(conn, [(lo, hi)])
            messages = _scan_messages(conn, lo, hi)
            print(
                f"  quality {days:>2} d: API {api:.2f} s ({size / 1e6:.1f} MB body);"
                f" from scratch {raw:.2f} s; GROUP BY of its readings {scan:.2f} s, of its"
                f" messages {messages:.2f} s ({raw / scan:.1f}× the readings alone);"
                f" rollup result {'identical to' if fast == full else 'DIFFERS from'}"
                f" the recount"
            )
            ok &= fast == full
            ok &= verdict(f"quality {days} d through the API [s]", api, 1.0,
                          higher_is_better=False, unit=" s")  # fmt: skip
            ok &= verdict(f"quality {days} d from scratch ÷ GROUP BY scan of the rows it reads",
                          raw / (scan + messages), 3.0, higher_is_better=False)  # fmt: skip
    return ok


def register_madiun(conn: psycopg.Connection) -> None:
    """The Madiun pilot and its `LUMINAIRES` luminaires (ids as the loaders write them)."""
    apply_pilot(conn, load_pilot(PILOTS / "madiun.toml"))
    for i in range(LUMINAIRES):
        conn.execute(
            "INSERT INTO devices (id, pilot_id, kind, password_hash)"
            " VALUES (%s, 'madiun', 'streetlight', '-')",
            (f"madiun-sl-{i + 1:03d}",),
        )


def build_dataset(conn: psycopg.Connection) -> tuple[int, int, int, date]:
    """Both pilots, 500 luminaires × 90 days with their messages, two drones for a week;
    returns the rows loaded (readings, messages, drone records) and the drones' first day."""
    register_madiun(conn)
    apply_pilot(conn, load_pilot(PILOTS / "mukdahan.toml"))
    for i in (1, 2):
        conn.execute(
            "INSERT INTO devices (id, pilot_id, kind, password_hash)"
            " VALUES (%s, 'mukdahan', 'hybrid_drone', '-')",
            (f"mukdahan-uav-{i}",),
        )
    conn.commit()
    rows = load_streetlights(conn)
    messages = load_messages(conn)
    drone_start = START + timedelta(days=7)
    drone_rows = load_drones(conn, drone_start)
    conn.autocommit = True
    conn.execute("VACUUM ANALYZE")
    conn.autocommit = False
    return rows, messages, drone_rows, drone_start


BUILT = "dataset-built"  # marks a kept folder whose data set is complete


def _counted(conn: psycopg.Connection) -> tuple[int, int, int, date]:
    """What `build_dataset` returns, counted in a kept data set."""
    tables = ("streetlight_readings", "ingest_messages", "drone_readings")
    rows, messages, drones = (
        conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]
        for t in tables
    )
    conn.rollback()  # read only: leave no transaction open
    return rows, messages, drones, START + timedelta(days=7)


def main() -> int:
    """`bench/analytics.py [--keep DIR] [savings] [quality] [scan]`: the parts named, all by
    default; with `--keep` the stack lives in DIR and a later run reuses its data."""
    parser = argparse.ArgumentParser(description="Analytics at pilot scale.")
    parser.add_argument("--keep", type=Path, help="keep the stack here and reuse its data")
    parser.add_argument("parts", nargs="*", help="savings, quality, scan (all by default)")
    args = parser.parse_args()
    parts = set(args.parts) or {"savings", "quality", "scan"}
    if unknown := parts - {"savings", "quality", "scan"}:
        parser.error(f"unknown part(s): {', '.join(sorted(unknown))}")
    keep: Path | None = args.keep.resolve() if args.keep else None
    header("analytics benchmark")
    with private_stack(keep) as stack, psycopg.connect(stack.settings.database_url) as conn:
        if keep is not None and (keep / BUILT).exists():
            rows, messages, drone_rows, drone_start = _counted(conn)
        else:
            rows, messages, drone_rows, drone_start = build_dataset(conn)
            if keep is not None:
                (keep / BUILT).touch()
        conn.autocommit = True
        print(
            f"  loaded {rows:,} streetlight rows, {messages:,} ingest messages and"
            f" {drone_rows:,} drone rows"
        )
        conn.autocommit = False
        figures_ok = True
        if "quality" in parts:
            figures_ok &= quality_figures(conn, stack.settings)
        if "savings" in parts:
            figures_ok &= savings_figures(conn, stack.settings)
        conn.commit()
        conn.autocommit = True
        if "scan" not in parts:
            return 0 if figures_ok else 1

        lo = datetime(2026, 9, 30, tzinfo=UTC)
        hi = lo + timedelta(days=DAYS + 2)
        scan = best_of(
            3,
            lambda: conn.execute(
                "SELECT device_id, time_bucket('1 day', ts) AS day, sum(power_w), count(*)"
                " FROM streetlight_readings WHERE ts >= %s AND ts < %s GROUP BY 1, 2",
                (lo, hi),
            ).fetchall(),
        )
        window = Window(START + timedelta(days=7), START + timedelta(days=DAYS - 1))
        savings = best_of(3, lambda: run_savings(conn, "madiun", window, persist=False))
        print(f"  GROUP BY scan {scan:.2f} s; savings {savings:.2f} s")

        d_window = Window(drone_start, drone_start + timedelta(days=7))
        d_lo, d_hi = d_window.utc("Asia/Bangkok")
        drones = [f"mukdahan-uav-{i}" for i in (1, 2)]
        read = best_of(2, lambda: read_drones(conn, drones, d_lo, d_hi))
        cover = best_of(2, lambda: run_coverage(conn, "mukdahan", d_window, persist=False))
        print(f"  reading drone rows {read:.2f} s; coverage {cover:.2f} s")

    ok = figures_ok
    ok &= verdict("savings time ÷ GROUP BY scan time", savings / scan, 3.0, higher_is_better=False)
    ok &= verdict(
        "coverage time ÷ time to read the rows", cover / read, 3.0, higher_is_better=False
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
