"""Per-device credentials and ACLs on the real broker (DESIGN §4).

Absence is proven without timing: after the forbidden publishes the same device publishes a
sentinel on its own topic; the broker forwards one client's messages in order, so once the
sentinel arrives anything forbidden that got through would have arrived before it.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devices.pilots import load_pilot
from kcity import provisioning, registry
from kcity.provisioning import Credentials
from kcity.stack.broker_admin import BrokerAdmin
from kcity.stack.local import LocalStack

PILOTS = Path(__file__).resolve().parents[1] / "pilots"
WAIT = 15.0


def _own_id(username: str | None) -> str:
    """A device's broker client is bound to its device id; other accounts take any id."""
    if username is None or username.startswith("kcity-"):
        return f"probe-{uuid.uuid4().hex[:8]}"
    return username


class Probe:
    """A real MQTT 5 client that records what happens to it, for assertions."""

    def __init__(
        self,
        host: str,
        port: int,
        username: str | None,
        password: str | None,
        *,
        tls_ca: Path | None = None,
        client_id: str | None = None,
    ) -> None:
        self.cond = threading.Condition()
        self.connack: int | None = None
        self.disconnected = False
        self.messages: list[tuple[str, bytes]] = []
        self.subacks: dict[int, list[int]] = {}
        self.pubacks: dict[int, int] = {}
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or _own_id(username),
            protocol=mqtt.MQTTv5,
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        if tls_ca is not None:
            self.client.tls_set(ca_certs=str(tls_ca))
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        assert self.wait(lambda: self.connack is not None), "no CONNACK"

    def _notify(self, change: Callable[[], None]) -> None:
        with self.cond:
            change()
            self.cond.notify_all()

    def _on_connect(self, c: Any, u: Any, flags: Any, rc: Any, props: Any) -> None:
        self._notify(lambda: setattr(self, "connack", rc.value))

    def _on_disconnect(self, c: Any, u: Any, flags: Any, rc: Any, props: Any) -> None:
        self._notify(lambda: setattr(self, "disconnected", True))

    def _on_message(self, c: Any, u: Any, msg: mqtt.MQTTMessage) -> None:
        self._notify(lambda: self.messages.append((msg.topic, bytes(msg.payload))))

    def _on_subscribe(self, c: Any, u: Any, mid: int, codes: list[Any], props: Any) -> None:
        self._notify(lambda: self.subacks.__setitem__(mid, [rc.value for rc in codes]))

    def _on_publish(self, c: Any, u: Any, mid: int, rc: Any, props: Any) -> None:
        self._notify(lambda: self.pubacks.__setitem__(mid, rc.value))

    @property
    def accepted(self) -> bool:
        return self.connack == 0

    def wait(self, predicate: Callable[[], bool], timeout: float = WAIT) -> bool:
        with self.cond:
            return self.cond.wait_for(predicate, timeout)

    def subscribe(self, topic: str) -> list[int]:
        """Subscribe at QoS 1; return the SUBACK reason codes (< 128 granted)."""
        _, mid = self.client.subscribe(topic, qos=1)
        assert mid is not None
        assert self.wait(lambda: mid in self.subacks), f"no SUBACK for {topic}"
        return self.subacks[mid]

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> int:
        """Publish at QoS 1 and return the PUBACK reason code."""
        mid = self.client.publish(topic, payload, qos=1, retain=retain).mid
        assert self.wait(lambda: mid in self.pubacks), f"no PUBACK on {topic}"
        return self.pubacks[mid]

    def received(self, topic: str) -> list[bytes]:
        with self.cond:
            return [p for t, p in self.messages if t == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        # paho closes its sockets (and its wake-up socket pair) only in __del__; when the
        # garbage collector frees the client with them, they warn as unclosed.
        self.client._reset_sockets()


def probe(stack: LocalStack, username: str | None, password: str | None, **kw: Any) -> Probe:
    return Probe(stack.settings.mqtt_host, stack.settings.mqtt_port, username, password, **kw)


def ingest_probe(stack: LocalStack) -> Probe:
    s = stack.settings
    p = probe(stack, s.mqtt_username, s.mqtt_password)
    assert p.accepted
    assert p.subscribe("kcity/v1/#") == [1]
    return p


@pytest.fixture
def fleet(
    conn: psycopg.Connection, broker_admin: BrokerAdmin, stack: LocalStack, uid: str
) -> dict[str, Credentials]:
    """Two devices of one pilot and one of another, provisioned on the session broker."""
    base = load_pilot(PILOTS / "madiun.toml")
    s = stack.settings
    made = {}
    for pilot_id, name in ((f"a-{uid}", "a1"), (f"a-{uid}", "a2"), (f"b-{uid}", "b1")):
        registry.apply_pilot(conn, base.model_copy(update={"id": pilot_id}))
        made[name] = provisioning.provision_device(
            conn,
            broker_admin,
            pilot_id,
            f"{name}-{uid}",
            mqtt_host=s.mqtt_host,
            mqtt_port=s.mqtt_port,
            mqtt_tls_port=s.mqtt_tls_port,
        )
    return made


@pytest.fixture
def ingest(stack: LocalStack) -> Iterator[Probe]:
    p = ingest_probe(stack)
    yield p
    p.close()


def telemetry(c: Credentials) -> str:
    return c.topic_prefix + "telemetry"


def test_device_publishes_only_under_its_own_prefix(
    stack: LocalStack, fleet: dict[str, Credentials], ingest: Probe
) -> None:
    a1, a2, b1 = fleet["a1"], fleet["a2"], fleet["b1"]
    dev = probe(stack, a1.username, a1.password)
    try:
        assert dev.accepted
        for channel in ("telemetry", "event", "status"):
            assert dev.publish(a1.topic_prefix + channel, b"own") < 128
        forbidden = [
            telemetry(a2),  # a device of the same pilot
            telemetry(b1),  # a device of another pilot
            f"kcity/v1/{b1.pilot}/{a1.device_id}/telemetry",  # its own id under another pilot
            a1.topic_prefix + "cmd",  # its own downlink
            a1.topic_prefix + "other",
            "kcity/v1/elsewhere",
        ]
        codes = [dev.publish(t, b"forbidden") for t in forbidden]
        assert codes == [0x87] * len(forbidden)  # PUBACK "Not authorized" (MQTT 5)
        dev.publish(telemetry(a1), b"sentinel")
        assert ingest.wait(lambda: b"sentinel" in ingest.received(telemetry(a1)))
        for channel in ("telemetry", "event", "status"):
            assert b"own" in ingest.received(a1.topic_prefix + channel)
        with ingest.cond:
            leaked = [(t, p) for t, p in ingest.messages if p == b"forbidden"]
        assert leaked == []
    finally:
        dev.close()


def test_device_cannot_read_other_devices(stack: LocalStack, fleet: dict[str, Credentials]) -> None:
    a1, a2, b1 = fleet["a1"], fleet["a2"], fleet["b1"]
    spy = probe(stack, a1.username, a1.password)
    other = probe(stack, a2.username, a2.password)
    try:
        for topic in (
            telemetry(a2),
            telemetry(b1),
            "kcity/v1/#",
            f"kcity/v1/{a1.pilot}/+/+",
            a2.topic_prefix + "cmd",
            telemetry(a1),
        ):
            assert spy.subscribe(topic)[0] >= 128, topic
        assert spy.subscribe(a1.topic_prefix + "cmd") == [1]
        other.publish(telemetry(a2), b"secret")
        # The ingest account can send a command; the spy's own cmd arriving proves the
        # broker has passed the earlier message by, and the spy saw none of it.
        s = stack.settings
        operator = probe(stack, s.mqtt_username, s.mqtt_password)
        try:
            assert operator.publish(a1.topic_prefix + "cmd", b'{"op":"ping"}') < 128
        finally:
            operator.close()
        assert spy.wait(lambda: bool(spy.received(a1.topic_prefix + "cmd")))
        assert [t for t, _ in spy.messages] == [a1.topic_prefix + "cmd"]
    finally:
        spy.close()
        other.close()


def test_wrong_password_and_anonymous_are_refused(
    stack: LocalStack, fleet: dict[str, Credentials]
) -> None:
    a1 = fleet["a1"]
    for username, password in (
        (a1.username, a1.password + "x"),
        (None, None),
        (a1.username, None),
        ("nobody-" + a1.device_id, a1.password),
    ):
        p = probe(stack, username, password)
        try:
            assert p.connack is not None and p.connack >= 128, (username, p.connack)
        finally:
            p.close()


def test_revoked_device_is_disconnected_and_refused(
    conn: psycopg.Connection,
    broker_admin: BrokerAdmin,
    stack: LocalStack,
    fleet: dict[str, Credentials],
) -> None:
    a2 = fleet["a2"]
    online = probe(stack, a2.username, a2.password)
    try:
        assert online.accepted
        provisioning.revoke_device(conn, broker_admin, a2.device_id)
        assert online.wait(lambda: online.disconnected)
    finally:
        online.close()
    again = probe(stack, a2.username, a2.password)
    try:
        assert again.connack is not None and again.connack >= 128
    finally:
        again.close()
    assert not registry.get_device(conn, a2.device_id).active


def test_rotated_password_replaces_the_old_one(
    conn: psycopg.Connection,
    broker_admin: BrokerAdmin,
    stack: LocalStack,
    fleet: dict[str, Credentials],
) -> None:
    b1 = fleet["b1"]
    before = probe(stack, b1.username, b1.password)
    try:
        assert before.accepted
        fresh = provisioning.provision_device(conn, broker_admin, b1.pilot, b1.device_id)
        assert before.wait(lambda: before.disconnected)  # the old credential is cut off
    finally:
        before.close()
    assert fresh.rotated and fresh.password != b1.password
    old = probe(stack, b1.username, b1.password)
    new = probe(stack, b1.username, fresh.password)
    try:
        assert old.connack is not None and old.connack >= 128
        assert new.accepted
    finally:
        old.close()
        new.close()


def test_tls_listener_with_the_throwaway_ca(
    stack: LocalStack, fleet: dict[str, Credentials], ingest: Probe
) -> None:
    a1 = fleet["a1"]
    for host in ("localhost", "127.0.0.1"):  # both are in the certificate's SAN
        dev = Probe(
            host,
            stack.settings.mqtt_tls_port,
            a1.username,
            a1.password,
            tls_ca=stack.mosquitto.ca_file,
        )
        try:
            assert dev.accepted
            payload = f"over tls to {host}".encode()
            assert dev.publish(telemetry(a1), payload) < 128
            assert ingest.wait(lambda p=payload: p in ingest.received(telemetry(a1)))  # type: ignore[misc]
        finally:
            dev.close()
