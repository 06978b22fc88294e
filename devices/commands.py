"""Downlink commands (DESIGN §4 "Commands"): their types, parameters, wire forms — pure.

A dimming profile is shaped after TALQ's calendar and control program: steps of local
time → light level that repeat every night, and an adaptive part (the level on a
detection, held for a while). Commands travel as JSON on the device's ``cmd`` topic, or as
a few bytes in a LoRaWAN downlink (``encode_downlink``: a compact, documented layout a
device codec can decode). The device answers with a ``command_ack`` event.
"""

from __future__ import annotations

import json
import struct
from datetime import datetime, time
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from devices.errors import PayloadError

CommandType = Literal["ping", "set_level", "set_dimming_profile", "reboot"]
COMMAND_TYPES: Final[tuple[str, ...]] = ("ping", "set_level", "set_dimming_profile", "reboot")
_CONFIG: Final = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
_OPCODES: Final = {"ping": 0x01, "set_level": 0x02, "set_dimming_profile": 0x03, "reboot": 0x04}
MAX_STEPS: Final = 12
Level = Annotated[float, Field(ge=0, le=100)]


class Empty(BaseModel):
    model_config = _CONFIG


class SetLevel(BaseModel):
    """Hold one light level until told otherwise."""

    model_config = _CONFIG

    level_pct: Level


class Step(BaseModel):
    """From this local time on, this level (until the next step)."""

    model_config = _CONFIG

    from_: Annotated[str, Field(alias="from", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
    level_pct: Level

    @property
    def at(self) -> time:
        hours, minutes = self.from_.split(":")
        return time(int(hours), int(minutes))


class Adaptive(BaseModel):
    """On a detection, raise the level to ``on_detect_pct`` for ``hold_s`` seconds."""

    model_config = _CONFIG

    on_detect_pct: Level
    hold_s: Annotated[int, Field(ge=0, le=3600)]


class DimmingProfile(BaseModel):
    """Nightly steps of local time → level, plus the adaptive part."""

    model_config = _CONFIG

    steps: Annotated[list[Step], Field(min_length=1, max_length=MAX_STEPS)]
    adaptive: Adaptive | None = None

    @field_validator("steps")
    @classmethod
    def _distinct_times(cls, steps: list[Step]) -> list[Step]:
        times = [s.from_ for s in steps]
        if len(set(times)) != len(times):
            raise ValueError("two steps start at the same time")
        return steps

    def level_at(self, local: time, detected: bool = False) -> float:
        """The commanded level at local time ``local`` [%]; the steps wrap around midnight."""
        ordered = sorted(self.steps, key=lambda s: s.at)
        current = ordered[-1]  # before the first step of the day: the last one still holds
        for step in ordered:
            if step.at <= local:
                current = step
        level = current.level_pct
        if detected and self.adaptive is not None:
            level = max(level, self.adaptive.on_detect_pct)
        return level


_PARAMS: Final[dict[str, type[BaseModel]]] = {
    "ping": Empty,
    "set_level": SetLevel,
    "set_dimming_profile": DimmingProfile,
    "reboot": Empty,
}


def check_params(command_type: str, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters in their canonical JSON form, or ``PayloadError`` saying what is wrong."""
    model = _PARAMS.get(command_type)
    if model is None:
        raise PayloadError(
            "type",
            f"unknown command type {command_type!r}; expected one of " + ", ".join(COMMAND_TYPES),
        )
    try:
        parsed = model.model_validate(params)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "params"
        raise PayloadError(f"params.{where}", first["msg"]) from None
    dumped: dict[str, Any] = parsed.model_dump(mode="json", by_alias=True, exclude_none=True)
    return dumped


def command_message(
    command_id: str, command_type: str, params: dict[str, Any], expires_at: datetime
) -> bytes:
    """The JSON published on ``kcity/v1/{pilot}/{device}/cmd``."""
    body = {
        "v": 1,
        "id": command_id,
        "type": command_type,
        "params": params,
        "expires_at": expires_at.isoformat().replace("+00:00", "Z"),
    }
    return json.dumps(body, separators=(",", ":")).encode()


def encode_downlink(command_type: str, params: dict[str, Any]) -> bytes:
    """A LoRaWAN downlink payload (the default per-pilot encoder), big-endian:

    - ``0x01`` ping, ``0x04`` reboot: the opcode alone;
    - ``0x02`` set_level: opcode, level (0–100, one byte);
    - ``0x03`` set_dimming_profile: opcode, step count, then per step hour, minute, level;
      then the adaptive part (on-detect level one byte, hold seconds two bytes) or nothing.
    """
    checked = check_params(command_type, params)
    out = bytes([_OPCODES[command_type]])
    if command_type == "set_level":
        out += bytes([round(checked["level_pct"])])
    elif command_type == "set_dimming_profile":
        profile = DimmingProfile.model_validate(checked)
        out += bytes([len(profile.steps)])
        for step in profile.steps:
            out += bytes([step.at.hour, step.at.minute, round(step.level_pct)])
        if profile.adaptive is not None:
            out += struct.pack(
                ">BH", round(profile.adaptive.on_detect_pct), profile.adaptive.hold_s
            )
    return out


def command_ack(
    command_id: str, status: Literal["done", "rejected"], ts: datetime, reason: str | None = None
) -> dict[str, Any]:
    """The event a device sends on its ``event`` channel to close a command."""
    event: dict[str, Any] = {
        "ts": ts.isoformat().replace("+00:00", "Z"),
        "type": "command_ack",
        "command_id": command_id,
        "status": status,
    }
    if reason is not None:
        event["reason"] = reason
    return event
