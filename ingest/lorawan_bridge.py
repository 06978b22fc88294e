"""A LoRaWAN bridge: one pilot's network-server MQTT integration in, v1 records stored.

Each uplink becomes a v1 telemetry message of the device whose ``dev_eui`` it carries —
``fCnt`` → ``seq``, a join or a counter going backwards → ``boot + 1``, the uplink's time
→ ``ts`` unless the decoded object has one — and goes through ingest's own validation and
writer (``ingest.direct``). Unknown DevEUIs, undecoded payloads and unmapped keys become
dead letters holding the uplink JSON. The network server's message is acknowledged only
after the commit (paho manual acks, persistent session); while the database is down the
message is retried, unacknowledged. Downlink acks close commands (``commands`` table).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from devices.commands import encode_downlink
from devices.errors import DevicesError
from devices.ids import topic as kcity_topic
from devices.lorawan import (
    LoraEvent,
    LorawanError,
    LorawanSettings,
    chirpstack_downlink,
    parse_event,
    to_record,
    tts_downlink,
)
from ingest import direct
from ingest.batch_writer import OUTAGE_ERRORS
from ingest.registry import DeviceInfo
from ingest.validate import dead

log = logging.getLogger(__name__)
STAGE = "lorawan"


@dataclass(frozen=True, slots=True)
class BridgeConfig:
    """One pilot's bridge; the shell reads the credentials from the named variables."""

    database_url: str
    pilot_id: str
    lorawan: LorawanSettings
    username: str | None = None
    password: str | None = None
    max_backoff_s: float = 5.0
    poll_s: float = 1.0  # how often queued commands are looked for

    @property
    def client_id(self) -> str:
        return f"kcity-bridge-{self.pilot_id}"


@dataclass(frozen=True, slots=True)
class LoraDevice:
    device_id: str
    info: DeviceInfo


class Sessions:
    """Each device's current ``boot`` and last frame counter.

    Started from what is stored (the newest telemetry message of the device), so a bridge
    restart continues the numbering; a join, or a counter lower than the last, starts a new
    boot (the device re-joined or its counters were reset).
    """

    def __init__(self, load: Callable[[str], tuple[int, int] | None]) -> None:
        self._load = load
        self._state: dict[str, tuple[int, int | None]] = {}

    def _current(self, device: str) -> tuple[int, int | None]:
        if device not in self._state:
            self._state[device] = self._load(device) or (0, None)
        return self._state[device]

    def join(self, device: str) -> None:
        boot, last = self._current(device)
        self._state[device] = (boot + 1 if last is not None else boot, None)

    def place(self, device: str, f_cnt: int) -> tuple[int, int]:
        """(boot, seq) of an uplink with frame counter ``f_cnt``."""
        boot, last = self._current(device)
        if last is not None and f_cnt < last:
            boot += 1
        self._state[device] = (boot, f_cnt)
        return boot, f_cnt


def last_message(conn: psycopg.Connection, device: str) -> tuple[int, int] | None:
    row = conn.execute(
        "SELECT boot, seq FROM ingest_messages WHERE device_id = %s AND channel = 'telemetry'"
        " ORDER BY boot DESC, seq DESC LIMIT 1",
        (device,),
    ).fetchone()
    conn.commit()
    return (int(row[0]), int(row[1])) if row else None


