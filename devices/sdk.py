"""The device SDK a firm's gateway imports: validate, store, then forward — never lose data.

``DeviceClient`` speaks the v1 contract (DESIGN §4) for one device. ``publish`` checks the
records against the device kind's model (a wrong payload fails at the gateway, not days
later in a dead-letter table), commits them to the durable outbox and returns; a sender
thread forwards them at QoS 1 while the link is up, packing up to ``batch_max`` records
per message, so a device catching up after an outage sends few large messages. A message
leaves the outbox only when the broker has acknowledged it (PUBACK). After a reconnect or a
restart, unacknowledged messages are resent unchanged, in order, with their original
(boot, seq), which is what lets the ingest service count duplicates and gaps.

A PUBACK with reason 0x10 ("no matching subscribers") is not delivery: it means the
platform's ingest session is missing, and the broker dropped the message. Such messages stay
in the outbox and are resent after a growing pause (logged once per episode).

Presence: a retained ``status`` ``{"v":1,"state":"online","boot":N}`` on every connect, the
same topic as Last Will with ``{"v":1,"state":"offline"}``. Downlink commands on the
device's ``cmd`` topic go to ``on_command``; ``ack_command`` answers them. Verdicts on
its rejected messages (the ``feedback`` topic) are logged as warnings and go to
``on_feedback``.

One process per outbox file (a lock enforces it). paho-mqtt 2, MQTT 5.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import IO, Any, Final, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import BaseModel, TypeAdapter, ValidationError

from devices.commands import command_ack
from devices.errors import DevicesError, PayloadError
from devices.ids import cmd_topic, feedback_topic, topic, validate_id
from devices.kinds import get_kind
from devices.outbox import Outbox, OutboxError
from devices.payloads import MAX_ITEMS, MAX_PAYLOAD_BYTES, encode_status

log = logging.getLogger(__name__)

CommandHandler = Callable[[dict[str, Any]], None]
FeedbackHandler = Callable[[dict[str, Any]], None]
Item = Mapping[str, Any] | BaseModel

_ENVELOPE_BYTES: Final = 200  # room for {"v","boot","seq","sent_at",...} around the items
_AUTH_FAILURES: Final = {0x86, 0x87, 0x8A, 0x8C}  # bad credentials, not authorized, banned
NO_SUBSCRIBERS: Final = 0x10  # PUBACK: the broker had nobody to give it to, and dropped it


class ConnectionRefused(DevicesError):
    """The broker refused the device's credentials (wrong password, revoked, banned)."""


