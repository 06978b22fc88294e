"""Raw telemetry and events of one device, by time range, in pages.

Paging is keyset on the table's primary key after `device_id` — `ts` for streetlight and
drone readings, (`ts`, `metric`) for generic readings, (`ts`, `type`) for events — so a
page costs the same however deep it is, and rows arriving meanwhile never shift a page.
The cursor is opaque to clients: pass a page's `next_cursor` back with the same filters.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Final

import psycopg
from fastapi import APIRouter, Depends, Query
from psycopg import sql
from psycopg.rows import dict_row
from pydantic import BaseModel, ConfigDict, Field

from devices.payload_models import DroneRecord, StreetlightRecord
from kcity.api.auth import Action, Caller, allowed_on_pilot
from kcity.api.deps import API_PREFIX, Conn
from kcity.api.errors import COMMON_ERRORS, error_responses
from kcity.api.params import unprocessable
from kcity.api.routes_pilots import device_of

router = APIRouter(prefix=API_PREFIX, tags=["telemetry"], responses=COMMON_ERRORS)

DEFAULT_LIMIT: Final = 1000
MAX_LIMIT: Final = 10000


@dataclass(frozen=True, slots=True)
class Source:
    """A table of timestamped rows of one device: its columns and its key after `ts`."""

    table: str
    columns: tuple[str, ...]
    tiebreak: str | None = None


def _fields(model: type[BaseModel]) -> tuple[str, ...]:
    """A kind's stored columns: its record fields (the contract) after `ts`, and receipt time."""
    return (*(f for f in model.model_fields if f != "ts"), "received_at")


READINGS: Final = {
    "streetlight": Source("streetlight_readings", _fields(StreetlightRecord)),
    "hybrid_drone": Source("drone_readings", _fields(DroneRecord)),
    "generic": Source("generic_readings", ("metric", "value", "unit", "received_at"), "metric"),
}
EVENTS: Final = Source("events", ("type", "data", "received_at"), "type")


class Page(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    pilot: str
    device: str
    kind: str
    start: datetime | None = Field(None, alias="from")
    end: datetime | None = Field(None, alias="to")
    count: int
    records: list[dict[str, Any]] = Field(description="Rows in time order, `ts` first.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


def encode_cursor(ts: datetime, key: str | None) -> str:
    raw = json.dumps([ts.isoformat(), key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, source: Source) -> tuple[datetime, str | None]:
    """The key after which a page starts; 422 for anything we did not hand out."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        ts_text, key = json.loads(raw)
        ts = datetime.fromisoformat(ts_text)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise unprocessable(
            "cursor: not a cursor from this API; pass next_cursor unchanged"
        ) from exc
    if (
        ts.tzinfo is None
        or (source.tiebreak is None) != (key is None)
        or (key is not None and (not isinstance(key, str) or "\x00" in key))
    ):
        raise unprocessable("cursor: not a cursor for this listing; pass next_cursor unchanged")
    return ts, key


def _aware(value: datetime | None) -> datetime | None:
    """A timestamp without offset is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def read_page(
    conn: psycopg.Connection,
    source: Source,
    device: str,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of rows in key order and the cursor of the next page (None at the end)."""
    key = [sql.Identifier("ts")]
    if source.tiebreak:
        key.append(sql.Identifier(source.tiebreak))
    where: list[sql.Composable] = [sql.SQL("device_id = %s")]
    params: list[Any] = [device]
    if start is not None:
        where.append(sql.SQL("ts >= %s"))
        params.append(start)
    if end is not None:
        where.append(sql.SQL("ts < %s"))
        params.append(end)
    if cursor is not None:
        after_ts, after_key = decode_cursor(cursor, source)
        where.append(
            sql.SQL("({}) > ({})").format(
                sql.SQL(", ").join(key), sql.SQL(", ").join([sql.Placeholder()] * len(key))
            )
        )
        params += [after_ts] if after_key is None else [after_ts, after_key]
    query = sql.SQL("SELECT {cols} FROM {table} WHERE {where} ORDER BY {key} LIMIT %s").format(
        cols=sql.SQL(", ").join(sql.Identifier(c) for c in ("ts", *source.columns)),
        table=sql.Identifier(source.table),
        where=sql.SQL(" AND ").join(where),
        key=sql.SQL(", ").join(key),
    )
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(query, [*params, limit + 1]).fetchall()
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], encode_cursor(
        last["ts"], last[source.tiebreak] if source.tiebreak else None
    )


From = Annotated[
    datetime | None,
    Query(alias="from", description="RFC 3339 timestamp, included (UTC when it has no offset)."),
]
To = Annotated[
    datetime | None,
    Query(alias="to", description="RFC 3339 timestamp, excluded (UTC when it has no offset)."),
]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Rows per page.")]
Cursor = Annotated[
    str | None, Query(max_length=1000, description="`next_cursor` of the previous page.")
]
ReadTelemetry = Annotated[Caller, Depends(allowed_on_pilot(Action.READ_TELEMETRY))]


def _page(
    conn: psycopg.Connection,
    pilot: str,
    device: str,
    events: bool,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    cursor: str | None,
) -> Page:
    found = device_of(conn, pilot, device)
    start, end = _aware(start), _aware(end)
    if start is not None and end is not None and end <= start:
        raise unprocessable(f"to ({end.isoformat()}) must be after from ({start.isoformat()})")
    source = EVENTS if events else READINGS.get(found.kind)
    if source is None:
        raise unprocessable(
            f"device {device!r} is of kind {found.kind!r}, which has no readings table"
        )
    rows, next_cursor = read_page(conn, source, device, start, end, limit, cursor)
    return Page.model_validate(
        {
            "pilot": pilot,
            "device": device,
            "kind": found.kind,
            "from": start,
            "to": end,
            "count": len(rows),
            "records": rows,
            "next_cursor": next_cursor,
        }
    )


@router.get(
    "/pilots/{pilot}/devices/{device}/telemetry",
    response_model=Page,
    responses=error_responses(401, 403, 404, 422),
)
def telemetry(
    pilot: str,
    device: str,
    conn: Conn,
    _: ReadTelemetry,
    start: From = None,
    end: To = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page:
    """The device's readings in [from, to), oldest first, `limit` per page."""
    return _page(conn, pilot, device, False, start, end, limit, cursor)


@router.get(
    "/pilots/{pilot}/devices/{device}/events",
    response_model=Page,
    responses=error_responses(401, 403, 404, 422),
)
def events(
    pilot: str,
    device: str,
    conn: Conn,
    _: ReadTelemetry,
    start: From = None,
    end: To = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page:
    """The device's events (faults, detections, ...) in [from, to), oldest first."""
    return _page(conn, pilot, device, True, start, end, limit, cursor)
