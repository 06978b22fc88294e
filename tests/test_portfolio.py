"""The ministry's portfolio: the home dashboard's table and map on a real TimescaleDB
(Grafana's macros expanded as Grafana expands them), checked against hand counts and
against the project's own data-quality analysis and alert rules run on their own.

Three pilots, seeded relative to now: a quiet streetlight pilot (everything reported,
nothing wrong), a troubled one (a luminaire reported half of yesterday, one never, a lamp
fault is open) and the drone pilot (one flight yesterday with every tenth point lost).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from PIL import Image
from psycopg.types.json import Jsonb
from typer.testing import CliRunner

from dashboards.alerts import RULES
from devices.pilots import Pilot, load_pilot
from kcity.analyses import run_quality
from kcity.cli import app
from kcity.grafana import build_all
from kcity.registry import apply_pilot
from kcity.rollups import refresh
from kcity.window import Window
from tests.fixtures.services import as_reader
from tests.grafana_macros import expand

ROOT = Path(__file__).resolve().parents[1]
QUIET, TROUBLED, DRONE = "madiun", "kediri", "mukdahan"
STEP = timedelta(minutes=5)


@dataclass(frozen=True)
class World:
    now: datetime
    yesterday: dict[str, datetime]  # pilot -> local midnight starting yesterday (UTC)


def _pilot(toml: str, **changes: Any) -> Pilot:
    return load_pilot(ROOT / "pilots" / toml).model_copy(update=changes)


def _device(conn: psycopg.Connection, pilot: str, dev: str, kind: str, seen: datetime | None,
            created: datetime) -> None:  # fmt: skip
    conn.execute(
        "INSERT INTO devices (id, pilot_id, kind, password_hash, last_seen, created_at)"
        " VALUES (%s, %s, %s, 'x', %s, %s)",
        (dev, pilot, kind, seen, created),
    )


def _lights(conn: psycopg.Connection, dev: str, start: datetime, end: datetime, tz: str) -> int:
    """5-minute records in [start, end), the lamp off by local day (no day-burning)."""
    rows = []
    t = start
    while t < end:
        hour = t.astimezone(ZoneInfo(tz)).hour
        rows.append((dev, t, 40.0, 30.0, not 6 <= hour < 18))
        t += STEP
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO streetlight_readings (device_id, ts, power_w, dim_pct, lamp_on)"
            " VALUES (%s, %s, %s, %s, %s)",
            rows,
        )
    return len(rows)


def _seed(conn: psycopg.Connection, now: datetime) -> World:
    quiet = _pilot("madiun.toml")
    troubled = _pilot("madiun.toml", id=TROUBLED, name="Kediri streetlights", city="Kediri",
                      latitude=-7.82, longitude=112.01, programme_year=2023)  # fmt: skip
    drone = _pilot("mukdahan.toml")
    for p in (quiet, troubled, drone):
        apply_pilot(conn, p)
    starts = {
        p.id: datetime.combine(
            now.astimezone(ZoneInfo(p.timezone)).date() - timedelta(days=1),
            datetime.min.time(),
            ZoneInfo(p.timezone),
        ).astimezone(UTC)
        for p in (quiet, troubled, drone)
    }
    made = now - timedelta(days=3)
    for dev in ("madiun-sl-001", "madiun-sl-002"):
        _device(conn, QUIET, dev, "streetlight", now - timedelta(minutes=1), made)
        conn.execute("INSERT INTO device_status VALUES (%s, 'online', '{}', %s)", (dev, now))
        _lights(conn, dev, starts[QUIET], now - timedelta(minutes=1), quiet.timezone)
    y0 = starts[TROUBLED]
    _device(conn, TROUBLED, "kediri-sl-001", "streetlight", now - timedelta(minutes=2), made)
    _device(conn, TROUBLED, "kediri-sl-002", "streetlight", now - timedelta(minutes=2), made)
    _device(conn, TROUBLED, "kediri-sl-003", "streetlight", None, made)  # never reported
    assert _lights(conn, "kediri-sl-001", y0, y0 + timedelta(days=1), troubled.timezone) == 288
    assert _lights(conn, "kediri-sl-002", y0, y0 + timedelta(hours=12), troubled.timezone) == 144
    conn.execute(
        "INSERT INTO events (device_id, ts, type, data) VALUES ('kediri-sl-001', %s, 'fault', %s)",
        (now - timedelta(hours=1), Jsonb({"code": "lamp_failure"})),
    )
    # One 600 s flight yesterday at 1 Hz, every tenth interior point lost: 541 of 601.
    takeoff = starts[DRONE] + timedelta(hours=10)
    _device(conn, DRONE, "mukdahan-dr-01", "hybrid_drone", takeoff + timedelta(seconds=600), made)
    _device(conn, DRONE, "mukdahan-dr-02", "hybrid_drone", None, made)
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO drone_readings (device_id, ts, flight_id, lat, lon, agl_m, mode,"
            " camera_on, gps_fix) VALUES ('mukdahan-dr-01', %s, 'f1', %s, 104.72, 80, 'patrol',"
            " true, 3)",
            [
                (takeoff + timedelta(seconds=k), 16.54 + k * 1e-5)
                for k in range(601)
                if k in (0, 600) or k % 10 != 5
            ],
        )
    for pilot, analysis, result, age in (
        (QUIET, "savings", {"savings_pct": 12.0}, 2),
        (QUIET, "savings", {"savings_pct": 28.7}, 1),  # the latest wins
        (DRONE, "coverage", {"linear_coverage_pct": 99.1, "area_coverage_pct": 5.7}, 1),
    ):
        conn.execute(
            "INSERT INTO analytics_results (pilot_id, analysis, method, method_version,"
            " window_from, window_to, parameters, input_hash, result, computed_at)"
            " VALUES (%s, %s, 'm', '1', '2026-10-08', '2026-10-15', '{}', 'sha256:0', %s, %s)",
            (pilot, analysis, Jsonb(result), now - timedelta(hours=age)),
        )
    return World(now, starts)


@pytest.fixture(scope="module")
def world(db_url: str) -> World:
    now = datetime.now(UTC).replace(microsecond=0)
    with psycopg.connect(db_url, autocommit=True) as conn:
        seeded = _seed(conn, now)
        refresh(conn)  # the rollups behind pilot_day_quality, as the stack's job does
        return seeded


def _sql(world: World, sql: str) -> str:
    return expand(sql, start=world.now - timedelta(hours=24), end=world.now)


def _rows(conn: psycopg.Connection, sql: str) -> list[dict[str, Any]]:
    with as_reader(conn):  # as Grafana's login
        cur = conn.execute(sql)
        names = [c.name for c in cur.description or []]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _portfolio(conn: psycopg.Connection, world: World, lang: str = "en") -> dict[str, Any]:
    dash = build_all(lang)["kcity-portfolio"]
    table = next(p for p in dash["panels"] if p["type"] == "table")
    return {r["pilot"]: r for r in _rows(conn, _sql(world, table["targets"][0]["rawSql"]))}


def test_portfolio_lists_every_pilot_with_its_facts(conn: psycopg.Connection, world: World) -> None:
    rows = _portfolio(conn, world)
    assert list(rows) == [TROUBLED, QUIET, DRONE]  # by country, then city
    quiet, troubled, drone = rows[QUIET], rows[TROUBLED], rows[DRONE]
    assert (quiet["country"], quiet["city"], quiet["programme_year"]) == ("ID", "Madiun", 2022)
    assert quiet["firm"] == load_pilot(ROOT / "pilots" / "madiun.toml").firm
    assert (troubled["city"], troubled["programme_year"]) == ("Kediri", 2023)
    assert (drone["country"], drone["solution"]) == ("TH", "hybrid_drone")
    assert [r["online_registered"] for r in rows.values()] == ["2 / 3", "2 / 2", "0 / 2"]
    assert (quiet["headline"], quiet["headline_pct"]) == ("Verified savings", 28.7)
    assert (drone["headline"], drone["headline_pct"]) == ("Border coverage", 99.1)
    assert troubled["headline_pct"] is None and troubled["headline_window"] is None
    assert quiet["headline_window"] == "2026-10-08 – 2026-10-15"


def test_completeness_yesterday_by_hand_and_by_the_quality_analysis(
    conn: psycopg.Connection, world: World
) -> None:
    rows = _portfolio(conn, world)
    # By hand: 288 + 288 of 576; 288 + 144 + 0 of 864; 541 of 601 (the idle drone expects none).
    assert rows[QUIET]["completeness_yesterday_pct"] == 100.0
    assert rows[TROUBLED]["completeness_yesterday_pct"] == 50.0
    assert rows[DRONE]["completeness_yesterday_pct"] == round(100 * 541 / 601, 2)
    for pilot, row in rows.items():
        tz = ZoneInfo(conn.execute("SELECT timezone FROM pilots WHERE id = %s", (pilot,))
                      .fetchone()[0])  # type: ignore[index]  # fmt: skip
        day = world.yesterday[pilot].astimezone(tz).date()
        quality = run_quality(conn, pilot, Window(day, day + timedelta(days=1)), persist=False)
        assert row["completeness_yesterday_pct"] == quality["completeness_pct"], pilot


def test_alert_state_is_the_alert_rules_firing_now(conn: psycopg.Connection, world: World) -> None:
    rows = _portfolio(conn, world)
    assert rows[QUIET]["alerts_firing"] == 0 and rows[QUIET]["alert_rules"] == ""
    assert rows[TROUBLED]["alerts_firing"] == 3
    assert rows[TROUBLED]["alert_rules"] == (
        "Data completeness yesterday (1), Device silent (1), Lamp fault (1)"
    )
    # Each rule on its own, its threshold applied here: the same pilots, the same counts.
    truth: Counter[str] = Counter()
    for rule in RULES:
        if not rule.per_pilot:
            continue
        for r in _rows(conn, _sql(world, rule.sql)):
            value = r[rule.figure]
            if value > rule.threshold if rule.evaluator == "gt" else value < rule.threshold:
                truth[r["pilot"]] += 1
    assert {p: r["alerts_firing"] for p, r in rows.items()} == {
        p: truth[p] for p in (QUIET, TROUBLED, DRONE)
    }
    assert truth[DRONE] > 0 and "Border segment not patrolled" in rows[DRONE]["alert_rules"]


def test_korean_portfolio_is_korean(conn: psycopg.Connection, world: World) -> None:
    dash = build_all("ko")["kcity-portfolio"]
    assert dash["title"].startswith("K-City 실증 포트폴리오")
    rows = _portfolio(conn, world, "ko")
    assert rows[QUIET]["headline"] == "검증 절감률"
    assert "가로등 고장 (1)" in rows[TROUBLED]["alert_rules"]


def test_world_map_places_every_pilot_and_colours_alerts() -> None:
    dash = build_all("en")["kcity-portfolio"]
    geo = next(p for p in dash["panels"] if p["type"] == "geomap")
    table = next(p for p in dash["panels"] if p["type"] == "table")
    assert geo["targets"][0]["rawSql"] == table["targets"][0]["rawSql"]
    layer = geo["options"]["layers"][0]
    assert layer["config"]["style"]["color"]["field"] == "alerts_firing"
    steps = geo["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [(s["color"], s["value"]) for s in steps] == [("green", None), ("red", 1)]


# --- the brief (`kcity portfolio`) ---------------------------------------------------------


def _pdf_text(pdf: Path) -> str:
    done = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, check=True)
    return " ".join(done.stdout.decode().split())


def _data_values(html: str, pilot: str) -> dict[str, str]:
    """``data-key`` → ``data-value`` of the numbers in the rows of `pilot`."""
    out: dict[str, str] = {}
    for row in re.findall(rf'<tr data-pilot="{pilot}">(.*?)</tr>', html, flags=re.S):
        out |= dict(re.findall(r'data-key="([\w.]+)" data-value="([^"]*)"', row))
    return out


def test_brief_writes_the_dashboards_table_and_the_windows_figures(
    db_url: str, world: World, tmp_path: Path
) -> None:
    day = world.yesterday[QUIET].astimezone(ZoneInfo("Asia/Jakarta")).date()
    frm, to = day, day + timedelta(days=1)
    result = CliRunner().invoke(
        app,
        ["portfolio", "--from", str(frm), "--to", str(to), "--out", str(tmp_path), "--lang", "en"],
        env={"KCITY_DATABASE_URL": db_url},
    )
    assert result.exit_code == 0, result.output
    html_path, pdf_path = (Path(p) for p in result.output.split())
    html = html_path.read_text()
    # The dashboard's numbers (checked by hand above) are the brief's.
    assert _data_values(html, TROUBLED)["completeness_yesterday_pct"] == "50.0"
    assert _data_values(html, DRONE)["completeness_yesterday_pct"] == json.dumps(
        round(100 * 541 / 601, 2)
    )
    assert _data_values(html, QUIET)["headline_pct"] == "28.7"
    assert re.search(r'data-key="alerts_firing" data-value="3"', html)
    # The window's figures are those of `kcity coverage|quality --json` for the same window.
    for pilot, verb, key in ((DRONE, "coverage", "linear_coverage_pct"),
                             (TROUBLED, "quality", "completeness_pct")):  # fmt: skip
        cli = CliRunner().invoke(
            app, [verb, pilot, "--from", str(frm), "--to", str(to), "--json"],
            env={"KCITY_DATABASE_URL": db_url},
        )  # fmt: skip
        expected = json.loads(cli.stdout)[key]
        shown = _data_values(html, pilot)[key if verb != "quality" else f"quality.{key}"]
        assert json.loads(shown) == expected
    # The PDF, read back as text: every pilot, its city and its alerts.
    text = _pdf_text(pdf_path)
    for word in ("K-City portfolio brief", "Kediri", "Madiun", "Mukdahan", "Lamp fault (1)",
                 "no alert", "50.0"):  # fmt: skip
        assert word in text, word
    # Rendered: the first page is a real page, not blank.
    subprocess.run(["pdftoppm", "-r", "40", "-f", "1", "-l", "1", "-png", str(pdf_path),
                    str(tmp_path / "page")], check=True)  # fmt: skip
    page = Image.open(next(tmp_path.glob("page*.png"))).convert("L")
    assert page.getextrema()[0] < 100  # dark ink somewhere on it


def test_brief_in_korean_and_bad_input(db_url: str, world: World, tmp_path: Path) -> None:
    env = {"KCITY_DATABASE_URL": db_url}
    ok = CliRunner().invoke(
        app, ["portfolio", "--from", "2026-10-01", "--to", "2026-10-02", "--out", str(tmp_path)],
        env=env,
    )  # fmt: skip
    assert ok.exit_code == 0, ok.output
    text = _pdf_text(Path(ok.output.split()[1]))
    assert "K-City 실증 포트폴리오 브리핑" in text and "가로등 고장 (1)" in text
    for args, message in (
        (["--from", "2026-10-02", "--to", "2026-10-01"], "must be after --from"),
        (["--from", "2026-10-01", "--to", "2026-10-02", "--lang", "fr"], "--lang must be one of"),
    ):
        bad = subprocess.run(
            [sys.executable, "-m", "kcity", "portfolio", *args, "--out", str(tmp_path)],
            capture_output=True, text=True, env={**os.environ, **env},
        )  # fmt: skip
        assert bad.returncode != 0
        assert message in bad.stderr and "Traceback" not in bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1
