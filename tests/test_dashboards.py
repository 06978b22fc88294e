"""The Grafana dashboards: they build with the expected uids, panels and variables, the
provisioned JSON is up to date, and every panel's SQL runs on a real TimescaleDB seeded
with a little data of each kind, with Grafana's macros and variables expanded as Grafana
expands them (tests/grafana_macros.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from dashboards.alerts import RULES
from dashboards.build import dump
from dashboards.errors import PushError
from dashboards.push import connect, datasource_definition, push
from dashboards.sql import DATASOURCE_UID
from devices.pilots import load_pilot
from kcity import grafana as shell_grafana
from kcity.grafana import write
from kcity.rollups import refresh
from tests.fixtures.services import as_reader
from tests.grafana_macros import Variable, expand, format_interval, interpolate_variables

ROOT = Path(__file__).resolve().parents[1]
PROVISIONED = ROOT / "deploy" / "grafana" / "dashboards"
EXPECTED = {
    "kcity-portfolio": set(),
    "kcity-overview": set(),
    "kcity-streetlight": {"pilot", "device"},
    "kcity-drone": {"pilot", "device"},
    "kcity-ingest": {"pilot"},
}
LIGHTS = ("madiun-sl-001", "madiun-sl-002", "madiun-sl-003")
DRONES = ("mukdahan-dr-01", "mukdahan-dr-02")


def build_all(lang: str = "en") -> dict[str, dict[str, Any]]:
    """The dashboards in English (titles below are the English ones)."""
    return shell_grafana.build_all(lang)


def _targets() -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    out = []
    for uid, dash in build_all().items():
        for panel in dash["panels"]:
            for target in panel.get("targets", []):
                out.append((uid, panel["title"], panel, target))
        for ann in dash.get("annotations", {}).get("list", []):
            if "target" in ann:  # the SQL annotations, run like panels
                holder = {"type": "annotation", "datasource": ann["datasource"]}
                out.append((uid, f"annotation {ann['name']}", holder, ann["target"]))
    return out


TARGETS = _targets()


# --- structure ---------------------------------------------------------------------------


def test_dashboards_have_stable_uids_and_variables() -> None:
    built = build_all()
    assert set(built) == set(EXPECTED)
    for uid, dash in built.items():
        assert dash["uid"] == uid
        names = {v["name"] for v in dash.get("templating", {}).get("list", [])}
        assert names == EXPECTED[uid]
        ids = [p["id"] for p in dash["panels"]]
        assert ids == list(range(1, len(ids) + 1))


def test_every_query_uses_the_timescaledb_datasource_by_uid() -> None:
    assert TARGETS
    for _, _, panel, target in TARGETS:
        assert panel["datasource"]["uid"] == DATASOURCE_UID
        assert target["datasource"]["uid"] == DATASOURCE_UID
        assert target["rawQuery"] is True and target["rawSql"].strip()
    for dash in build_all().values():
        for var in dash.get("templating", {}).get("list", []):
            assert var["datasource"]["uid"] == DATASOURCE_UID


def test_hypertable_queries_are_time_filtered_and_bucketed() -> None:
    hypertables = ("streetlight_readings", "drone_readings", "events", "ingest_stats")
    for uid, title, _, target in TARGETS:
        sql = target["rawSql"]
        for table in hypertables:
            if f"FROM {table}" in sql or f"FROM {table} " in sql:
                # The portfolio has no range: it reads yesterday and now, both bounded by
                # the range's end ($__timeTo()), like the alert rules it evaluates.
                bound = "$__timeTo()" if uid == "kcity-portfolio" else "$__timeFilter("
                assert bound in sql, f"{uid} / {title} scans {table} unfiltered"
        if target["format"] == "time_series" and "_readings" in sql:
            assert "time_bucket('$__interval'" in sql, f"{uid} / {title} is not bucketed"


def test_expected_panels_exist() -> None:
    built = build_all()
    types = {uid: {p["title"]: p["type"] for p in d["panels"]} for uid, d in built.items()}
    assert types["kcity-drone"]["Tracks and detections"] == "geomap"
    assert types["kcity-streetlight"]["Power and dim level"] == "timeseries"
    assert types["kcity-overview"]["Pilots"] == "table"
    assert types["kcity-ingest"]["Dead letters by reason"] == "table"
    pilots = next(p for p in built["kcity-overview"]["panels"] if p["title"] == "Pilots")
    links = pilots["fieldConfig"]["defaults"]["links"]
    assert "/d/${__data.fields.dashboard}" in links[0]["url"]


def test_provisioned_json_is_up_to_date() -> None:
    """deploy/grafana/dashboards is what compose provisions: rebuild it when this fails."""
    built = build_all("ko")
    files = {p.stem: p.read_text(encoding="utf-8") for p in PROVISIONED.glob("*.json")}
    assert set(files) == set(built)
    for uid, dash in built.items():
        assert files[uid] == dump(dash), f"run: kcity dashboards build --out {PROVISIONED}"


def test_write_creates_one_file_per_dashboard(tmp_path: Path) -> None:
    paths = write(tmp_path / "out")
    assert sorted(p.name for p in paths) == sorted(f"{uid}.json" for uid in EXPECTED)
    assert json.loads(paths[0].read_text())["uid"] in EXPECTED


# --- the macro expander itself ----------------------------------------------------------

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
T1 = datetime(2024, 3, 2, 12, 0, 30, 500000, tzinfo=UTC)


def test_macros_expand_as_grafana_documents() -> None:
    def x(sql: str, **kw: Any) -> str:
        return expand(sql, start=T0, end=T1, **kw)

    assert (
        x("$__timeFilter(ts)") == "ts BETWEEN '2024-03-01T12:00:00Z' AND '2024-03-02T12:00:30.5Z'"
    )
    assert x("$__timeFrom()") == "'2024-03-01T12:00:00Z'"
    assert x("$__timeGroup(ts, '5m')", timescaledb=False) == "floor(extract(epoch from ts)/300)*300"
    assert x("$__timeGroup(ts, '5m')") == "time_bucket('300.000s',ts)"
    assert x("$__timeGroupAlias(ts, 1h)") == "time_bucket('3600.000s',ts) AS \"time\""
    assert x("SELECT $__timeGroup(ts, 5m), 1") == "SELECT time_bucket('300.000s',ts) AS \"time\", 1"
    assert (
        x("$__unixEpochFilter(t)") == f"t >= {int(T0.timestamp())} AND t <= {int(T1.timestamp())}"
    )
    assert x("$__interval_ms $__interval", interval=timedelta(minutes=2)) == "120000 2m"
    with pytest.raises(ValueError, match="unexpanded"):
        x("WHERE id = '$nope'")


def test_variables_expand_as_sql_datasources_do() -> None:
    vs = {
        "pilot": Variable("o'hare"),
        "device": Variable(["a", "b"], multi=True, include_all=True),
    }
    assert interpolate_variables("'$pilot'", vs) == "'o''hare'"
    assert interpolate_variables("IN ($device)", vs) == "IN ('a','b')"
    assert interpolate_variables("'${pilot}' [[device]]", vs) == "'o''hare' 'a','b'"
    assert interpolate_variables("${device:csv} ${device:sqlstring}", vs) == "a,b 'a','b'"
    assert format_interval(timedelta(days=400)) == "1y"
    assert format_interval(timedelta(milliseconds=50)) == "50ms"


# --- every query on a real TimescaleDB --------------------------------------------------


@dataclass(frozen=True)
class Seeded:
    now: datetime


def _pilot_row(conn: psycopg.Connection, toml: str) -> None:
    p = load_pilot(ROOT / "pilots" / toml)
    conn.execute(
        "INSERT INTO pilots (id, name, kind, country, city, timezone, latitude, longitude,"
        " definition) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)",
        (
            p.id,
            p.name,
            p.kind,
            p.country,
            p.city,
            p.timezone,
            p.latitude,
            p.longitude,
            Jsonb(p.to_json()),
        ),
    )


PER_LUMINAIRE = [
    {"device_id": "madiun-sl-001", "actual_kwh": 80.0, "baseline_kwh": 130.0,
     "savings_kwh": 50.0, "savings_pct": 38.5, "nights": 7, "nights_excluded": 0,
     "completeness_pct": 99.0, "full_power_w": 118.2, "full_power_source": "baseline",
     "full_power_samples": 980},
    {"device_id": "madiun-sl-002", "actual_kwh": 93.9, "baseline_kwh": 167.3,
     "savings_kwh": 73.4, "savings_pct": 43.9, "nights": 6, "nights_excluded": 1,
     "completeness_pct": 97.0, "full_power_w": 121.0, "full_power_source": "control",
     "full_power_samples": 4100},
]  # fmt: skip


def _seed(conn: psycopg.Connection, now: datetime) -> None:
    _pilot_row(conn, "madiun.toml")
    _pilot_row(conn, "mukdahan.toml")
    for i, dev in enumerate(LIGHTS):  # 001 fresh, 002 silent for 3 h, 003 never seen
        seen = [now - timedelta(minutes=5), now - timedelta(hours=3), None][i]
        conn.execute(  # 001 and 002 have a registered location, 003 has none
            "INSERT INTO devices (id, pilot_id, kind, password_hash, last_seen, latitude,"
            " longitude) VALUES (%s, 'madiun', 'streetlight', 'x', %s, %s, %s)",
            (dev, seen, *([-7.63 + i / 1000, 111.52] if i < 2 else [None, None])),
        )
    for dev in DRONES:
        conn.execute(
            "INSERT INTO devices (id, pilot_id, kind, password_hash, last_seen)"
            " VALUES (%s, 'mukdahan', 'hybrid_drone', 'x', %s)",
            (dev, now - timedelta(minutes=1)),
        )
    conn.execute(
        "INSERT INTO commands (id, pilot_id, device_id, type, created_by, expires_at, created_at)"
        " VALUES (gen_random_uuid(), 'madiun', 'madiun-sl-001', 'set_level', 'cli:test', %s, %s)",
        (now + timedelta(hours=1), now - timedelta(minutes=20)),
    )
    conn.execute(
        "INSERT INTO commands (id, pilot_id, device_id, type, created_by, expires_at, created_at)"
        " VALUES (gen_random_uuid(), 'mukdahan', 'mukdahan-dr-01', 'ping', 'cli:test', %s, %s)",
        (now + timedelta(hours=1), now - timedelta(minutes=20)),
    )
    # dr-01 says it is online; dr-02 sent data a minute ago but its Last Will has fired since.
    conn.execute("INSERT INTO device_status VALUES ('mukdahan-dr-01', 'online', '{}', %s)", (now,))
    conn.execute("INSERT INTO device_status VALUES ('mukdahan-dr-02', 'offline', '{}', %s)", (now,))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO streetlight_readings (device_id, ts, power_w, energy_wh, dim_pct,"
            " lamp_on, vehicles) VALUES (%s,%s,%s,%s,%s,true,%s)",
            [
                (dev, now - timedelta(minutes=5 * k), 40.0 + k, 1000.0 - k, 30.0 + k, k % 3)
                for dev in LIGHTS[:2]
                for k in range(24)
            ],
        )
        cur.executemany(
            "INSERT INTO drone_readings (device_id, ts, flight_id, lat, lon, agl_m, mode,"
            " camera_on, gps_fix, battery_v, battery_a, gen_power_w, fuel_l, rssi_dbm)"
            " VALUES (%s,%s,'f1',%s,%s,80,'patrol',true,3,48.0,20.0,1500.0,%s,%s)",
            [
                (
                    dev,
                    now - timedelta(seconds=10 * k),
                    16.54 + k * 1e-4,
                    104.72 + k * 1e-4,
                    10.0 - k * 0.01,
                    -70.0 - k % 5,
                )
                for dev in DRONES
                for k in range(60)
            ],
        )
        cur.executemany(
            "INSERT INTO events (device_id, ts, type, data) VALUES (%s,%s,%s,%s)",
            [
                (
                    "madiun-sl-001",
                    now - timedelta(minutes=30),
                    "fault",
                    Jsonb({"code": "lamp_failure"}),
                ),
                ("madiun-sl-001", now - timedelta(minutes=10), "fault_cleared", Jsonb({})),
                (
                    "mukdahan-dr-01",
                    now - timedelta(minutes=3),
                    "detection",
                    Jsonb({"lat": 16.55, "lon": 104.73, "label": "boat", "confidence": 0.9}),
                ),
            ],
        )
        cur.executemany(
            "INSERT INTO ingest_messages (device_id, boot, seq, channel, received_at, sent_at,"
            " records) VALUES (%s,1,%s,'telemetry',%s,%s,%s)",
            [
                (
                    dev,
                    seq,
                    now - timedelta(minutes=5 * (24 - seq)),
                    now - timedelta(minutes=5 * (24 - seq), seconds=2),
                    1,
                )
                for dev in LIGHTS[:2]
                for seq in range(24)
                if seq != 7
            ]
            + [
                (
                    dev,
                    seq,
                    now - timedelta(seconds=100 * (6 - seq)),
                    now - timedelta(seconds=100 * (6 - seq) + 1),
                    10,
                )
                for dev in DRONES
                for seq in range(6)
            ],
        )
        # One message of an earlier boot, hours before the rest: a communication outage.
        cur.executemany(
            "INSERT INTO ingest_messages (device_id, boot, seq, channel, received_at, sent_at,"
            " records) VALUES (%s,0,0,'telemetry',%s,%s,1)",
            [
                (dev, now - timedelta(hours=h), now - timedelta(hours=h))
                for dev, h in (("madiun-sl-002", 5), ("mukdahan-dr-02", 4))
            ],
        )
        cur.executemany(
            "INSERT INTO ingest_stats VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
            [
                (now - timedelta(minutes=m), w, r, r - 1, 1, 0, g, r // 10, 12.5 + m, 40 - m)
                for w in ("w1", "w2")
                for m, r, g in ((30, 100, 0), (20, 250, 1), (10, 40, 1), (0, 90, 2))
            ],
        )
        cur.executemany(
            "INSERT INTO dead_letters (received_at, topic, payload, stage, reason, pilot_id,"
            " device_id) VALUES (%s,%s,%s,%s,%s,%s,%s)",
            [
                (
                    now - timedelta(minutes=2),
                    "kcity/v1/madiun/madiun-sl-001/telemetry",
                    b"{",
                    "decode",
                    "invalid JSON",
                    "madiun",
                    "madiun-sl-001",
                ),
                (now - timedelta(minutes=1), "kcity/v1/x", b"{}", "topic", "bad topic", None, None),
            ],
        )
        cur.executemany(
            "INSERT INTO dead_letters_suppressed (minute, device_id, pilot_id, stage, reason,"
            " suppressed) VALUES (%s,%s,%s,'record','record_schema',%s)",
            [
                (now.replace(second=0, microsecond=0) - timedelta(minutes=m), d, p, n)
                for m, d, p, n in (
                    (3, "madiun-sl-001", "madiun", 900),
                    (2, "madiun-sl-001", "madiun", 450),
                    (1, "mukdahan-dr-01", "mukdahan", 7),
                )
            ],
        )
    today = now.date()
    savings = {
        "pilot": "madiun",
        "savings_kwh": 123.4,
        "savings_pct": 41.5,
        "co2_kg": 97.5,
        "cost_saved": 178000.0,
        "currency": "IDR",
        "completeness_pct": 98.0,
        "actual_kwh": 173.9,
        "baseline_kwh": 297.3,
        "ci90_kwh": [100.0, 140.0],
        "per_luminaire": PER_LUMINAIRE,
    }
    coverage = {
        "pilot": "mukdahan",
        "area_coverage_pct": 62.5,
        "linear_coverage_pct": 88.0,
        "covered_km2": 12.3,
        "revisit_s": {"mean": 1800.0, "p95": 5400.0, "max": 7200.0},
        "flight_hours": 5.5,
        "generator_share_pct": 64.0,
    }
    for pilot, analysis, result in (
        ("madiun", "savings", savings),
        ("mukdahan", "coverage", coverage),
    ):
        conn.execute(
            "INSERT INTO analytics_results (pilot_id, analysis, method, method_version,"
            " window_from, window_to, parameters, input_hash, result)"
            " VALUES (%s,%s,'m','1',%s,%s,'{}','sha256:0',%s)",
            (pilot, analysis, today - timedelta(days=7), today, Jsonb(result)),
        )
    for k in range(3):
        night: date = today - timedelta(days=k)
        conn.execute("INSERT INTO savings_nightly VALUES ('madiun', %s, 10, 17, 7, 2)", (night,))
        conn.execute(
            "INSERT INTO coverage_daily VALUES ('mukdahan', %s, 4.2, 55, 80, 5.5, 3.1, 8.2, 2.4)",
            (night,),
        )


@pytest.fixture(scope="module")
def seeded(db_url: str) -> Iterator[Seeded]:
    now = datetime.now(UTC).replace(microsecond=0)
    with psycopg.connect(db_url, autocommit=True) as conn:
        _seed(conn, now)
        refresh(conn)  # the long-range panels read the rollups
    yield Seeded(now)


def _variables(conn: psycopg.Connection, dash: dict[str, Any]) -> dict[str, Variable]:
    """Resolve each variable by running its own query, as Grafana does on load; the pilot
    is the one that has data, the device variable is "All" (every option)."""
    values: dict[str, Variable] = {}
    for var in dash.get("templating", {}).get("list", []):
        sql = expand(var["query"], start=T0, end=T1, variables=values)
        with as_reader(conn):
            cur = conn.execute(sql)
            names = [c.name for c in cur.description or []]
            rows = cur.fetchall()
        col = names.index("__value") if "__value" in names else 0
        options = [str(r[col]) for r in rows]
        assert options, f"variable {var['name']} has no options"
        if var.get("multi") or var.get("includeAll"):
            values[var["name"]] = Variable(
                options, multi=bool(var.get("multi")), include_all=bool(var.get("includeAll"))
            )
        else:
            values[var["name"]] = Variable(options[0])
    return values


@pytest.mark.parametrize(
    ("uid", "title", "panel", "target"),
    TARGETS,
    ids=[f"{u}:{t}:{q['refId']}" for u, t, _, q in TARGETS],
)
@pytest.mark.parametrize(
    "interval", [timedelta(seconds=1), timedelta(minutes=5), timedelta(days=1)]
)
def test_panel_query_runs_on_timescaledb(
    conn: psycopg.Connection,
    seeded: Seeded,
    uid: str,
    title: str,
    panel: dict[str, Any],
    target: dict[str, Any],
    interval: timedelta,
) -> None:
    dash = build_all()[uid]
    variables = _variables(conn, dash)
    sql = expand(
        target["rawSql"],
        start=seeded.now - timedelta(hours=24),
        end=seeded.now + timedelta(seconds=1),
        interval=interval,
        variables=variables,
    )
    with as_reader(conn):  # as Grafana's login: a panel reading what it cannot see fails
        cur = conn.execute(sql)
        columns = [c.name for c in cur.description or []]
        rows = cur.fetchall()
    assert rows, f"{uid} / {title}: no rows on seeded data"
    if target["format"] == "time_series":
        assert columns[0] == "time"
        times = [r[0] for r in rows]
        assert times == sorted(times), "time series must be ordered by time"
    if panel["type"] == "geomap":
        lat, lon = columns.index("latitude"), columns.index("longitude")
        assert all(-90 <= r[lat] <= 90 and -180 <= r[lon] <= 180 for r in rows)


def _run(
    conn: psycopg.Connection, seeded: Seeded, uid: str, title: str, ref: str = "A"
) -> list[dict[str, Any]]:
    dash = build_all()[uid]
    target = next(q for u, t, _, q in TARGETS if u == uid and t == title and q["refId"] == ref)
    sql = expand(
        target["rawSql"],
        start=seeded.now - timedelta(hours=24),
        end=seeded.now + timedelta(seconds=1),
        interval=timedelta(minutes=1),
        variables=_variables(conn, dash),
    )
    with as_reader(conn):
        cur = conn.execute(sql)
        names = [c.name for c in cur.description or []]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def test_overview_reports_each_pilot(conn: psycopg.Connection, seeded: Seeded) -> None:
    rows = {r["pilot"]: r for r in _run(conn, seeded, "kcity-overview", "Pilots")}
    assert set(rows) == {"madiun", "mukdahan"}
    madiun, mukdahan = rows["madiun"], rows["mukdahan"]
    assert (madiun["devices"], madiun["online"]) == (3, 1)
    assert (mukdahan["devices"], mukdahan["online"]) == (2, 1)
    assert madiun["savings_kwh"] == pytest.approx(123.4)
    assert mukdahan["area_coverage_pct"] == pytest.approx(62.5)
    assert madiun["dashboard"] == "kcity-streetlight" and mukdahan["dashboard"] == "kcity-drone"
    madiun_toml = load_pilot(ROOT / "pilots" / "madiun.toml")
    assert (madiun["programme_year"], madiun["firm"]) == (
        madiun_toml.programme_year,
        madiun_toml.firm,
    )
    # 46 five-minute records of 3 luminaires over 24 h: a few percent, never above 100.
    assert 0 < float(madiun["completeness_pct"]) < 10
    assert 0 < float(mukdahan["completeness_pct"]) <= 100


def test_overview_completeness_counts_every_registered_luminaire_in_service(
    db_url: str,
) -> None:
    """Three local days (Asia/Jakarta) of a 300 s pilot: `full` sends every record, `late`
    is commissioned on day 2 and sends day 2 only, `silent` (decommissioned from day 3)
    sends nothing, `gone` was decommissioned before the window. Expected, by hand:
    full 3 x 288, late 2 x 288, silent 2 x 288, gone 0 = 2016; received 864 + 288 = 1152."""
    pilot = load_pilot(ROOT / "pilots" / "madiun.toml")
    assert pilot.timezone == "Asia/Jakarta" and pilot.streetlight is not None
    assert pilot.streetlight.record_interval_s == 300
    start = datetime(2026, 10, 1, 17, tzinfo=UTC)  # 2026-10-02 00:00 in Jakarta (UTC+7)
    end = start + timedelta(days=3)
    service = {  # device: (commissioned_on, decommissioned_on, local days with data)
        "ovc-full": (None, None, (0, 1, 2)),
        "ovc-late": (date(2026, 10, 3), None, (1,)),
        "ovc-silent": (None, date(2026, 10, 4), ()),
        "ovc-gone": (date(2026, 9, 1), date(2026, 10, 1), ()),
    }
    with psycopg.connect(db_url) as conn:  # one transaction, rolled back: others unaffected
        conn.execute(
            "INSERT INTO pilots (id, name, kind, country, city, timezone, latitude, longitude,"
            " definition) VALUES ('ovc', 'ovc', 'streetlight', 'ID', 'x', %s, %s, %s, %s)",
            (pilot.timezone, pilot.latitude, pilot.longitude, Jsonb(pilot.to_json())),
        )
        for dev, (since, until, days) in service.items():
            conn.execute(
                "INSERT INTO devices (id, pilot_id, kind, password_hash, commissioned_on,"
                " decommissioned_on) VALUES (%s, 'ovc', 'streetlight', 'x', %s, %s)",
                (dev, since, until),
            )
            for day in days:  # each day's 288 records, one message per hour of 12 records
                for h in range(24):
                    at = start + timedelta(days=day, hours=h, minutes=30)
                    conn.execute(
                        "INSERT INTO ingest_messages (device_id, boot, seq, channel,"
                        " received_at, sent_at, records) VALUES (%s,1,%s,'telemetry',%s,%s,12)",
                        (dev, day * 24 + h, at, at),
                    )
        sql = next(
            q["rawSql"]
            for u, t, _, q in TARGETS
            if u == "kcity-overview" and t == "Pilots" and q["refId"] == "A"
        )
        with as_reader(conn):
            cur = conn.execute(expand(sql, start=start, end=end, interval=timedelta(minutes=5)))
            names = [c.name for c in cur.description or []]
            rows = {r[0]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}
        conn.rollback()
    assert rows["ovc"]["devices"] == 4
    assert float(rows["ovc"]["completeness_pct"]) == pytest.approx(
        round(100 * 1152 / 2016, 1), abs=1e-9
    )


def test_streetlight_panels_show_the_seeded_facts(conn: psycopg.Connection, seeded: Seeded) -> None:
    silent = _run(conn, seeded, "kcity-streetlight", "Devices silent for more than an hour")
    assert [r["device_id"] for r in silent] == ["madiun-sl-003", "madiun-sl-002"]
    faults = _run(conn, seeded, "kcity-streetlight", "Faults")
    assert {r["type"] for r in faults} == {"fault", "fault_cleared"}
    saved = _run(conn, seeded, "kcity-streetlight", "Savings to date")
    assert saved[0]["savings_kwh"] == pytest.approx(123.4)


def test_drone_panels_show_the_seeded_facts(conn: psycopg.Connection, seeded: Seeded) -> None:
    detections = _run(conn, seeded, "kcity-drone", "Tracks and detections", "B")
    assert [(r["latitude"], r["longitude"], r["label"]) for r in detections] == [
        (16.55, 104.73, "boat")
    ]
    coverage = _run(conn, seeded, "kcity-drone", "Coverage to date")
    assert coverage[0]["revisit_mean_min"] == pytest.approx(30.0)
    power = _run(conn, seeded, "kcity-drone", "Battery vs generator power")
    assert power[0]["battery_w"] == pytest.approx(960.0)


def test_ingest_panels_count_gaps_and_resets(conn: psycopg.Connection, seeded: Seeded) -> None:
    gaps = _run(conn, seeded, "kcity-ingest", "Sequence gaps (lost messages)")
    assert [(r["device_id"], r["lost_messages"]) for r in gaps] == [
        ("madiun-sl-001", 1),
        ("madiun-sl-002", 1),
    ]
    counters = _run(conn, seeded, "kcity-ingest", "Worker counters per interval")
    # stored per worker: 99 → 249 (+150) → restart at 39 (+39) → 89 (+50); two workers.
    assert sum(r["stored"] for r in counters) == 2 * (150 + 39 + 50)
    reasons = _run(conn, seeded, "kcity-ingest", "Dead letters by reason")
    assert {r["stage"] for r in reasons} == {"decode", "topic"}
    suppressed = _run(conn, seeded, "kcity-ingest", "Dead letters counted, not kept")
    assert [(r["device_id"], r["reason"], r["suppressed"], r["minutes"]) for r in suppressed] == [
        ("madiun-sl-001", "record_schema", 900 + 450, 2),
        ("mukdahan-dr-01", "record_schema", 7, 1),
    ]


ROLLUP_PANELS = (
    ("kcity-ingest", "In range", "A"),
    ("kcity-ingest", "Sequence gaps (lost messages)", "A"),
    ("kcity-ingest", "Devices: last seen", "A"),
    ("kcity-ingest", "Throughput", "A"),
    ("kcity-overview", "Ingest in range", "A"),
    ("kcity-overview", "Pilots", "A"),
    ("kcity-streetlight", "annotation Communication outages", "Anno"),
)


@pytest.mark.parametrize(("uid", "title", "ref"), ROLLUP_PANELS)
def test_rollup_branch_gives_the_raw_numbers(
    conn: psycopg.Connection, seeded: Seeded, uid: str, title: str, ref: str
) -> None:
    """The same hour-aligned range read from the raw rows (a 5-minute interval) and from the
    hourly rollups (an hour's interval switches the branch): the same rows come out (rates
    per second summed per hour for the throughput)."""
    dash = build_all()[uid]
    target = next(q for u, t, _, q in TARGETS if u == uid and t == title and q["refId"] == ref)
    start = seeded.now.replace(minute=0, second=0) - timedelta(hours=30)
    end = seeded.now.replace(minute=0, second=0) + timedelta(hours=2) - timedelta(microseconds=1)

    def rows(interval: timedelta) -> list[tuple[Any, ...]]:
        sql = expand(target["rawSql"], start=start, end=end, interval=interval,
                     variables=_variables(conn, dash))  # fmt: skip
        with as_reader(conn):
            out = [tuple(r) for r in conn.execute(sql).fetchall()]
        assert out, f"{uid} / {title}: no rows"
        return out

    raw, hourly = rows(timedelta(minutes=5)), rows(timedelta(hours=1))
    if title == "Throughput":  # per-second rates: per hour, then compare
        per_hour: dict[datetime, list[float]] = {}
        for t, msgs, recs in raw:
            hour = t.replace(minute=0, second=0, microsecond=0)
            acc = per_hour.setdefault(hour, [0.0, 0.0])
            acc[0] += float(msgs) * 300 / 3600
            acc[1] += float(recs) * 300 / 3600
        assert [(t, pytest.approx(float(m)), pytest.approx(float(r))) for t, m, r in hourly] == [
            (t, m, r) for t, (m, r) in sorted(per_hour.items())
        ]
        return
    assert hourly == raw


# --- push, against a stand-in for Grafana's HTTP API ------------------------------------
# No Grafana server can be installed on the development machines; this stand-in answers
# the endpoints `push` uses the way Grafana's HTTP API documents them, and records them.

TOKEN = "glsa_test-token"


class FakeGrafana(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _GrafanaHandler)
        self.requests: list[tuple[str, str, Any]] = []
        self.folders: dict[str, str] = {}
        self.datasources: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _GrafanaHandler(BaseHTTPRequestHandler):
    server: FakeGrafana

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body: Any = json.loads(self.rfile.read(length)) if length else None
        g = self.server
        g.requests.append((self.command, self.path, body))
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._reply(401, {"message": "Unauthorized"})
        parts = self.path.split("?")[0].strip("/").split("/")
        match (self.command, parts):
            case ("GET", ["api", "folders", uid]):
                if uid in g.folders:
                    return self._reply(200, {"uid": uid, "title": g.folders[uid]})
                return self._reply(404, {"message": "folder not found"})
            case ("POST", ["api", "folders"]):
                g.folders[body["uid"]] = body["title"]
                return self._reply(200, {"uid": body["uid"], "title": body["title"], "id": 1})
            case ("POST", ["api", "dashboards", "db"]):
                dash = body["dashboard"]
                if body.get("folderUid") not in g.folders:
                    return self._reply(400, {"message": "folder not found"})
                if dash["uid"] in g.dashboards and not body.get("overwrite"):
                    return self._reply(412, {"status": "version-mismatch"})
                g.dashboards[dash["uid"]] = body
                return self._reply(200, {"status": "success", "uid": dash["uid"], "version": 1})
            case ("GET", ["api", "datasources", "uid", uid]):
                if uid in g.datasources:
                    return self._reply(200, g.datasources[uid])
                return self._reply(404, {"message": "Data source not found"})
            case ("POST", ["api", "datasources"]):
                if body["uid"] in g.datasources:
                    return self._reply(409, {"message": "data source with the same uid exists"})
                g.datasources[body["uid"]] = body
                return self._reply(200, {"message": "Datasource added", "id": 1})
            case ("PUT", ["api", "datasources", "uid", uid]):
                g.datasources[uid] = body
                return self._reply(200, {"message": "Datasource updated"})
        return self._reply(404, {"message": "not found"})

    do_GET = do_POST = do_PUT = _handle


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    server = FakeGrafana()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_datasource_definition_from_a_database_url() -> None:
    ds = datasource_definition("postgresql://reader:s%40cret@db.example:6432/kcity")
    assert (ds["uid"], ds["type"], ds["url"], ds["user"]) == (
        DATASOURCE_UID,
        "grafana-postgresql-datasource",
        "db.example:6432",
        "reader",
    )
    assert ds["jsonData"]["database"] == "kcity" and ds["jsonData"]["timescaledb"] is True
    assert ds["secureJsonData"] == {"password": "s@cret"}
    with pytest.raises(PushError):
        datasource_definition("mysql://x/y")


def test_push_follows_grafanas_http_api_and_is_idempotent(grafana: FakeGrafana) -> None:
    dashboards = build_all()
    ds = datasource_definition("postgresql://reader:pw@timescaledb:5432/kcity")
    first = push(connect(grafana.url, TOKEN), dashboards, folder="K-City Pilots", datasource=ds)
    assert (first.folder_uid, first.folder_created, first.datasource) == (
        "k-city-pilots",
        True,
        "created",
    )
    calls = [(m, p) for m, p, _ in grafana.requests]
    assert calls[:4] == [
        ("GET", f"/api/datasources/uid/{DATASOURCE_UID}"),
        ("POST", "/api/datasources"),
        ("GET", "/api/folders/k-city-pilots"),
        ("POST", "/api/folders"),
    ]
    assert calls[4:] == [("POST", "/api/dashboards/db")] * len(dashboards)
    for uid, saved in grafana.dashboards.items():
        assert saved["folderUid"] == "k-city-pilots" and saved["overwrite"] is True
        assert saved["dashboard"]["id"] is None
        assert saved["dashboard"]["panels"] == dashboards[uid]["panels"]
    assert set(grafana.dashboards) == set(dashboards)

    grafana.requests.clear()
    again = push(
        connect(grafana.url + "/", TOKEN), dashboards, folder="K-City Pilots", datasource=ds
    )
    assert (again.folder_created, again.datasource, again.dashboards) == (
        False,
        "updated",
        tuple(dashboards),
    )
    assert ("PUT", f"/api/datasources/uid/{DATASOURCE_UID}") in [
        (m, p) for m, p, _ in grafana.requests
    ]
    assert ("POST", "/api/folders") not in [(m, p) for m, p, _ in grafana.requests]


def test_push_errors_are_one_clear_line(grafana: FakeGrafana) -> None:
    with pytest.raises(PushError) as refused:
        push(connect(grafana.url, "wrong"), build_all())
    assert refused.value.status == 401
    closed = FakeGrafana()
    url = closed.url
    closed.server_close()
    with pytest.raises(PushError, match="cannot reach Grafana"):
        push(connect(url, TOKEN, timeout=2), build_all())


def test_cli_push_and_build(grafana: FakeGrafana, tmp_path: Path) -> None:
    env = {**os.environ, "KCITY_DATA_DIR": str(tmp_path / "data")}
    cli = [sys.executable, "-m", "kcity", "dashboards"]
    ok = subprocess.run(
        [
            *cli,
            "push",
            "--url",
            grafana.url,
            "--token",
            TOKEN,
            "--create-datasource",
            "--database-url",
            "postgresql://reader:pw@timescaledb:5432/kcity",
        ],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stderr
    assert "dashboard kcity-overview: saved" in ok.stdout
    assert grafana.datasources[DATASOURCE_UID]["user"] == "reader"
    bad = subprocess.run(
        [*cli, "push", "--url", grafana.url, "--token", "nope"],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert bad.returncode == 1
    assert bad.stderr.startswith("kcity: error: grafana:") and bad.stderr.count("\n") == 1
    built = subprocess.run(
        [*cli, "build", "--out", str(tmp_path / "out")],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert built.returncode == 0, built.stderr
    assert sorted(p.stem for p in (tmp_path / "out").glob("*.json")) == sorted(EXPECTED)


# --- reading right: thresholds, units, links, filters, annotations, language -------------


def _panels(lang: str = "en") -> list[tuple[str, dict[str, Any]]]:
    return [(uid, p) for uid, d in build_all(lang).items() for p in d["panels"]]


def _override(panel: dict[str, Any], field: str, prop: str) -> Any:
    for o in panel.get("fieldConfig", {}).get("overrides", []):
        if o["matcher"] == {"id": "byName", "options": field}:
            for p in o["properties"]:
                if p["id"] == prop:
                    return p["value"]
    return None


def test_counts_are_neutral_and_completeness_is_red_below_90_amber_below_95() -> None:
    stats = [(u, p) for u, p in _panels() if p["type"] == "stat"]
    assert stats
    for uid, panel in stats:
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert steps == [{"color": "text", "value": None}], f"{uid} / {panel['title']}"
    coloured = 0
    # The alert rules' own columns, evaluated inside the portfolio's query, are not shown.
    inner = {c for r in RULES for c in re.findall(r"AS (completeness\w*)", r.sql)}
    for uid, panel in _panels():
        for target in panel.get("targets", []):
            for column in set(re.findall(r"\b(completeness_\w+)", target["rawSql"])):
                if uid == "kcity-portfolio" and column in inner:
                    continue
                steps = _override(panel, column, "thresholds")["steps"]
                assert [(s["color"], s["value"]) for s in steps] == [
                    ("red", None),
                    ("orange", 90.0),
                    ("green", 95.0),
                ]
                coloured += 1
    assert coloured >= 2  # the streetlight savings stat and the overview's pilots table


def test_units_live_in_unit_not_in_names() -> None:
    for uid, panel in _panels():
        for target in panel.get("targets", []):
            aliases = re.findall(r'AS "([^"]+)"', target["rawSql"])
            assert not [a for a in aliases if "[" in a], f"{uid} / {panel['title']}: {aliases}"
        for o in panel.get("fieldConfig", {}).get("overrides", []):
            for prop in o["properties"]:
                if prop["id"] == "displayName":
                    assert "[" not in prop["value"]
    sl = {p["title"]: p for u, p in _panels() if u == "kcity-streetlight"}
    assert _override(sl["Savings to date"], "savings_kwh", "unit") == "kwatth"
    assert _override(sl["Power and dim level"], "dim_pct", "unit") == "percent"


def test_every_device_table_links_to_the_device_with_var_device() -> None:
    tables = 0
    for uid, panel in _panels():
        sql = " ".join(t["rawSql"] for t in panel.get("targets", []))
        select = sql.split("FROM")[0].removeprefix("SELECT")
        outputs = [c.strip().split()[-1].split(".")[-1] for c in select.split(",") if c.strip()]
        if panel["type"] == "table" and "device_id" in outputs:
            links = _override(panel, "device_id", "links")
            assert links, f"{uid} / {panel['title']} has no device link"
            assert "var-device=${__value.raw}" in links[0]["url"]
            assert "var-pilot=${__data.fields.pilot_id}" in links[0]["url"]
            assert "pilot_id" in sql.split("FROM")[0]
            tables += 1
    assert tables >= 5


def test_pilot_variable_filters_every_query_that_can_be_filtered() -> None:
    """On a dashboard with a pilot variable, a query reading a table that has the pilot
    (directly, or through its devices) filters by it; only
    the workers' statistics (ingest_stats) belong to no pilot."""
    for uid, dash in build_all().items():
        names = {v["name"] for v in dash.get("templating", {}).get("list", [])}
        if "pilot" not in names:
            continue
        for _, title, _, target in [x for x in TARGETS if x[0] == uid]:
            sql = target["rawSql"]
            if "ingest_stats" in sql:
                continue
            if any(t in sql for t in ("devices", "device_id", "pilot_id", "ingest_messages")):
                assert "$pilot" in sql or "$device" in sql, f"{uid} / {title}"