class DeviceClient:
    """One device's connection: durable outbox, QoS 1 sender, presence and commands."""

    def __init__(
        self,
        pilot: str,
        device: str,
        kind: str,
        host: str,
        port: int,
        username: str,
        password: str,
        *,
        outbox_path: Path | str,
        tls_ca: Path | str | None = None,
        boot: int | None = None,
        batch_max: int = MAX_ITEMS,
        on_command: CommandHandler | None = None,
        on_feedback: FeedbackHandler | None = None,
        keepalive: int = 30,
        reconnect_delay: tuple[int, int] = (1, 30),
        max_inflight: int = 32,
        session_expiry_s: int = 86_400,
        fsync: bool = True,
        max_backlog: int | None = 5_000_000,
    ) -> None:
        self.pilot = validate_id(pilot, "pilot id")
        self.device = validate_id(device, "device id")
        self.kind = get_kind(kind).name
        if not 1 <= batch_max <= MAX_ITEMS:
            raise PayloadError("batch_max", f"must be 1 to {MAX_ITEMS}, not {batch_max}")
        self._host, self._port, self._keepalive = host, port, keepalive
        self._batch_max = batch_max
        self._max_inflight = max_inflight
        self._on_command = on_command
        self._on_feedback = on_feedback
        self._session_expiry_s = session_expiry_s

        self._lockfile = _lock(Path(str(outbox_path) + ".lock"))
        try:
            self._outbox = Outbox(outbox_path, fsync=fsync, max_items=max_backlog)
            self.boot = self._outbox.start_boot(boot)
        except BaseException:
            self._lockfile.close()
            raise

        self._cond = threading.Condition()
        self._connected = False
        self._paused = False
        self._stopping = False
        self._work = True  # there may be records to pack or messages to resend
        self._acks: list[tuple[int, ReasonCode]] = []
        self._inflight: dict[int, int] = {}  # paho mid -> outbox message id (sender thread only)
        self._last_handed = 0  # outbox message ids up to this were given to paho
        self._retry_from: int | None = None  # lowest message dropped for want of subscribers
        self._hold_until = 0.0  # monotonic time before which nothing is sent (0x10 backoff)
        self._backoff = 0.0
        self._reconnect_delay = reconnect_delay
        self.dropped_no_subscribers = 0  # PUBACKs 0x10 seen (each one resent later)
        self._refusal: str | None = None
        self.last_error: str | None = None
        self._sender: threading.Thread | None = None

        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=device, protocol=mqtt.MQTTv5
        )
        self._client.username_pw_set(username, password)
        if tls_ca is not None:
            self._client.tls_set(ca_certs=str(tls_ca))
        self._client.will_set(
            topic(pilot, device, "status"), encode_status("offline"), qos=1, retain=True
        )
        self._client.reconnect_delay_set(*reconnect_delay)
        self._client.max_inflight_messages_set(max_inflight)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message

    # -- lifecycle --------------------------------------------------------------------------

    def connect(self, timeout: float | None = 10.0) -> bool:
        """Start the network and sender threads; wait up to `timeout` s for the broker.

        Returns whether the device is connected; an unreachable broker is not an error (it
        keeps retrying, records wait in the outbox). Refused credentials raise
        ``ConnectionRefused``.
        """
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self._session_expiry_s
        # A kept session keeps the cmd subscription and commands queued while offline.
        self._client.connect_async(
            self._host, self._port, self._keepalive, clean_start=False, properties=props
        )
        self._client.loop_start()
        self._sender = threading.Thread(
            target=self._run, name=f"kcity-sdk-{self.device}", daemon=True
        )
        self._sender.start()
        if timeout:
            with self._cond:
                self._cond.wait_for(lambda: self._connected or bool(self._refusal), timeout)
        if self._refusal:
            refusal = self._refusal
            self.close()
            raise ConnectionRefused(f"the broker refused device {self.device!r}: {refusal}")
        return self._connected

    def close(self, timeout: float = 5.0) -> None:
        """Say offline, disconnect, stop the threads; unsent records stay in the outbox."""
        if self._sender is not None:
            with self._cond:
                self._stopping = True
                self._cond.notify_all()
            self._sender.join(timeout)
            self._sender = None
            if self._connected:
                info = self._client.publish(
                    topic(self.pilot, self.device, "status"),
                    encode_status("offline"),
                    qos=1,
                    retain=True,
                )
                with contextlib.suppress(RuntimeError, ValueError):
                    info.wait_for_publish(timeout)
            self._client.disconnect()
            self._client.loop_stop()
        # paho closes its sockets only in __del__; do it now, deterministically.
        self._client._reset_sockets()
        self._outbox.close()
        self._lockfile.close()

    def __enter__(self) -> DeviceClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- publishing -------------------------------------------------------------------------

    def publish(self, records: Sequence[Item]) -> None:
        """Validate records of the device's kind and commit them to the outbox.

        Records keep their own timestamps (simulators send pre-built batches). Durable when
        this returns; sending happens in the background.
        """
        self._append("telemetry", records)

    def publish_events(self, events: Sequence[Item]) -> None:
        """Validate events of the device's kind and commit them to the outbox."""
        self._append("event", events)

    def ack_command(
        self,
        command_id: str,
        status: Literal["done", "rejected"] = "done",
        reason: str | None = None,
    ) -> None:
        """Answer a command from ``on_command`` (``command["id"]``): a ``command_ack`` event,
        durable and resent like any event, which closes the command on the platform."""
        self.publish_events([command_ack(command_id, status, datetime.now(UTC), reason)])

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until the broker has acknowledged everything; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._outbox.backlog == 0, timeout)

    def pause(self) -> None:
        """Hold sending (emulates a link outage): records keep accumulating in the outbox."""
        with self._cond:
            self._paused = True

    def resume(self) -> None:
        """Send again; the backlog goes out in batches of up to `batch_max` records."""
        with self._cond:
            self._paused = False
            self._work = True
            self._cond.notify_all()

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def backlog(self) -> int:
        """Records and events not yet acknowledged by the broker."""
        return self._outbox.backlog

    def _append(self, channel: str, items: Sequence[Item]) -> None:
        if not items:
            return
        bodies = _validated(self.kind, channel, items)
        self._outbox.append(channel, bodies)
        with self._cond:
            self._work = True
            self._cond.notify_all()

    # -- the sender thread ------------------------------------------------------------------

    def _ready(self) -> bool:
        can_send = (
            self._connected
            and not self._paused
            and self._work
            and len(self._inflight) < self._max_inflight
            and time.monotonic() >= self._hold_until
        )
        return self._stopping or bool(self._acks) or can_send

    def _run(self) -> None:
        while True:
            with self._cond:
                held = self._hold_until - time.monotonic()
                self._cond.wait_for(self._ready, held if held > 0 else None)
                if self._stopping:
                    return
                acks, self._acks = self._acks, []
                can_send = (
                    self._connected
                    and not self._paused
                    and self._work
                    and time.monotonic() >= self._hold_until
                )
                if can_send:
                    self._work = False  # set again by publish() if records arrive meanwhile
            try:
                self._settle(acks)
                can_send = can_send and time.monotonic() >= self._hold_until
                if can_send and self._retry_from is not None:
                    # The pause is over: resend from the first dropped message, in order.
                    self._last_handed = min(self._last_handed, self._retry_from - 1)
                    self._retry_from = None
                sent = 0
                while can_send and len(self._inflight) < self._max_inflight and self._send_one():
                    sent += 1
            except (OutboxError, ValueError) as exc:
                log.error("device %s: sender stopped: %s", self.device, exc)
                self.last_error = str(exc)
                return
            with self._cond:
                if sent or len(self._inflight) >= self._max_inflight:
                    self._work = True  # there may be more behind the in-flight window
                self._cond.notify_all()

    def _settle(self, acks: list[tuple[int, ReasonCode]]) -> None:
        for mid, reason in acks:
            message_id = self._inflight.pop(mid, None)
            if message_id is None:
                continue  # a status message
            if reason.value == NO_SUBSCRIBERS:
                self._dropped(message_id)
            elif reason.is_failure:
                # Kept in the outbox; resent at the next start, not in a loop now.
                self.last_error = f"broker refused message {message_id}: {reason}"
                log.error("device %s: %s", self.device, self.last_error)
            else:
                self._outbox.acknowledge(message_id)
                if self._backoff:
                    log.warning("device %s: the platform receives messages again", self.device)
                    self._backoff = 0.0

    def _dropped(self, message_id: int) -> None:
        """The broker had no subscriber (the platform's ingest session is missing): keep the
        message and hold sending for a growing pause; warn once per episode."""
        self.dropped_no_subscribers += 1
        self._retry_from = min(self._retry_from or message_id, message_id)
        first, most = self._reconnect_delay
        if not self._backoff:
            self.last_error = "the broker has no subscriber for our messages (ingest is down?)"
            log.warning("device %s: %s; keeping them and retrying", self.device, self.last_error)
        now = time.monotonic()
        if now >= self._hold_until:  # a new round was dropped (not one more of the same)
            self._backoff = min(max(self._backoff * 2, float(first)), float(most))
            self._hold_until = now + self._backoff
        self._work = True

    def _send_one(self) -> bool:
        with self._cond:  # a pause() that returned is seen before anything more is packed
            if self._paused:
                return False
            msg = self._outbox.next_stored(self._last_handed)
            if msg is None:
                msg = self._outbox.pack(self._batch_max, MAX_PAYLOAD_BYTES)
        if msg is None:
            return False
        self._last_handed = msg.id
        # paho keeps it until PUBACK and resends it itself after a reconnect.
        info = self._client.publish(topic(self.pilot, self.device, msg.channel), msg.payload, 1)
        self._inflight[info.mid] = msg.id
        return True

    # -- paho callbacks (network thread) ----------------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        if reason.is_failure:
            self.last_error = f"connection refused: {reason}"
            with self._cond:
                if reason.value in _AUTH_FAILURES:
                    self._refusal = str(reason)
                self._cond.notify_all()
            return
        client.publish(
            topic(self.pilot, self.device, "status"),
            encode_status("online", boot=self.boot),
            qos=1,
            retain=True,
        )
        if self._on_command is not None:
            client.subscribe(cmd_topic(self.pilot, self.device), qos=1)
        client.subscribe(feedback_topic(self.pilot, self.device), qos=0)
        with self._cond:
            self._connected = True
            self._work = True
            self._cond.notify_all()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        with self._cond:
            self._connected = False
            self._cond.notify_all()
        if reason.is_failure:
            self.last_error = f"disconnected: {reason}"

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode, props: Any
    ) -> None:
        with self._cond:
            self._acks.append((mid, reason))
            self._cond.notify_all()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic.endswith("/feedback"):
            self._feedback(bytes(msg.payload))
            return
        handler = self._on_command
        if handler is None:
            return
        try:
            command = json.loads(msg.payload)
        except ValueError:
            log.warning("device %s: ignored a command that is not JSON", self.device)
            return
        if not isinstance(command, dict):
            log.warning("device %s: ignored a command that is not a JSON object", self.device)
            return
        try:
            handler(command)
        except Exception:  # a gateway's handler must not kill the network thread
            log.exception("device %s: the command handler failed", self.device)

    def _feedback(self, raw: bytes) -> None:
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            log.warning("device %s: ignored feedback that is not a JSON object", self.device)
            return
        log.warning(
            "device %s: ingest rejected boot %s seq %s (%s): %s",
            self.device,
            body.get("boot"),
            body.get("seq"),
            body.get("stage"),
            body.get("reason"),
        )
        if self._on_feedback is not None:
            try:
                self._on_feedback(body)
            except Exception:  # a gateway's handler must not kill the network thread
                log.exception("device %s: the feedback handler failed", self.device)