class Bridge:
    """Translate and store network-server messages; ``handle`` is the whole verdict."""

    def __init__(self, config: BridgeConfig, retired: tuple[str, ...] = ()) -> None:
        self.config = config
        # Filters an earlier configuration subscribed in the same persistent session: the
        # network server would keep sending their messages to this client id.
        self.retired = tuple(f for f in retired if f not in config.lorawan.topic_filters)
        self._conn: psycopg.Connection | None = None
        self._devices: dict[str, LoraDevice] = {}
        self._loaded_at = 0.0
        self._network_ids: dict[str, str] = {}  # DevEUI -> TTS end-device id, from uplinks
        self.sessions = Sessions(lambda device: last_message(self.conn, device))
        self.connected = False  # to the network server's broker, subscribed

    @property
    def conn(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self.config.database_url, connect_timeout=3, application_name="kcity-bridge"
            )
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _device(self, eui: str) -> LoraDevice | None:
        found = self._devices.get(eui)
        if found is None and time.monotonic() - self._loaded_at > 0.5:
            rows = self.conn.execute(
                "SELECT dev_eui, id, pilot_id, kind, revoked_at IS NOT NULL FROM devices"
                " WHERE dev_eui IS NOT NULL"
            ).fetchall()
            self.conn.commit()
            self._devices = {r[0]: LoraDevice(r[1], DeviceInfo(r[2], r[3], r[4])) for r in rows}
            self._loaded_at = time.monotonic()
            found = self._devices.get(eui)
        return found

    def handle(self, topic: str, raw: bytes) -> direct.Stored | None:
        """Store what one message carries (or its dead letter); None when nothing to store."""
        now = datetime.now(UTC)
        pilot = self.config.pilot_id

        def refuse(code: str, detail: str, device: str | None = None) -> direct.Stored:
            return direct.refuse(self.conn, topic, raw, now, STAGE, code, detail, pilot, device)

        try:
            event = parse_event(self.config.lorawan.network, topic, raw)
        except LorawanError as exc:
            return refuse(exc.code, exc.detail)
        if event.type == "other":
            return None
        if event.dev_eui is None:
            return refuse("no_dev_eui", "the message names no DevEUI")
        found = self._device(event.dev_eui)
        if found is None or found.info.pilot_id != pilot:
            return refuse(
                "unknown_dev_eui", f"no device of pilot {pilot!r} has DevEUI {event.dev_eui}"
            )
        device = found.device_id
        if event.network_device_id is not None:
            self._network_ids[event.dev_eui] = event.network_device_id
        if event.type == "join":
            self.sessions.join(device)
            return None
        if event.type != "up":
            self._close_command(event, device, now)
            return None
        if event.decoded is None:
            return refuse("undecoded", "no decoded object: configure the codec", device)
        record, unmapped = to_record(event.decoded, self.config.lorawan.fields, event.time)
        if not set(record) - {"ts"}:
            return refuse("unmapped_field", f"no mapped key among {unmapped}", device)
        boot, seq = self.sessions.place(device, event.f_cnt or 0)
        message = json.dumps({"v": 1, "boot": boot, "seq": seq, "records": [record]}).encode()
        v1_topic = kcity_topic(pilot, device, "telemetry")
        outcome = direct.judge(v1_topic, message, {device: found.info}, now)
        if unmapped:
            letter = dead(
                topic,
                raw,
                STAGE,
                "unmapped_field",
                f"decoded keys {', '.join(unmapped)} are not in [lorawan.fields]",
                pilot,
                device,
            )
            outcome = dataclasses.replace(outcome, dead_letters=(*outcome.dead_letters, letter))
        return direct.store(self.conn, v1_topic, message, outcome, now)

    def _close_command(self, event: LoraEvent, device: str, now: datetime) -> None:
        """A network server's downlink acknowledgement closes (or refuses) its command."""
        if event.command_id is None or event.type == "txack":
            return
        state, reason = (
            ("acked", None) if event.type == "ack" else ("rejected", "the device did not ack")
        )
        with self.conn.transaction():
            self.conn.execute(
                "UPDATE commands SET state = %s, reason = %s, closed_at = %s"
                " WHERE id::text = %s AND device_id = %s AND state IN ('queued', 'sent')"
                " AND expires_at > %s",
                (state, reason, now, event.command_id, device, now),
            )

    # -- downlinks ---------------------------------------------------------------------

    def downlinks(self) -> list[tuple[str, str, bytes]]:
        """(command id, topic, JSON) of the pilot's queued, unexpired commands, oldest first.

        A command the network cannot carry (a device without DevEUI, parameters the encoder
        refuses) is closed as ``rejected`` with the reason.
        """
        lorawan = self.config.lorawan
        rows = self.conn.execute(
            "SELECT c.id::text, c.type, c.params, d.id, d.dev_eui FROM commands c"
            " JOIN devices d ON d.id = c.device_id WHERE c.pilot_id = %s"
            " AND c.state = 'queued' AND c.expires_at > now() ORDER BY c.created_at LIMIT 100",
            (self.config.pilot_id,),
        ).fetchall()
        self.conn.commit()
        out = []
        for command_id, command_type, params, device, eui in rows:
            try:
                if eui is None:
                    raise DevicesError(f"device {device} has no dev_eui")
                data = encode_downlink(command_type, params)
            except DevicesError as exc:
                self._reject(command_id, str(exc))
                continue
            if lorawan.network == "chirpstack":
                topic, body = chirpstack_downlink(
                    lorawan.application_id, eui, command_id, data, lorawan.f_port
                )
            else:
                target: str = self._network_ids.get(eui) or device
                topic, body = tts_downlink(
                    lorawan.application_id, target, command_id, data, lorawan.f_port
                )
            out.append((command_id, topic, body))
        return out

    def mark_sent(self, command_id: str) -> None:
        with self.conn.transaction():
            self.conn.execute(
                "UPDATE commands SET state = 'sent', via = %s, sent_at = now()"
                " WHERE id::text = %s AND state = 'queued'",
                (self.config.lorawan.network, command_id),
            )

    def _reject(self, command_id: str, reason: str) -> None:
        with self.conn.transaction():
            self.conn.execute(
                "UPDATE commands SET state = 'rejected', reason = %s, closed_at = now()"
                " WHERE id::text = %s AND state = 'queued'",
                (reason[:500], command_id),
            )

    def _send_downlinks(self, client: mqtt.Client) -> None:
        for command_id, topic, body in self.downlinks():
            info = client.publish(topic, body, qos=1)
            info.wait_for_publish(10)
            if info.is_published():
                self.mark_sent(command_id)

    # -- the MQTT side -----------------------------------------------------------------

    def run(self, stop: threading.Event, ready: threading.Event | None = None) -> None:
        """Consume until ``stop`` is set; each message acknowledged after its commit."""
        settings = self.config.lorawan
        parts = urlsplit(settings.mqtt_url)
        inbox: deque[mqtt.MQTTMessage] = deque()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.config.client_id,
            protocol=mqtt.MQTTv311,  # The Things Stack speaks 3.1.1 only
            clean_session=False,
            manual_ack=True,
        )
        if self.config.username is not None:
            client.username_pw_set(self.config.username, self.config.password)
        if parts.scheme == "mqtts":
            client.tls_set()

        def on_connect(c: mqtt.Client, u: Any, flags: Any, rc: Any, props: Any) -> None:
            if rc.is_failure:
                log.error("the network server's broker refused the bridge: %s", rc)
                return
            if self.retired:
                c.unsubscribe(list(self.retired))
            c.subscribe([(f, 1) for f in settings.topic_filters])

        def on_subscribe(*args: Any) -> None:
            self.connected = True
            if ready is not None:
                ready.set()

        def on_disconnect(*args: Any) -> None:
            self.connected = False

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_disconnect = on_disconnect
        client.on_message = lambda c, u, msg: inbox.append(msg)
        client.reconnect_delay_set(1, max(1, int(self.config.max_backoff_s)))
        client.connect_async(parts.hostname or "127.0.0.1", parts.port or 1883, keepalive=30)
        client.loop_start()
        delay = 0.1
        next_poll = 0.0
        try:
            while not stop.is_set():
                if not inbox:
                    if client.is_connected() and time.monotonic() >= next_poll:
                        next_poll = time.monotonic() + self.config.poll_s
                        try:
                            self._send_downlinks(client)
                        except OUTAGE_ERRORS as exc:
                            log.warning("cannot read queued commands: %s", exc)
                            self.close()
                    stop.wait(0.02)
                    continue
                msg = inbox[0]
                try:
                    self.handle(msg.topic, bytes(msg.payload))
                except OUTAGE_ERRORS as exc:
                    log.warning("database unavailable (%s); retrying in %.1f s", exc, delay)
                    self.close()
                    stop.wait(delay)
                    delay = min(delay * 2, self.config.max_backoff_s)
                    continue
                except Exception as exc:  # never lose it silently: keep it as a dead letter
                    log.exception("cannot handle a message on %s", msg.topic)
                    now = datetime.now(UTC)
                    detail = f"{type(exc).__name__}: {exc}"
                    direct.refuse(
                        self.conn,
                        msg.topic,
                        bytes(msg.payload),
                        now,
                        STAGE,
                        "bridge_error",
                        detail,
                        self.config.pilot_id,
                    )
                delay = 0.1
                inbox.popleft()
                if msg.qos:
                    client.ack(msg.mid, msg.qos)
        finally:
            self.connected = False
            client.disconnect()
            client.loop_stop()
            self.close()
