"""The device SDK against a real broker: batching, outages, crashes, presence, commands.

Delivery is checked the way the ingest service sees it: messages are identified by
(boot, seq); a resent duplicate has the same identity and the same bytes, so counting
records over distinct identities must give every record exactly once.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from devices.errors import PayloadError
from devices.outbox import Outbox, OutboxError
from devices.sdk import ConnectionRefused, DeviceClient
from kcity.settings import Settings
from kcity.stack.broker_admin import BrokerAdmin
from kcity.stack.local import LocalStack

ROOT = Path(__file__).resolve().parents[1]
WAIT = 60.0
T0 = datetime(2026, 10, 1, 12, tzinfo=UTC)


def records(start: int, count: int) -> list[dict[str, Any]]:
    """Streetlight records numbered by their timestamp (one per second from T0)."""
    return [
        {
            "ts": (T0 + timedelta(seconds=i)).isoformat().replace("+00:00", "Z"),
            "power_w": 40.0 + i % 7,
            "dim_pct": 30.0,
            "lamp_on": True,
            "vehicles": i % 3,
        }
        for i in range(start, start + count)
    ]


def index_of(ts: str) -> int:
    return int((datetime.fromisoformat(ts) - T0).total_seconds())


class Collector:
    """The ingest account's view of one device, in a persistent session that survives
    reconnects and broker restarts."""

    def __init__(self, settings: Settings, pilot: str, device: str) -> None:
        self.cond = threading.Condition()
        self.prefix = f"kcity/v1/{pilot}/{device}/"
        self.messages: dict[tuple[str, int, int], bytes] = {}
        self.conflicts: list[tuple[str, int, int]] = []
        self.statuses: list[dict[str, Any]] = []
        self.subscribed = False
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"collector-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.username_pw_set(settings.mqtt_username, settings.mqtt_password)
        self.client.reconnect_delay_set(1, 2)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        self.client.connect(
            settings.mqtt_host, settings.mqtt_port, clean_start=False, properties=props
        )
        self.client.loop_start()
        assert self.wait(lambda: self.subscribed), "the collector could not subscribe"

    def _on_connect(self, client: mqtt.Client, u: Any, flags: Any, rc: Any, p: Any) -> None:
        if not rc.is_failure:
            client.subscribe(self.prefix + "#", qos=1)

    def _on_subscribe(self, c: Any, u: Any, mid: int, codes: list[Any], p: Any) -> None:
        with self.cond:
            self.subscribed = all(not rc.is_failure for rc in codes)
            self.cond.notify_all()

    def _on_message(self, c: Any, u: Any, msg: mqtt.MQTTMessage) -> None:
        channel = msg.topic.rsplit("/", 1)[1]
        body = json.loads(msg.payload)
        with self.cond:
            if channel == "status":
                self.statuses.append(body)
            else:
                key = (channel, body["boot"], body["seq"])
                seen = self.messages.setdefault(key, bytes(msg.payload))
                if seen != msg.payload:
                    self.conflicts.append(key)
            self.cond.notify_all()

    def wait(self, predicate: Callable[[], bool], timeout: float = WAIT) -> bool:
        with self.cond:
            return self.cond.wait_for(predicate, timeout)

    def items(self, channel: str = "telemetry") -> list[dict[str, Any]]:
        """Every record (or event) over distinct (boot, seq) messages."""
        key = "records" if channel == "telemetry" else "events"
        with self.cond:
            bodies = [json.loads(p) for (c, _, _), p in self.messages.items() if c == channel]
        return [item for body in bodies for item in body[key]]

    def indices(self) -> list[int]:
        return sorted(index_of(r["ts"]) for r in self.items())

    def envelopes(self) -> list[dict[str, Any]]:
        with self.cond:
            return [
                json.loads(p) for (c, _, _), p in sorted(self.messages.items()) if c == "telemetry"
            ]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self.client._reset_sockets()


class Device:
    """A provisioned device's connection facts."""

    def __init__(self, settings: Settings, admin: BrokerAdmin, uid: str, pilot: str = "madiun"):
        self.settings = settings
        self.pilot = pilot
        self.id = f"sdk-{uid}"
        self.password = f"pw-{uuid.uuid4().hex}"
        admin.add_device(pilot, self.id, self.password)

    def client(self, outbox: Path, **kw: Any) -> DeviceClient:
        s = self.settings
        kw.setdefault("reconnect_delay", (1, 2))
        return DeviceClient(
            self.pilot,
            self.id,
            "streetlight",
            s.mqtt_host,
            s.mqtt_port,
            self.id,
            self.password,
            outbox_path=outbox,
            **kw,
        )


