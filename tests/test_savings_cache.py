"""Savings with the cached baseline summary and kept luminaire-nights give the same figures
as before either existed.

Simulated Madiun data (faults on: outages, lamp failures, day-burning) in TimescaleDB. Three
paths must agree: the savings method over *every* row from the baseline's first day on (the
way it read before the caches: independent of the new selection and of the unit split),
savings from scratch (every row of the window and baseline read), and savings from the
stored summary and kept nights. A late record inside the baseline window must invalidate
the summary of its luminaire, and only that; late records inside a kept night (one in the
night, one lamp-on at noon) must make the next read account those units from their rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from analytics import queries
from analytics.savings import compute_savings
from analytics.savings_frame import savings_calendar
from devices.payloads import encode_message
from devices.pilots import load_pilot
from devices.sim import simulate_streetlights
from ingest.direct import judge, store
from ingest.registry import load_devices
from kcity.analyses import Window, run_savings, savings_params
from kcity.registry import apply_pilot, get_pilot
from kcity.savings_cache import baseline_summary
from kcity.savings_nights import NightsRead, night_accounts, read_run, stored_run
from kcity.simulation import streetlight_config

PILOTS = Path(__file__).resolve().parent.parent / "pilots"
START = date(2026, 10, 1)  # Madiun's baseline (dimming off) is 2026-10-01 … 10-07
DEVICES = 10
# A treated luminaire that reports only dimmed, after the baseline: it needs the control
# group's pooled full power, read lazily from the whole span.
DIMMED = "madiun-sl-099"
WINDOWS = [
    Window(date(2026, 10, 8), date(2026, 10, 9)),  # the night after the baseline
    Window(date(2026, 10, 9), date(2026, 10, 12)),
    Window(date(2026, 10, 5), date(2026, 10, 10)),  # overlaps the baseline window
]


def _store(
    conn: psycopg.Connection, readings: list[tuple[Any, ...]], *, late: bool = False
) -> None:
    """Store readings as received 2 s after their time (`late`: received now)."""
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS staging (device_id text, ts timestamptz,"
        " power_w float8, energy_wh float8, dim_pct float8, lamp_on bool)"
    )
    with conn.cursor() as cur, cur.copy("COPY staging FROM STDIN") as copy:
        for row in readings:
            copy.write_row(row)
    received = "now()" if late else "ts + interval '2 seconds'"
    conn.execute(
        "INSERT INTO streetlight_readings (device_id, ts, power_w, energy_wh, dim_pct, lamp_on,"
        f" received_at) SELECT *, {received} FROM staging ON CONFLICT DO NOTHING"
    )
    conn.execute("TRUNCATE staging")


def _nights_read(
    conn: psycopg.Connection, window: Window, *, store: bool = False, slack_s: float = 300.0
) -> NightsRead:
    """How a read of `window` would have its luminaire-nights (kept or accounted); `store`
    keeps what it accounted, as a stored run does (with its horizon `slack_s` back)."""
    pilot = get_pilot(conn, "madiun")
    params = savings_params(pilot)
    ids = sorted(r[0] for r in conn.execute("SELECT id FROM devices WHERE pilot_id = 'madiun'"))
    baseline, _ = baseline_summary(conn, "madiun", params, ids)
    calendar = savings_calendar(params, window.start, window.end)
    first = calendar.index(window.start)
    reporting = list(range(first, first + (window.end - window.start).days))
    span = window.utc(pilot.timezone, extra_days=1)
    validity = (
        stored_run(conn, "madiun", slack_s=slack_s)
        if store
        else read_run(conn, "madiun", params, ids, span)
    )
    _, read = night_accounts(
        conn, "madiun", params, ids, calendar, reporting, span, baseline, validity
    )
    conn.commit() if store else conn.rollback()
    return read


@pytest.fixture(scope="module")
def seeded(db_url: str) -> Iterator[str]:
    pilot = load_pilot(PILOTS / "madiun.toml")
    sim = simulate_streetlights(
        streetlight_config(pilot, devices=DEVICES, days=12, start=START, seed=5, faults=True)
    )
    with psycopg.connect(db_url) as conn:
        apply_pilot(conn, pilot)
        for i in [*range(1, DEVICES + 1), 99]:
            conn.execute(
                "INSERT INTO devices (id, pilot_id, kind, password_hash)"
                " VALUES (%s, 'madiun', 'streetlight', '-') ON CONFLICT DO NOTHING",
                (f"madiun-sl-{i:03d}",),
            )
        rows, events = [], []
        for batch in sim.batches():
            for item in batch.items:
                if batch.channel == "telemetry":
                    rows.append(
                        (batch.device_id, item["ts"], item["power_w"], item.get("energy_wh"),
                         item["dim_pct"], item["lamp_on"])
                    )  # fmt: skip
                else:
                    events.append((batch.device_id, item["ts"], item["type"]))
        # DIMMED: 40 % every 5 minutes through nights 10-09 … 10-11 (18:00-06:00 local).
        t0 = datetime(2026, 10, 9, 11, 0, tzinfo=UTC)
        for k in range(3 * 288):
            ts = t0 + timedelta(seconds=300 * k)
            if (ts.hour + 7) % 24 >= 18 or (ts.hour + 7) % 24 < 6:
                rows.append((DIMMED, ts, 50.0, None, 40.0, True))
        _store(conn, rows)
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO events (device_id, ts, type) VALUES (%s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                events,
            )
        conn.commit()
    yield db_url


def _every_row(conn: psycopg.Connection, window: Window) -> dict[str, Any]:
    """The method over every row from the baseline's first day to the window's end."""
    pilot = get_pilot(conn, "madiun")
    params = savings_params(pilot)
    assert params.baseline_start is not None and params.baseline_end is not None
    last = max(window.end, params.baseline_end + timedelta(days=1))
    lo, hi = Window(params.baseline_start, last).utc(pilot.timezone, extra_days=1)
    ids = [r[0] for r in conn.execute("SELECT id FROM devices WHERE pilot_id = 'madiun'")]
    every = queries.load_luminaires(conn, sorted(ids), lo, hi)
    events = queries.load_events(conn, ids, lo, hi)
    result = compute_savings(every, events, params, window.start, window.end, sorted(ids))
    return {**result.to_json(), "input_sha256": None}


def _figures(body: dict[str, Any]) -> dict[str, Any]:
    drop = {"result_id", "pilot", "from", "to", "window", "dimming_profiles"}
    return {k: v for k, v in body.items() if k not in drop}


@pytest.mark.parametrize("window", WINDOWS, ids=lambda w: f"{w.start}-{w.end}")
def test_cached_baseline_gives_the_figures_of_every_row(seeded: str, window: Window) -> None:
    with psycopg.connect(seeded) as conn:
        scratch, _ = run_savings(conn, "madiun", window, persist=False, reuse_baseline=False)
        run_savings(conn, "madiun", window)  # stores the summary and the nights
        cached, _ = run_savings(conn, "madiun", window, persist=False)
        read = _nights_read(conn, window)
        truth = _every_row(conn, window)
    assert read.accounted == 0 and read.kept == (DEVICES + 1) * (window.end - window.start).days
    assert _figures(cached) == _figures(scratch), "cached = from scratch, hash included"
    assert {**_figures(cached), "input_sha256": None} == truth, "= every row, to the last Wh"
    sources = {r["device_id"]: r["full_power_source"] for r in cached["per_luminaire"]}
    assert sources[DIMMED] == "control", "the lazily read pool is the pool of every row"
    assert "baseline" in sources.values()


def test_a_late_record_in_the_baseline_invalidates_its_luminaire(seeded: str) -> None:
    window = WINDOWS[1]
    device = "madiun-sl-008"  # treated
    with psycopg.connect(seeded) as conn:
        pilot = get_pilot(conn, "madiun")
        params = savings_params(pilot)
        ids = sorted(r[0] for r in conn.execute("SELECT id FROM devices"))
        run_savings(conn, "madiun", window)
        before, _ = run_savings(conn, "madiun", window, persist=False)
        _, read = baseline_summary(conn, "madiun", params, ids)
        assert read.summarised == 0 and read.reused > 0, "everything valid before the change"
        # Off the 5-minute grid, at full level, 20 W above the luminaire: its median moves.
        late = datetime(2026, 10, 3, 16, 2, 30, tzinfo=UTC)  # 23:02:30 local
        watts = next(r for r in before["per_luminaire"] if r["device_id"] == device)
        _store(conn, [(device, late, watts["full_power_w"] + 20.0, None, 100.0, True)], late=True)
        conn.commit()
        _, read = baseline_summary(conn, "madiun", params, ids)
        assert read.summarised == 1, "only the luminaire with the late record is re-read"
        cached, _ = run_savings(conn, "madiun", window, persist=False)
        scratch, _ = run_savings(conn, "madiun", window, persist=False, reuse_baseline=False)
        truth = _every_row(conn, window)
    assert _figures(cached) == _figures(scratch)
    assert {**_figures(cached), "input_sha256": None} == truth
    after = next(r for r in cached["per_luminaire"] if r["device_id"] == device)
    assert after["full_power_samples"] == watts["full_power_samples"] + 1
    # The baseline night's energy moved: the control-group and regression baselines read it.
    assert cached["control_group"] != before["control_group"]
    assert cached["regression"] != before["regression"]
    assert cached["input_sha256"] != before["input_sha256"]


def test_late_records_in_a_kept_night_are_read(seeded: str) -> None:
    """A record arriving late inside a kept night, and a lamp-on one at noon of the day
    before it: the next read accounts those units (and only those) from their rows."""
    window = WINDOWS[1]  # nights 10-09 … 10-11
    with psycopg.connect(seeded) as conn:
        run_savings(conn, "madiun", window)
        before, _ = run_savings(conn, "madiun", window, persist=False)
        assert _nights_read(conn, window).accounted == 0
        excluded = {r["device_id"] for r in before["excluded_nights"] if r["night"] == "2026-10-10"}
        device = next(  # a treated luminaire whose night 10-10 counts
            r["device_id"]
            for r in before["per_luminaire"]
            if r["device_id"] not in excluded and r["full_power_source"] == "baseline"
        )
        night = datetime(2026, 10, 10, 15, 2, 30, tzinfo=UTC)  # 22:02:30 local, night 10-10
        noon = datetime(2026, 10, 10, 5, 1, 10, tzinfo=UTC)  # 12:01:10 local, day before it
        _store(
            conn,
            [(device, night, 180.0, None, 100.0, True), (device, noon, 90.0, None, 40.0, True)],
            late=True,
        )
        conn.commit()
        read = _nights_read(conn, window)
        cached, _ = run_savings(conn, "madiun", window, persist=False)
        scratch, _ = run_savings(conn, "madiun", window, persist=False, reuse_baseline=False)
        truth = _every_row(conn, window)
        run_savings(conn, "madiun", window)  # received within its horizon's slack: not kept
        slack_read = _nights_read(conn, window)
        _nights_read(conn, window, store=True, slack_s=0.0)  # a horizon past them
        stored_read = _nights_read(conn, window)
        again, _ = run_savings(conn, "madiun", window, persist=False)
    assert read.accounted == 2, "local date 10-10: the units of nights 10-09 and 10-10"
    assert _figures(cached) == _figures(scratch)
    assert {**_figures(cached), "input_sha256": None} == truth
    assert cached["input_sha256"] != before["input_sha256"]
    row = {r["device_id"]: r for r in cached["per_luminaire"]}[device]
    assert (
        row["actual_kwh"]
        != {r["device_id"]: r for r in before["per_luminaire"]}[device]["actual_kwh"]
    ), "the late night record entered its luminaire's energy"
    noon_finding = [
        b for b in cached["day_burning"] if b["device_id"] == device and b["date"] == "2026-10-10"
    ]
    assert noon_finding and noon_finding[0]["first"] == "2026-10-10T05:01:10+00:00"
    assert slack_read.accounted == 2, "a row stamped within the slack may commit late"
    assert stored_read.accounted == 0 and _figures(again) == _figures(cached)


def test_a_record_held_through_an_outage_reaches_its_kept_night(seeded: str) -> None:
    """Ingest held a record through a database outage and wrote it ten minutes after its
    stamp, behind the horizon a stored run kept its nights for (300 s of slack): the writer
    notes the late batch (`late_commits`) and the next read accounts its night again."""
    window = WINDOWS[1]  # nights 10-09 … 10-11
    with psycopg.connect(seeded) as conn:
        run_savings(conn, "madiun", window)  # keeps every night of the window
        before, _ = run_savings(conn, "madiun", window, persist=False)
        device = next(r["device_id"] for r in before["per_luminaire"] if r["device_id"] != DIMMED)
        held = datetime.now(UTC) - timedelta(minutes=10)
        record = {"ts": "2026-10-11T15:07:30Z", "power_w": 250.0, "dim_pct": 100.0,
                  "lamp_on": True}  # fmt: skip
        raw = encode_message(4321, 0, [record])
        topic = f"kcity/v1/madiun/{device}/telemetry"
        conn.commit()
        store(conn, topic, raw, judge(topic, raw, load_devices(conn), held), held)
        cached, _ = run_savings(conn, "madiun", window, persist=False)
        scratch, _ = run_savings(conn, "madiun", window, persist=False, reuse_baseline=False)
    assert _figures(cached) == _figures(scratch)
    assert cached["input_sha256"] != before["input_sha256"], "the held record was read"


def test_stored_runs_at_once_both_write_the_summary(seeded: str) -> None:
    """Two stored runs (a report job beside the CLI) summarising at the same time both
    succeed, and leave one row per luminaire with baseline records."""
    with psycopg.connect(seeded) as conn:
        conn.execute("DELETE FROM savings_baseline_cache")
        conn.commit()

    def stored(_: int) -> float:
        with psycopg.connect(seeded) as conn:
            body, _result = run_savings(conn, "madiun", WINDOWS[0])
            return float(body["savings_kwh"])

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(stored, range(2))
    assert first == second
    with psycopg.connect(seeded) as conn:
        rows = conn.execute("SELECT count(*) FROM savings_baseline_cache").fetchone()
        have = conn.execute(
            "SELECT count(DISTINCT device_id) FROM streetlight_readings"
            " WHERE ts >= '2026-09-30' AND ts < '2026-10-09'"
        ).fetchone()
    assert rows is not None and have is not None and rows[0] == have[0] == DEVICES
