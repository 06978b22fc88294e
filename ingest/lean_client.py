"""paho-mqtt's client with a buffered reader and a lean PUBLISH decoder, for the consumer.

Profiling a worker draining its queue showed paho spending more time per message than
ingest itself: four ``recv`` system calls per packet (command byte, each length byte, the
body) and, for every MQTT 5 PUBLISH, a ``Properties`` object that builds two dictionaries
of 27 names and walks them with ``hasattr``. Ingest reads none of a PUBLISH's properties.
This subclass reads the socket 64 KiB at a time, cuts packets out of that buffer, decodes
QoS 0/1 PUBLISH packets itself (topic, packet id, payload; properties skipped) and hands
them straight to ``on_publish_bytes``; every other packet goes through paho's own handlers.
``ack_many`` writes a whole batch's acknowledgements at once instead of one send per ack.
It overrides paho internals (``_packet_read``, ``_in_packet``), so the paho version is
pinned below 3 in pyproject.toml.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.exception import MalformedPacket

_PUBLISH = 0x30
_PUBACK = 0x40
_PUBACK_HEAD = bytes([_PUBACK, 2])  # fixed header: PUBACK, remaining length 2 (the id)
_CHUNK = 65536
_MAX_READS = 32  # reads towards one packet per call (2 MiB; the broker's limit is 1 MiB)
PublishHandler = Callable[[bytes, bytes, int, int], None]  # topic, payload, mid, qos


def _in_packet(command: int = 0, body: bytes = b"") -> Any:
    """paho's ``_in_packet`` record: a whole packet read (or none, when ``command`` is 0)."""
    return {
        "command": command,
        "have_remaining": 1 if command else 0,
        "remaining_count": [],
        "remaining_mult": 1,
        "remaining_length": len(body),
        "packet": bytearray(body),
        "to_process": 0,
        "pos": 0,
    }


class LeanClient(mqtt.Client):
    """A paho ``Client`` whose reads are buffered; set ``on_publish_bytes`` before connecting."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_publish_bytes: PublishHandler | None = None
        self._rbuf = b""
        self._rpos = 0

    def ack_many(self, mids: list[int]) -> MQTTErrorCode:
        """PUBACK every QoS 1 message id in one write (paho sends one packet per call)."""
        if not mids:
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        packet = b"".join([_PUBACK_HEAD + mid.to_bytes(2, "big") for mid in mids])
        return self._packet_queue(_PUBACK, packet, 0, 0)

    def reconnect(self) -> MQTTErrorCode:
        self._rbuf, self._rpos = b"", 0  # bytes of an earlier connection mean nothing now
        return super().reconnect()

    def _frame(self) -> tuple[int, int, int] | None:
        """(command, body start, body end) of the next complete packet in the buffer."""
        buf, pos = self._rbuf, self._rpos
        end = len(buf)
        if end - pos < 2:
            return None
        length, mult, i = 0, 1, pos + 1
        while True:
            if i >= end:
                return None
            byte = buf[i]
            length += (byte & 127) * mult
            mult *= 128
            i += 1
            if not byte & 128:
                break
            if i - pos > 4:
                return (-1, 0, 0)  # a length of more than four bytes: a protocol error
        if end - i < length:
            return None
        return buf[pos], i, i + length

    def has_buffered_packet(self) -> bool:
        """A whole packet waits in the buffer (``select`` on the socket would not say so)."""
        return self._frame() is not None

    def _packet_read(self) -> MQTTErrorCode:
        frame = self._frame()
        reads = 0
        while frame is None:  # a packet bigger than one read (a 93 KB message) needs several
            if reads == _MAX_READS:
                return MQTTErrorCode.MQTT_ERR_AGAIN
            try:
                data = self._sock_recv(_CHUNK)
            except BlockingIOError:
                return MQTTErrorCode.MQTT_ERR_AGAIN
            except OSError:
                return MQTTErrorCode.MQTT_ERR_CONN_LOST
            if not data:
                return MQTTErrorCode.MQTT_ERR_CONN_LOST
            reads += 1
            self._rbuf = self._rbuf[self._rpos :] + data
            self._rpos = 0
            with self._msgtime_mutex:
                self._last_bytes_received = time.monotonic()
            frame = self._frame()
        command, start, end = frame
        if command < 0:
            return MQTTErrorCode.MQTT_ERR_PROTOCOL
        body = self._rbuf[start:end]
        self._rpos = end
        if command & 0xF0 == _PUBLISH and self._lean_publish(command, body):
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        self._in_packet = _in_packet(command, body)
        try:
            rc: MQTTErrorCode = self._packet_handle()
        except MalformedPacket:
            rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
        self._in_packet = _in_packet()
        return rc

    def _lean_publish(self, command: int, body: bytes) -> bool:
        """Decode a QoS 0/1 PUBLISH of an MQTT 5 connection; False leaves it to paho."""
        handler = self.on_publish_bytes
        qos = (command & 0x06) >> 1
        if handler is None or qos == 2 or self._protocol != mqtt.MQTTv5 or len(body) < 3:
            return False
        tlen = int.from_bytes(body[0:2], "big")
        pos = 2 + tlen
        if tlen == 0 or pos > len(body):
            return False  # a topic alias, or a malformed packet: paho's way
        topic = body[2:pos]
        mid = 0
        if qos:
            mid = int.from_bytes(body[pos : pos + 2], "big")
            pos += 2
        plen, mult = 0, 1  # the properties' length (a variable byte integer), then skip them
        for _ in range(4):
            if pos >= len(body):
                return False
            byte = body[pos]
            pos += 1
            plen += (byte & 127) * mult
            mult *= 128
            if not byte & 128:
                break
        else:
            return False
        pos += plen
        if pos > len(body):
            return False
        handler(topic, body[pos:], mid, qos)
        return True
