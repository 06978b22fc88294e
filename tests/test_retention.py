"""`kcity retention apply` on a real TimescaleDB (Apache edition): a raw chunk past its
pilot's `retain_raw_days` is dropped only when a verifying evidence bundle holds all of its
rows; otherwise it is refused with a line saying why, and nothing else is touched.

Two drone pilots share `drone_readings` (1-day chunks, UTC midnights): `mukdahan` keeps 3
days and has an hour of 1-minute records on each of the last nine days; `keeper` (no
`retain_raw_days`) has a few records on day 1. One bundle exports mukdahan's days 0–3.
So, by the test's own arithmetic: days 0, 2, 3 are due and exported (drop); day 1 holds the
keeper's rows (keep); days 4, 5 are due and not exported (refuse); days 6–8 are within the
horizon (keep).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from devices.pilots import load_pilot
from kcity.analyses import run_coverage
from kcity.errors import RawDropped
from kcity.evidence.export import export_bundle
from kcity.evidence.verify import verify_bundle
from kcity.registry import apply_pilot
from kcity.retention import Chunk, _savings_needs, drop, find_bundles, plan
from kcity.rollups import refresh
from kcity.window import Window

ROOT = Path(__file__).resolve().parents[1]
DAYS = 9
DUE_EXPORTED, KEEPER_DAY, DUE_MISSING = (0, 2, 3), 1, (4, 5)


@pytest.fixture(scope="module")
def world(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    now = datetime.now(UTC)
    base = now.date() - timedelta(days=DAYS)
    base_pilot = load_pilot(ROOT / "pilots" / "mukdahan.toml")
    folder = tmp_path_factory.mktemp("bundles")
    with psycopg.connect(db_url, autocommit=True) as conn:
        apply_pilot(conn, base_pilot.model_copy(update={"retain_raw_days": 3}))
        apply_pilot(conn, base_pilot.model_copy(update={"id": "keeper", "city": "Nakhon"}))
        for dev, pilot in (("mukdahan-dr-01", "mukdahan"), ("keeper-dr-01", "keeper")):
            conn.execute(
                "INSERT INTO devices (id, pilot_id, kind, password_hash) VALUES"
                " (%s, %s, 'hybrid_drone', 'x')",
                (dev, pilot),
            )
        rows = [
            ("mukdahan-dr-01", _at(base, day, minute), 16.54 + minute * 1e-4)
            for day in range(DAYS)
            for minute in range(60)
        ] + [("keeper-dr-01", _at(base, KEEPER_DAY, 30 + k), 16.6) for k in range(5)]
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO drone_readings (device_id, ts, flight_id, lat, lon, agl_m, mode,"
                " camera_on, gps_fix) VALUES (%s, %s, 'f', %s, 104.72, 80, 'patrol', true, 3)",
                rows,
            )
        # A per-day series and a stored result, which retention must leave alone.
        conn.execute(
            "INSERT INTO coverage_daily VALUES ('mukdahan', %s, 1, 2, 3, 4, 5, 6, 7)", (base,)
        )
        conn.execute(
            "INSERT INTO analytics_results (pilot_id, analysis, method, method_version,"
            " window_from, window_to, parameters, input_hash, result) VALUES ('mukdahan',"
            " 'coverage', 'm', '1', %s, %s, '{}', 'x', %s)",
            (base, base + timedelta(days=1), Jsonb({})),
        )
    # Local dates of Asia/Bangkok [day 0, day 4) = UTC [day 0 − 7 h, day 4 − 7 h): days 0–3.
    with psycopg.connect(db_url) as conn:
        bundle = export_bundle(
            conn, "mukdahan", Window(base, base + timedelta(days=4)), folder / "mukdahan.zip"
        ).path
    assert verify_bundle(bundle).ok
    return {"now": now, "base": base, "folder": folder, "bundle": bundle}


def _at(base: date, day: int, minute: int) -> datetime:
    return datetime.combine(base + timedelta(days=day), time(3, minute % 60), UTC)


def _days_with_rows(conn: psycopg.Connection, device: str, base: date) -> set[int]:
    rows = conn.execute(
        "SELECT DISTINCT (ts AT TIME ZONE 'UTC')::date FROM drone_readings WHERE device_id = %s",
        (device,),
    ).fetchall()
    return {(d - base).days for (d,) in rows}


def _by_day(decisions: list[Any], base: date) -> dict[int, Any]:
    return {
        (d.chunk.start.astimezone(UTC).date() - base).days: d
        for d in decisions
        if d.chunk.table == "drone_readings"
    }


def _cli(db_url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KCITY_")}
    env |= {"KCITY_DATA_DIR": str(tmp_path / ".kcity"), "KCITY_DATABASE_URL": db_url}
    return subprocess.run([sys.executable, "-m", "kcity", "retention", "apply", *args], env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip


def test_plan_drops_only_exported_chunks_past_the_horizon(
    conn: psycopg.Connection, world: dict[str, Any]
) -> None:
    decisions = plan(conn, find_bundles(world["folder"]), lambda p: verify_bundle(p).ok,
                     world["now"])  # fmt: skip
    days = _by_day(decisions, world["base"])
    assert sorted(days) == list(range(DAYS))
    assert sorted(k for k, d in days.items() if d.action == "drop") == list(DUE_EXPORTED)
    assert days[KEEPER_DAY].action == "keep" and "keeper keeps raw data" in days[KEEPER_DAY].reason
    for k in DUE_MISSING:
        assert days[k].action == "refuse" and "kcity export mukdahan" in days[k].reason
    for k in range(6, DAYS):
        assert days[k].action == "keep" and "3-day horizon" in days[k].reason
    assert "mukdahan.zip" in days[0].reason


def test_a_row_arriving_after_the_export_refuses_its_chunk(
    db_url: str, world: dict[str, Any]
) -> None:
    with psycopg.connect(db_url) as conn:  # one transaction, rolled back
        conn.execute(
            "INSERT INTO drone_readings (device_id, ts, flight_id, lat, lon) VALUES"
            " ('mukdahan-dr-01', %s, 'late', 16.5, 104.7)",
            (_at(world["base"], 2, 59) + timedelta(minutes=5),),
        )
        decisions = plan(conn, find_bundles(world["folder"]), lambda p: verify_bundle(p).ok,
                         world["now"])  # fmt: skip
        conn.rollback()
    days = _by_day(decisions, world["base"])
    assert days[2].action == "refuse" and "1 of mukdahan's 61 rows arrived after" in days[2].reason
    assert days[0].action == "drop"


def test_a_bundle_that_does_not_verify_covers_nothing(
    conn: psycopg.Connection, world: dict[str, Any], tmp_path: Path
) -> None:
    altered = tmp_path / "mukdahan.zip"
    shutil.copy(world["bundle"], altered)
    with zipfile.ZipFile(world["bundle"]) as z:
        info = z.getinfo("data/drone_readings.parquet")
        offset = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data = bytearray(altered.read_bytes())
    data[offset + info.compress_size // 2] ^= 0xFF
    altered.write_bytes(bytes(data))
    decisions = plan(conn, find_bundles(tmp_path), lambda p: verify_bundle(p).ok, world["now"])
    days = _by_day(decisions, world["base"])
    for k in DUE_EXPORTED:
        assert days[k].action == "refuse" and "mukdahan.zip does not verify" in days[k].reason


def test_cli_is_a_dry_run_until_yes_then_drops_exactly_the_due_exported_chunks(
    db_url: str, world: dict[str, Any], tmp_path: Path, conn: psycopg.Connection
) -> None:
    base, folder = world["base"], str(world["folder"])
    before = _days_with_rows(conn, "mukdahan-dr-01", base)
    assert before == set(range(DAYS))
    dry = _cli(db_url, tmp_path, "--bundles", folder)
    assert dry.returncode == 1  # days 4 and 5 are refused
    assert "dry run: 3 chunk(s) would be dropped" in dry.stdout
    assert dry.stderr.strip() == "kcity: error: 2 chunk(s) past their horizon refused: no" \
        " verifying export"  # fmt: skip
    assert _days_with_rows(conn, "mukdahan-dr-01", base) == before  # nothing dropped
    done = _cli(db_url, tmp_path, "--bundles", folder, "--yes")
    assert done.returncode == 1 and "dropped 3 chunk(s)" in done.stdout
    assert _days_with_rows(conn, "mukdahan-dr-01", base) == before - set(DUE_EXPORTED)
    assert _days_with_rows(conn, "keeper-dr-01", base) == {KEEPER_DAY}
    chunk_days = {
        (start.astimezone(UTC).date() - base).days
        for (start,) in conn.execute(
            "SELECT range_start FROM timescaledb_information.chunks"
            " WHERE hypertable_name = 'drone_readings'"
        ).fetchall()
    }
    assert chunk_days == set(range(DAYS)) - set(DUE_EXPORTED)
    # What retention must not touch: stored results and per-day series.
    assert conn.execute("SELECT count(*) FROM coverage_daily").fetchone() == (1,)
    assert conn.execute("SELECT count(*) FROM analytics_results").fetchone()[0] >= 1  # type: ignore[index]
    # Run again: nothing more is due, the refusals stand.
    again = _cli(db_url, tmp_path, "--bundles", folder, "--yes")
    assert "dropped 0 chunk(s)" in again.stdout and again.returncode == 1


def _local_days(conn: psycopg.Connection, device: str) -> dict[date, tuple[Any, ...]]:
    rows = conn.execute(
        "SELECT day, records, skew_bins, skew_counts, flight_span_s, flights"
        " FROM quality_device_day WHERE device_id = %s",
        (device,),
    ).fetchall()
    return {r[0]: tuple(r[1:]) for r in rows}


def _minutes(conn: psycopg.Connection, device: str) -> dict[datetime, int]:
    """The drone's minutes in `drone_minutely` (migration 011): minute → records."""
    rows = conn.execute(
        "SELECT minute, sum(records) FROM drone_minutely WHERE device_id = %s GROUP BY 1",
        (device,),
    ).fetchall()
    return {m: int(n) for m, n in rows}


