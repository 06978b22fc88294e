"""LoRaWAN bridges end to end: the network servers' own JSON, published on the project's
Mosquitto standing in for the network server's broker, stored as v1 records.

Fixtures follow each server's documentation (cited at each one); only ids, counters and
the decoded object are ours.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import threading
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devices.lorawan import FieldMap, LorawanSettings, parse_chirpstack, parse_tts, to_record
from devices.pilots import Pilot, load_pilot
from ingest.lorawan_bridge import Bridge, BridgeConfig, Sessions
from kcity import onboarding, registry
from kcity.bridges import Supervisor
from kcity.settings import Settings
from kcity.stack.broker_admin import BrokerAdmin
from tests.fixtures.ingest import count, wait_count, wait_until
from tests.test_provisioning import cli_env, kcity

MADIUN = Path(__file__).resolve().parents[1] / "pilots" / "madiun.toml"
NS_PASSWORD = "network-server-secret"
FIELDS = {
    "power": {"field": "power_w"},
    "energy": {"field": "energy_wh", "scale": 1000.0},  # kWh in the codec, Wh here
    "dim": {"field": "dim_pct"},
    "on": {"field": "lamp_on"},
}

# ChirpStack v4 `up` event, JSON marshaler (the Protobuf JSON mapping of UplinkEvent):
# https://www.chirpstack.io/docs/chirpstack/integrations/events.html#up---uplink-event
CHIRPSTACK_UP: dict[str, Any] = {
    "deduplicationId": "3ac7e3c4-4401-4b8d-9386-a5c902f9202d",
    "time": "2026-10-01T12:00:00.775023242+00:00",
    "deviceInfo": {
        "tenantId": "52f14cd4-c6f1-4fbd-8f87-4025e1d49242",
        "tenantName": "ChirpStack",
        "applicationId": "17c82e96-be03-4f38-aef3-f83d48582d97",
        "applicationName": "Test application",
        "deviceProfileId": "14855bf7-d10d-4aee-b618-ebfcb64dc7ad",
        "deviceProfileName": "Test device-profile",
        "deviceName": "Test device",
        "devEui": "0101010101010101",
        "tags": {"key": "value"},
    },
    "devAddr": "00189440",
    "dr": 1,
    "fCnt": 10,
    "fPort": 1,
    "data": "qg==",
    "object": {"power": 36.5, "energy": 1.52, "dim": 30, "on": True},
    "rxInfo": [
        {
            "gatewayId": "0016c001f153a14c",
            "uplinkId": 4217106255,
            "rssi": -36,
            "snr": 10.5,
            "context": "E3OWOQ==",
            "metadata": {"region_name": "eu868", "region_common_name": "EU868"},
        }
    ],
    "txInfo": {
        "frequency": 867100000,
        "modulation": {"lora": {"bandwidth": 125000, "spreadingFactor": 11, "codeRate": "CR_4_5"}},
    },
}
# ChirpStack v4 `join` event (JoinEvent): same page, "join - Join event".
CHIRPSTACK_JOIN: dict[str, Any] = {
    "deduplicationId": "c9dbe358-2578-4fb7-b295-66b44edc45a6",
    "time": "2026-10-01T12:20:00.000000000+00:00",
    "deviceInfo": CHIRPSTACK_UP["deviceInfo"],
    "devAddr": "00189440",
}
# ChirpStack v4 `ack` event (AckEvent): same page, "ack - Confirmed downlink (n)ack".
CHIRPSTACK_ACK: dict[str, Any] = {
    "deduplicationId": "c9dbe358-2578-4fb7-b295-66b44edc45a6",
    "time": "2026-10-01T12:25:00.000000000+00:00",
    "deviceInfo": CHIRPSTACK_UP["deviceInfo"],
    "queueItemId": "00000000-0000-0000-0000-000000000000",
    "acknowledged": True,
    "fCntDown": 7,
}
# ChirpStack v4 `txack` event (TxAckEvent): same page, "txack - Downlink transmitted".
CHIRPSTACK_TXACK: dict[str, Any] = {
    "downlinkId": 3000578927,
    "time": "2026-10-01T12:24:59.000000000+00:00",
    "deviceInfo": CHIRPSTACK_UP["deviceInfo"],
    "queueItemId": "00000000-0000-0000-0000-000000000000",
    "fCntDown": 7,
    "gatewayId": "0016c001f153a14c",
    "txInfo": {"frequency": 869525000, "power": 27},
}

# The Things Stack v3 uplink message, "Uplink Messages":
# https://www.thethingsindustries.com/docs/integrations/data-formats/#uplink-messages
TTS_UP: dict[str, Any] = {
    "end_device_ids": {
        "device_id": "dev1",
        "application_ids": {"application_id": "app1"},
        "dev_eui": "0004A30B001C0530",
        "join_eui": "800000000000000C",
        "dev_addr": "00BCB929",
    },
    "correlation_ids": ["as:up:01E0WD3BZKCMZJN8ZXJQDDMZX7", "gs:conn:01E0WD3BZ0BSBSJ5Q5J6T3C6GF"],
    "received_at": "2026-10-01T12:00:01.264470478Z",
    "uplink_message": {
        "session_key_id": "AXA50...",
        "f_port": 1,
        "f_cnt": 42,
        "frm_payload": "gkHe",
        "decoded_payload": {"power": 120.0, "energy": 2.0, "dim": 100, "on": True},
        "rx_metadata": [
            {
                "gateway_ids": {"gateway_id": "gtw1", "eui": "9C5C8E00001A05C4"},
                "time": "2026-10-01T12:00:01.242Z",
                "timestamp": 2463457000,
                "rssi": -35,
                "channel_rssi": -35,
                "snr": 8,
                "uplink_token": "ChIKEA...",
                "channel_index": 2,
            }
        ],
        "settings": {
            "data_rate": {"lora": {"bandwidth": 125000, "spreading_factor": 7}},
            "coding_rate": "4/5",
            "frequency": "868500000",
            "timestamp": 2463457000,
        },
        "received_at": "2026-10-01T12:00:01.000000000Z",
        "consumed_airtime": "0.056576s",
    },
}


def lorawan_pilot(pilot_id: str, network: str, app: str, settings: Settings) -> Pilot:
    """Madiun under another id, declaring a network server on the test broker."""
    data = load_pilot(MADIUN).to_json()
    data["id"] = pilot_id
    data["lorawan"] = {
        "network": network,
        "mqtt_url": settings.mqtt_url,
        "application_id": app,
        "username_env": "NS_USER",
        "password_env": "NS_PASSWORD",
        "fields": FIELDS,
    }
    return Pilot.from_json(data)


def lorawan_world(
    conn: psycopg.Connection, settings: Settings, tag: str, uid: str, network: str = "chirpstack"
) -> tuple[Pilot, str, str, str]:
    """A LoRaWAN pilot ``{tag}-{uid}`` with one luminaire and its DevEUI: (pilot, app,
    device, dev_eui)."""
    app = str(uuid.uuid4()) if network == "chirpstack" else f"app-{tag}-{uid}@ttn"
    pilot = lorawan_pilot(f"{tag}-{uid}", network, app, settings)
    registry.apply_pilot(conn, pilot)
    device, eui = f"lamp{tag}-{uid}", f"{uid}{zlib.crc32(tag.encode()):08x}"
    registry.create_device(conn, pilot.id, device)
    onboarding.set_dev_eui(conn, device, eui)
    return pilot, app, device, eui


def network_server_account(admin: BrokerAdmin, username: str) -> None:
    """A broker account for the stand-in network server and the bridge (ACL: its topics)."""
    role = f"ns-{username}"
    acls = [
        {"acltype": kind, "topic": topic, "allow": True}
        for topic in ("application/#", "v3/#")
        for kind in ("publishClientSend", "publishClientReceive", "subscribePattern")
    ]
    admin.command({"command": "createRole", "rolename": role, "acls": acls})
    admin.command(
        {
            "command": "createClient",
            "username": username,
            "password": NS_PASSWORD,
            "roles": [{"rolename": role}],
        }
    )


@contextmanager
def running_bridge(config: BridgeConfig) -> Iterator[Bridge]:
    bridge = Bridge(config)
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(target=bridge.run, args=(stop, ready), daemon=True)
    thread.start()
    assert ready.wait(30), "the bridge did not subscribe"
    try:
        yield bridge
    finally:
        stop.set()
        thread.join(30)


@contextmanager
def network_server(settings: Settings, username: str) -> Iterator[mqtt.Client]:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"ns-{uuid.uuid4().hex[:8]}")
    client.username_pw_set(username, NS_PASSWORD)
    client.connect(settings.mqtt_host, settings.mqtt_port)
    client.loop_start()
    wait_until(client.is_connected, "the network server to connect")
    try:
        yield client
    finally:
        client.disconnect()
        client.loop_stop()


def publish(client: mqtt.Client, topic: str, body: dict[str, Any] | bytes) -> bytes:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    client.publish(topic, raw, qos=1).wait_for_publish(10)
    return raw


@pytest.fixture
def ns_user(broker_admin: BrokerAdmin, uid: str) -> str:
    username = f"ns-{uid}"
    network_server_account(broker_admin, username)
    return username


def test_chirpstack_uplinks_join_and_dead_letters(
    conn: psycopg.Connection, settings: Settings, db_url: str, ns_user: str, uid: str
) -> None:
    pilot, app, device, eui = lorawan_world(conn, settings, "lw", uid)
    pilot_id = pilot.id
    assert pilot.lorawan is not None
    config = BridgeConfig(db_url, pilot_id, pilot.lorawan, ns_user, NS_PASSWORD)

    def up(f_cnt: int, minute: int, **changes: Any) -> dict[str, Any]:
        body = copy.deepcopy(CHIRPSTACK_UP)
        body["deviceInfo"]["devEui"] = eui
        body["fCnt"] = f_cnt
        body["time"] = f"2026-10-01T12:{minute:02d}:00.775023242+00:00"
        body.update(changes)
        return body

    base = f"application/{app}/device"
    with running_bridge(config), network_server(settings, ns_user) as ns:
        publish(ns, f"{base}/{eui}/event/up", up(10, 0))
        extra = up(11, 5, object={"power": 20.0, "energy": 1.6, "dim": 10, "on": True, "bat": 3})
        unmapped = publish(ns, f"{base}/{eui}/event/up", extra)
        join = copy.deepcopy(CHIRPSTACK_JOIN)
        join["deviceInfo"] = {**join["deviceInfo"], "devEui": eui}
        publish(ns, f"{base}/{eui}/event/join", join)
        no_fcnt = up(0, 30)
        del no_fcnt["fCnt"]  # the Protobuf JSON mapping leaves a zero counter out
        publish(ns, f"{base}/{eui}/event/up", no_fcnt)
        stranger = up(3, 31)
        stranger["deviceInfo"] = {**stranger["deviceInfo"], "devEui": "ffffffffffffff01"}
        unknown = publish(ns, f"{base}/ffffffffffffff01/event/up", stranger)
        raw_only = up(12, 32)
        del raw_only["object"]
        undecoded = publish(ns, f"{base}/{eui}/event/up", raw_only)
        wait_count(db_url, "SELECT count(*) FROM dead_letters WHERE pilot_id = %s", [pilot_id], 3)
        wait_count(db_url, "SELECT count(*) FROM ingest_messages WHERE device_id = %s", [device], 3)
    rows = conn.execute(
        "SELECT ts, power_w, energy_wh, dim_pct, lamp_on FROM streetlight_readings"
        " WHERE device_id = %s ORDER BY ts",
        (device,),
    ).fetchall()
    at = datetime(2026, 10, 1, 12, 0, 0, 775023, tzinfo=UTC)  # nanoseconds cut to micro
    assert rows == [
        (at, 36.5, 1520.0, 30.0, True),
        (at.replace(minute=5), 20.0, 1600.0, 10.0, True),
        (at.replace(minute=30), 36.5, 1520.0, 30.0, True),
    ]
    messages = conn.execute(
        "SELECT boot, seq FROM ingest_messages WHERE device_id = %s ORDER BY boot, seq", (device,)
    ).fetchall()
    assert messages == [(0, 10), (0, 11), (1, 0)]  # the join started boot 1
    letters = conn.execute(
        "SELECT stage, device_id, split_part(reason, ':', 1), payload FROM dead_letters"
        " WHERE pilot_id = %s ORDER BY id",
        (pilot_id,),
    ).fetchall()
    assert [(s, d, r, bytes(p)) for s, d, r, p in letters] == [
        ("lorawan", device, "unmapped field", unmapped),
        ("lorawan", None, "unknown dev eui", unknown),
        ("lorawan", device, "undecoded", undecoded),
    ]


def test_chirpstack_downlink_ack_closes_the_command(
    conn: psycopg.Connection, settings: Settings, db_url: str, ns_user: str, uid: str
) -> None:
    pilot, app, device, eui = lorawan_world(conn, settings, "lwa", uid)
    pilot_id = pilot.id
    acked, refused = uuid.uuid4(), uuid.uuid4()
    for command in (acked, refused):
        conn.execute(
            "INSERT INTO commands (id, pilot_id, device_id, type, created_by, state, expires_at)"
            " VALUES (%s, %s, %s, 'ping', 'test', 'sent', now() + interval '1 hour')",
            (command, pilot_id, device),
        )
    assert pilot.lorawan is not None
    config = BridgeConfig(db_url, pilot_id, pilot.lorawan, ns_user, NS_PASSWORD)
    topic = f"application/{app}/device/{eui}/event"
    info = {**CHIRPSTACK_UP["deviceInfo"], "devEui": eui}
    with running_bridge(config), network_server(settings, ns_user) as ns:
        publish(
            ns,
            f"{topic}/txack",
            {**CHIRPSTACK_TXACK, "deviceInfo": info, "queueItemId": str(acked)},
        )
        publish(
            ns, f"{topic}/ack", {**CHIRPSTACK_ACK, "deviceInfo": info, "queueItemId": str(acked)}
        )
        publish(
            ns,
            f"{topic}/ack",
            {
                **CHIRPSTACK_ACK,
                "deviceInfo": info,
                "queueItemId": str(refused),
                "acknowledged": False,
            },
        )
        wait_count(
            db_url,
            "SELECT count(*) FROM commands WHERE device_id = %s AND state <> 'sent'",
            [device],
            2,
        )
    states = dict(conn.execute("SELECT id, state FROM commands WHERE device_id = %s", (device,)))
    assert states == {acked: "acked", refused: "rejected"}


def test_tts_uplink(
    conn: psycopg.Connection, settings: Settings, db_url: str, ns_user: str, uid: str
) -> None:
    pilot, app, device, eui = lorawan_world(conn, settings, "lwt", uid, "tts")
    pilot_id = pilot.id
    body = copy.deepcopy(TTS_UP)
    body["end_device_ids"]["dev_eui"] = eui.upper()
    assert pilot.lorawan is not None
    config = BridgeConfig(db_url, pilot_id, pilot.lorawan, ns_user, NS_PASSWORD)
    with running_bridge(config), network_server(settings, ns_user) as ns:
        publish(ns, f"v3/{app}/devices/dev1/up", body)
        wait_count(db_url, "SELECT count(*) FROM ingest_messages WHERE device_id = %s", [device], 1)
    row = conn.execute(
        "SELECT ts, power_w, energy_wh FROM streetlight_readings WHERE device_id = %s", (device,)
    ).fetchone()
    assert row == (datetime(2026, 10, 1, 12, 0, 1, tzinfo=UTC), 120.0, 2000.0)
    assert count(db_url, "SELECT seq FROM ingest_messages WHERE device_id = %s", [device]) == 42


def test_counter_reset_starts_a_new_boot() -> None:
    sessions = Sessions(lambda device: (3, 500))  # stored: boot 3, last seq 500
    assert sessions.place("d", 501) == (3, 501)
    assert sessions.place("d", 501) == (3, 501)  # a repeat is the same message
    assert sessions.place("d", 2) == (4, 2)  # the counter went back: the device restarted
    sessions.join("d")
    assert sessions.place("d", 0) == (5, 0)
    fresh = Sessions(lambda device: None)
    assert fresh.place("e", 7) == (0, 7)


def test_mapping_scales_and_reports_unknown_keys() -> None:
    fields = {k: FieldMap(**v) for k, v in FIELDS.items()}  # type: ignore[arg-type]
    when = datetime(2026, 10, 1, 12, tzinfo=UTC)
    record, unmapped = to_record({"energy": 0.25, "dim": 40, "x": 1, "a": 2}, fields, when)
    assert record == {"energy_wh": 250.0, "dim_pct": 40, "ts": when.isoformat()}
    assert unmapped == ["a", "x"]
    own_ts, _ = to_record({"dim": 1, "ts": "2026-10-01T11:00:00Z"}, fields, when)
    assert own_ts["ts"] == "2026-10-01T11:00:00Z"
    event = parse_chirpstack(
        "application/a/device/0101010101010101/event/up", json.dumps(CHIRPSTACK_UP).encode()
    )
    assert (event.dev_eui, event.f_cnt, event.time) == (
        "0101010101010101",
        10,
        datetime(2026, 10, 1, 12, 0, 0, 775023, tzinfo=UTC),
    )
    tts = parse_tts("v3/app1/devices/dev1/up", json.dumps(TTS_UP).encode())
    assert (tts.dev_eui, tts.f_cnt, tts.network_device_id) == ("0004a30b001c0530", 42, "dev1")


def test_pilot_refuses_fields_of_another_kind(settings: Settings) -> None:
    data = lorawan_pilot("lw-x", "tts", "a@b", settings).to_json()
    data["lorawan"]["fields"]["alt"] = {"field": "agl_m"}
    with pytest.raises(Exception, match="agl_m is not a streetlight record field"):
        Pilot.from_json(data)
    with pytest.raises(Exception, match="mqtt_url"):
        LorawanSettings(network="tts", mqtt_url="mqtt://u:p@h:1", application_id="a", fields={})


def test_bridge_run_command(
    conn: psycopg.Connection,
    settings: Settings,
    db_url: str,
    ns_user: str,
    uid: str,
    tmp_path: Path,
) -> None:
    pilot, app, device, eui = lorawan_world(conn, settings, "lwc", uid)
    pilot_id = pilot.id
    env = cli_env(settings, tmp_path)
    missing = kcity(env, "bridge", "run", "--pilot", pilot_id)
    assert missing.returncode == 1 and "set the environment variable NS_USER" in missing.stderr
    env.update({"NS_USER": ns_user, "NS_PASSWORD": NS_PASSWORD})
    proc = subprocess.Popen(
        [sys.executable, "-m", "kcity", "bridge", "run", "--pilot", pilot_id],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and pilot_id in proc.stdout.readline()
        body = copy.deepcopy(CHIRPSTACK_UP)
        body["deviceInfo"]["devEui"] = eui
        with network_server(settings, ns_user) as ns:
            # The bridge's subscription may lag its start-up line: publish until stored.
            def stored() -> bool:
                publish(ns, f"application/{app}/device/{eui}/event/up", body)
                return (
                    count(
                        db_url,
                        "SELECT count(*) FROM ingest_messages WHERE device_id = %s",
                        [device],
                    )
                    > 0
                )

            wait_until(stored, "the bridge to store the uplink", timeout=60)
    finally:
        proc.terminate()
        proc.wait(30)
        if proc.stdout is not None:
            proc.stdout.close()
    assert (
        count(db_url, "SELECT count(*) FROM streetlight_readings WHERE device_id = %s", [device])
        == 1
    )


def test_supervisor_follows_the_registry(
    conn: psycopg.Connection,
    settings: Settings,
    db_url: str,
    ns_user: str,
    uid: str,
    tmp_path: Path,
) -> None:
    """A pilot applied while the bridges run is bridged without a restart, a changed section
    restarts its bridge, a pilot with missing credentials leaves the others bridged, and a
    removed section stops its bridge: each checked by what reaches the database."""
    ok_id, bad_id = f"lsv-{uid}", f"lsb-{uid}"
    env = {"NS_USER": ns_user, "NS_PASSWORD": NS_PASSWORD}
    supervisor = Supervisor(
        settings.model_copy(update={"data_dir": tmp_path}), env, [ok_id, bad_id]
    )
    stop = threading.Event()
    thread = threading.Thread(target=supervisor.run, args=(stop, 0.1), daemon=True)
    thread.start()
    state_file = tmp_path / "run" / "bridges.json"

    def state() -> dict[str, Any]:
        try:
            pilots: dict[str, Any] = json.loads(state_file.read_text())["pilots"]
        except (OSError, ValueError):
            return {}
        return pilots

    def uplink(ns: mqtt.Client, app: str, eui: str, f_cnt: int) -> None:
        body = copy.deepcopy(CHIRPSTACK_UP)
        body["deviceInfo"]["devEui"] = eui
        body["fCnt"] = f_cnt
        body["time"] = f"2026-10-01T12:{f_cnt:02d}:00+00:00"
        publish(ns, f"application/{app}/device/{eui}/event/up", body)

    readings = "SELECT count(*) FROM streetlight_readings WHERE device_id = %s"
    try:
        wait_until(state_file.exists, "the supervisor's first state")
        assert state() == {}
        # Registered while the supervisor runs, one of them without its credentials.
        pilot, app, device, eui = lorawan_world(conn, settings, "lsv", uid)
        bad = lorawan_pilot(bad_id, "chirpstack", str(uuid.uuid4()), settings).to_json()
        bad["lorawan"]["username_env"] = "NS_USER_NOT_SET"
        registry.apply_pilot(conn, Pilot.from_json(bad))
        wait_until(lambda: state().get(ok_id, {}).get("connected"), "the new pilot's bridge")
        assert state()[bad_id] == {
            "bridged": False,
            "connected": False,
            "problem": f"pilot {bad_id}: set the environment variable NS_USER_NOT_SET"
            " (lorawan.username_env) to the network server's username (or write"
            f" NS_USER_NOT_SET=… in {tmp_path / 'lorawan.env'})",
        }
        # Written to the credentials file, it is picked up without a restart.
        (tmp_path / "lorawan.env").write_text(f"# the network server\nNS_USER_NOT_SET={ns_user}\n")
        wait_until(lambda: state().get(bad_id, {}).get("connected"), "the fixed pilot's bridge")
        with network_server(settings, ns_user) as ns:
            uplink(ns, app, eui, 1)
            wait_count(db_url, readings, [device], 1)
            # The network server's application changes: the bridge follows it.
            moved = pilot.to_json()
            moved["lorawan"]["application_id"] = new_app = str(uuid.uuid4())
            registry.apply_pilot(conn, Pilot.from_json(moved))
            wait_until(
                lambda: (
                    supervisor.running[ok_id].config.lorawan.application_id == new_app
                    and state()[ok_id]["connected"]
                ),
                "the bridge to restart on the new application",
            )
            uplink(ns, new_app, eui, 2)
            wait_count(db_url, readings, [device], 2)
            # The old application no longer reaches it (its persistent session subscribed
            # there): in order on one connection, the old uplink comes before the new one.
            uplink(ns, app, eui, 3)
            uplink(ns, new_app, eui, 4)
            wait_count(db_url, readings, [device], 3)
            seqs = conn.execute(
                "SELECT array_agg(seq ORDER BY seq) FROM ingest_messages WHERE device_id = %s",
                (device,),
            ).fetchone()
            assert seqs == ([1, 2, 4],)
        # The section removed: its bridge stops.
        plain = pilot.to_json()
        del plain["lorawan"]
        registry.apply_pilot(conn, Pilot.from_json(plain))
        wait_until(lambda: ok_id not in state(), "the bridge to stop")
        assert ok_id not in supervisor.running
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive() and supervisor.running == {}