# --- validation and encoding ---------------------------------------------------------------


@cache
def _adapter(kind: str, channel: str) -> TypeAdapter[list[Any]]:
    spec = get_kind(kind)
    model = spec.record_model if channel == "telemetry" else spec.event_model
    return TypeAdapter(list[model])  # type: ignore[valid-type]


def _validated(kind: str, channel: str, items: Sequence[Item]) -> list[str]:
    """Compact JSON of each item after checking it against the kind's model."""
    key = "records" if channel == "telemetry" else "events"
    try:
        _adapter(kind, channel).validate_python(list(items))
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = list(err["loc"])
        field = (err.get("ctx") or {}).get("field")
        if isinstance(field, str):
            loc.append(field)
        where = key + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)
        more = exc.error_count() - 1
        raise PayloadError(where, err["msg"] + (f" (and {more} more)" if more else "")) from exc
    bodies = []
    for index, item in enumerate(items):
        try:
            body = json.dumps(item, default=_json_default, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise PayloadError(f"{key}[{index}]", f"cannot encode: {exc}") from exc
        if len(body.encode()) > MAX_PAYLOAD_BYTES - _ENVELOPE_BYTES:
            raise PayloadError(f"{key}[{index}]", "larger than a whole message may be")
        bodies.append(body)
    return bodies


def _json_default(value: object) -> object:
    if isinstance(value, datetime):  # validation has refused naive datetimes
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _lock(path: Path) -> IO[bytes]:
    """Hold an exclusive lock beside the outbox: two senders would duplicate messages."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("ab")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        handle.close()
        raise OutboxError(
            f"the outbox {path.with_suffix('')} is in use by another process"
        ) from exc
    return handle
