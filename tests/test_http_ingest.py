"""HTTP ingest on the real app and database: a device posts with its MQTT credentials and
its records land in the tables MQTT ingest writes, with the same dedupe and dead letters."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from devices.payloads import MAX_PAYLOAD_BYTES
from devices.pilots import load_pilot
from kcity import registry
from kcity.api import create_app
from kcity.api.device_gate import DeviceGate
from kcity.settings import Settings
from tests.fixtures.ingest import count

V1 = "/api/v1"
MADIUN = Path(__file__).resolve().parents[1] / "pilots" / "madiun.toml"


def add_pilot(conn: psycopg.Connection, pilot: str) -> None:
    """A streetlight pilot like Madiun under another id."""
    registry.apply_pilot(conn, load_pilot(MADIUN).model_copy(update={"id": pilot}))


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def lamp_message(seq: int, n: int, *, bad_dim_at: int | None = None) -> bytes:
    records: list[dict[str, Any]] = []
    for i in range(n):
        records.append(
            {
                "ts": f"2026-10-01T12:{i:02d}:00Z",
                "power_w": 40.0 + i,
                "dim_pct": 150 if i == bad_dim_at else 30,
                "lamp_on": True,
            }
        )
    return json.dumps({"v": 1, "boot": 0, "seq": seq, "records": records}).encode()


@pytest.fixture
def devices(conn: psycopg.Connection, uid: str) -> dict[str, tuple[str, str, str]]:
    """Two devices of one pilot and one of another: name -> (pilot, device, password)."""
    pa, pb = f"pa-{uid}", f"pb-{uid}"
    add_pilot(conn, pa)
    add_pilot(conn, pb)
    made = {}
    for name, pilot in (("a", pa), ("b", pa), ("c", pb)):
        device = f"{name}-{uid}"
        made[name] = (pilot, device, registry.create_device(conn, pilot, device, "streetlight"))
    return made


def test_good_credentials_store_like_mqtt(
    client: TestClient, devices: dict[str, tuple[str, str, str]], db_url: str
) -> None:
    pilot, device, password = devices["a"]
    url = f"{V1}/ingest/{pilot}/{device}/telemetry"
    first = client.post(url, content=lamp_message(1, 4, bad_dim_at=2), auth=(device, password))
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["records"], body["stored"], body["duplicates"]) == (3, 3, 0)
    assert body["dead_lettered"] == 1 and "dim_pct" in body["reasons"][0]
    readings = "SELECT count(*) FROM streetlight_readings WHERE device_id = %s"
    assert count(db_url, readings, (device,)) == 3
    letters = "SELECT count(*) FROM dead_letters WHERE device_id = %s AND stage = 'record'"
    assert count(db_url, letters, (device,)) == 1
    # The same message again: nothing new, the message and its records are duplicates.
    again = client.post(url, content=lamp_message(1, 4, bad_dim_at=2), auth=(device, password))
    assert again.status_code == 200
    assert (again.json()["stored"], again.json()["duplicates"]) == (0, 3)
    assert again.json()["duplicate_message"] is True
    assert count(db_url, readings, (device,)) == 3
    copies = "SELECT copies FROM ingest_messages WHERE device_id = %s AND seq = 1"
    assert count(db_url, copies, (device,)) == 2
    seen = "SELECT count(*) FROM devices WHERE id = %s AND last_seen IS NOT NULL"
    assert count(db_url, seen, (device,)) == 1


def test_bad_and_foreign_credentials(
    client: TestClient, devices: dict[str, tuple[str, str, str]], conn: psycopg.Connection
) -> None:
    pilot, device, password = devices["a"]
    _, other, other_password = devices["b"]
    far_pilot, far_device, _ = devices["c"]
    url = f"{V1}/ingest/{pilot}/{device}/telemetry"
    body = lamp_message(1, 1)
    assert client.post(url, content=body).status_code == 401
    wrong = client.post(url, content=body, auth=(device, password + "x"))
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"].startswith("Basic")
    assert client.post(url, content=body, auth=("nobody-here", password)).status_code == 401
    # Another device's path, of the same pilot and of another pilot: 403, nothing stored.
    foreign = client.post(url, content=body, auth=(other, other_password))
    assert foreign.status_code == 403 and other in foreign.json()["detail"]
    elsewhere = f"{V1}/ingest/{far_pilot}/{far_device}/telemetry"
    assert client.post(elsewhere, content=body, auth=(device, password)).status_code == 403
    stray = f"{V1}/ingest/{far_pilot}/{device}/telemetry"
    assert client.post(stray, content=body, auth=(device, password)).status_code == 403
    stored = conn.execute(
        "SELECT count(*) FROM streetlight_readings WHERE device_id IN (%s, %s)",
        (device, far_device),
    ).fetchone()
    assert stored == (0,)
    registry.revoke_device(conn, device)
    assert client.post(url, content=body, auth=(device, password)).status_code == 401


def test_oversize_and_unusable(
    client: TestClient, devices: dict[str, tuple[str, str, str]], db_url: str
) -> None:
    pilot, device, password = devices["a"]
    url = f"{V1}/ingest/{pilot}/{device}/telemetry"
    big = b'{"v":1,"pad":"' + b"x" * MAX_PAYLOAD_BYTES + b'"}'
    assert client.post(url, content=big, auth=(device, password)).status_code == 413
    junk = client.post(url, content=b"{not json", auth=(device, password))
    assert junk.status_code == 422 and "JSON" in junk.json()["detail"]
    no_records = json.dumps({"v": 1, "boot": 0, "seq": 5}).encode()
    envelope = client.post(url, content=no_records, auth=(device, password))
    assert envelope.status_code == 422 and "records" in envelope.json()["detail"]
    # Both refusals are kept as dead letters with their bytes, as MQTT ingest keeps them.
    with psycopg.connect(db_url) as c:
        rows = c.execute(
            "SELECT stage, payload FROM dead_letters WHERE device_id = %s ORDER BY id", (device,)
        ).fetchall()
    assert [(r[0], bytes(r[1])) for r in rows] == [
        ("decode", b"{not json"),
        ("envelope", no_records),
    ]
    bad_channel = client.post(
        f"{V1}/ingest/{pilot}/{device}/cmd", content=b"{}", auth=(device, password)
    )
    assert bad_channel.status_code == 422


def test_rate_limit_per_device(
    settings: Settings, devices: dict[str, tuple[str, str, str]], db_url: str
) -> None:
    pilot, device, password = devices["a"]
    _, other, other_password = devices["b"]
    limited = settings.model_copy(update={"http_ingest_per_minute": 3})
    with TestClient(create_app(limited)) as c:
        url = f"{V1}/ingest/{pilot}/{device}/telemetry"
        codes = [
            c.post(url, content=lamp_message(seq, 1), auth=(device, password)).status_code
            for seq in range(5)
        ]
        assert codes == [200, 200, 200, 429, 429]
        refused = c.post(url, content=lamp_message(9, 1), auth=(device, password))
        assert int(refused.headers["retry-after"]) >= 1
        # another device of the same pilot is not held back by the first one's flood
        url_b = f"{V1}/ingest/{pilot}/{other}/telemetry"
        ok_b = c.post(url_b, content=lamp_message(1, 1), auth=(other, other_password))
        assert ok_b.status_code == 200
    messages = "SELECT count(*) FROM ingest_messages WHERE device_id = %s"
    assert count(db_url, messages, (device,)) == 3


def test_gate_refills_and_remembers_only_the_same_hash() -> None:
    gate = DeviceGate(per_minute=60)  # one a second
    assert [gate.admit("d", 100.0) for _ in range(60)] == [0.0] * 60
    assert gate.admit("d", 100.0) == pytest.approx(1.0)
    assert gate.admit("d", 101.0) == 0.0  # a second later, one more
    gate.remember("d", "hash-1", "secret")
    assert gate.known("d", "hash-1", "secret")
    assert not gate.known("d", "hash-2", "secret")  # rotated: verify again
    assert not gate.known("d", "hash-1", "other")
