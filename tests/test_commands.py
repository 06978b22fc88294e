"""A command's whole life on the real stack: queued and sent through the API (MQTT, or a
ChirpStack downlink through the bridge), received by the SDK, closed by the device's
`command_ack` (acked, rejected) or by time (expired)."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import date, time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from devices.commands import DimmingProfile, check_params, encode_downlink
from devices.errors import PayloadError
from devices.sdk import DeviceClient
from ingest.lorawan_bridge import BridgeConfig
from kcity import device_commands, provisioning, registry, tokens
from kcity.api import create_app
from kcity.settings import Settings
from kcity.stack.broker_admin import BrokerAdmin
from tests.fixtures.ingest import ingest_config, running_ingest, wait_until
from tests.test_http_ingest import add_pilot
from tests.test_lorawan import (
    CHIRPSTACK_ACK,
    CHIRPSTACK_UP,
    NS_PASSWORD,
    lorawan_world,
    network_server,
    network_server_account,
    publish,
    running_bridge,
)
from tests.test_provisioning import cli_env, kcity

V1 = "/api/v1"
PROFILE = {
    "steps": [
        {"from": "18:00", "level_pct": 100},
        {"from": "22:00", "level_pct": 40},
        {"from": "05:00", "level_pct": 100},
    ],
    "adaptive": {"on_detect_pct": 100, "hold_s": 60},
}


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def bearer(conn: psycopg.Connection, role: str, pilot: str | None = None) -> dict[str, str]:
    secret = tokens.create_token(conn, role, pilot)[0]  # type: ignore[arg-type]
    return {"Authorization": f"Bearer {secret}"}


class Device:
    """A provisioned luminaire whose SDK client records the commands it receives."""

    def __init__(self, settings: Settings, pilot: str, device: str, password: str) -> None:
        self.received: list[dict[str, Any]] = []
        self.got = threading.Condition()
        self.sdk = DeviceClient(
            pilot,
            device,
            "streetlight",
            settings.mqtt_host,
            settings.mqtt_port,
            device,
            password,
            outbox_path=Path(f"/tmp/kcity-cmd-{device}.sqlite"),
            on_command=self.on_command,
            fsync=False,
        )

    def on_command(self, command: dict[str, Any]) -> None:
        with self.got:
            self.received.append(command)
            self.got.notify_all()

    def wait(self, n: int) -> dict[str, Any]:
        with self.got:
            assert self.got.wait_for(lambda: len(self.received) >= n, 30), "no command arrived"
            return self.received[n - 1]


def state(client: TestClient, headers: dict[str, str], pilot: str, command_id: str) -> str:
    got = client.get(f"{V1}/pilots/{pilot}/commands/{command_id}", headers=headers)
    assert got.status_code == 200, got.text
    return str(got.json()["state"])


def test_mqtt_command_life(
    client: TestClient,
    conn: psycopg.Connection,
    settings: Settings,
    broker_admin: BrokerAdmin,
    db_url: str,
    uid: str,
) -> None:
    pilot, name = f"cm-{uid}", f"lamp-{uid}"
    add_pilot(conn, pilot)
    creds = provisioning.provision_device(conn, broker_admin, pilot, name)
    operator = bearer(conn, "operator", pilot)
    url = f"{V1}/pilots/{pilot}/devices/{name}/commands"
    device = Device(settings, pilot, name, creds.password)
    config = ingest_config(settings, f"cmd-{uid}")
    with running_ingest(config), device.sdk:
        device.sdk.connect()
        wait_until(lambda: device.sdk.connected, "the device to connect")
        sent = client.post(
            url, json={"type": "set_dimming_profile", "params": PROFILE}, headers=operator
        )
        assert sent.status_code == 201, sent.text
        command = sent.json()
        assert (command["state"], command["via"]) == ("sent", "mqtt")
        received = device.wait(1)
        assert received["v"] == 1 and received["id"] == command["id"]
        assert received["type"] == "set_dimming_profile" and received["params"] == PROFILE
        assert received["expires_at"].endswith("Z")
        device.sdk.ack_command(received["id"])
        wait_until(lambda: state(client, operator, pilot, command["id"]) == "acked", "the ack")
        # A refusal closes the next one as rejected, with the device's reason.
        second = client.post(
            url, json={"type": "set_level", "params": {"level_pct": 40}}, headers=operator
        ).json()
        device.sdk.ack_command(device.wait(2)["id"], "rejected", "driver fault")
        wait_until(lambda: state(client, operator, pilot, second["id"]) == "rejected", "nack")
        # One that times out: its late ack does not revive it.
        third = client.post(url, json={"type": "ping"}, headers=operator).json()
        late = device.wait(3)
        conn.execute(
            "UPDATE commands SET expires_at = now() - interval '1 second' WHERE id = %s",
            (third["id"],),
        )
        device.sdk.ack_command(late["id"])
        device.sdk.flush(30)
        wait_until(
            lambda: (
                conn.execute(
                    "SELECT count(*) FROM events WHERE device_id = %s AND type = 'command_ack'",
                    (name,),
                ).fetchone()
                == (3,)
            ),
            "the third ack stored",
        )
    listed = client.get(url, headers=operator).json()
    assert [(c["id"], c["state"]) for c in listed] == [
        (third["id"], "expired"),
        (second["id"], "rejected"),
        (command["id"], "acked"),
    ]
    assert listed[1]["reason"] == "driver fault"


def test_roles_and_bad_commands(client: TestClient, conn: psycopg.Connection, uid: str) -> None:
    pilot, name = f"cr-{uid}", f"lamp-{uid}"
    add_pilot(conn, pilot)
    registry.create_device(conn, pilot, name)
    url = f"{V1}/pilots/{pilot}/devices/{name}/commands"
    for role in ("evaluator", "viewer"):
        refused = client.post(url, json={"type": "ping"}, headers=bearer(conn, role))
        assert refused.status_code == 403, role
    add_pilot(conn, f"co-{uid}")
    other = bearer(conn, "operator", f"co-{uid}")
    assert client.post(url, json={"type": "ping"}, headers=other).status_code == 403
    admin = bearer(conn, "admin")
    bad = client.post(url, json={"type": "set_level", "params": {"level_pct": 140}}, headers=admin)
    assert bad.status_code == 422 and "level_pct" in bad.json()["detail"]
    unknown = client.post(url, json={"type": "selfdestruct"}, headers=admin)
    assert unknown.status_code == 422 and "unknown command type" in unknown.json()["detail"]
    missing = client.post(
        f"{V1}/pilots/{pilot}/devices/nobody-{uid}/commands", json={"type": "ping"}, headers=admin
    )
    assert missing.status_code == 404
    assert conn.execute(
        "SELECT count(*) FROM commands WHERE pilot_id = %s", (pilot,)
    ).fetchone() == (0,)


def test_chirpstack_downlink(
    client: TestClient,
    conn: psycopg.Connection,
    settings: Settings,
    broker_admin: BrokerAdmin,
    db_url: str,
    uid: str,
) -> None:
    ns_user = f"nsc-{uid}"
    network_server_account(broker_admin, ns_user)
    pilot, app, name, eui = lorawan_world(conn, settings, "cd", uid)
    pilot_id = pilot.id
    operator = bearer(conn, "operator", pilot_id)
    downlinks: list[tuple[str, dict[str, Any]]] = []
    assert pilot.lorawan is not None
    config = BridgeConfig(db_url, pilot_id, pilot.lorawan, ns_user, NS_PASSWORD, poll_s=0.2)
    with network_server(settings, ns_user) as ns:
        ns.on_message = lambda c, u, m: downlinks.append((m.topic, json.loads(m.payload)))
        ns.subscribe(f"application/{app}/device/+/command/down", qos=1)
        queued = client.post(
            f"{V1}/pilots/{pilot_id}/devices/{name}/commands",
            json={"type": "set_dimming_profile", "params": PROFILE},
            headers=operator,
        )
        assert queued.status_code == 201 and queued.json()["state"] == "queued"
        command_id = queued.json()["id"]
        with running_bridge(config):
            wait_until(lambda: downlinks, "the downlink")
            wait_until(lambda: state(client, operator, pilot_id, command_id) == "sent", "sent")
            topic, body = downlinks[0]
            assert topic == f"application/{app}/device/{eui}/command/down"
            assert (body["id"], body["devEui"], body["fPort"], body["confirmed"]) == (
                command_id,
                eui,
                10,
                True,
            )
            # 0x03, three steps (hour, minute, level), on-detect 100 %, hold 60 s (big-endian)
            expected = bytes([3, 3, 18, 0, 100, 22, 0, 40, 5, 0, 100, 100, 0, 60])
            assert base64.b64decode(body["data"]) == expected
            info = {**CHIRPSTACK_UP["deviceInfo"], "devEui": eui}
            publish(
                ns,
                f"application/{app}/device/{eui}/event/ack",
                {**CHIRPSTACK_ACK, "deviceInfo": info, "queueItemId": command_id},
            )
            wait_until(lambda: state(client, operator, pilot_id, command_id) == "acked", "ack")


def test_cli_command(
    settings: Settings,
    conn: psycopg.Connection,
    uid: str,
    broker_admin: BrokerAdmin,
    tmp_path: Path,
) -> None:
    pilot, name = f"cc-{uid}", f"lamp-{uid}"
    add_pilot(conn, pilot)
    provisioning.provision_device(conn, broker_admin, pilot, name)
    env = cli_env(settings, tmp_path)
    done = kcity(
        env,
        "devices",
        "command",
        pilot,
        name,
        "set_level",
        "--params",
        '{"level_pct": 55}',
        "--expires",
        "5",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert (body["state"], body["params"]) == ("sent", {"level_pct": 55.0})
    bad = kcity(env, "devices", "command", pilot, name, "set_level", "--params", "{oops")
    assert bad.returncode == 1 and bad.stderr.startswith("kcity: error: --params is not JSON")
    listed = json.loads(kcity(env, "devices", "commands", pilot, "--json").stdout)
    assert [c["id"] for c in listed] == [body["id"]]


def test_profile_levels_and_checks() -> None:
    profile = DimmingProfile.model_validate(PROFILE)
    assert profile.level_at(time(19, 30)) == 100
    assert profile.level_at(time(23, 0)) == 40
    assert profile.level_at(time(2, 0)) == 40  # wraps past midnight
    assert profile.level_at(time(2, 0), detected=True) == 100
    assert profile.level_at(time(5, 0)) == 100
    with pytest.raises(PayloadError, match="from"):
        check_params("set_dimming_profile", {"steps": [{"from": "25:00", "level_pct": 1}]})
    with pytest.raises(PayloadError, match="same time"):
        check_params(
            "set_dimming_profile",
            {"steps": [{"from": "18:00", "level_pct": 1}, {"from": "18:00", "level_pct": 2}]},
        )
    assert encode_downlink("set_level", {"level_pct": 40}) == bytes([2, 40])
    assert encode_downlink("reboot", {}) == bytes([4])


def test_profiles_in_force_per_night(conn: psycopg.Connection, uid: str) -> None:
    pilot = f"cp-{uid}"
    add_pilot(conn, pilot)  # Asia/Jakarta, UTC+7
    a, b = f"la-{uid}", f"lb-{uid}"
    for name in (a, b):
        registry.create_device(conn, pilot, name)
    old, new = uuid.uuid4(), uuid.uuid4()
    # `old` acked for both on 1 Oct 10:00 UTC (17:00 local); `new` for b on 2 Oct 12:00 UTC
    # (19:00 local: after that evening's 18:00, so in force from the night of 3 Oct).
    for cid, devices, closed in (
        (old, (a, b), "2026-10-01T10:00:00Z"),
        (new, (b,), "2026-10-02T12:00:00Z"),
    ):
        for i, device in enumerate(devices):
            conn.execute(
                "INSERT INTO commands (id, pilot_id, device_id, type, params, created_by, state,"
                " expires_at, closed_at) VALUES (%s, %s, %s, 'set_dimming_profile', %s, 't',"
                " 'acked', %s::timestamptz + interval '1 day', %s)",
                (uuid.uuid4() if i else cid, pilot, device, json.dumps(PROFILE), closed, closed),
            )
    nights = [date(2026, 9, 30), date(2026, 10, 1), date(2026, 10, 2), date(2026, 10, 3)]
    got = device_commands.profiles_by_night(conn, pilot, nights, "Asia/Jakarta")
    devices_per_night = [sorted(d for p in n["profiles"] for d in p["devices"]) for n in got]
    assert devices_per_night == [[], [a, b], [a, b], [a, b]]
    assert [len(n["profiles"]) for n in got] == [0, 2, 2, 2]
    assert str(new) in {p["command_id"] for p in got[3]["profiles"]}
    assert str(new) not in {p["command_id"] for p in got[2]["profiles"]}
    assert got[3]["profiles"][0]["profile"] == PROFILE
    assert device_commands.profile_in_force(conn, pilot) == DimmingProfile.model_validate(PROFILE)
