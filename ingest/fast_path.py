"""The hot path's first look at a telemetry message: msgspec structs derived from the payload
models of ``devices.payload_models``, so the schema has one source of truth.

Profiling a worker showed pydantic's model construction as a third of its CPU; decoding
straight into msgspec structs and reading the values out costs a fraction of it. The fast
path only ever *accepts*: a message is taken here when its envelope and every record decode
and convert; anything else (a bad record, an event, a status, a model with a validator
this module cannot translate) returns ``None`` and is judged by the pydantic models, so
dead letters and their reasons are exactly theirs. tests/test_fast_path.py checks with
hypothesis that whatever the fast path accepts, the models accept with the same values.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Annotated, Any, Literal, Union

import annotated_types as at
import msgspec
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic.functional_validators import BeforeValidator

from devices.errors import DevicesError
from devices.kinds import get_kind
from devices.payload_models import MAX_ITEMS, TelemetryMessage, to_utc


class Unsupported(Exception):
    """A model rule this module does not translate: the kind stays on the pydantic path."""


@dataclass(frozen=True, slots=True)
class FastMessage:
    """A telemetry message whose envelope and records all decoded."""

    boot: int
    seq: int
    sent_at: datetime | None
    names: tuple[str, ...]  # the record model's fields, in order
    values: list[tuple[Any, ...]]  # each record's field values, timestamps as UTC datetimes


@dataclass(frozen=True, slots=True)
class RawMessage:
    """A telemetry envelope that decoded, its records left as raw JSON to judge one by one."""

    boot: int
    seq: int
    sent_at: datetime | None
    records: list[msgspec.Raw]


@dataclass(frozen=True, slots=True)
class _Decoder:
    decode: Callable[[bytes], Any]
    names: tuple[str, ...]  # record fields in model order
    stamps: tuple[int, ...]  # positions of Timestamp fields among ``names``


_CONSTRAINTS = {at.Ge: "ge", at.Le: "le", at.Gt: "gt", at.Lt: "lt"}


def _meta(metadata: list[Any], str_max: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in metadata:
        if type(m) in _CONSTRAINTS:
            key = _CONSTRAINTS[type(m)]
            out[key] = getattr(m, key)
        elif isinstance(m, at.MinLen):
            out["min_length"] = m.min_length
        elif isinstance(m, at.MaxLen):
            out["max_length"] = m.max_length
        elif isinstance(m, FieldInfo):
            out.update(_meta(m.metadata, None))
        elif isinstance(m, BeforeValidator) and m.func is to_utc:
            out["timestamp"] = True
        else:
            raise Unsupported(f"rule {m!r}")
    if str_max is not None:
        out["str_max"] = str_max
    return out


def _translate(annotation: Any, metadata: list[Any], model: type[BaseModel]) -> tuple[Any, bool]:
    """(msgspec type, is a Timestamp) for one pydantic field annotation."""
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1 or len(typing.get_args(annotation)) != 2:
            raise Unsupported(f"union {annotation!r}")
        inner, stamp = _translate(args[0], metadata, model)
        return inner | None, stamp
    if origin is Annotated:
        base, *extra = typing.get_args(annotation)
        return _translate(base, [*metadata, *extra], model)
    str_max = model.model_config.get("str_max_length")
    rules = _meta(metadata, None)
    stamp = rules.pop("timestamp", False)
    if annotation is datetime and stamp:
        if rules:
            raise Unsupported("constraints on a timestamp")
        return int | str, True
    if origin is Literal:
        if rules:
            raise Unsupported("constraints on a literal")
        return annotation, False
    if origin is list:
        (item,) = typing.get_args(annotation)
        if not (isinstance(item, type) and issubclass(item, BaseModel)):
            raise Unsupported(f"list of {item!r}")
        return Annotated[list[_struct(item)[0]], msgspec.Meta(**rules)], False  # type: ignore[misc]
    if annotation is str:
        limit = min(rules.get("max_length", str_max or 2**31), str_max or 2**31)
        rules["max_length"] = limit
        return Annotated[str, msgspec.Meta(**rules)], False
    if annotation in (float, int):
        if any(k not in ("ge", "le", "gt", "lt") for k in rules):
            raise Unsupported(f"rules {rules} on a number")
        return (Annotated[annotation, msgspec.Meta(**rules)] if rules else annotation), False
    if annotation is bool and not rules:
        return bool, False
    raise Unsupported(f"type {annotation!r}")


@cache
def _struct(
    model: type[BaseModel],
) -> tuple[type[msgspec.Struct], tuple[str, ...], tuple[int, ...]]:
    """A msgspec struct with the model's fields and rules; its field names and timestamps."""
    config = model.model_config
    if not (
        config.get("strict")
        and config.get("extra") == "forbid"
        and config.get("allow_inf_nan") is False
    ):
        raise Unsupported(f"{model.__name__}: not strict, closed and finite")
    decorators = model.__pydantic_decorators__
    if decorators.model_validators or decorators.field_validators or decorators.validators:
        raise Unsupported(f"{model.__name__}: has validators")
    fields: list[Any] = []
    stamps = []
    for pos, (name, info) in enumerate(model.model_fields.items()):
        typ, stamp = _translate(info.annotation, list(info.metadata), model)
        if stamp:
            stamps.append(pos)
        fields.append((name, typ) if info.is_required() else (name, typ, info.default))
    struct = msgspec.defstruct(
        f"Fast{model.__name__}", fields, kw_only=True, forbid_unknown_fields=True, gc=False
    )
    return struct, tuple(model.model_fields), tuple(stamps)


