"""Evaluation reports against a real database: both pilot kinds, English and Korean, HTML
and PDF; the report's numbers are the numbers of `kcity savings/coverage --json`.

The data are small synthetic sets inserted straight into the tables (the ingest service is
tested elsewhere): 6 luminaires × 9 nights of 5-minute records (5 baseline nights with
dimming off, then 4 reporting nights; 2 control luminaires stay at 100 %; one luminaire-night
with a 4-hour gap, one lamp fault), and two short 1 Hz drone patrols on the Mukdahan border.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import psycopg
import pytest
from PIL import Image
from psycopg.types.json import Jsonb
from typer.testing import CliRunner

from analytics.nights import assign_nights, night_calendar
from devices.pilots import Pilot, load_pilot
from kcity.analyses import Window, run_savings
from kcity.cli import app
from kcity.errors import KcityError
from kcity.registry import apply_pilot
from kcity.reports.data import HourProfile, hour_profile, night_completeness
from kcity.reports.render import build
from kcity.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SL_PILOT, DR_PILOT = "madiun-rt", "mukdahan-rt"
LUMINAIRES = [f"{SL_PILOT}-sl-{i:03d}" for i in range(1, 7)]
CONTROL = LUMINAIRES[:2]
DRONES = [f"{DR_PILOT}-dr-01"]
BASELINE = (dt.date(2026, 9, 29), dt.date(2026, 10, 3))  # nights, both inclusive
REPORT_FROM, REPORT_TO = dt.date(2026, 10, 4), dt.date(2026, 10, 8)
GAP_DEVICE, GAP_NIGHT = LUMINAIRES[4], dt.date(2026, 10, 5)  # 4 h missing: excluded
SILENT = f"{SL_PILOT}-sl-099"  # registered, treated, never reported: missing, not dropped
DRONE_DAYS = (dt.date(2026, 11, 2), dt.date(2026, 11, 3))


# --- seeding ------------------------------------------------------------------------------


def _register(conn: psycopg.Connection, pilot: Pilot, devices: list[str]) -> None:
    apply_pilot(conn, pilot)
    for device in devices:
        conn.execute(
            "INSERT INTO devices (id, pilot_id, kind, password_hash) VALUES (%s, %s, %s, 'x')"
            " ON CONFLICT DO NOTHING",
            (device, pilot.id, pilot.kind),
        )


def seed_streetlights(conn: psycopg.Connection) -> Pilot:
    """Register the streetlight pilot and COPY its readings and events."""
    base = load_pilot(ROOT / "pilots" / "madiun.toml").to_json()
    base["id"] = SL_PILOT
    base["streetlight"] |= {
        "control_group": CONTROL,
        "baseline_start": BASELINE[0].isoformat(),
        "baseline_end": BASELINE[1].isoformat(),
        "road_area_m2": 1800.0,
    }
    pilot = Pilot.from_json(base)
    _register(conn, pilot, [*LUMINAIRES, SILENT])
    zone = ZoneInfo(pilot.timezone)
    cal = night_calendar(
        BASELINE[0], REPORT_TO, timezone=pilot.timezone,
        latitude=pilot.latitude, longitude=pilot.longitude,
    )  # fmt: skip
    t0 = dt.datetime.combine(BASELINE[0], dt.time(12), zone).timestamp()
    t1 = dt.datetime.combine(REPORT_TO, dt.time(12), zone).timestamp()
    ts = np.arange(t0 + 300, t1 + 1, 300.0)
    night = assign_nights(ts, cal)
    on = night >= 0
    hour = np.array([dt.datetime.fromtimestamp(t, zone).hour for t in ts])
    dimming = on & (np.array([cal.dates[max(n, 0)] for n in night]) > BASELINE[1])
    rng = np.random.default_rng(7)
    rate = np.where((hour >= 18) & (hour <= 22), 6.0, np.where((hour >= 1) & (hour <= 4), 0.5, 2.0))
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY streetlight_readings (device_id, ts, power_w, energy_wh, dim_pct, lamp_on,"
            " vehicles) FROM STDIN"
        ) as copy,
    ):
        for k, device in enumerate(LUMINAIRES):
            full = 116.0 + 1.5 * k
            vehicles = np.where(on, rng.poisson(rate), 0)
            dim = np.where(vehicles > 0, 100.0, 35.0)
            dim = np.where(dimming & (device not in CONTROL), dim, 100.0)
            dim = np.where(on, dim, 0.0)
            power = np.where(on, full * (0.08 + 0.92 * dim / 100.0), 0.6)
            power = power + rng.normal(0.0, 0.4, ts.size) * on
            energy = 5000.0 * (k + 1) + np.cumsum(power * 300.0 / 3600.0)
            keep = np.ones(ts.size, dtype=bool)
            if device == GAP_DEVICE:
                start = dt.datetime.combine(GAP_NIGHT, dt.time(21), zone).timestamp()
                keep &= (ts <= start) | (ts > start + 4 * 3600)
            for i in np.flatnonzero(keep):
                copy.write_row((
                    device, dt.datetime.fromtimestamp(ts[i], dt.UTC), float(power[i]),
                    float(energy[i]), float(dim[i]), bool(on[i]), int(vehicles[i]),
                ))  # fmt: skip
    fault = dt.datetime.combine(dt.date(2026, 10, 6), dt.time(23, 10), zone)
    for when, kind in ((fault, "fault"), (fault + dt.timedelta(minutes=40), "fault_cleared")):
        conn.execute(
            "INSERT INTO events (device_id, ts, type, data) VALUES (%s, %s, %s, %s)",
            (LUMINAIRES[3], when, kind, Jsonb({"code": "lampFailure"})),
        )
    return pilot


def _patrol(lonlat: np.ndarray, speed: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n points at 1 Hz along a polyline in degrees, out and back, at `speed` [m/s]."""
    kx, ky = 106_700.0, 110_600.0
    xy = lonlat * [kx, ky]
    seg = np.hypot(*np.diff(xy, axis=0).T)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    s = np.arange(n) * speed
    s = np.abs((s + cum[-1]) % (2 * cum[-1]) - cum[-1])  # out and back
    x = np.interp(s, cum, xy[:, 0])
    y = np.interp(s, cum, xy[:, 1])
    return x / kx, y / ky


