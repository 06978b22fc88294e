"""A pilot's dead letters, read for the firm that sent them (API and console).

Ingest keeps every refused message with its raw bytes, stage and reason; a firm needs to
see them to fix its gateway. Raw payloads can be up to 1 MiB of anything: they are shown
as text (invalid UTF-8 replaced), cut at ``MAX_PAYLOAD_CHARS``, with the byte count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import psycopg

from kcity.errors import NotFound

MAX_PAYLOAD_CHARS: Final = 4096
MAX_LIMIT: Final = 500
STAGES: Final = ("size", "topic", "registry", "decode", "envelope", "record", "time", "store")


@dataclass(frozen=True, slots=True)
class DeadLetterRow:
    """One dead letter as a firm sees it."""

    id: int
    received_at: datetime
    topic: str
    device_id: str | None
    stage: str
    reason: str
    payload: str  # as text, at most MAX_PAYLOAD_CHARS characters
    payload_bytes: int
    truncated: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "received_at": self.received_at.isoformat(),
            "topic": self.topic,
            "device_id": self.device_id,
            "stage": self.stage,
            "reason": self.reason,
            "payload": self.payload,
            "payload_bytes": self.payload_bytes,
            "truncated": self.truncated,
        }


_COLUMNS: Final = (
    "id, received_at, topic, device_id, stage, reason,"
    " substring(payload FROM 1 FOR %(cap)s), octet_length(payload)"
)


def _row(r: tuple[Any, ...]) -> DeadLetterRow:
    head: bytes = r[6]  # at most MAX_PAYLOAD_CHARS bytes, hence at most as many characters
    return DeadLetterRow(
        id=r[0],
        received_at=r[1],
        topic=r[2],
        device_id=r[3],
        stage=r[4],
        reason=r[5],
        payload=head.decode("utf-8", "replace").replace("\x00", "\\x00"),
        payload_bytes=r[7],
        truncated=r[7] > len(head),
    )


def list_dead_letters(
    conn: psycopg.Connection,
    pilot: str,
    *,
    device: str | None = None,
    stage: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[DeadLetterRow]:
    """Newest first; ``before_id`` pages on (keyset). Filters are ANDed."""
    where = ["pilot_id = %(pilot)s"]
    params: dict[str, Any] = {"pilot": pilot, "cap": MAX_PAYLOAD_CHARS, "limit": limit}
    for name, clause, value in (
        ("device", "device_id = %(device)s", device),
        ("stage", "stage = %(stage)s", stage),
        ("since", "received_at >= %(since)s", since),
        ("until", "received_at < %(until)s", until),
        ("before", "id < %(before)s", before_id),
    ):
        if value is not None:
            where.append(clause)
            params[name] = value
    sql = (
        f"SELECT {_COLUMNS} FROM dead_letters WHERE {' AND '.join(where)}"
        " ORDER BY id DESC LIMIT %(limit)s"
    )
    return [_row(r) for r in conn.execute(sql, params).fetchall()]


def get_dead_letter(conn: psycopg.Connection, pilot: str, letter_id: int) -> DeadLetterRow:
    """One dead letter of the pilot, or ``NotFound`` (also for another pilot's)."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM dead_letters WHERE pilot_id = %(pilot)s AND id = %(id)s",
        {"pilot": pilot, "id": letter_id, "cap": MAX_PAYLOAD_CHARS},
    ).fetchone()
    if row is None:
        raise NotFound(f"pilot {pilot!r} has no dead letter {letter_id}")
    return _row(row)