@cache
def _decoder(kind: str) -> _Decoder | None:
    """The telemetry decoder of a kind, or None when its model cannot be translated."""
    try:
        record = get_kind(kind).record_model
        envelope, env_names, env_stamps = _struct(TelemetryMessage[record])  # type: ignore[valid-type]
        _, names, stamps = _struct(record)
    except (Unsupported, DevicesError):
        return None
    if env_names != ("v", "boot", "seq", "sent_at", "records") or env_stamps != (3,):
        return None
    return _Decoder(msgspec.json.Decoder(envelope).decode, names, stamps)


@cache
def _envelope_decoder(kind: str) -> Callable[[bytes], Any] | None:
    """The telemetry envelope of ``_decoder(kind)`` with ``records`` as a list of raw JSON."""
    if _decoder(kind) is None:
        return None
    envelope, _, _ = _struct(TelemetryMessage[get_kind(kind).record_model])  # type: ignore[misc]
    fields: list[Any] = []
    for f in msgspec.structs.fields(envelope):
        typ = f.type
        if f.name == "records":
            typ = Annotated[list[msgspec.Raw], msgspec.Meta(min_length=1, max_length=MAX_ITEMS)]
        required = f.default is msgspec.NODEFAULT
        fields.append((f.name, typ) if required else (f.name, typ, f.default))
    raw_envelope = msgspec.defstruct(
        "FastRawEnvelope", fields, kw_only=True, forbid_unknown_fields=True, gc=False
    )
    return msgspec.json.Decoder(raw_envelope).decode


def decode_envelope(kind: str, raw: bytes) -> RawMessage | None:
    """The envelope with its records undecoded, or None when the envelope itself is not
    valid (or the kind has no fast path): the pydantic path then says why."""
    decode = _envelope_decoder(kind)
    if decode is None:
        return None
    try:
        msg = decode(raw)
        sent_at = None if msg.sent_at is None else to_utc(msg.sent_at)
    except (msgspec.ValidationError, msgspec.DecodeError, ValueError):
        return None
    return RawMessage(msg.boot, msg.seq, sent_at, msg.records)


def decode_telemetry(kind: str, raw: bytes) -> FastMessage | None:
    """The message's values when everything in it is valid; None to take the pydantic path."""
    decoder = _decoder(kind)
    if decoder is None:
        return None
    try:
        msg = decoder.decode(raw)
        sent_at = None if msg.sent_at is None else to_utc(msg.sent_at)
        names, stamps = decoder.names, decoder.stamps
        values = []
        for rec in msg.records:
            row = [getattr(rec, n) for n in names]
            for pos in stamps:
                row[pos] = to_utc(row[pos])
            values.append(tuple(row))
    except (msgspec.ValidationError, msgspec.DecodeError, ValueError):
        return None  # PydanticCustomError is a ValueError
    return FastMessage(msg.boot, msg.seq, sent_at, names, values)
