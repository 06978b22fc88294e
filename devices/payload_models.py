"""Payload models of the MQTT v1 contract (DESIGN §4): records, events, status, envelopes.

Outside data enters the platform here, so every rule lives in these models: unknown keys
are refused (typos are caught), numbers must be finite and physically plausible, and
timestamps must say which instant they mean (RFC 3339 with offset, or integer epoch ms).
Parsing and encoding whole messages is `devices.payloads`.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Final, Generic, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)
from pydantic_core import PydanticCustomError

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


def to_utc(value: object) -> datetime:
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


Timestamp = Annotated[datetime, BeforeValidator(to_utc)]
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

# A device's answer to a downlink command (``command_ack``): done or rejected, and why.
CommandId = Annotated[
    str, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
]
AckStatus = Literal["done", "rejected"]
AckReason = Annotated[str, Field(max_length=500)]
FaultCode = Literal["lamp_failure", "supply_loss", "day_burning", "dimming_failure", "comm_failure"]


class StreetlightEvent(BaseModel):
    """A luminaire fault, its clearing, or a configuration change."""

    model_config = _MODEL_CONFIG

    ts: Timestamp
    type: Literal["fault", "fault_cleared", "config_changed", "command_ack"]
    code: FaultCode | None = None
    detail: str | None = None
    command_id: CommandId | None = None  # command_ack: the command it answers
    status: AckStatus | None = None
    reason: AckReason | None = None

    @model_validator(mode="after")
    def _code_for_fault(self) -> StreetlightEvent:
        if self.type == "fault":
            _require(self, self.type, "code")
        elif self.type == "command_ack":
            _require(self, self.type, "command_id", "status")
        return self


class DroneEvent(BaseModel):
    """A take-off, landing, detection (where, what, how sure) or alarm of a drone."""

    model_config = _MODEL_CONFIG

    ts: Timestamp
    type: Literal["takeoff", "landing", "detection", "alarm", "command_ack"]
    flight_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    lat: Annotated[float, Field(ge=-90, le=90)] | None = None
    lon: Annotated[float, Field(ge=-180, le=180)] | None = None
    label: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    confidence: Annotated[float, Field(ge=0, le=1)] | None = None
    code: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    detail: str | None = None
    command_id: CommandId | None = None  # command_ack: the command it answers
    status: AckStatus | None = None
    reason: AckReason | None = None

    @model_validator(mode="after")
    def _fields_for_type(self) -> DroneEvent:
        if self.type == "detection":
            _require(self, self.type, "lat", "lon", "label", "confidence")
        elif self.type == "alarm":
            _require(self, self.type, "code")
        elif self.type == "command_ack":
            _require(self, self.type, "command_id", "status")
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
