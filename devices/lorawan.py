"""LoRaWAN network servers as a way in (DESIGN §4): their JSON, our v1 records — pure, no I/O.

A pilot's ``[lorawan]`` section names the network server's MQTT integration and maps the
keys its codec decodes to record fields (with a scale, e.g. kWh → Wh). This module reads
the two servers' integration events into one ``LoraEvent``, turns a decoded object into a
record, and writes downlinks in each server's format.

- ChirpStack v4 (JSON marshaler, the Protobuf JSON mapping of ``integration.proto``):
  ``application/{application_id}/device/{dev_eui}/event/{up|join|ack|txack|…}``; downlinks
  on ``…/command/down`` as ``{"id", "devEui", "confirmed", "fPort", "data"}`` (base64).
  https://www.chirpstack.io/docs/chirpstack/integrations/events.html and
  https://www.chirpstack.io/docs/chirpstack/integrations/mqtt.html
- The Things Stack v3: ``v3/{app}@{tenant}/devices/{device_id}/{up|join|down/ack|down/nack}``;
  downlinks on ``…/down/push`` as ``{"downlinks": [{"f_port", "frm_payload", "priority",
  "correlation_ids"}]}``.
  https://www.thethingsindustries.com/docs/integrations/data-formats/ and
  https://www.thethingsindustries.com/docs/integrations/other-integrations/mqtt/
"""

from __future__ import annotations

import base64
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from devices.errors import DevicesError

_CONFIG: Final = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
_ENV_NAME: Final = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
CORRELATION_PREFIX: Final = "kcity:cmd:"


class LorawanError(DevicesError):
    """A network-server message that cannot be read as one of its documented events."""

    def __init__(self, code: str, detail: str) -> None:
        self.code = code
        self.detail = detail
        super().__init__(f"{code.replace('_', ' ')}: {detail}")


class FieldMap(BaseModel):
    """Where one decoded key goes: a record field, times ``scale``."""

    model_config = _CONFIG

    field: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    scale: float = 1.0


class LorawanSettings(BaseModel):
    """A pilot's ``[lorawan]`` section; credentials are environment variable *names*."""

    model_config = _CONFIG

    network: Literal["chirpstack", "tts"]
    mqtt_url: str
    application_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9@._-]{0,99}$")]
    username_env: Annotated[str, Field(pattern=_ENV_NAME)] | None = None
    password_env: Annotated[str, Field(pattern=_ENV_NAME)] | None = None
    f_port: Annotated[int, Field(ge=1, le=223)] = 10  # downlinks (commands)
    fields: dict[str, FieldMap]

    @field_validator("mqtt_url")
    @classmethod
    def _broker_url(cls, value: str) -> str:
        parts = urlsplit(value)
        try:
            port = parts.port
        except ValueError:
            port = None
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname or port is None:
            raise ValueError("must look like mqtt://host:port (or mqtts://)")
        if parts.username or parts.password:
            raise ValueError("no credentials in the URL: name them with username_env/password_env")
        return value

    @property
    def topic_filters(self) -> tuple[str, ...]:
        """What the bridge subscribes to on the network server's broker."""
        app = self.application_id
        if self.network == "chirpstack":
            return (f"application/{app}/device/+/event/+",)
        return tuple(f"v3/{app}/devices/+/{ev}" for ev in ("up", "join", "down/ack", "down/nack"))


@dataclass(frozen=True, slots=True)
class LoraEvent:
    """One network-server event, whatever the server."""

    type: Literal["up", "join", "ack", "nack", "txack", "other"]
    dev_eui: str | None  # 16 lower-case hex digits
    network_device_id: str | None = None  # TTS end-device id (from the topic)
    f_cnt: int | None = None
    time: datetime | None = None
    decoded: dict[str, Any] | None = None
    command_id: str | None = None  # the downlink this ack is about
    extra: dict[str, Any] = field(default_factory=dict)


