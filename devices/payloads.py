"""Payload models of the MQTT v1 contract (DESIGN §4) and the parser the ingest hot path uses.

Outside data enters the platform here, so every rule lives in these models: unknown keys
are refused (typos are caught), numbers must be finite and physically plausible, and
timestamps must say which instant they mean (RFC 3339 with offset, or integer epoch ms).
``parse_message`` validates the raw bytes in one pass and only falls back to per-record
validation when that fails, so one poisoned record never takes the good ones down.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Annotated, Any, Final, Generic, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from devices.errors import PayloadError, UnknownKind

MAX_PAYLOAD_BYTES: Final = 256 * 1024
MAX_ITEMS: Final = 1000
PROTOCOL_VERSION: Final = 1
_MAX_BIGINT: Final = 2**63 - 1  # boot and seq are stored as PostgreSQL bigint

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_RFC3339: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})"
)
_NAIVE: Final = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?")
_TS_RULE: Final = (
    "Input should be an RFC 3339 timestamp with offset (e.g. 2023-08-01T12:00:00Z) "
    "or integer epoch milliseconds"
)


def _to_utc(value: object) -> datetime:
    """Turn RFC 3339 text with offset or integer epoch milliseconds into a UTC datetime."""
    if type(value) is int:
        try:
            return _EPOCH + timedelta(milliseconds=value)
        except OverflowError:
            raise PydanticCustomError(
                "timestamp_range", "epoch milliseconds out of range"
            ) from None
    if isinstance(value, str):
        if _RFC3339.fullmatch(value) is None:
            if _NAIVE.fullmatch(value) is not None:
                raise PydanticCustomError(
                    "timezone_aware",
                    "Input should have timezone info (naive timestamps are refused)",
                )
            raise PydanticCustomError("timestamp_format", _TS_RULE)
        try:
            # Python keeps only microseconds; longer fractions are cut to 6 digits.
            head, dot, rest = value.upper().partition(".")
            if dot:
                digits = len(rest) - len(rest.lstrip("0123456789"))
                rest = rest[: min(digits, 6)] + rest[digits:]
            return datetime.fromisoformat(head + dot + rest).astimezone(UTC)
        except ValueError:
            raise PydanticCustomError("timestamp_format", _TS_RULE) from None
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise PydanticCustomError("timezone_aware", "Input should have timezone info")
        return value.astimezone(UTC)
    raise PydanticCustomError("timestamp_type", _TS_RULE)


Timestamp = Annotated[datetime, BeforeValidator(_to_utc)]
"""An instant: RFC 3339 with offset or integer epoch ms in; a UTC-aware datetime out."""

_MODEL_CONFIG: Final = ConfigDict(
    strict=True, extra="forbid", frozen=True, allow_inf_nan=False, str_max_length=1024
)


def _finite(value: object) -> bool:
    """True when no float nested in ``value`` is NaN or infinite (free-form extras)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True


def _check_extras_finite(model: BaseModel) -> None:
    for key, value in (model.model_extra or {}).items():
        if not _finite(value):
            raise PydanticCustomError(
                "finite_number", "Input should be a finite number", {"field": key}
            )


def _require(model: BaseModel, kind_type: str, *fields: str) -> None:
    """Raise a field-named error for the first of ``fields`` that is missing."""
    for name in fields:
        if getattr(model, name) is None:
            raise PydanticCustomError(
                "missing_for_type",
                "Field required when type is '{type}'",
                {"field": name, "type": kind_type},
            )


# --- records -------------------------------------------------------------------------------


class StreetlightRecord(BaseModel):
    """One luminaire reading, modelled on TALQ LampMonitor."""

    model_config = _MODEL_CONFIG

    ts: Timestamp
    power_w: Annotated[float, Field(ge=0)]
    energy_wh: Annotated[float, Field(ge=0)] | None = None
    dim_pct: Annotated[float, Field(ge=0, le=100)]
    lamp_on: bool
    vehicles: Annotated[int, Field(ge=0)] | None = None
    voltage_v: Annotated[float, Field(ge=0)] | None = None
    current_a: Annotated[float, Field(ge=0)] | None = None
    power_factor: Annotated[float, Field(ge=-1, le=1)] | None = None
    temp_c: Annotated[float, Field(ge=-80, le=200)] | None = None


DroneMode = Literal["patrol", "transit", "hover", "rtl", "landed"]


