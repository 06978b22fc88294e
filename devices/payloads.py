"""Parse and encode MQTT v1 messages (DESIGN §4): the parser the ingest hot path uses.

``parse_message`` validates the raw bytes in one pass against the models of
`devices.payload_models` (re-exported here) and only falls back to per-record validation
when that fails, so one poisoned record never takes the good ones down.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, Final, Literal

from pydantic import BaseModel, TypeAdapter, ValidationError

from devices.errors import PayloadError, UnknownKind
from devices.kinds import get_kind
from devices.payload_models import (
    MAX_ITEMS,
    MAX_PAYLOAD_BYTES,
    PROTOCOL_VERSION,
    DroneEvent,
    DroneMode,
    DroneRecord,
    EventMessage,
    FaultCode,
    GenericEvent,
    GenericRecord,
    StatusMessage,
    StreetlightEvent,
    StreetlightRecord,
    TelemetryMessage,
    Timestamp,
)

__all__ = [
    "MAX_ITEMS",
    "MAX_PAYLOAD_BYTES",
    "PROTOCOL_VERSION",
    "DroneEvent",
    "DroneMode",
    "DroneRecord",
    "EventMessage",
    "FaultCode",
    "GenericEvent",
    "GenericRecord",
    "ParsedMessage",
    "Rejected",
    "StatusMessage",
    "StreetlightEvent",
    "StreetlightRecord",
    "TelemetryMessage",
    "Timestamp",
    "encode_message",
    "encode_status",
    "item_adapter",
    "parse_message",
]


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record or event refused inside an otherwise usable message."""

    index: int
    item: object
    reason: str


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """A usable message: valid items in original order, refused ones with reasons.

    ``boot`` and ``seq`` are -1 for ``status`` messages, which carry no sequence.
    """

    boot: int
    seq: int
    sent_at: datetime | None
    items: tuple[BaseModel, ...]
    rejected: tuple[Rejected, ...] = ()
    status: StatusMessage | None = None


@dataclass(frozen=True, slots=True)
class _Adapters:
    key: str  # "records" or "events"
    full: TypeAdapter[Any]  # envelope with typed items: the fast path
    loose: TypeAdapter[Any]  # envelope with untyped items: the fallback
    item: TypeAdapter[Any]


@cache
def _adapters(kind: str, channel: str) -> _Adapters:
    try:
        spec = get_kind(kind)
    except UnknownKind as exc:
        raise PayloadError("kind", str(exc)) from exc
    if channel == "telemetry":
        model: type[BaseModel] = spec.record_model
        return _Adapters(
            "records",
            TypeAdapter(TelemetryMessage[model]),  # type: ignore[valid-type]
            TypeAdapter(TelemetryMessage[Any]),
            TypeAdapter(model),
        )
    model = spec.event_model
    return _Adapters(
        "events",
        TypeAdapter(EventMessage[model]),  # type: ignore[valid-type]
        TypeAdapter(EventMessage[Any]),
        TypeAdapter(model),
    )


_STATUS: Final = TypeAdapter(StatusMessage)


def item_adapter(kind: str, channel: str) -> TypeAdapter[Any]:
    """The validator of one record (``telemetry``) or event of ``kind``, as the fallback
    path uses it item by item."""
    return _adapters(kind, channel).item


def _where(prefix: str, loc: tuple[int | str, ...]) -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "payload"


def _explain(exc: ValidationError, prefix: str = "") -> list[tuple[str, str]]:
    """(field, rule) pairs of a pydantic error, naming the field even for model-level rules."""
    found = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        field = (err.get("ctx") or {}).get("field")
        if isinstance(field, str):
            loc = (*loc, field)
        found.append((_where(prefix, loc), err["msg"]))
    return found


