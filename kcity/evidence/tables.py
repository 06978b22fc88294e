"""What a bundle holds of each table: the columns, their Arrow types, and the row selection.

Every table of a pilot is exported over one UTC span that covers what every analysis of the
window reads (for streetlights, the savings span: baseline onward, the night after the last
date). Timestamps leave PostgreSQL as exact epoch microseconds and are stored as UTC
timestamps; the pilot's time zone is recorded beside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa

from devices.pilots import Pilot
from kcity.analyses import savings_span
from kcity.window import Window

UTC_US = pa.timestamp("us", tz="UTC")
F64, I32, I64, STR, BOOL = pa.float64(), pa.int32(), pa.int64(), pa.string(), pa.bool_()


@dataclass(frozen=True)
class Table:
    """One exported table: `columns` are (name, SQL expression, Arrow type)."""

    name: str
    source: str
    where: str  # uses %(ids)s, %(pilot)s, %(start)s, %(end)s
    columns: tuple[tuple[str, str, pa.DataType], ...]

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([(name, kind) for name, _, kind in self.columns])

    def select(self) -> str:
        exprs = []
        for name, expr, kind in self.columns:
            if kind == UTC_US:  # exact: extract() is numeric since PostgreSQL 14
                expr = f"(extract(epoch FROM {expr}) * 1000000)::int8"
            exprs.append(f"{expr} AS {name}")
        return f"SELECT {', '.join(exprs)} FROM {self.source} WHERE {self.where}"


def _plain(*cols: tuple[str, pa.DataType]) -> tuple[tuple[str, str, pa.DataType], ...]:
    return tuple((name, name, kind) for name, kind in cols)


# fmt: off
_IN_SPAN = "device_id = ANY(%(ids)s) AND ts >= %(start)s AND ts < %(end)s"
READINGS = {
    "streetlight": Table(
        "streetlight_readings",
        "streetlight_readings",
        _IN_SPAN,
        _plain(
            ("device_id", STR), ("ts", UTC_US), ("received_at", UTC_US), ("power_w", F64),
            ("energy_wh", F64), ("dim_pct", F64), ("lamp_on", BOOL), ("vehicles", I32),
            ("voltage_v", F64), ("current_a", F64), ("power_factor", F64), ("temp_c", F64),
        ),
    ),
    "hybrid_drone": Table(
        "drone_readings",
        "drone_readings",
        _IN_SPAN,
        (
            *_plain(("device_id", STR), ("ts", UTC_US), ("received_at", UTC_US)),
            ("flight_id", "flight_id", STR),
            # The coverage method keys flights by PostgreSQL's hashtext(flight_id).
            ("flight_key", "hashtext(flight_id)", I32),
            *_plain(
                ("lat", F64), ("lon", F64), ("alt_m", F64), ("agl_m", F64), ("speed_mps", F64),
                ("heading_deg", F64), ("mode", STR), ("camera_on", BOOL), ("hfov_deg", F64),
                ("gps_fix", I32), ("battery_v", F64), ("battery_a", F64),
                ("battery_pct", F64), ("gen_power_w", F64), ("fuel_l", F64), ("rssi_dbm", F64),
            ),
        ),
    ),
    "generic": Table(
        "generic_readings",
        "generic_readings",
        _IN_SPAN,
        _plain(
            ("device_id", STR), ("ts", UTC_US), ("received_at", UTC_US), ("metric", STR),
            ("value", F64), ("unit", STR),
        ),
    ),
}
EVENTS = Table(
    "events",
    "events",
    _IN_SPAN,
    (
        *_plain(("device_id", STR), ("ts", UTC_US), ("received_at", UTC_US), ("type", STR)),
        ("data", "data::text", STR),
    ),
)
MESSAGES = Table(
    "ingest_messages",
    "ingest_messages",
    "device_id = ANY(%(ids)s) AND coalesce(first_ts, sent_at, received_at) >= %(start)s"
    " AND coalesce(first_ts, sent_at, received_at) < %(end)s",
    _plain(
        ("device_id", STR), ("boot", I64), ("seq", I64), ("channel", STR),
        ("received_at", UTC_US), ("sent_at", UTC_US), ("records", I64), ("copies", I64),
        ("first_ts", UTC_US), ("reuses", I64),
    ),
)
DEAD_LETTERS = Table(  # a summary: the payload's size and hash, not its bytes
    "dead_letters",
    "dead_letters",
    "(device_id = ANY(%(ids)s) OR pilot_id = %(pilot)s)"
    " AND coalesce(record_ts, received_at) >= %(start)s"
    " AND coalesce(record_ts, received_at) < %(end)s",
    (
        *_plain(
            ("id", I64), ("received_at", UTC_US), ("pilot_id", STR), ("device_id", STR),
            ("topic", STR), ("stage", STR), ("reason", STR), ("record_ts", UTC_US),
        ),
        ("payload_bytes", "octet_length(payload)", I64),
        ("payload_sha256", "encode(sha256(payload), 'hex')", STR),
    ),
)
# fmt: on


def tables_for(pilot: Pilot) -> list[Table]:
    return [READINGS[pilot.kind], EVENTS, MESSAGES, DEAD_LETTERS]


def span(pilot: Pilot, window: Window) -> tuple[datetime, datetime]:
    """The UTC span of every exported table: all that the window's analyses read."""
    if pilot.kind == "streetlight":
        return savings_span(pilot, window)
    return window.utc(pilot.timezone)


SECRET_COLUMNS = ("password_hash",)
"""Registry columns never exported."""