def test_after_a_drop_late_rows_are_neither_lost_nor_miscounted(
    db_url: str, world: dict[str, Any], conn: psycopg.Connection
) -> None:
    """A row arriving late into a dropped day: retention refuses to drop it (no bundle holds
    it; a count would have said the bundle does), the quality rollup keeps the dropped days
    as they were (recounted from what is left they would show 1 record, not 60), even on a
    whole rebuild, and coverage over them is refused, naming the bundle."""
    base, device = world["base"], "mukdahan-dr-01"
    decisions = plan(conn, find_bundles(world["folder"]), lambda p: verify_bundle(p).ok,
                     world["now"])  # fmt: skip
    for d in decisions:  # whether or not the CLI test ran first: days 0, 2, 3 go
        if d.action == "drop":
            drop(conn, d)
    assert _days_with_rows(conn, device, base) == set(range(DAYS)) - set(DUE_EXPORTED)
    spans = conn.execute(
        "SELECT start_ts, end_ts, bundles FROM raw_dropped WHERE table_name = 'drone_readings'"
        " ORDER BY start_ts"
    ).fetchall()
    day0 = datetime.combine(base, time(0), UTC)
    assert [(s - day0, e - s) for s, e, _ in spans] == [
        (timedelta(days=k), timedelta(days=1)) for k in DUE_EXPORTED
    ]
    assert all(Path(b[0]).name == "mukdahan.zip" for _, _, b in spans)
    before = _local_days(conn, device)
    minutes_before = _minutes(conn, device)
    in_dropped = {m for m in minutes_before if any(s <= m < e for s, e, _ in spans)}
    assert in_dropped  # the drone's minutes of dropped days, as rolled up before the drop
    # Local days (Asia/Bangkok, UTC+7) touching a dropped UTC day: d and d + 1.
    frozen = {base + timedelta(days=k + j) for k in DUE_EXPORTED for j in (0, 1)}
    assert {d: r[0] for d, r in before.items() if d in frozen} == dict.fromkeys(
        frozen & {base + timedelta(days=k) for k in range(DAYS)}, 60
    )
    conn.execute(
        "INSERT INTO drone_readings (device_id, ts, flight_id, lat, lon) VALUES (%s, %s,"
        " 'late', 16.5, 104.7)",
        (device, _at(base, 0, 30) + timedelta(seconds=30)),
    )
    refresh(conn)
    after = _local_days(conn, device)
    assert {d: after.get(d) for d in frozen} == {d: before.get(d) for d in frozen}
    assert _minutes(conn, device) == minutes_before  # the late row's minute kept too
    # A whole rebuild (as after a time-zone change) keeps them too and recounts the rest.
    conn.execute("DELETE FROM rollup_devices WHERE device_id = %s", (device,))
    refresh(conn)
    rebuilt = _local_days(conn, device)
    assert {d: rebuilt.get(d) for d in frozen} == {d: before.get(d) for d in frozen}
    kept = {base + timedelta(days=k) for k in range(DAYS)} - frozen
    assert {d: rebuilt[d][0] for d in kept} == dict.fromkeys(kept, 60)
    minutes = _minutes(conn, device)
    assert {m: minutes.get(m) for m in in_dropped} == {m: minutes_before[m] for m in in_dropped}
    recount = dict(
        conn.execute(
            "SELECT time_bucket('1 minute', ts), count(*) FROM drone_readings"
            " WHERE device_id = %s GROUP BY 1",
            (device,),
        ).fetchall()
    )
    outside = {m: n for m, n in recount.items() if not any(s <= m < e for s, e, _ in spans)}
    assert {m: n for m, n in minutes.items() if m not in in_dropped} == outside
    # The late row is in no bundle: its new chunk is refused, not dropped.
    late = _by_day(plan(conn, find_bundles(world["folder"]), lambda p: verify_bundle(p).ok,
                        world["now"]), base)[0]  # fmt: skip
    assert late.action == "refuse" and "1 of mukdahan's 1 rows arrived after" in late.reason
    with pytest.raises(RawDropped, match=r"coverage would read .* \(kept in mukdahan\.zip\)"):
        run_coverage(conn, "mukdahan", Window(base, base + timedelta(days=2)), persist=False)
    body, _ = run_coverage(
        conn, "mukdahan", Window(base + timedelta(days=6), base + timedelta(days=8)),
        persist=False,
    )  # fmt: skip
    assert body["from"] == str(base + timedelta(days=6))  # kept days: computed as before


