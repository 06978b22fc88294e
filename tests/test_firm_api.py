"""The firm's API on the real app, database, broker and ingest: dead letters, the payload
checker (held to what the running ingest service actually did with the same bytes), device
status, credential rotation, `kcity payload check`, and their 4xx answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from kcity import cli
from kcity.api import create_app
from kcity.settings import Settings
from kcity.stack.broker_admin import BrokerAdmin
from tests.fixtures.api_world import World, build_world
from tests.fixtures.ingest import (
    DEVICE_PASSWORD,
    count,
    ingest_config,
    publisher,
    running_ingest,
    wait_count,
)
from tests.test_api import connack

V1 = "/api/v1"
NOW = datetime.now(UTC).replace(microsecond=0)


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def light(ts: str, **extra: Any) -> dict[str, Any]:
    return {"ts": ts, "power_w": 60.0, "dim_pct": 50.0, "lamp_on": True, **extra}


@pytest.fixture(scope="module")
def world(db_url: str) -> World:
    with psycopg.connect(db_url, autocommit=True) as c:
        return build_world(c, uuid.uuid4().hex[:8])


@pytest.fixture(scope="module")
def client(settings: Settings, world: World) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def auth(world: World, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.tokens[role]}"}


@pytest.fixture(scope="module")
def sent(settings: Settings, world: World, broker_admin: BrokerAdmin) -> dict[str, Any]:
    """Three messages from the world's lamp through the real broker and ingest: a good one,
    one with two bad records among three, and one that is not JSON."""
    broker_admin.add_device(world.madiun, world.lamp, DEVICE_PASSWORD)
    mixed = {
        "v": 1,
        "boot": 3,
        "seq": 2,
        "records": [
            light(iso(NOW - timedelta(minutes=10))),
            light(iso(NOW - timedelta(minutes=5)), dim_pct=140),
            light("2014-12-31T23:00:00Z"),
        ],
    }
    good = {"v": 1, "boot": 3, "seq": 1, "records": [light(iso(NOW - timedelta(minutes=15)))]}
    topic = f"kcity/v1/{world.madiun}/{world.lamp}/telemetry"
    config = ingest_config(settings, f"firm-{uuid.uuid4().hex[:6]}")
    with running_ingest(config), publisher(settings, world.lamp) as pub:
        for body in (good, mixed):
            pub.publish(topic, json.dumps(body).encode())
        pub.publish(topic, b"{not json")
        pub.flush()
        wait_count(
            settings.database_url,
            "SELECT count(*) FROM dead_letters WHERE device_id = %s",
            (world.lamp,),
            3,
        )
    with psycopg.connect(settings.database_url) as conn:
        letters = conn.execute(
            "SELECT id, stage, reason FROM dead_letters WHERE device_id = %s ORDER BY id",
            (world.lamp,),
        ).fetchall()
    return {"mixed": mixed, "letters": letters}


# --- dead letters ---------------------------------------------------------------------------


def test_dead_letters_newest_first_with_reason_and_payload(
    client: TestClient, world: World, sent: dict[str, Any]
) -> None:
    # The session broker is shared: other modules' retained statuses under `madiun` reach this
    # module's ingest too (as unknown devices), so the lamp's letters are picked by device.
    everything = client.get(
        f"{V1}/pilots/{world.madiun}/dead-letters", headers=auth(world, "operator")
    ).json()
    ids = [d["id"] for d in everything]
    assert ids == sorted(ids, reverse=True)
    r = client.get(
        f"{V1}/pilots/{world.madiun}/dead-letters",
        params={"device": world.lamp},
        headers=auth(world, "operator"),
    )
    assert r.status_code == 200, r.text
    got = r.json()
    assert [d["id"] for d in got] == sorted((row[0] for row in sent["letters"]), reverse=True)
    assert {d["id"] for d in got} <= set(ids)
    assert got[0]["stage"] == "decode" and got[0]["payload"] == "{not json"
    assert got[0]["payload_bytes"] == len(b"{not json") and not got[0]["truncated"]
    assert {d["stage"] for d in got[1:]} == {"record", "time"}

    only = client.get(
        f"{V1}/pilots/{world.madiun}/dead-letters?stage=time&device={world.lamp}",
        headers=auth(world, "evaluator"),
    ).json()
    assert [d["stage"] for d in only] == ["time"]
    page = client.get(
        f"{V1}/pilots/{world.madiun}/dead-letters"
        f"?limit=1&before={got[0]['id']}&device={world.lamp}",
        headers=auth(world, "operator"),
    ).json()
    assert [d["id"] for d in page] == [got[1]["id"]]
    later = client.get(
        f"{V1}/pilots/{world.madiun}/dead-letters",
        params={"from": iso(NOW + timedelta(days=1))},
        headers=auth(world, "operator"),
    ).json()
    assert later == []
    one = client.get(
        f"{V1}/pilots/{world.madiun}/dead-letters/{got[1]['id']}", headers=auth(world, "admin")
    )
    assert one.json() == got[1]


def test_long_payloads_are_capped(
    client: TestClient, world: World, conn: psycopg.Connection
) -> None:
    big = b"x" * 10_000
    (lid,) = conn.execute(
        "INSERT INTO dead_letters (topic, payload, stage, reason, pilot_id, device_id)"
        " VALUES ('t', %s, 'size', 'oversize: test', %s, %s) RETURNING id",
        (big, world.madiun, world.meter),
    ).fetchone() or (0,)
    got = client.get(
        f"{V1}/pilots/{world.madiun}/dead-letters/{lid}", headers=auth(world, "operator")
    ).json()
    assert got["payload_bytes"] == 10_000 and got["truncated"]
    assert 0 < len(got["payload"]) <= 4096


@pytest.mark.parametrize(
    ("path", "role", "status", "fragment"),
    [
        ("/pilots/mukdahan/dead-letters", "operator", 403, "for pilot 'madiun'"),
        ("/pilots/madiun/dead-letters", "viewer", 403, "may not read raw telemetry"),
        ("/pilots/nowhere/dead-letters", "admin", 404, "unknown pilot"),
        ("/pilots/madiun/dead-letters?stage=bogus", "admin", 422, "unknown stage 'bogus'"),
        ("/pilots/madiun/dead-letters?from=2026-01-01T00:00:00", "admin", 422, "UTC offset"),
        ("/pilots/madiun/dead-letters?limit=0", "admin", 422, "limit"),
        ("/pilots/madiun/dead-letters/999999", "operator", 404, "no dead letter 999999"),
    ],
)
def test_dead_letter_refusals(
    client: TestClient, world: World, path: str, role: str, status: int, fragment: str
) -> None:
    r = client.get(V1 + path, headers=auth(world, role))
    assert r.status_code == status, r.text
    assert fragment in r.text
    assert client.get(V1 + path).status_code == 401


def test_another_pilots_dead_letter_is_not_found(
    client: TestClient, world: World, conn: psycopg.Connection
) -> None:
    (lid,) = conn.execute(
        "INSERT INTO dead_letters (topic, payload, stage, reason, pilot_id, device_id)"
        " VALUES ('t', 'x', 'decode', 'bad json: x', %s, %s) RETURNING id",
        (world.mukdahan, world.drone),
    ).fetchone() or (0,)
    r = client.get(f"{V1}/pilots/{world.madiun}/dead-letters/{lid}", headers=auth(world, "admin"))
    assert r.status_code == 404


# --- the payload checker --------------------------------------------------------------------


def test_checker_says_what_ingest_did_and_stores_nothing(
    client: TestClient, world: World, sent: dict[str, Any], settings: Settings
) -> None:
    before = count(settings.database_url, "SELECT count(*) FROM dead_letters")
    readings = count(settings.database_url, "SELECT count(*) FROM streetlight_readings")
    r = client.post(
        f"{V1}/pilots/{world.madiun}/payloads/check",
        json={"device": world.lamp, "payload": sent["mixed"]},
        headers=auth(world, "operator"),
    )
    assert r.status_code == 200, r.text
    report = r.json()
    # What the running ingest service dead-lettered for the same message (ids 1 and 2 of 3):
    stored = [(stage, reason) for _, stage, reason in sent["letters"] if stage != "decode"]
    rejected = [(v["stage"], v["reason"]) for v in report["records"] if not v["accepted"]]
    assert sorted(rejected) == sorted(stored)
    assert [v["index"] for v in report["records"] if not v["accepted"]] == [1, 2]
    assert (report["accepted"], report["records_accepted"], report["records_rejected"]) == (
        True,
        1,
        2,
    )
    as_text = client.post(
        f"{V1}/pilots/{world.madiun}/payloads/check",
        json={"device": world.lamp, "payload": "{not json"},
        headers=auth(world, "operator"),
    ).json()
    decode = next(reason for _, stage, reason in sent["letters"] if stage == "decode")
    assert (as_text["accepted"], as_text["stage"], as_text["reason"]) == (False, "decode", decode)
    fixed = {**sent["mixed"], "records": sent["mixed"]["records"][:1]}
    ok = client.post(
        f"{V1}/pilots/{world.madiun}/payloads/check",
        json={"device": world.lamp, "payload": fixed},
        headers=auth(world, "operator"),
    ).json()
    assert ok["records_rejected"] == 0 and ok["records"] == [
        {"index": 0, "accepted": True, "stage": None, "reason": None}
    ]
    assert count(settings.database_url, "SELECT count(*) FROM dead_letters") == before
    assert count(settings.database_url, "SELECT count(*) FROM streetlight_readings") == readings


@pytest.mark.parametrize(
    ("body", "role", "status", "fragment"),
    [
        ({"device": "nope-1", "payload": {}}, "operator", 404, "'nope-1'"),
        ({"device": "LAMP", "payload": {}}, "operator", 404, "LAMP"),
        ({"device": "{lamp}", "channel": "cmd", "payload": {}}, "operator", 422, "telemetry"),
        ({"device": "{lamp}"}, "operator", 422, "payload"),
        ({"device": "{lamp}", "payload": {}, "extra": 1}, "operator", 422, "extra"),
        ({"device": "{lamp}", "payload": {}}, "viewer", 403, "may not list devices"),
    ],
)
def test_checker_refusals(
    client: TestClient, world: World, body: dict[str, Any], role: str, status: int, fragment: str
) -> None:
    if body.get("device") == "{lamp}":
        body = {**body, "device": world.lamp}
    r = client.post(
        f"{V1}/pilots/{world.madiun}/payloads/check", json=body, headers=auth(world, role)
    )
    assert r.status_code == status, r.text
    assert fragment in r.text


def test_checker_on_another_pilots_device_is_403_for_operator(
    client: TestClient, world: World
) -> None:
    r = client.post(
        f"{V1}/pilots/{world.mukdahan}/payloads/check",
        json={"device": world.drone, "payload": {}},
        headers=auth(world, "operator"),
    )
    assert r.status_code == 403


def test_payload_check_command(
    tmp_path: Path, db_url: str, world: World, sent: dict[str, Any]
) -> None:
    env = {"KCITY_DATA_DIR": str(tmp_path / ".kcity"), "KCITY_DATABASE_URL": db_url}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(sent["mixed"]))
    args = ["payload", "check", str(bad), "--pilot", world.madiun, "--device", world.lamp]
    refused = CliRunner().invoke(cli.app, [*args, "--json"], env=env)
    assert refused.exit_code == 1, refused.output
    assert json.loads(refused.stdout)["records_rejected"] == 2
    good = tmp_path / "good.json"
    good.write_text(json.dumps({**sent["mixed"], "records": sent["mixed"]["records"][:1]}))
    args[2] = str(good)
    accepted = CliRunner().invoke(cli.app, args, env=env)
    assert accepted.exit_code == 0, accepted.output
    assert "1 record(s) would be stored, 0 dead-lettered" in accepted.stdout

    # A user mistake is one line on stderr and a non-zero exit, not a traceback.
    full = {k: v for k, v in os.environ.items() if not k.startswith("KCITY_")} | env
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "kcity",
            "payload",
            "check",
            str(tmp_path / "none.json"),
            "--pilot",
            world.madiun,
            "--device",
            world.lamp,
        ],
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 1
    assert (
        missing.stderr.startswith("kcity: error: cannot read") and missing.stderr.count("\n") == 1
    )
    other = CliRunner().invoke(
        cli.app,
        ["payload", "check", str(good), "--pilot", world.mukdahan, "--device", world.lamp],
        env=env,
    )
    assert "has no device" in str(other.exception)


# --- device status and rotation -------------------------------------------------------------


def test_device_status(
    client: TestClient, world: World, conn: psycopg.Connection, sent: dict[str, Any]
) -> None:
    """A device that reported every 10 minutes yesterday (half of its 5-minute intervals)
    and is seen now; the world's meter, never heard from, sorts first."""
    device = f"madiun-sl-st-{uuid.uuid4().hex[:6]}"
    conn.execute(
        "INSERT INTO devices (id, pilot_id, kind, password_hash, last_seen)"
        " VALUES (%s, %s, 'streetlight', 'x', now())",
        (device, world.madiun),
    )
    zone = ZoneInfo("Asia/Jakarta")
    today = datetime.now(zone).date()
    midnight = datetime.combine(today - timedelta(days=1), time(), zone)
    conn.cursor().executemany(
        "INSERT INTO streetlight_readings (device_id, ts, power_w, dim_pct, lamp_on)"
        " VALUES (%s, %s, 10, 10, true)",
        [(device, midnight + timedelta(minutes=10 * i)) for i in range(144)],
    )
    r = client.get(
        f"{V1}/pilots/{world.madiun}/devices/{device}/status", headers=auth(world, "operator")
    )
    assert r.status_code == 200, r.text
    st = r.json()
    assert st["silent"] is False
    assert st["completeness_yesterday_pct"] == pytest.approx(50.0)
    assert st["completeness_today_pct"] == 0.0

    listed = client.get(
        f"{V1}/pilots/{world.madiun}/device-status", headers=auth(world, "evaluator")
    ).json()
    silent = [s["device_id"] for s in listed if s["silent"]]
    assert world.meter in silent and device not in silent
    assert [s["silent"] for s in listed] == sorted((s["silent"] for s in listed), reverse=True)
    meter = next(s for s in listed if s["device_id"] == world.meter)
    assert meter["completeness_yesterday_pct"] == 0.0  # registered, silent: counted at 0 %
    assert meter["last_seen"] is None
    lamp = next(s for s in listed if s["device_id"] == world.lamp)
    newest = max(sent["letters"])
    assert (lamp["last_dead_letter"]["id"], lamp["last_dead_letter"]["stage"]) == newest[:2]
    assert (
        client.get(
            f"{V1}/pilots/{world.madiun}/devices/nope-9/status", headers=auth(world, "operator")
        ).status_code
        == 404
    )
    assert (
        client.get(
            f"{V1}/pilots/{world.mukdahan}/device-status", headers=auth(world, "operator")
        ).status_code
        == 403
    )