@pytest.fixture
def device(stack: LocalStack, broker_admin: BrokerAdmin, uid: str) -> Device:
    return Device(stack.settings, broker_admin, uid)


@pytest.fixture
def collector(stack: LocalStack, device: Device) -> Iterator[Collector]:
    c = Collector(stack.settings, device.pilot, device.id)
    yield c
    c.close()


def test_backlog_goes_out_in_batches_and_the_outbox_empties(
    device: Device, collector: Collector, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox.sqlite"
    with device.client(outbox) as dev:
        assert dev.connect()
        assert collector.wait(lambda: {"v": 1, "state": "online", "boot": 0} in collector.statuses)
        dev.pause()
        for start in range(0, 2500, 100):
            dev.publish(records(start, 100))
        assert dev.backlog == 2500
        dev.resume()
        assert dev.flush(WAIT)
        assert dev.backlog == 0
        assert collector.wait(lambda: len(collector.items()) == 2500)
    assert collector.indices() == list(range(2500))
    envelopes = collector.envelopes()
    assert [len(e["records"]) for e in envelopes] == [1000, 1000, 500]
    assert [(e["boot"], e["seq"]) for e in envelopes] == [(0, 0), (0, 1), (0, 2)]
    assert all(e["v"] == 1 and e["sent_at"].endswith("Z") for e in envelopes)
    assert collector.conflicts == []
    # Closing says offline (retained, like the Last Will) and leaves an empty outbox behind.
    assert collector.wait(lambda: collector.statuses[-1]["state"] == "offline")
    box = Outbox(outbox)
    try:
        assert box.backlog == 0
        assert box.pack(1000, 1 << 20) is None
    finally:
        box.close()


def test_boot_goes_up_at_each_start_and_seq_restarts(
    device: Device, collector: Collector, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox.sqlite"
    for expected_boot in (0, 1, 2):
        with device.client(outbox) as dev:
            assert dev.boot == expected_boot
            assert dev.connect()
            dev.publish(records(expected_boot * 10, 10))
            dev.publish_events([{"ts": "2026-10-01T12:00:00Z", "type": "config_changed"}])
            assert dev.flush(WAIT)
    with device.client(outbox, boot=42) as dev:
        assert dev.boot == 42
    assert collector.wait(lambda: len(collector.messages) == 6)
    assert sorted(collector.messages) == [
        (channel, boot, 0) for channel in ("event", "telemetry") for boot in (0, 1, 2)
    ]
    assert len(collector.items("event")) == 3


def test_invalid_records_fail_at_the_gateway(device: Device, tmp_path: Path) -> None:
    with device.client(tmp_path / "outbox.sqlite") as dev:
        bad = records(0, 3)
        bad[2] = {**bad[2], "dim_pct": 140.0}
        with pytest.raises(PayloadError, match=r"records\[2\]\.dim_pct"):
            dev.publish(bad)
        with pytest.raises(PayloadError, match="ts"):
            dev.publish([{**records(0, 1)[0], "ts": "2026-10-01T12:00:00"}])  # naive
        with pytest.raises(PayloadError, match="code"):
            dev.publish_events([{"ts": "2026-10-01T12:00:00Z", "type": "fault"}])
        assert dev.backlog == 0  # nothing of a refused call is stored


def test_commands_reach_the_handler(stack: LocalStack, device: Device, tmp_path: Path) -> None:
    got: list[dict[str, Any]] = []
    arrived = threading.Event()

    def handle(command: dict[str, Any]) -> None:
        got.append(command)
        arrived.set()

    with device.client(tmp_path / "outbox.sqlite", on_command=handle) as dev:
        assert dev.connect()
        s = stack.settings
        operator = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        operator.username_pw_set(s.mqtt_username, s.mqtt_password)
        operator.connect(s.mqtt_host, s.mqtt_port)
        operator.loop_start()
        try:
            # The subscription may still be on its way: repeat until the handler runs.
            for _ in range(30):
                operator.publish(
                    f"kcity/v1/{device.pilot}/{device.id}/cmd",
                    b'{"op":"set_dim","dim_pct":50}',
                    qos=1,
                ).wait_for_publish(5)
                if arrived.wait(1.0):
                    break
        finally:
            operator.disconnect()
            operator.loop_stop()
            operator._reset_sockets()
    assert got and got[0] == {"op": "set_dim", "dim_pct": 50}


def test_refused_credentials_and_a_busy_outbox(device: Device, tmp_path: Path) -> None:
    s = device.settings
    wrong = DeviceClient(
        device.pilot,
        device.id,
        "streetlight",
        s.mqtt_host,
        s.mqtt_port,
        device.id,
        "not-the-password",
        outbox_path=tmp_path / "a.sqlite",
    )
    with pytest.raises(ConnectionRefused, match=device.id):
        wrong.connect()
    with device.client(tmp_path / "b.sqlite"), pytest.raises(OutboxError, match="in use"):
        device.client(tmp_path / "b.sqlite")


def test_tls(stack: LocalStack, device: Device, collector: Collector, tmp_path: Path) -> None:
    s = stack.settings
    with DeviceClient(
        device.pilot,
        device.id,
        "streetlight",
        "localhost",
        s.mqtt_tls_port,
        device.id,
        device.password,
        outbox_path=tmp_path / "tls.sqlite",
        tls_ca=stack.mosquitto.ca_file,
    ) as dev:
        assert dev.connect()
        dev.publish(records(0, 5))
        assert dev.flush(WAIT)
    assert collector.wait(lambda: len(collector.items()) == 5)


def test_publishing_while_the_broker_is_down_loses_nothing(
    private_stack: Callable[[], LocalStack], tmp_path: Path, uid: str
) -> None:
    stack = private_stack()
    s = stack.settings
    admin = BrokerAdmin(s.mqtt_host, s.mqtt_port, s.mqtt_admin_username, s.mqtt_admin_password)
    try:
        device = Device(s, admin, uid)
    finally:
        admin.close()
        admin._client._reset_sockets()
    collector = Collector(s, device.pilot, device.id)
    try:
        with device.client(tmp_path / "outbox.sqlite") as dev:
            assert dev.connect()
            dev.publish(records(0, 300))
            assert dev.flush(WAIT)
            stack.mosquitto.stop()
            assert collector.wait(lambda: not dev.connected)
            for start in range(300, 3000, 300):
                dev.publish(records(start, 300))
            assert dev.backlog == 2700
            stack.mosquitto.start()
            assert dev.flush(WAIT)
            assert collector.wait(lambda: len(collector.items()) >= 3000)
        assert collector.indices() == list(range(3000))
        assert collector.conflicts == []
        assert max(len(e["records"]) for e in collector.envelopes()) <= 1000
    finally:
        collector.close()


CHILD = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    from tests.test_sdk import records
    from devices.sdk import DeviceClient
    host, port, pilot, device, password, outbox, start, stop, pause_at = sys.argv[1:10]
    client = DeviceClient(pilot, device, "streetlight", host, int(port), device, password,
                          outbox_path=outbox, reconnect_delay=(1, 2))
    client.connect()
    for i in range(int(start), int(stop), 50):
        if i == int(pause_at):
            client.pause()  # the link goes down
        client.publish(records(i, min(50, int(stop) - i)))
        print(i + 50, flush=True)
        time.sleep(0.005)
    assert client.flush(60)
    print("flushed", flush=True)
    client.close()
""")


def test_a_killed_publisher_loses_nothing(
    device: Device, collector: Collector, tmp_path: Path
) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(root=str(ROOT)))
    outbox = tmp_path / "outbox.sqlite"
    s = device.settings
    args = [
        sys.executable,
        str(script),
        s.mqtt_host,
        str(s.mqtt_port),
        device.pilot,
        device.id,
        device.password,
        str(outbox),
    ]
    total = 4000
    first = subprocess.Popen([*args, "0", str(total), "1000"], stdout=subprocess.PIPE, text=True)
    assert first.stdout is not None
    confirmed = 0
    for line in first.stdout:
        confirmed = int(line)
        if confirmed >= 1500:
            break
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    first.stdout.close()
    assert first.returncode == -signal.SIGKILL
    # It lost its link at record 1000: what came after was committed but never sent.
    box = Outbox(outbox)
    try:
        assert box.backlog >= confirmed - 1000
    finally:
        box.close()
    # The broker publishes the Last Will of a device that vanished.
    assert collector.wait(lambda: {"v": 1, "state": "offline"} in collector.statuses)

    second = subprocess.run(
        [*args, str(confirmed), str(total), "-1"], capture_output=True, text=True, timeout=120
    )
    assert second.returncode == 0, second.stderr
    assert "flushed" in second.stdout
    assert collector.wait(lambda: set(collector.indices()) >= set(range(total)))
    got = collector.indices()
    assert set(got) == set(range(total))
    # Only the records of the call in flight when it died may be there twice: committed,
    # but not yet confirmed to the parent, so published again.
    repeated = {i for i in got if got.count(i) > 1}
    assert repeated <= set(range(confirmed, confirmed + 50))
    assert collector.conflicts == []
    assert {e["boot"] for e in collector.envelopes()} == {0, 1}
    box = Outbox(outbox)
    try:
        assert box.backlog == 0
    finally:
        box.close()


def test_messages_the_broker_refuses_stay_in_the_outbox(device: Device, tmp_path: Path) -> None:
    s = device.settings
    outbox = tmp_path / "outbox.sqlite"
    # Provisioned for pilot "madiun", configured with another pilot: the ACL refuses it.
    with DeviceClient(
        "mukdahan",
        device.id,
        "streetlight",
        s.mqtt_host,
        s.mqtt_port,
        device.id,
        device.password,
        outbox_path=outbox,
    ) as dev:
        assert dev.connect()
        dev.publish(records(0, 10))
        assert not dev.flush(5)  # never acknowledged as delivered
        # Mosquitto answers "Not authorized" or drops the connection; either way it says so.
        assert dev.last_error is not None
        assert dev.backlog == 10
    box = Outbox(outbox)
    try:
        assert box.backlog == 10  # kept for a corrected configuration, not dropped
    finally:
        box.close()


def test_no_matching_subscribers_is_not_delivery(
    stack: LocalStack, broker_admin: BrokerAdmin, uid: str, tmp_path: Path, caplog: Any
) -> None:
    """Issue #17: with the platform's ingest session gone, the broker answers PUBACK 0x10
    and drops the message. The SDK keeps it, backs off, resends, and warns once."""
    caplog.set_level(logging.WARNING, logger="devices.sdk")
    device = Device(stack.settings, broker_admin, uid, pilot=f"nosub-{uid}")
    with device.client(tmp_path / "outbox.sqlite", reconnect_delay=(1, 2)) as dev:
        assert dev.connect()
        dev.publish(records(0, 15))
        deadline = time.monotonic() + WAIT
        while dev.dropped_no_subscribers < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert dev.dropped_no_subscribers >= 3  # the first send and at least two resends
        assert dev.backlog == 15 and not dev.flush(0)
        assert dev.last_error is not None and "no subscriber" in dev.last_error
        collector = Collector(stack.settings, device.pilot, device.id)  # ingest is back
        try:
            assert dev.flush(WAIT)
            assert collector.wait(lambda: len(collector.items()) == 15)
            assert collector.indices() == list(range(15))
        finally:
            collector.close()
    dropped = [r for r in caplog.records if "no subscriber" in r.getMessage()]
    assert len(dropped) == 1, [r.getMessage() for r in dropped]
    assert any("receives messages again" in r.getMessage() for r in caplog.records)