def seed_drones(conn: psycopg.Connection) -> Pilot:
    """Register the drone pilot and COPY two short patrols (one a day) with detections."""
    pilot = load_pilot(ROOT / "pilots" / "mukdahan.toml").model_copy(update={"id": DR_PILOT})
    _register(conn, pilot, DRONES)
    assert pilot.drone is not None
    a, b = np.array(pilot.drone.border["coordinates"])[2:4]
    leg = np.array([a, a + 0.37 * (b - a)]) - [0.0004, 0.0]  # 2.5 km just inside the border
    zone = ZoneInfo(pilot.timezone)
    rng = np.random.default_rng(11)
    detections: list[float] = []
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY drone_readings (device_id, ts, flight_id, lat, lon, alt_m, agl_m, speed_mps,"
            " mode, camera_on, hfov_deg, gps_fix, battery_v, battery_a, battery_pct,"
            " gen_power_w, fuel_l) FROM STDIN"
        ) as copy,
    ):
        for d, day in enumerate(DRONE_DAYS):
            n = 420 + 60 * d
            t0 = dt.datetime.combine(day, dt.time(9 + d), zone).timestamp()
            lon, lat = _patrol(leg, 15.0, n)
            fuel = 4.0 - (np.arange(n) + 420 * d) * 0.00028
            gen = np.where(np.arange(n) % 200 < 120, 1600.0, 0.0)
            for i in range(n):
                mode = "patrol" if 10 <= i < n - 10 else "transit"
                copy.write_row((
                    DRONES[0], dt.datetime.fromtimestamp(t0 + i, dt.UTC), f"f{d + 1}",
                    float(lat[i]), float(lon[i]), 240.0, 120.0, 15.0, mode, True, 70.0, 3,
                    47.5 - 0.002 * i, float(28.0 + rng.normal(0, 1)), 90.0 - 0.02 * i,
                    float(gen[i]), float(fuel[i]),
                ))  # fmt: skip
            detections += [t0 + 60 + 90 * j for j in range(2 + d)]
    for t in detections:
        conn.execute(
            "INSERT INTO events (device_id, ts, type, data) VALUES (%s, %s, 'detection', %s)",
            (DRONES[0], dt.datetime.fromtimestamp(t, dt.UTC), Jsonb({"class": "boat"})),
        )
    return pilot


