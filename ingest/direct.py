"""Store one message now, outside the MQTT consumer: HTTP ingest and the LoRaWAN bridges.

The same ``validate`` and ``BatchWriter`` as the MQTT service, so a message posted over
HTTPS or translated from a network server is judged, deduplicated and dead-lettered
exactly as if it had been published; the caller learns the outcome after the commit.
"""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import psycopg

from ingest.batch_writer import BatchWriter
from ingest.registry import DeviceInfo
from ingest.validate import Outcome, Received, UnknownDevice, dead, validate

_WRITERS: weakref.WeakKeyDictionary[psycopg.Connection, BatchWriter] = weakref.WeakKeyDictionary()


@dataclass(frozen=True, slots=True)
class Stored:
    """What one committed message changed, as HTTP ingest answers it."""

    records: int  # records that passed validation
    stored: int  # of those, new rows
    duplicates: int  # of those, already stored (same key)
    duplicate_message: bool  # its (boot, seq, channel) had been received before
    dead_lettered: Counter[tuple[str, str]]  # (stage, code) -> count
    reasons: tuple[str, ...]
    usable: bool  # False: nothing of the message could be kept (only dead letters)

    def to_json(self) -> dict[str, object]:
        return {
            "records": self.records,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "duplicate_message": self.duplicate_message,
            "dead_lettered": sum(self.dead_lettered.values()),
            "dead_letters": [
                {"stage": stage, "code": code, "count": n}
                for (stage, code), n in sorted(self.dead_lettered.items())
            ],
            "reasons": list(self.reasons),
        }


def writer_for(conn: psycopg.Connection) -> BatchWriter:
    """One writer (and staging tables) per connection, kept while the connection lives."""
    writer = _WRITERS.get(conn)
    if writer is None:
        writer = BatchWriter(conn)
        _WRITERS[conn] = writer
    return writer


def judge(
    topic: str, raw: bytes, registry: Mapping[str, DeviceInfo], received_at: datetime
) -> Outcome:
    """Validate against a registry snapshot taken now: an unknown device is a verdict."""
    outcome = validate(topic, raw, registry, received_at, unknown_is_final=True)
    assert not isinstance(outcome, UnknownDevice)
    return outcome


def store(
    conn: psycopg.Connection,
    topic: str,
    raw: bytes,
    outcome: Outcome,
    received_at: datetime,
) -> Stored:
    """Commit one judged message (records, message row, status, dead letters) in one
    transaction. ``conn`` must not be inside a transaction: the writer commits its own."""
    result = writer_for(conn).write([Received(topic, raw, received_at, outcome)])
    stored = sum(result.stored.values())
    reasons = tuple(d.reason for d in outcome.dead_letters)
    if result.dead_letters.get(("store", "store_failed")):
        reasons += ("store failed: the database refused the message",)
    usable = outcome.message is not None or outcome.status is not None or not outcome.dead_letters
    return Stored(
        records=len(outcome.rows),
        stored=stored,
        duplicates=max(0, len(outcome.rows) - stored - _conflicts(result.dead_letters)),
        duplicate_message=result.duplicates > 0,
        dead_lettered=result.dead_letters,
        reasons=reasons,
        usable=usable,
    )


def _conflicts(letters: Counter[tuple[str, str]]) -> int:
    """Records refused at the store (e.g. a key stored with a different reading)."""
    return sum(n for (stage, _), n in letters.items() if stage in ("conflict", "store"))


def refuse(
    conn: psycopg.Connection,
    topic: str,
    raw: bytes,
    received_at: datetime,
    stage: str,
    code: str,
    detail: str,
    pilot: str | None = None,
    device: str | None = None,
) -> Stored:
    """Dead-letter a whole message for a reason found before validation (bridges)."""
    letter = dead(topic, raw, stage, code, detail, pilot, device)
    return store(conn, topic, raw, Outcome(device_id=device, dead_letters=(letter,)), received_at)
