"""Identifiers and MQTT topic names of the v1 contract (DESIGN §4), in one place.

The broker ACLs, the ingest router, the SDK and the simulators all build or split
topics; doing it here keeps them from drifting apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from devices.errors import InvalidId, PayloadError, ReservedId

ID_PATTERN: Final = r"^[a-z0-9][a-z0-9-]{1,62}$"
_ID_RE: Final = re.compile(ID_PATTERN)

# Broker usernames of the platform itself (ingest, admin, bridges, importers): never a device.
RESERVED_PREFIX: Final = "kcity-"

TOPIC_ROOT: Final = "kcity/v1"
CHANNELS: Final = ("telemetry", "event", "status")
CMD_CHANNEL: Final = "cmd"
FEEDBACK_CHANNEL: Final = "feedback"  # downlink: ingest's verdicts on the device's rejected data

Channel = Literal["telemetry", "event", "status"]


@dataclass(frozen=True, slots=True)
class TopicParts:
    """The pieces of an uplink topic ``kcity/v1/{pilot}/{device}/{channel}``."""

    pilot: str
    device: str
    channel: str


def validate_id(value: str, what: str = "id") -> str:
    """Return ``value`` unchanged if it is a valid id, else raise ``InvalidId``."""
    if not isinstance(value, str):
        raise InvalidId(repr(value), what, "must be a string")
    # fullmatch: "$" alone would accept a trailing newline.
    if _ID_RE.fullmatch(value) is None:
        raise InvalidId(
            value,
            what,
            "must be 2-63 characters of a-z, 0-9 and '-', starting with a letter or digit",
        )
    return value


def is_reserved(value: str) -> bool:
    """True for ids in the platform's own namespace (DESIGN §4)."""
    return value.startswith(RESERVED_PREFIX)


def validate_device_id(value: str, what: str = "device id") -> str:
    """A valid id that is not reserved: what a device (its MQTT username) may be called."""
    validate_id(value, what)
    if is_reserved(value):
        raise ReservedId(value, what, RESERVED_PREFIX)
    return value


def topic(pilot: str, device: str, channel: str) -> str:
    """Uplink topic for one device and channel (telemetry, event or status)."""
    if channel not in CHANNELS:
        raise PayloadError(
            "channel", f"unknown channel {channel!r}; expected one of {', '.join(CHANNELS)}"
        )
    return device_prefix(pilot, device) + channel


def cmd_topic(pilot: str, device: str) -> str:
    """Downlink command topic of one device."""
    return device_prefix(pilot, device) + CMD_CHANNEL


def feedback_topic(pilot: str, device: str) -> str:
    """Downlink topic where ingest publishes verdicts on the device's dead-lettered messages."""
    return device_prefix(pilot, device) + FEEDBACK_CHANNEL


def device_prefix(pilot: str, device: str) -> str:
    """Topic prefix (with trailing slash) a device may publish under; used for ACLs."""
    return f"{TOPIC_ROOT}/{validate_id(pilot, 'pilot id')}/{validate_id(device, 'device id')}/"


def parse_topic(value: str) -> TopicParts:
    """Split an uplink topic; raise ``PayloadError``/``InvalidId`` saying what is wrong."""
    prefix = TOPIC_ROOT + "/"
    if not value.startswith(prefix):
        raise PayloadError("topic", f"{value!r} does not start with {prefix!r}")
    parts = value[len(prefix) :].split("/")
    if len(parts) != 3:
        raise PayloadError(
            "topic", f"{value!r} is not of the form {prefix}{{pilot}}/{{device}}/{{channel}}"
        )
    pilot, device, channel = parts
    validate_id(pilot, "pilot id")
    validate_id(device, "device id")
    if channel in (CMD_CHANNEL, FEEDBACK_CHANNEL):
        raise PayloadError("topic", f"{value!r} is a downlink {channel} topic, not an uplink one")
    if channel not in CHANNELS:
        raise PayloadError(
            "topic", f"unknown channel {channel!r}; expected one of {', '.join(CHANNELS)}"
        )
    return TopicParts(pilot=pilot, device=device, channel=channel)