# --- fixtures -----------------------------------------------------------------------------

SL_WINDOW = Window.parse(REPORT_FROM, REPORT_TO)
DR_WINDOW = Window.parse(DRONE_DAYS[0], DRONE_DAYS[-1] + dt.timedelta(days=1))
HANGUL = re.compile(r"[\uac00-\ud7a3]")


@pytest.fixture(scope="module")
def seeded(db_url: str) -> str:
    with psycopg.connect(db_url, autocommit=True) as conn:
        seed_streetlights(conn)
        seed_drones(conn)
    return db_url


@pytest.fixture(scope="module")
def reports(seeded: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Both pilots' reports in both languages, built once for the module."""
    out = tmp_path_factory.mktemp("reports")
    with psycopg.connect(seeded) as conn:
        return {
            f"{kind}-{lang}": build(conn, pilot, window, out, lang)
            for kind, pilot, window in (("sl", SL_PILOT, SL_WINDOW), ("dr", DR_PILOT, DR_WINDOW))
            for lang in ("en", "ko")
        }


def _cli_json(settings: Settings, tmp_path: Path, *args: str) -> dict[str, Any]:
    env = {"KCITY_DATABASE_URL": settings.database_url, "KCITY_DATA_DIR": str(tmp_path)}
    done = CliRunner().invoke(app, [*args, "--json"], env=env)
    assert done.exit_code == 0, done.output
    body: dict[str, Any] = json.loads(done.stdout)
    return body


# --- parsing the HTML back ----------------------------------------------------------------

_NUM = re.compile(
    r'<(?:span|td)[^>]*data-key="(?P<key>[^"]+)" data-value="(?P<value>[^"]*)"'
    r'(?: data-scale="(?P<scale>[^"]+)")?>(?P<text>[^<]*)<'
)


def numbers(html: str) -> list[tuple[str, Any, float | None, str]]:
    """(key, exact value, scale, shown text) of every number the report marks."""
    return [
        (m["key"], json.loads(m["value"].replace("&#34;", '"')),
         float(m["scale"]) if m["scale"] else None, m["text"])
        for m in _NUM.finditer(html)
    ]  # fmt: skip


def lookup(body: dict[str, Any], key: str) -> Any:
    node: Any = body
    for part in key.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def check_numbers(html: str, bodies: dict[str, dict[str, Any]]) -> set[str]:
    """Every marked number equals the JSON's, and its shown text rounds it; return the keys."""
    seen = set()
    found = numbers(html)
    assert found
    for key, value, scale, text in found:
        prefix, _, rest = key.partition(".")
        body, path = (bodies[prefix], rest) if prefix in bodies else (bodies[""], key)
        expected = lookup(body, path)
        assert value == expected, key
        if expected is None:
            assert text == "—", key
        else:
            shown = float(text.replace(",", "").replace("\u2212", "-"))
            decimals = len(text.partition(".")[2])
            want = expected * (scale or 1.0)
            assert abs(shown - want) <= 0.5 * 10.0**-decimals + 1e-9, (key, text, want)
        seen.add(key)
    return seen


# --- tests --------------------------------------------------------------------------------


def test_streetlight_report_shows_the_savings_json(
    reports: dict[str, Any], settings: Settings, tmp_path: Path
) -> None:
    args = (SL_PILOT, "--from", str(REPORT_FROM), "--to", str(REPORT_TO))
    savings = _cli_json(settings, tmp_path, "savings", *args)
    quality = _cli_json(settings, tmp_path, "quality", *args)
    for lang in ("en", "ko"):
        html = reports[f"sl-{lang}"].html.read_text(encoding="utf-8")
        keys = check_numbers(html, {"": savings, "quality": quality})
        assert {"savings_kwh", "savings_pct", "ci90_kwh.0", "ci90_kwh.1", "co2_kg", "cost_saved",
                "actual_kwh", "baseline_kwh", "completeness_pct", "luminaires",
                "control_group.savings_kwh", "regression.cv_rmse",
                "quality.completeness_pct"} <= keys  # fmt: skip
        for i in range(len(savings["per_luminaire"])):
            assert f"per_luminaire.{i}.savings_kwh" in keys
        for i in range(len(savings["per_night"])):
            assert {f"per_night.{i}.savings_lo_kwh", f"per_night.{i}.savings_hi_kwh"} <= keys
        assert savings["ci_formula"] in html.replace("&#39;", "'").replace("&amp;", "&")
        assert savings["input_sha256"] in html
    assert len(savings["per_night"]) == 4 and savings["excluded_nights"]
    assert savings["non_routine_events"] and savings["luminaires"] == 4
    assert savings["missing_luminaires"] == [SILENT] and SILENT in quality["silent_devices"]
    for lang in ("en", "ko"):
        html = reports[f"sl-{lang}"].html.read_text(encoding="utf-8")
        assert f"<td>{SILENT}</td>" in html


def test_drone_report_shows_the_coverage_json(
    reports: dict[str, Any], settings: Settings, tmp_path: Path
) -> None:
    args = (DR_PILOT, "--from", str(DR_WINDOW.start), "--to", str(DR_WINDOW.end))
    coverage = _cli_json(settings, tmp_path, "coverage", *args)
    quality = _cli_json(settings, tmp_path, "quality", *args)
    for lang in ("en", "ko"):
        html = reports[f"dr-{lang}"].html.read_text(encoding="utf-8")
        keys = check_numbers(html, {"": coverage, "quality": quality})
        assert {"aoi_km2", "covered_km2", "area_coverage_pct", "border_km", "border_covered_km",
                "linear_coverage_pct", "revisit_s.mean", "revisit_s.p95", "revisit_s.max",
                "flight_hours", "distance_km", "detections", "battery_kwh", "generator_kwh",
                "fuel_l", "generator_share_pct", "per_day.1.area_coverage_pct"} <= keys  # fmt: skip
    assert coverage["detections"] == 5 and coverage["covered_km2"] > 0
    assert coverage["linear_coverage_pct"] > 0 and coverage["revisit_s"]["intervals"] > 0


def test_reproducibility_block(reports: dict[str, Any], seeded: str) -> None:
    version = metadata.version("kcity-pilot-telemetry")
    with psycopg.connect(seeded) as conn:
        for name, analysis in (("sl-en", "savings"), ("dr-ko", "coverage")):
            html = reports[name].html.read_text(encoding="utf-8")
            assert f"kcity-pilot-telemetry {version}" in html
            # the reproducibility rows: an input hash cell, then the result id
            repro = r'class="hash"[^>]*>[^<]+</td>\s*<td class="n">(\d+)</td>'
            ids = [int(i) for i in re.findall(repro, html)]
            rows = conn.execute(
                "SELECT analysis, method_version FROM analytics_results WHERE id = ANY(%s)",
                (ids,),
            ).fetchall()
            assert {r[0] for r in rows} == {analysis, "quality"}
            assert all(r[1] in html for r in rows)


def test_pdfs_render_and_korean_has_hangul(reports: dict[str, Any], tmp_path: Path) -> None:
    for name, files in reports.items():
        assert files.pdf.read_bytes().startswith(b"%PDF")
        text = subprocess.run(["pdftotext", str(files.pdf), "-"], capture_output=True,
                              text=True, check=True).stdout  # fmt: skip
        hangul = len(HANGUL.findall(text))
        if name.endswith("-ko"):
            assert hangul > 200 and "평가 보고서" in text, name
        else:
            assert hangul == 0 and "Evaluation report" in text, name
        prefix = tmp_path / name
        subprocess.run(["pdftoppm", "-r", "50", "-f", "1", "-l", "1", "-png", str(files.pdf),
                        str(prefix)], check=True)  # fmt: skip
        (page,) = tmp_path.glob(f"{name}*.png")
        assert _ink(page) > 0.03, name


def _ink(png: Path) -> float:
    """Share of pixels that are not (near) white."""
    with Image.open(png) as image:
        pixels = np.asarray(image.convert("L"), dtype=np.float64)
    return float((pixels < 235).mean())


def test_figures_exist_and_are_linked(reports: dict[str, Any]) -> None:
    for name, files in reports.items():
        html = files.html.read_text(encoding="utf-8")
        expected = 5 if name.startswith("sl") else 4
        assert len(files.figures) == expected
        for png in files.figures:
            assert png.parent == files.html.parent and f'src="{png.name}"' in html
            with Image.open(png) as image:
                assert image.size[0] >= 600, png.name
            assert _ink(png) > 0.02, png.name
    sl = reports["sl-en"]
    assert sl.html.name == f"{SL_PILOT}-{REPORT_FROM}-{REPORT_TO}-en.html"
    assert sl.pdf.with_suffix(".html") == sl.html


def test_completeness_map_matches_the_excluded_nights(seeded: str) -> None:
    with psycopg.connect(seeded) as conn:
        body, _ = run_savings(conn, SL_PILOT, SL_WINDOW, persist=False)
        cal = night_calendar(REPORT_FROM, REPORT_TO - dt.timedelta(days=1),
                             timezone="Asia/Jakarta", latitude=-7.63, longitude=111.52)  # fmt: skip
        grid = night_completeness(
            conn, device_ids=[*LUMINAIRES, SILENT], calendar=cal, interval_s=300
        )
    low = {(grid.device_ids[i], grid.nights[j].isoformat())
           for i, j in zip(*np.nonzero(grid.pct < 90.0), strict=True)}  # fmt: skip
    excluded = {(e["device_id"], e["night"]) for e in body["excluded_nights"]
                if e["window"] == "reporting"}  # fmt: skip
    nights = [REPORT_FROM + dt.timedelta(days=k) for k in range((REPORT_TO - REPORT_FROM).days)]
    silent = {(SILENT, n.isoformat()) for n in nights}
    assert low == excluded == {(GAP_DEVICE, GAP_NIGHT.isoformat())} | silent


def test_hour_profile_shows_dimming_and_traffic(seeded: str) -> None:
    def profile(start: dt.date, end: dt.date) -> HourProfile:
        with psycopg.connect(seeded) as conn:
            return hour_profile(
                conn, device_ids=LUMINAIRES, treated_ids=LUMINAIRES[2:],
                timezone="Asia/Jakarta", interval_s=300, start=start, end=end,
            )  # fmt: skip

    reporting = profile(REPORT_FROM, REPORT_TO)
    baseline = profile(BASELINE[0], BASELINE[1] + dt.timedelta(days=1))
    assert reporting.dim_pct.shape == (4, len(reporting.hours)) and 20 in reporting.hours
    assert np.nanmin(reporting.dim_pct) < 80 and np.nanmin(baseline.dim_pct) == 100
    evening, small_hours = reporting.hours.index(20), reporting.hours.index(2)
    per_h = reporting.vehicles_per_h
    assert np.all(per_h[:, evening] > 5 * per_h[:, small_hours])


def test_library_refuses_bad_arguments(seeded: str, tmp_path: Path) -> None:
    with psycopg.connect(seeded) as conn:
        with pytest.raises(KcityError, match="unknown pilot"):
            build(conn, "atlantis", SL_WINDOW, tmp_path)
        with pytest.raises(KcityError, match="--lang"):
            build(conn, SL_PILOT, SL_WINDOW, tmp_path, "fr")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["atlantis", "--from", "2026-10-04", "--to", "2026-10-08"], ["unknown pilot"]),
        ([SL_PILOT, "--from", "2026-10-08", "--to", "2026-10-04"], ["--to", "after --from"]),
        ([SL_PILOT, "--from", "2026-10-04", "--to", "2026-10-08", "--lang", "fr"], ["--lang"]),
    ],
)
def test_cli_bad_arguments_are_one_line(seeded: str, tmp_path: Path, args: list[str],
                                        words: list[str]) -> None:  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("KCITY_")}
    env |= {"KCITY_DATA_DIR": str(tmp_path / ".kcity"), "KCITY_DATABASE_URL": seeded}
    done = subprocess.run([sys.executable, "-m", "kcity", "report", *args, "--out",
                           str(tmp_path / "out")], env=env, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert lines[0].startswith("kcity: error:") and all(w in lines[0] for w in words)
    assert not (tmp_path / "out").exists()
