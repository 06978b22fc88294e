"""Where validated items land: the column lists and binary COPY types of each table.

The schema (``kcity/migrations``) is the meeting point of ingest and analytics; this module
is ingest's single description of it, so validation builds rows in exactly the order and
types the batch writer copies. psycopg's binary dumpers wrap integers that overflow a
column silently, hence the explicit ranges checked before a row is accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

INT_RANGES: Final[Mapping[str, tuple[int, int]]] = MappingProxyType(
    {"int2": (-(2**15), 2**15 - 1), "int4": (-(2**31), 2**31 - 1), "int8": (-(2**63), 2**63 - 1)}
)


@dataclass(frozen=True, slots=True)
class TableSpec:
    """A target table: ``device_id`` and ``received_at`` first, then the payload fields."""

    name: str
    fields: tuple[tuple[str, str], ...]  # (payload field, PostgreSQL type), in column order
    key: tuple[str, ...]
    field_names: tuple[str, ...] = field(init=False)
    columns: tuple[str, ...] = field(init=False)
    types: tuple[str, ...] = field(init=False)
    int_checks: tuple[tuple[int, str, int, int], ...] = field(init=False)  # (pos, name, lo, hi)
    text_checks: tuple[tuple[int, str], ...] = field(init=False)

    def __post_init__(self) -> None:
        columns = ("device_id", "received_at", *(n for n, _ in self.fields))
        types = ("text", "timestamptz", *(t for _, t in self.fields))
        object.__setattr__(self, "field_names", tuple(n for n, _ in self.fields))
        object.__setattr__(self, "columns", columns)
        object.__setattr__(self, "types", types)
        object.__setattr__(
            self,
            "int_checks",
            tuple(
                (i, c, *INT_RANGES[t])
                for i, (c, t) in enumerate(zip(columns, types, strict=True))
                if t in INT_RANGES
            ),
        )
        object.__setattr__(
            self,
            "text_checks",
            tuple(
                (i, c)
                for i, (c, t) in enumerate(zip(columns, types, strict=True))
                if t == "text" and i > 0
            ),
        )


_F8 = "float8"

STREETLIGHT: Final = TableSpec(
    "streetlight_readings",
    (
        ("ts", "timestamptz"),
        ("power_w", _F8),
        ("energy_wh", _F8),
        ("dim_pct", _F8),
        ("lamp_on", "bool"),
        ("vehicles", "int4"),
        ("voltage_v", _F8),
        ("current_a", _F8),
        ("power_factor", _F8),
        ("temp_c", _F8),
    ),
    ("device_id", "ts"),
)
DRONE: Final = TableSpec(
    "drone_readings",
    (
        ("ts", "timestamptz"),
        ("flight_id", "text"),
        ("lat", _F8),
        ("lon", _F8),
        ("alt_m", _F8),
        ("agl_m", _F8),
        ("speed_mps", _F8),
        ("heading_deg", _F8),
        ("mode", "text"),
        ("camera_on", "bool"),
        ("hfov_deg", _F8),
        ("gps_fix", "int2"),
        ("battery_v", _F8),
        ("battery_a", _F8),
        ("battery_pct", _F8),
        ("gen_power_w", _F8),
        ("fuel_l", _F8),
        ("rssi_dbm", _F8),
    ),
    ("device_id", "ts"),
)
GENERIC: Final = TableSpec(
    "generic_readings",
    (("ts", "timestamptz"), ("metric", "text"), ("value", _F8), ("unit", "text")),
    ("device_id", "ts", "metric"),
)
EVENTS: Final = TableSpec(
    "events",
    (("ts", "timestamptz"), ("type", "text"), ("data", "jsonb")),
    ("device_id", "ts", "type"),
)

READINGS: Final[Mapping[str, TableSpec]] = MappingProxyType(
    {"streetlight": STREETLIGHT, "hybrid_drone": DRONE, "generic": GENERIC}
)
"""Device kind → its readings table. A new kind needs a table here (and a migration)."""

MESSAGES_COLUMNS: Final = (
    "device_id",
    "boot",
    "seq",
    "channel",
    "received_at",
    "sent_at",
    "records",
    "first_ts",
    "digest",
)
MESSAGES_TYPES: Final = (
    "text",
    "int4",
    "int8",
    "text",
    "timestamptz",
    "timestamptz",
    "int4",
    "timestamptz",
    "bytea",
)
DEAD_LETTER_COLUMNS: Final = (
    "received_at",
    "topic",
    "payload",
    "stage",
    "reason",
    "pilot_id",
    "device_id",
    "record_ts",
)
DEAD_LETTER_TYPES: Final = (
    "timestamptz",
    "text",
    "bytea",
    "text",
    "text",
    "text",
    "text",
    "timestamptz",
)


def storable_text(value: str) -> bool:
    """PostgreSQL text holds neither NUL nor lone surrogates (which UTF-8 cannot encode)."""
    if "\x00" in value:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