def _decode(raw: bytes) -> dict[str, Any]:
    """Strict whole-message checks with clear reasons; only run when the fast path failed."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError("payload", f"not valid UTF-8 (byte {exc.start})") from exc
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PayloadError(
            "payload", f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from exc
    if not isinstance(obj, dict):
        raise PayloadError("payload", f"must be a JSON object, not {type(obj).__name__}")
    return obj


def _whole(exc: ValidationError) -> PayloadError:
    problems = _explain(exc)
    field, rule = problems[0]
    if len(problems) > 1:
        rule += f" (and {len(problems) - 1} more problem(s))"
    return PayloadError(field, rule)


def parse_message(kind: str, channel: str, raw: bytes) -> ParsedMessage:
    """Validate one MQTT message of a device of ``kind`` received on ``channel``.

    Raises ``PayloadError`` only when the message as a whole is unusable; bad records or
    events are returned in ``rejected`` beside the good ones.
    """
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise PayloadError("payload", f"{len(raw)} bytes exceeds the {MAX_PAYLOAD_BYTES} limit")
    if channel == "status":
        _adapters(kind, "telemetry")  # refuse unknown kinds here too
        try:
            status = _STATUS.validate_json(raw)
        except ValidationError as exc:
            _decode(raw)
            raise _whole(exc) from exc
        return ParsedMessage(boot=-1, seq=-1, sent_at=None, items=(), status=status)
    if channel not in ("telemetry", "event"):
        raise PayloadError(
            "channel", f"unknown channel {channel!r}; expected telemetry, event or status"
        )
    adapters = _adapters(kind, channel)
    try:
        msg = adapters.full.validate_json(raw)
    except ValidationError:
        pass
    else:
        items = tuple(getattr(msg, adapters.key))
        return ParsedMessage(boot=msg.boot, seq=msg.seq, sent_at=msg.sent_at, items=items)
    return _parse_slowly(adapters, raw)


def _parse_slowly(adapters: _Adapters, raw: bytes) -> ParsedMessage:
    """Fallback: validate the envelope, then each item alone, keeping the good ones."""
    obj = _decode(raw)
    try:
        # Re-validate the parsed object as JSON text so the rules are exactly the fast path's.
        envelope = adapters.loose.validate_json(json.dumps(obj))
    except ValidationError as exc:
        raise _whole(exc) from exc
    good: list[BaseModel] = []
    bad: list[Rejected] = []
    for index, item in enumerate(obj[adapters.key]):
        try:
            good.append(adapters.item.validate_json(json.dumps(item)))
        except ValidationError as exc:
            reason = "; ".join(
                f"{field}: {rule}" for field, rule in _explain(exc, f"{adapters.key}[{index}]")
            )
            bad.append(Rejected(index=index, item=item, reason=reason))
    return ParsedMessage(
        boot=envelope.boot,
        seq=envelope.seq,
        sent_at=envelope.sent_at,
        items=tuple(good),
        rejected=tuple(bad),
    )


# --- encoding ------------------------------------------------------------------------------


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise PayloadError("ts", "naive datetime; attach a timezone before sending")
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode_message(
    boot: int,
    seq: int,
    items: Sequence[Mapping[str, Any] | BaseModel],
    channel: str = "telemetry",
    sent_at: datetime | None = None,
) -> bytes:
    """Compact JSON for a ``telemetry`` or ``event`` message: the inverse of ``parse_message``.

    Datetimes become RFC 3339 UTC text; models are dumped without unset (None) fields.
    """
    if channel == "telemetry":
        key = "records"
    elif channel == "event":
        key = "events"
    else:
        raise PayloadError("channel", f"cannot encode {channel!r}; expected telemetry or event")
    if not 1 <= len(items) <= MAX_ITEMS:
        raise PayloadError(key, f"{len(items)} items; a message carries 1 to {MAX_ITEMS}")
    body: dict[str, Any] = {"v": PROTOCOL_VERSION, "boot": boot, "seq": seq}
    if sent_at is not None:
        body["sent_at"] = sent_at
    body[key] = list(items)
    try:
        text = json.dumps(body, default=_json_default, separators=(",", ":"), allow_nan=False)
    except ValueError as exc:
        raise PayloadError(key, f"cannot encode: {exc}") from exc
    data = text.encode("utf-8")
    if len(data) > MAX_PAYLOAD_BYTES:
        raise PayloadError(
            "payload", f"{len(data)} bytes exceeds the {MAX_PAYLOAD_BYTES} limit; send fewer items"
        )
    return data


def encode_status(state: Literal["online", "offline"], **extra: Any) -> bytes:
    """Compact JSON for the retained ``status`` message (and the Last Will)."""
    body = {"v": PROTOCOL_VERSION, "state": state, **extra}
    return json.dumps(body, default=_json_default, separators=(",", ":"), allow_nan=False).encode()
