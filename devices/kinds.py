"""The registry of device kinds: which record and event models a kind's devices speak.

A new solution (smart water, parking, ...) joins the platform by adding models to
``devices.payload_models`` and one entry here — not by forking the ingest or the SDK.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, get_args

from pydantic import BaseModel

from devices.errors import UnknownKind
from devices.payload_models import (
    DroneEvent,
    DroneRecord,
    GenericEvent,
    GenericRecord,
    StreetlightEvent,
    StreetlightRecord,
)


@dataclass(frozen=True, slots=True)
class DeviceKind:
    """A device kind. ``event_types`` is empty when any event type is accepted."""

    name: str
    record_model: type[BaseModel]
    event_model: type[BaseModel]
    event_types: tuple[str, ...]


def _event_types(model: type[BaseModel]) -> tuple[str, ...]:
    """The literal values of the model's ``type`` field (empty for free-form types)."""
    annotation = model.model_fields["type"].annotation
    return tuple(str(v) for v in get_args(annotation))


KINDS: Final[Mapping[str, DeviceKind]] = MappingProxyType(
    {
        kind.name: kind
        for kind in (
            DeviceKind(
                "streetlight",
                StreetlightRecord,
                StreetlightEvent,
                _event_types(StreetlightEvent),
            ),
            DeviceKind("hybrid_drone", DroneRecord, DroneEvent, _event_types(DroneEvent)),
            DeviceKind("generic", GenericRecord, GenericEvent, ()),
        )
    }
)


def get_kind(name: str) -> DeviceKind:
    """The kind called ``name``; ``UnknownKind`` lists the known ones otherwise."""
    try:
        return KINDS[name]
    except (KeyError, TypeError):
        raise UnknownKind(str(name), tuple(KINDS)) from None
