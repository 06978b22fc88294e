"""End to end against the simulators' ground truth: simulated devices stream through the SDK,
the real broker and the ingest service into TimescaleDB; the verified figures must agree
with what the simulator knows really happened."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from pyproj import Transformer
from shapely import LineString, Point, Polygon, unary_union

from analytics import queries
from analytics.luminaire_nights import GAP_FACTOR
from analytics.savings import compute_savings
from analytics.savings_frame import savings_calendar
from devices.pilots import load_pilot
from devices.sim import DroneSimConfig, simulate_drones, simulate_streetlights
from kcity.analyses import Window, run_coverage, run_quality, run_savings, savings_params
from kcity.registry import apply_pilot, get_pilot
from kcity.settings import Settings
from kcity.simulation import Streamed, stream, streetlight_config, wait_until_stored
from tests.fixtures.ingest import ingest_config, running_ingest

PILOTS = Path(__file__).resolve().parent.parent / "pilots"
START = date(2026, 10, 1)  # Madiun's baseline (dimming off) is 2026-10-01 … 10-07
REPORTING = Window(date(2026, 10, 8), date(2026, 10, 11))
ALL_NIGHTS = Window(START, START + timedelta(days=10))
DRONE_DAY = Window(date(2026, 10, 8), date(2026, 10, 9))


@pytest.fixture(scope="module")
def pilots(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        for name in ("madiun", "mukdahan"):
            apply_pilot(conn, load_pilot(PILOTS / f"{name}.toml"))


@pytest.fixture(scope="module")
def ingest(settings: Settings, pilots: None) -> Iterator[None]:
    with running_ingest(ingest_config(settings, "truth")):
        yield


def _stream(settings: Settings, pilot_id: str, sim: Any, table: str, tmp: Path) -> Streamed:
    local = settings.model_copy(update={"data_dir": tmp})
    with psycopg.connect(settings.database_url) as conn:
        done = stream(conn, local, get_pilot(conn, pilot_id), list(sim.batches()))
        wait_until_stored(conn, table, done, timeout=120)
    return done


def _truth_savings(truth: dict[str, Any], body: dict[str, Any]) -> float:
    """Truth over exactly the luminaire-nights the method counted (complete, treated)."""
    excluded = {(e["device_id"], e["night"]) for e in body["excluded_nights"]}
    control = set(load_pilot(PILOTS / "madiun.toml").streetlight.control_group)  # type: ignore[union-attr]
    return sum(
        n["savings_kwh"]
        for n in truth["nights"]
        if n["device_id"] not in control
        and REPORTING.start.isoformat() <= n["night"] < REPORTING.end.isoformat()
        and (n["device_id"], n["night"]) not in excluded
    )


def _from_all_rows(conn: psycopg.Connection, window: Window) -> tuple[float, dict[str, object]]:
    """Savings computed from every row of the window, and the share the loader skips."""
    pilot = get_pilot(conn, "madiun")
    params = savings_params(pilot)
    assert params.baseline_start is not None
    lo, hi = Window(params.baseline_start, window.end).utc(pilot.timezone, extra_days=1)
    ids = [r[0] for r in conn.execute("SELECT id FROM devices WHERE pilot_id = 'madiun'")]
    nights = savings_calendar(params, window.start, window.end)
    every = queries.load_luminaires(conn, ids, lo, hi)
    read = queries.load_luminaires(conn, ids, lo, hi, nights, GAP_FACTOR * params.record_interval_s)
    events = queries.load_events(conn, ids, lo, hi)
    result = compute_savings(every, events, params, window.start, window.end).to_json()
    skipped = 1 - sum(s.ts.size for s in read) / sum(s.ts.size for s in every)
    return skipped, {**result, "input_sha256": None}


@pytest.mark.parametrize("faults", [False, True], ids=["clean", "faulty"])
def test_savings_match_the_simulated_truth(
    settings: Settings, ingest: None, db_url: str, tmp_path: Path, faults: bool
) -> None:
    madiun = load_pilot(PILOTS / "madiun.toml")
    sim = simulate_streetlights(
        streetlight_config(
            madiun, devices=12, days=10, start=START, seed=11 if faults else 7, faults=faults
        )
    )
    with psycopg.connect(db_url) as conn:  # the other case's readings would hide these
        for table in ("streetlight_readings", "events"):
            conn.execute(f"DELETE FROM {table} WHERE device_id LIKE 'madiun-%'")
    _stream(settings, "madiun", sim, "streetlight_readings", tmp_path)
    with psycopg.connect(db_url) as conn:
        body, _ = run_savings(conn, "madiun", REPORTING)
        _, every_night = run_savings(conn, "madiun", ALL_NIGHTS, persist=False)
        skipped, from_all_rows = _from_all_rows(conn, ALL_NIGHTS)
    assert skipped > 0.3, "lamp-off daylight rows are left in the database"
    assert from_all_rows == {**every_night.to_json(), "input_sha256": None}, "and change nothing"
    assert bool(every_night.day_burning) == faults, "day-burning records are read"
    truth = _truth_savings(sim.truth(), body)
    assert truth > 1.0
    lo, hi = body["ci90_kwh"]
    if not faults:
        assert body["savings_kwh"] == pytest.approx(truth, rel=0.01)
        assert body["excluded_nights"] == []
    else:
        assert lo <= truth <= hi, (lo, truth, hi)
        assert body["savings_kwh"] == pytest.approx(truth, rel=0.01)
        assert body["non_routine_events"], "the injected faults are listed"
        # The method's excluded treated nights (baseline and reporting windows) are the nights
        # the simulator knows it left incomplete (below 90 % of their records streamed).
        control = set(madiun.streetlight.control_group)  # type: ignore[union-attr]
        incomplete = {
            (n["device_id"], n["night"])
            for n in sim.truth()["nights"]
            if not n["complete"]
            and n["device_id"] not in control
            and n["night"] < REPORTING.end.isoformat()
        }
        assert incomplete, "the faulty run leaves some night incomplete"
        excluded = {
            (e["device_id"], e["night"])
            for e in body["excluded_nights"]
            if e["device_id"] not in control
        }
        assert excluded == incomplete
    json.dumps(body, allow_nan=False)


def _truth_area_km2(truth: dict[str, Any], aoi: Polygon, max_gap_s: float) -> float:
    """Covered area computed independently from the flown tracks, in UTM 48N metres."""
    to_utm = Transformer.from_crs(4326, 32648, always_xy=True)
    pieces = []
    for flight in truth["flights"]:
        tr = flight["track"]
        if not tr["ts"]:
            continue
        x, y = to_utm.transform(np.array(tr["lon"]), np.array(tr["lat"]))
        t = np.array(
            [
                np.datetime64(s.rstrip("Z")).astype("datetime64[ms]").astype(float) / 1000
                if isinstance(s, str)
                else s
                for s in tr["ts"]
            ]
        )
        half = np.array(tr["agl_m"]) * np.tan(np.radians(np.array(tr["hfov_deg"])) / 2)
        cuts = np.flatnonzero(np.diff(t) > max_gap_s) + 1
        for run in np.split(np.arange(len(t)), cuts):
            geom = (
                Point(x[run[0]], y[run[0]])
                if len(run) == 1
                else LineString(np.column_stack([x[run], y[run]]))
            )
            pieces.append(geom.buffer(float(half[run].mean()), quad_segs=32))
    return float(unary_union(pieces).intersection(aoi).area) / 1e6


def test_coverage_and_energy_match_the_simulated_truth(
    settings: Settings, ingest: None, db_url: str, tmp_path: Path
) -> None:
    pilot = load_pilot(PILOTS / "mukdahan.toml")
    sim = simulate_drones(DroneSimConfig(start=DRONE_DAY.start, days=1, seed=5))
    _stream(settings, "mukdahan", sim, "drone_readings", tmp_path)
    with psycopg.connect(db_url) as conn:
        body, _ = run_coverage(conn, "mukdahan", DRONE_DAY)
    truth = sim.truth()
    to_utm = Transformer.from_crs(4326, 32648, always_xy=True)
    ring = pilot.drone.aoi["coordinates"][0]  # type: ignore[union-attr]
    aoi = Polygon([to_utm.transform(lon, lat) for lon, lat in ring])
    expected = _truth_area_km2(truth, aoi, pilot.drone.max_gap_s)  # type: ignore[union-attr]
    assert body["covered_km2"] == pytest.approx(expected, rel=0.01)
    totals = truth["totals"]
    assert body["generator_kwh"] == pytest.approx(totals["generator_kwh"], rel=0.01)
    assert body["fuel_l"] == pytest.approx(totals["fuel_l"], rel=0.01)
    assert body["generator_share_pct"] == pytest.approx(totals["generator_share_pct"], rel=0.01)
    assert body["flight_hours"] == pytest.approx(totals["airborne_hours"], rel=0.01)
    assert body["detections"] == totals["detections"]
    assert math.isclose(body["area_coverage_pct"], 100 * body["covered_km2"] / body["aoi_km2"])


def test_quality_counts_what_was_streamed(settings: Settings, ingest: None, db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        body = run_quality(conn, "madiun", Window(START, START + timedelta(days=10)))
    assert body["devices"] == 12
    assert body["records"] > 0
    assert 90.0 < body["completeness_pct"] <= 100.0
    assert {d["device_id"] for d in body["per_device"]} == {
        f"madiun-sl-{i:03d}" for i in range(1, 13)
    }
    # Both parametrized savings runs streamed the same luminaires with other readings: the
    # second run's messages reuse (boot, seq) pairs with other content, which data quality
    # counts as reuse, not as duplicates (the second run deletes the first run's readings,
    # not its message log).
    assert body["seq_reuse"] > 0


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "KCITY_DATABASE_URL": settings.database_url,
        "PATH": "/usr/bin:/bin",
        "KCITY_DATA_DIR": str(settings.data_dir),
    }
    return subprocess.run(
        [sys.executable, "-m", "kcity", *args], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["savings", "nowhere", "--from", "2026-10-08", "--to", "2026-10-09"], "unknown pilot"),
        (["savings", "madiun", "--from", "2026-10-09", "--to", "2026-10-08"], "must be after"),
        (
            ["savings", "mukdahan", "--from", "2026-10-08", "--to", "2026-10-09"],
            "streetlight pilot",
        ),
        (
            ["coverage", "madiun", "--from", "2026-10-08", "--to", "2026-10-09"],
            "hybrid_drone pilot",
        ),
        (["coverage", "mukdahan", "--from", "08/10/2026", "--to", "2026-10-09"], "--from"),
        (["quality", "nowhere", "--from", "2026-10-08", "--to", "2026-10-09"], "unknown pilot"),
    ],
)
def test_bad_arguments_are_one_line(
    settings: Settings, pilots: None, args: list[str], words: str
) -> None:
    done = _cli(settings, *args)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kcity: error:"), done.stderr
    assert words in lines[0]


def test_an_empty_window_is_a_zero_result(settings: Settings, pilots: None) -> None:
    done = _cli(
        settings, "coverage", "mukdahan", "--from", "2025-01-01", "--to", "2025-01-08", "--json"
    )
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["covered_km2"] == 0 and body["flight_hours"] == 0
    assert body["aoi_km2"] > 100 and (body["pilot"], body["from"]) == ("mukdahan", "2025-01-01")