def test_chunks_a_savings_run_reads_are_kept() -> None:
    """Madiun's baseline nights are 2026-10-01 to 10-07 (Asia/Jakarta, UTC+7): dusk of
    10-01 is near 10:45 UTC. With its control group every later chunk is read too."""
    madiun = load_pilot(ROOT / "pilots" / "madiun.toml")
    assert madiun.streetlight is not None and madiun.streetlight.control_group

    def day(d: date) -> Chunk:
        start = datetime.combine(d, time(0), UTC)
        return Chunk("streetlight_readings", "c", start, start + timedelta(days=1))

    before, first, after = date(2026, 9, 30), date(2026, 10, 1), date(2026, 11, 20)
    assert _savings_needs(madiun, day(before)) is None
    assert "control group" in (_savings_needs(madiun, day(first)) or "")
    assert "control group" in (_savings_needs(madiun, day(after)) or "")
    alone = madiun.model_copy(
        update={"streetlight": madiun.streetlight.model_copy(update={"control_group": []})}
    )
    assert "savings baseline (2026-10-01–2026-10-07)" in (_savings_needs(alone, day(first)) or "")
    # The last baseline night ends at dawn of 10-08 (about 22:50 UTC on 10-07).
    assert _savings_needs(alone, day(date(2026, 10, 7))) is not None
    assert _savings_needs(alone, day(date(2026, 10, 8))) is None
    assert _savings_needs(load_pilot(ROOT / "pilots" / "mukdahan.toml"), day(first)) is None
