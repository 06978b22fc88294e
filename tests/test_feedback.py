"""Verdicts on rejected data reach the device that sent them, and only it (DESIGN §4).

End to end on the real broker and database: a device publishes through the SDK, ingest
dead-letters its bad record, and the SDK's ``on_feedback`` receives the verdict. Another
device of the same pilot may not read it (the broker's ACL). The limiter and the verdict
payload are checked as pure functions against counts made by hand.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from typer.testing import CliRunner

from devices.ids import feedback_topic
from devices.sdk import DeviceClient
from ingest.feedback import FeedbackLimiter, verdict
from ingest.registry import DeviceInfo
from ingest.validate import Outcome, Received, validate
from kcity import cli
from kcity.settings import Settings
from kcity.stack.broker_admin import BrokerAdmin, device_acls
from tests.fixtures.ingest import (
    DEVICE_PASSWORD,
    add_device,
    ingest_config,
    publisher,
    running_ingest,
    wait_count,
)

NOW = datetime.now(UTC).replace(microsecond=0)
GENEROUS_WAIT_S = 30.0


def _judge(raw: bytes, device: str = "lamp-1") -> Received:
    registry = {device: DeviceInfo("p1", "streetlight")}
    topic = f"kcity/v1/p1/{device}/telemetry"
    outcome = validate(topic, raw, registry, NOW, unknown_is_final=True)
    assert isinstance(outcome, Outcome)
    return Received(topic, raw, NOW, outcome)


def _light(ts: str) -> dict[str, Any]:
    return {"ts": ts, "power_w": 60.0, "dim_pct": 50.0, "lamp_on": True}


def test_limiter_sends_the_first_n_a_minute_and_reports_the_rest() -> None:
    limiter = FeedbackLimiter(per_minute=2)
    assert [limiter.allow("a", t) for t in (0.0, 1.0, 2.0, 3.0)] == [0, 0, None, None]
    assert limiter.allow("b", 3.0) == 0  # another device has its own budget
    # A new minute: the first verdict says how many were held back in the last one.
    assert limiter.allow("a", 61.0) == 2
    assert limiter.allow("a", 62.0) == 0
    assert FeedbackLimiter(per_minute=0).allow("a", 0.0) is None


def test_verdict_of_a_message_with_one_bad_record() -> None:
    records = [_light("2026-11-01T00:00:00Z"), _light("2010-01-01T00:00:00Z"), _light("x")]
    raw = json.dumps({"v": 1, "boot": 4, "seq": 17, "records": records}).encode()
    v = verdict(_judge(raw))
    assert v is not None
    assert v.topic == "kcity/v1/p1/lamp-1/feedback"
    body = json.loads(v.payload)
    # Two of three records are refused: "x" is no timestamp, 2010 is before 2015.
    assert body["boot"] == 4 and body["seq"] == 17
    assert body["records_rejected"] == 2
    assert body["dead_letters"] == 2
    assert body["stage"] == "record" and "ts" in body["reason"]


def test_verdict_of_a_whole_message_and_of_a_good_one() -> None:
    bad_envelope = json.dumps({"v": 1, "boot": 2, "seq": 9, "records": [{}, {}, {}], "x": 1})
    body = json.loads(verdict(_judge(bad_envelope.encode()), suppressed=5).payload)  # type: ignore[union-attr]
    assert (body["boot"], body["seq"], body["records_rejected"]) == (2, 9, 3)
    assert body["suppressed"] == 5
    not_json = json.loads(verdict(_judge(b"{nope")).payload)  # type: ignore[union-attr]
    assert (not_json["stage"], not_json["boot"], not_json["records_rejected"]) == (
        "decode",
        None,
        0,
    )
    good = json.dumps({"v": 1, "boot": 0, "seq": 1, "records": [_light("2026-11-01T00:00:00Z")]})
    assert verdict(_judge(good.encode())) is None


def _subscribe_as(settings: Settings, username: str, topic: str) -> int:
    """The SUBACK reason code the broker gives ``username`` for ``topic``."""
    codes: queue.Queue[int] = queue.Queue()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=username, protocol=mqtt.MQTTv5)
    client.username_pw_set(username, DEVICE_PASSWORD)
    client.on_subscribe = lambda c, u, mid, rcs, p: codes.put(rcs[0].value)
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=0)
    client.connect(settings.mqtt_host, settings.mqtt_port)
    client.loop_start()
    try:
        return codes.get(timeout=GENEROUS_WAIT_S)
    finally:
        client.disconnect()
        client.loop_stop()
        client._reset_sockets()  # paho closes them only in __del__ otherwise (ResourceWarning)


def test_a_bad_payload_gets_a_verdict_on_the_device_feedback_topic(
    settings: Settings,
    conn: psycopg.Connection,
    broker_admin: BrokerAdmin,
    uid: str,
    tmp_path: Path,
) -> None:
    pilot, device, other = f"fb-{uid}", f"fb-lamp-{uid}", f"fb-other-{uid}"
    add_device(conn, broker_admin, pilot, device)
    add_device(conn, broker_admin, pilot, other)
    verdicts: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
    config = ingest_config(settings, f"fb-{uid}")
    with (
        running_ingest(config),
        DeviceClient(
            pilot,
            device,
            "streetlight",
            settings.mqtt_host,
            settings.mqtt_port,
            device,
            DEVICE_PASSWORD,
            outbox_path=tmp_path / "outbox.sqlite",
            on_feedback=lambda body: verdicts.put((time.monotonic(), body)),
        ) as client,
    ):
        assert client.connect()
        time.sleep(0.3)  # the feedback SUBACK follows the CONNACK
        # The SDK checks the schema, not the time window: a 2010 reading reaches ingest.
        sent = time.monotonic()
        client.publish([_light("2010-06-01T00:00:00Z")])
        assert client.flush(timeout=GENEROUS_WAIT_S)
        arrived, body = verdicts.get(timeout=GENEROUS_WAIT_S)
        print(f"verdict {1000 * (arrived - sent):.0f} ms after publish")
        assert body["stage"] == "time"
        assert body["boot"] == client.boot
        assert body["records_rejected"] == 1
        assert "before 2015" in body["reason"]
        # The verdict came after the dead letter was stored: it is in the table now.
        assert wait_count(
            settings.database_url,
            "SELECT count(*) FROM dead_letters WHERE device_id = %s AND stage = 'time'",
            (device,),
            1,
            timeout=1,
        )

        # Not JSON at all, from the device's own connection (its broker client is bound to
        # the SDK's client id): a verdict without a sequence.
        client._client.publish(
            f"kcity/v1/{pilot}/{device}/telemetry", b"\xff not json", qos=1
        ).wait_for_publish(GENEROUS_WAIT_S)
        _, body = verdicts.get(timeout=GENEROUS_WAIT_S)
        assert body["stage"] == "decode" and body["boot"] is None
    # The SDK left a retained status: clear it, or every later ingest worker on the shared
    # broker would receive it (as an unknown device's message).
    with publisher(settings, device) as raw:
        raw.publish(f"kcity/v1/{pilot}/{device}/status", b"", retain=True)

    # Only the device reads its verdicts: another device of the pilot is refused.
    assert _subscribe_as(settings, other, feedback_topic(pilot, device)) >= 0x80
    assert _subscribe_as(settings, other, feedback_topic(pilot, other)) < 0x80


def test_a_flooding_device_gets_a_bounded_number_of_verdicts(
    settings: Settings, conn: psycopg.Connection, broker_admin: BrokerAdmin, uid: str
) -> None:
    pilot, device = f"fl-{uid}", f"fl-lamp-{uid}"
    add_device(conn, broker_admin, pilot, device)
    got: list[dict[str, Any]] = []
    done = threading.Event()
    listener = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device, protocol=mqtt.MQTTv5)
    listener.username_pw_set(device, DEVICE_PASSWORD)
    listener.on_connect = lambda c, u, f, rc, p: c.subscribe(feedback_topic(pilot, device))
    listener.on_subscribe = lambda *a: done.set()
    listener.on_message = lambda c, u, m: got.append(json.loads(m.payload))
    listener.connect(settings.mqtt_host, settings.mqtt_port)
    listener.loop_start()
    assert done.wait(GENEROUS_WAIT_S)
    flood = 12
    config = ingest_config(settings, f"fl-{uid}", feedback_per_minute=3)
    try:
        with running_ingest(config) as ingest:
            for i in range(flood):  # the listener publishes: a device has one connection
                listener.publish(
                    f"kcity/v1/{pilot}/{device}/telemetry", f"bad {i}".encode(), qos=1
                ).wait_for_publish(GENEROUS_WAIT_S)
            wait_count(
                settings.database_url,
                "SELECT count(*) FROM dead_letters WHERE device_id = %s",
                (device,),
                flood,
            )
            deadline = time.monotonic() + GENEROUS_WAIT_S
            sent = ingest.service.metrics.feedback.labels("sent")
            suppressed = ingest.service.metrics.feedback.labels("suppressed")
            while time.monotonic() < deadline and (
                sent._value.get() + suppressed._value.get() < flood or len(got) < 3
            ):
                time.sleep(0.05)
            # The counters are the worker's, over every device it hears on the shared broker.
            assert sent._value.get() >= 3
            assert suppressed._value.get() >= flood - 3
    finally:
        listener.disconnect()
        listener.loop_stop()
        listener._reset_sockets()
    assert len(got) == 3  # this device's verdicts: the first three of the minute


def test_devices_provisioned_before_feedback_get_it_from_kcity_devices_acls(
    settings: Settings,
    conn: psycopg.Connection,
    broker_admin: BrokerAdmin,
    uid: str,
    tmp_path: Path,
) -> None:
    pilot, device = f"up-{uid}", f"up-lamp-{uid}"
    add_device(conn, broker_admin, pilot, device)
    # The role as provisioning made it before the feedback topic existed.
    old = [a for a in device_acls(pilot, device) if not a["topic"].endswith("/feedback")]
    broker_admin._put(device, DEVICE_PASSWORD, f"device-{device}", old)
    assert _subscribe_as(settings, device, feedback_topic(pilot, device)) >= 0x80

    env = {
        "KCITY_DATA_DIR": str(tmp_path / ".kcity"),
        "KCITY_DATABASE_URL": settings.database_url,
        "KCITY_MQTT_URL": settings.mqtt_url,
        "KCITY_MQTT_ADMIN_USERNAME": settings.mqtt_admin_username,
        "KCITY_MQTT_ADMIN_PASSWORD": settings.mqtt_admin_password,
    }
    for _ in range(2):  # idempotent: the second run finds every ACL in place
        done = CliRunner().invoke(cli.app, ["devices", "acls", pilot], env=env)
        assert done.exit_code == 0, done.output
        assert "re-applied the ACLs of 1 device(s)" in done.stdout
    assert _subscribe_as(settings, device, feedback_topic(pilot, device)) < 0x80
    # Its password still works: the client was not re-created.
    with publisher(settings, device):
        pass