class DroneRecord(BaseModel):
    """One hybrid-drone reading in SI units, after MAVLink position/battery/generator."""

    model_config = _MODEL_CONFIG

    ts: Timestamp
    flight_id: Annotated[str, Field(min_length=1, max_length=64)]
    lat: Annotated[float, Field(ge=-90, le=90)]
    lon: Annotated[float, Field(ge=-180, le=180)]
    alt_m: Annotated[float, Field(ge=-500, le=20000)] | None = None
    agl_m: Annotated[float, Field(ge=0, le=20000)] | None = None
    speed_mps: Annotated[float, Field(ge=0, le=500)] | None = None
    heading_deg: Annotated[float, Field(ge=0, le=360)] | None = None
    mode: DroneMode | None = None
    camera_on: bool | None = None
    hfov_deg: Annotated[float, Field(gt=0, lt=180)] | None = None
    gps_fix: Annotated[int, Field(ge=0, le=6)] | None = None
    battery_v: Annotated[float, Field(ge=0)] | None = None
    battery_a: float | None = None  # positive = discharging
    battery_pct: Annotated[float, Field(ge=0, le=100)] | None = None
    gen_power_w: Annotated[float, Field(ge=0)] | None = None
    fuel_l: Annotated[float, Field(ge=0)] | None = None
    rssi_dbm: Annotated[float, Field(ge=-200, le=30)] | None = None


class GenericRecord(BaseModel):
    """A named number, so a new solution can stream before it has a typed model."""

    model_config = _MODEL_CONFIG

    ts: Timestamp
    metric: Annotated[str, Field(min_length=1, max_length=128)]
    value: float
    unit: Annotated[str, Field(max_length=32)] | None = None


# --- events --------------------------------------------------------------------------------

FaultCode = Literal["lamp_failure", "supply_loss", "day_burning", "dimming_failure", "comm_failure"]


class StreetlightEvent(BaseModel):
    """A luminaire fault, its clearing, or a configuration change."""

    model_config = _MODEL_CONFIG

    ts: Timestamp
    type: Literal["fault", "fault_cleared", "config_changed"]
    code: FaultCode | None = None
    detail: str | None = None

    @model_validator(mode="after")
    def _code_for_fault(self) -> StreetlightEvent:
        if self.type == "fault":
            _require(self, self.type, "code")
        return self


class DroneEvent(BaseModel):
    """A take-off, landing, detection (where, what, how sure) or alarm of a drone."""

    model_config = _MODEL_CONFIG

    ts: Timestamp
    type: Literal["takeoff", "landing", "detection", "alarm"]
    flight_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    lat: Annotated[float, Field(ge=-90, le=90)] | None = None
    lon: Annotated[float, Field(ge=-180, le=180)] | None = None
    label: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    confidence: Annotated[float, Field(ge=0, le=1)] | None = None
    code: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    detail: str | None = None

    @model_validator(mode="after")
    def _fields_for_type(self) -> DroneEvent:
        if self.type == "detection":
            _require(self, self.type, "lat", "lon", "label", "confidence")
        elif self.type == "alarm":
            _require(self, self.type, "code")
        return self


class GenericEvent(BaseModel):
    """Any event type with any extra (finite) fields, for kinds without a typed model."""

    model_config = ConfigDict(
        strict=True, extra="allow", frozen=True, allow_inf_nan=False, str_max_length=1024
    )

    ts: Timestamp
    type: Annotated[str, Field(min_length=1, max_length=64)]

    @model_validator(mode="after")
    def _extras_finite(self) -> GenericEvent:
        _check_extras_finite(self)
        return self


class StatusMessage(BaseModel):
    """Retained presence message, also the device's Last Will (``state = offline``)."""

    model_config = ConfigDict(
        strict=True, extra="allow", frozen=True, allow_inf_nan=False, str_max_length=1024
    )

    v: Literal[1]
    state: Literal["online", "offline"]

    @model_validator(mode="after")
    def _extras_finite(self) -> StatusMessage:
        _check_extras_finite(self)
        return self


# --- envelopes -----------------------------------------------------------------------------

ItemT = TypeVar("ItemT")
_Counter = Annotated[int, Field(ge=0, le=_MAX_BIGINT)]


class TelemetryMessage(BaseModel, Generic[ItemT]):
    """The ``telemetry`` envelope around 1..1000 records."""

    model_config = _MODEL_CONFIG

    v: Literal[1]
    boot: _Counter
    seq: _Counter
    sent_at: Timestamp | None = None
    records: Annotated[list[ItemT], Field(min_length=1, max_length=MAX_ITEMS)]


class EventMessage(BaseModel, Generic[ItemT]):
    """The ``event`` envelope around 1..1000 events."""

    model_config = _MODEL_CONFIG

    v: Literal[1]
    boot: _Counter
    seq: _Counter
    sent_at: Timestamp | None = None
    events: Annotated[list[ItemT], Field(min_length=1, max_length=MAX_ITEMS)]


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
    from devices.kinds import get_kind  # kinds imports this module; resolve lazily, once

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
