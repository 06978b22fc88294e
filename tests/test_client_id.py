"""Issue #17: a device account cannot take over another session by its MQTT client id.

Mosquitto disconnects an existing session when a new connection presents the same client
id ("session taken over"). A device connecting as `kcity-ingest-…` would throw the ingest
consumer off the broker, and as another device's id that device. Each device's broker
client is bound to its own client id (its device id, as the device SDK connects), so any
other id is refused at CONNECT; tried on the real broker."""

from __future__ import annotations

import threading
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from kcity.settings import Settings
from kcity.stack.broker_admin import BrokerAdmin
from tests.fixtures.ingest import DEVICE_PASSWORD, add_device, ingest_config

WAIT_S = 10


class Session:
    """One MQTT connection: its CONNACK reason and whether the broker threw it out."""

    def __init__(self, settings: Settings, client_id: str, username: str, password: str):
        self.connected = threading.Event()
        self.dropped = threading.Event()
        self.reason: int | None = None
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.connect(settings.mqtt_host, settings.mqtt_port, keepalive=10)
        self.client.loop_start()

    def _on_connect(self, c: Any, u: Any, flags: Any, rc: Any, props: Any) -> None:
        self.reason = rc.value
        self.connected.set()

    def _on_disconnect(self, c: Any, u: Any, flags: Any, rc: Any, props: Any) -> None:
        self.dropped.set()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_a_device_cannot_take_over_the_ingest_session_or_another_device(
    settings: Settings, conn: psycopg.Connection, broker_admin: BrokerAdmin, uid: str
) -> None:
    pilot, device, other = f"cid-{uid}", f"cid-a-{uid}", f"cid-b-{uid}"
    add_device(conn, broker_admin, pilot, device)
    add_device(conn, broker_admin, pilot, other)
    ingest_id = ingest_config(settings, f"t{uid}").client_id
    assert ingest_id.startswith("kcity-ingest")
    victims = [
        Session(settings, ingest_id, settings.mqtt_username, settings.mqtt_password),
        Session(settings, other, other, DEVICE_PASSWORD),
    ]
    try:
        for victim in victims:
            assert victim.connected.wait(WAIT_S) and victim.reason == 0
        for stolen in (ingest_id, other, "kcity-admin-x"):
            thief = Session(settings, stolen, device, DEVICE_PASSWORD)
            try:
                assert thief.connected.wait(WAIT_S) or thief.dropped.wait(WAIT_S)
                assert thief.reason != 0, f"{device} connected as {stolen}"
            finally:
                thief.close()
        for victim in victims:
            assert not victim.dropped.wait(1), "a victim session was thrown out"
            assert victim.client.is_connected()
        own = Session(settings, device, device, DEVICE_PASSWORD)  # its own id: accepted
        try:
            assert own.connected.wait(WAIT_S) and own.reason == 0
        finally:
            own.close()
    finally:
        for victim in victims:
            victim.close()
