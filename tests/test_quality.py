"""Data quality against what was really sent: every registered device is expected (a silent
one counts at 0 %), commissioning dates bound that expectation, and conflicts and reused
message numbers are counted, never dropped (DESIGN §5, §6)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from devices.payloads import encode_message
from devices.pilots import load_pilot
from kcity.analyses import Window, run_quality
from kcity.registry import DeviceDates, apply_pilot, create_device
from kcity.settings import Settings
from kcity.stack.broker_admin import BrokerAdmin
from tests.fixtures.ingest import (
    DEVICE_PASSWORD,
    count,
    ingest_config,
    publisher,
    running_ingest,
    wait_until,
)

PILOTS = Path(__file__).resolve().parent.parent / "pilots"
WINDOW = Window(date(2026, 10, 1), date(2026, 10, 4))
TZ = ZoneInfo("Asia/Jakarta")  # madiun.toml's zone
STEP = timedelta(seconds=300)  # madiun.toml's record interval
PER_DAY = 288


def _day(day: date) -> list[dict[str, Any]]:
    first = datetime.combine(day, datetime.min.time(), TZ).astimezone(UTC)
    return [
        {"ts": first + k * STEP, "power_w": 40.0, "dim_pct": 30.0, "lamp_on": True}
        for k in range(PER_DAY)
    ]


def _messages(days: list[date]) -> list[bytes]:
    records = [r for d in days for r in _day(d)]
    return [
        encode_message(0, seq, records[i : i + 96], sent_at=datetime.now(UTC))
        for seq, i in enumerate(range(0, len(records), 96))
    ]


def _pilot(conn: psycopg.Connection, admin: BrokerAdmin, uid: str, devices: dict[str, Any]) -> str:
    pilot = load_pilot(PILOTS / "madiun.toml").model_copy(update={"id": f"q-{uid}"})
    apply_pilot(conn, pilot)
    for device, dates in devices.items():
        create_device(conn, pilot.id, device, **dates)
        admin.add_device(pilot.id, device, DEVICE_PASSWORD)
    return pilot.id


def test_silent_devices_and_days_count_and_conflicts_are_kept(
    settings: Settings, db_url: str, conn: psycopg.Connection, broker_admin: BrokerAdmin, uid: str
) -> None:
    d1, d2, d3 = (WINDOW.start + timedelta(days=i) for i in range(3))
    full, two, silent = f"full-{uid}", f"two-{uid}", f"silent-{uid}"
    late = f"late-{uid}"
    pilot = _pilot(conn, broker_admin, uid, {full: {}, two: {}, silent: {}})
    # Provisioned now, commissioned on day 2, decommissioned after: expected days 2 only.
    other = _pilot(
        conn,
        broker_admin,
        f"{uid}b",
        {late: {"commissioned_on": d2, "decommissioned_on": d3}},
    )
    sent = {full: _messages([d1, d2, d3]), two: _messages([d1, d3]), late: _messages([d2])}
    stored = _day(d1)[10]
    with running_ingest(ingest_config(settings, f"q-{uid}")):
        for device, messages in sent.items():
            with publisher(settings, device) as pub:
                pilot_id = other if device == late else pilot
                topic = f"kcity/v1/{pilot_id}/{device}/telemetry"
                for payload in messages:
                    pub.publish(topic, payload)
                if device == full:
                    pub.publish(topic, messages[0])  # an exact re-send: a duplicate
                    # Same key, other reading: a conflict (boot 1 keeps the sequence whole).
                    pub.publish(topic, encode_message(1, 0, [{**stored, "power_w": 55.0}]))
                    # Message number 1 again with other content (an exact stored record).
                    pub.publish(topic, encode_message(0, 1, [stored]))
        sql = "SELECT count(*) FROM ingest_messages WHERE device_id = ANY(%s)"
        ids = [full, two, late]
        total = sum(len(m) for m in sent.values()) + 1
        wait_until(
            lambda: (
                count(db_url, sql, (ids,)) == total
                and count(
                    db_url,
                    "SELECT sum(copies + reuses) FROM ingest_messages WHERE device_id = %s",
                    (full,),
                )
                == len(sent[full]) + 3
            ),
            "every message",
        )
    with psycopg.connect(db_url) as c:
        body = run_quality(c, pilot, WINDOW)
        later = run_quality(c, other, WINDOW)
        letter = c.execute(
            "SELECT stage, reason, payload, record_ts FROM dead_letters WHERE device_id = %s",
            (full,),
        ).fetchall()
        power = c.execute(
            "SELECT power_w FROM streetlight_readings WHERE device_id = %s AND ts = %s",
            (full, stored["ts"]),
        ).fetchone()
    assert body["devices"] == 3
    assert body["records"] == 5 * PER_DAY
    assert body["expected_records"] == 9 * PER_DAY
    assert body["completeness_pct"] == pytest.approx(100 * 5 / 9, abs=0.01)  # 55.56 %
    assert body["silent_devices"] == [silent]
    per_device = {d["device_id"]: d for d in body["per_device"]}
    assert per_device[silent]["records"] == 0 and per_device[silent]["completeness_pct"] == 0
    assert per_device[two]["records"] == 2 * PER_DAY
    assert per_device[full]["records"] == 3 * PER_DAY
    days = {(r["device_id"], r["day"]): r for r in body["per_device_day"]}
    assert days[(two, d2.isoformat())]["records"] == 0  # the silent day is a row, at 0 %
    assert days[(two, d2.isoformat())]["completeness_pct"] == 0
    first = days[(full, d1.isoformat())]
    assert (first["duplicates"], first["conflicts"], first["seq_reuse"]) == (1, 1, 1)
    assert (first["seq_gaps"], first["dead_letters"]) == (0, 1)
    assert (body["duplicates"], body["conflicts"], body["seq_reuse"]) == (1, 1, 1)
    assert body["warnings"] == []
    # The conflict: a dead letter with both readings; the first stored value stays.
    assert power == (40.0,)
    [(stage, reason, raw, record_ts)] = letter
    assert stage == "conflict" and "power_w" in reason
    both = json.loads(bytes(raw))
    assert (both["stored"]["power_w"], both["received"]["power_w"]) == (40.0, 55.0)
    assert record_ts == stored["ts"]
    # Commissioning bounds expectation; provisioning time (today) does not.
    assert later["expected_records"] == PER_DAY
    assert later["completeness_pct"] == 100.0 and later["silent_devices"] == []


def test_decommissioning_before_commissioning_is_refused(
    conn: psycopg.Connection, broker_admin: BrokerAdmin, uid: str
) -> None:
    pilot = _pilot(conn, broker_admin, uid, {})
    with pytest.raises(DeviceDates, match="must be after"):
        create_device(
            conn,
            pilot,
            f"bad-{uid}",
            commissioned_on=date(2026, 10, 2),
            decommissioned_on=date(2026, 10, 2),
        )


def test_a_window_without_data_warns(
    conn: psycopg.Connection, broker_admin: BrokerAdmin, uid: str, db_url: str
) -> None:
    pilot = _pilot(conn, broker_admin, uid, {f"sl-{uid}": {}})
    with psycopg.connect(db_url) as c:
        body = run_quality(c, pilot, Window(date(2025, 1, 1), date(2025, 1, 2)))
    assert body["warnings"] and body["records"] == 0
    assert body["silent_devices"] == [f"sl-{uid}"] and body["completeness_pct"] == 0


def test_the_cli_warns_on_stderr_and_says_what_the_dates_mean(
    settings: Settings, conn: psycopg.Connection, broker_admin: BrokerAdmin, uid: str
) -> None:
    pilot = _pilot(conn, broker_admin, uid, {f"sl-{uid}": {}})
    env = {
        "KCITY_DATABASE_URL": settings.database_url,
        "PATH": "/usr/bin:/bin",
        "KCITY_DATA_DIR": str(settings.data_dir),
    }
    args = ["--from", "2025-01-01", "--to", "2025-01-02", "--json"]
    for verb in ("quality", "savings"):
        done = subprocess.run(
            [sys.executable, "-m", "kcity", verb, pilot, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("kcity: warning:"), done.stderr
        body = json.loads(done.stdout)
        assert body["warnings"] and body["window"]["timezone"] == "Asia/Jakarta"
        assert "'to' excluded" in body["window"]["meaning"]
    usage = subprocess.run(
        [sys.executable, "-m", "kcity", "quality", "--help"],
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "local date in the pilot's time zone" in usage.stdout
    assert "exclusive" in usage.stdout