def _json(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise LorawanError("bad_json", f"not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise LorawanError("bad_json", "not a JSON object")
    return body


def _time(value: object) -> datetime | None:
    """RFC 3339 with up to nanoseconds (both servers send nine digits)."""
    if not isinstance(value, str):
        return None
    text = re.sub(r"(\.\d{6})\d+", r"\1", value.strip()).replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _eui(value: object) -> str | None:
    if isinstance(value, str) and re.fullmatch(r"[0-9A-Fa-f]{16}", value):
        return value.lower()
    return None


def parse_chirpstack(topic: str, raw: bytes) -> LoraEvent:
    """A ChirpStack v4 integration event (JSON marshaler)."""
    parts = topic.split("/")
    if len(parts) != 6 or parts[0] != "application" or parts[4] != "event":
        raise LorawanError("bad_topic", f"not a ChirpStack event topic: {topic[:200]!r}")
    body = _json(raw)
    info = body.get("deviceInfo")
    eui = _eui(info.get("devEui")) if isinstance(info, dict) else None
    eui = eui or _eui(parts[3])
    kind = parts[5]
    when = _time(body.get("time"))
    if kind == "up":
        decoded = body.get("object")
        f_cnt = body.get("fCnt", 0)  # the Protobuf JSON mapping leaves out zeros
        if not isinstance(f_cnt, int) or isinstance(f_cnt, bool) or f_cnt < 0:
            raise LorawanError("bad_uplink", f"fCnt {f_cnt!r} is not a counter")
        return LoraEvent(
            "up",
            eui,
            f_cnt=f_cnt,
            time=when,
            decoded=decoded if isinstance(decoded, dict) else None,
        )
    if kind == "join":
        return LoraEvent("join", eui, time=when)
    if kind in ("ack", "txack"):
        item = body.get("queueItemId")
        command = item if isinstance(item, str) else None
        if kind == "ack" and not body.get("acknowledged", False):
            return LoraEvent("nack", eui, time=when, command_id=command)
        return LoraEvent(kind, eui, time=when, command_id=command)  # type: ignore[arg-type]
    return LoraEvent("other", eui, time=when, extra={"event": kind})


def parse_tts(topic: str, raw: bytes) -> LoraEvent:
    """A The Things Stack v3 MQTT message (uplink, join, downlink ack or nack)."""
    parts = topic.split("/")
    if len(parts) < 5 or parts[0] != "v3" or parts[2] != "devices":
        raise LorawanError("bad_topic", f"not a Things Stack topic: {topic[:200]!r}")
    body = _json(raw)
    ids = body.get("end_device_ids")
    eui = _eui(ids.get("dev_eui")) if isinstance(ids, dict) else None
    device_id = parts[3]
    kind = "/".join(parts[4:])
    when = _time(body.get("received_at"))
    if kind == "up":
        up = body.get("uplink_message")
        if not isinstance(up, dict):
            raise LorawanError("bad_uplink", "no uplink_message")
        f_cnt = up.get("f_cnt", 0)  # empty fields are left out
        if not isinstance(f_cnt, int) or isinstance(f_cnt, bool) or f_cnt < 0:
            raise LorawanError("bad_uplink", f"f_cnt {f_cnt!r} is not a counter")
        decoded = up.get("decoded_payload")
        return LoraEvent(
            "up",
            eui,
            device_id,
            f_cnt=f_cnt,
            time=_time(up.get("received_at")) or when,
            decoded=decoded if isinstance(decoded, dict) else None,
        )
    if kind == "join":
        return LoraEvent("join", eui, device_id, time=when)
    if kind in ("down/ack", "down/nack"):
        key = "downlink_ack" if kind == "down/ack" else "downlink_nack"
        down = body.get(key)
        ids_list = down.get("correlation_ids", []) if isinstance(down, dict) else []
        command = next(
            (
                c[len(CORRELATION_PREFIX) :]
                for c in ids_list
                if isinstance(c, str) and c.startswith(CORRELATION_PREFIX)
            ),
            None,
        )
        return LoraEvent(
            "ack" if kind == "down/ack" else "nack", eui, device_id, time=when, command_id=command
        )
    return LoraEvent("other", eui, device_id, time=when, extra={"event": kind})


def parse_event(network: str, topic: str, raw: bytes) -> LoraEvent:
    """Dispatch on the pilot's network server."""
    return parse_chirpstack(topic, raw) if network == "chirpstack" else parse_tts(topic, raw)


def to_record(
    decoded: dict[str, Any], fields: dict[str, FieldMap], uplink_time: datetime | None
) -> tuple[dict[str, Any], list[str]]:
    """The record a decoded object maps to, and the keys the mapping does not know.

    Numbers are multiplied by their scale; a ``ts`` in the object wins over the uplink's time.
    """
    record: dict[str, Any] = {}
    unmapped: list[str] = []
    for key, value in decoded.items():
        if key == "ts":
            continue
        target = fields.get(key)
        if target is None:
            unmapped.append(key)
            continue
        if isinstance(value, int | float) and not isinstance(value, bool) and target.scale != 1.0:
            scaled = value * target.scale
            value = scaled if math.isfinite(scaled) else value
        record[target.field] = value
    if "ts" in decoded:
        record["ts"] = decoded["ts"]
    elif uplink_time is not None:
        record["ts"] = uplink_time.isoformat()
    return record, sorted(unmapped)


def chirpstack_downlink(
    application_id: str, dev_eui: str, command_id: str, data: bytes, f_port: int
) -> tuple[str, bytes]:
    """Topic and JSON of a confirmed ChirpStack v4 downlink whose queue item is the command."""
    topic = f"application/{application_id}/device/{dev_eui}/command/down"
    body = {
        "id": command_id,  # the queue item id: ChirpStack's ack/txack events carry it back
        "devEui": dev_eui,
        "confirmed": True,
        "fPort": f_port,
        "data": base64.b64encode(data).decode(),
    }
    return topic, json.dumps(body).encode()


def tts_downlink(
    application_id: str, device_id: str, command_id: str, data: bytes, f_port: int
) -> tuple[str, bytes]:
    """Topic and JSON of a confirmed The Things Stack downlink push."""
    topic = f"v3/{application_id}/devices/{device_id}/down/push"
    body = {
        "downlinks": [
            {
                "f_port": f_port,
                "frm_payload": base64.b64encode(data).decode(),
                "priority": "NORMAL",
                "confirmed": True,
                "correlation_ids": [CORRELATION_PREFIX + command_id],
            }
        ]
    }
    return topic, json.dumps(body).encode()