def test_event_and_outage_annotations_show_the_seeded_facts(
    conn: psycopg.Connection, seeded: Seeded
) -> None:
    events = _run(conn, seeded, "kcity-streetlight", "annotation Device events", "Anno")
    assert sorted(r["text"] for r in events) == [
        "madiun-sl-001: fault (lamp_failure)",
        "madiun-sl-001: fault_cleared",
    ]
    outages = _run(conn, seeded, "kcity-streetlight", "annotation Communication outages", "Anno")
    # sl-002: one message 5 h ago, then its boot-1 messages from 120 min ago.
    assert [(r["time"], r["timeend"]) for r in outages] == [
        (seeded.now - timedelta(hours=5), seeded.now - timedelta(minutes=120))
    ]
    assert outages[0]["tags"] == "outage" and outages[0]["text"].startswith("madiun-sl-002: 3.0")


def _words_out(sql: str) -> str:
    return re.sub(r"'(?:[^']|'')*'", "''", sql)


def test_korean_dashboards_are_korean() -> None:
    hangul = re.compile(r"[\uac00-\ud7a3]")
    en, ko = build_all("en"), build_all("ko")
    assert set(en) == set(ko)
    for uid in en:
        assert hangul.search(ko[uid]["title"]) and not hangul.search(en[uid]["title"])
        for p_en, p_ko in zip(en[uid]["panels"], ko[uid]["panels"], strict=True):
            assert p_en["title"] != p_ko["title"] and hangul.search(p_ko["title"])
            # The same query; only its words (string literals: the portfolio's rule titles
            # and headline names) are in the dashboard's language.
            assert [_words_out(t["rawSql"]) for t in p_en.get("targets", [])] == [
                _words_out(t["rawSql"]) for t in p_ko.get("targets", [])
            ]