def test_rotation_cuts_the_old_password_and_shows_the_new_once(
    client: TestClient, world: World, settings: Settings
) -> None:
    device = f"madiun-sl-rot-{uuid.uuid4().hex[:6]}"
    made = client.post(
        f"{V1}/pilots/{world.madiun}/devices",
        json={"device_id": device},
        headers=auth(world, "operator"),
    )
    assert made.status_code == 201, made.text
    old = made.json()["password"]
    assert connack(settings, device, old) == 0
    assert (
        client.post(
            f"{V1}/pilots/{world.madiun}/devices/{device}/credentials",
            headers=auth(world, "evaluator"),
        ).status_code
        == 403
    )
    r = client.post(
        f"{V1}/pilots/{world.madiun}/devices/{device}/credentials",
        headers=auth(world, "operator"),
    )
    assert r.status_code == 200, r.text
    new = r.json()
    assert new["rotated"] is True and new["password"] != old
    assert connack(settings, device, new["password"]) == 0
    assert connack(settings, device, old) != 0
    listed = client.get(
        f"{V1}/pilots/{world.madiun}/devices/{device}", headers=auth(world, "operator")
    ).text
    assert new["password"] not in listed

    client.delete(f"{V1}/pilots/{world.madiun}/devices/{device}", headers=auth(world, "operator"))
    revoked = client.post(
        f"{V1}/pilots/{world.madiun}/devices/{device}/credentials",
        headers=auth(world, "operator"),
    )
    assert revoked.status_code == 409 and "revoked" in revoked.text
    assert (
        client.post(
            f"{V1}/pilots/{world.madiun}/devices/nope-9/credentials", headers=auth(world, "admin")
        ).status_code
        == 404
    )