def test_luminaire_map_shows_located_devices_only(conn: psycopg.Connection, seeded: Seeded) -> None:
    rows = _run(conn, seeded, "kcity-streetlight", "Where the luminaires are")
    assert [(r["device_id"], r["state"]) for r in rows] == [
        ("madiun-sl-001", "online"),
        ("madiun-sl-002", "silent"),
    ]
    commands = _run(conn, seeded, "kcity-streetlight", "annotation Commands", "Anno")
    assert [r["text"] for r in commands] == ["madiun-sl-001: set_level (queued)"]


def test_no_panel_reads_a_stored_result_document() -> None:
    """Panels read result rows (`analytics_summary`, `savings_nightly`, `coverage_daily`),
    never the megabyte JSON documents of `analytics_results` (issue #23)."""
    sql = [t["rawSql"] for _, p in _panels() for t in p.get("targets", [])]
    assert sql and any("analytics_summary" in q for q in sql)
    assert not [q for q in sql if "analytics_results" in q or "result->" in q]


def test_stored_savings_keep_their_luminaires_as_rows(seeded: Seeded, db_url: str) -> None:
    """The trigger on `analytics_results` copies each stored savings result's per-luminaire
    table into `savings_luminaires` (what the streetlight dashboard's table reads)."""
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT device_id, actual_kwh, baseline_kwh, savings_kwh, savings_pct, nights,"
            " nights_excluded, completeness_pct, full_power_w, full_power_source,"
            " full_power_samples FROM savings_luminaires ORDER BY device_id"
        ).fetchall()
    assert [dict(zip(PER_LUMINAIRE[0], r, strict=True)) for r in rows] == PER_LUMINAIRE
