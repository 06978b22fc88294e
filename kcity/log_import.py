"""Import a flight log for a provisioned drone: in-process through the ingest pipeline.

Why in-process: an operator importing a ground station's log should not need the drone's
MQTT secret, and the platform should not keep a broker account just for imports. The log's
records are packed into the same v1 payloads a gateway would publish, judged by
`ingest.validate` against the registry (so the same contract, unknown/revoked device and
dead-letter rules apply) and stored by `ingest.batch_writer` (COPY + ``ON CONFLICT DO
NOTHING``). Each message's ``boot`` comes from the file's SHA-256 and ``seq`` is its
position, so importing the same log again stores nothing twice and counts duplicates.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from devices.flight_log import FlightLog, LogOptions
from devices.log_formats import read_log
from devices.payloads import MAX_PAYLOAD_BYTES
from ingest.batch_writer import BatchWriter
from ingest.registry import load_devices
from ingest.validate import Outcome, Received, validate
from kcity import registry
from kcity.errors import KcityError

KIND = "hybrid_drone"
_CHUNK = 400  # records per message: well under the 256 KiB payload limit
_BATCH = 25  # messages per transaction


class LogImportError(KcityError):
    """The import is refused: wrong pilot or device, or the log is unusable."""


@dataclass
class ImportSummary:
    """What an import did: messages and rows stored, duplicates, dead letters by reason."""

    messages: int = 0
    stored: Counter[str] = field(default_factory=Counter)  # table -> new rows
    duplicate_messages: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)  # reason code -> messages

    def to_json(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "stored_records": self.stored.get("drone_readings", 0),
            "stored_events": self.stored.get("events", 0),
            "duplicate_messages": self.duplicate_messages,
            "dead_letters": dict(sorted(self.dead_letters.items())),
        }


def check_device(conn: psycopg.Connection, pilot_id: str, device_id: str) -> None:
    """Refuse unless `device_id` is an active, provisioned drone of `pilot_id`."""
    if registry.get_pilot(conn, pilot_id).kind != KIND:
        raise LogImportError(f"pilot {pilot_id!r} is not a {KIND} pilot")
    if not registry.device_exists(conn, device_id):
        raise LogImportError(
            f"device {device_id!r} is not provisioned: run 'kcity devices provision "
            f"{pilot_id} {device_id}' first"
        )
    found = registry.get_device(conn, device_id)
    if found.pilot_id != pilot_id or found.kind != KIND:
        raise LogImportError(f"device {device_id!r} is a {found.kind} of pilot {found.pilot_id}")
    if not found.active:
        raise LogImportError(f"device {device_id!r} has been revoked")


def file_boot(path: Path) -> int:
    """A stable ``boot`` number per file content (re-imports repeat it: duplicates).

    In [2³⁰, 2³¹): an int4, as ingest requires, far above the small boot counters of live
    gateways, so a log never collides with the device's own stream.
    """
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return (1 << 30) + int(digest.hexdigest()[:8], 16) % (1 << 30)


def payloads(log: FlightLog, boot: int) -> Iterator[tuple[str, bytes]]:
    """(channel, payload) messages: the records, then the events, each at most _CHUNK long."""
    seq = 0
    for channel, key, items in (("telemetry", "records", log.records),
                                ("event", "events", log.events)):  # fmt: skip
        for start in range(0, len(items), _CHUNK):
            chunk = items[start : start + _CHUNK]
            raw = json.dumps({"v": 1, "boot": boot, "seq": seq, key: chunk}).encode()
            assert len(raw) <= MAX_PAYLOAD_BYTES
            seq += 1
            yield channel, raw


def store(
    conn: psycopg.Connection,
    pilot_id: str,
    device_id: str,
    messages: Sequence[tuple[str, bytes]],
    progress: Callable[[int], None] = lambda n: None,
) -> ImportSummary:
    """Judge and store the messages as the ingest service would; commit per batch."""
    conn.commit()  # end the caller's read-only checks: each batch is its own transaction
    devices = load_devices(conn)
    writer = BatchWriter(conn)
    summary = ImportSummary()
    for start in range(0, len(messages), _BATCH):
        batch: list[Received] = []
        now = datetime.now(UTC)
        for channel, raw in messages[start : start + _BATCH]:
            topic = f"kcity/v1/{pilot_id}/{device_id}/{channel}"
            outcome = validate(topic, raw, devices, now, unknown_is_final=True)
            assert isinstance(outcome, Outcome)
            batch.append(Received(topic, raw, now, outcome))
        result = writer.write(batch)
        summary.messages += len(batch)
        summary.stored.update(result.stored)
        summary.duplicate_messages += result.duplicates
        for (_, code), n in result.dead_letters.items():
            summary.dead_letters[code] += n
        progress(len(batch))
    return summary


def import_file(
    conn: psycopg.Connection,
    pilot_id: str,
    device_id: str,
    path: Path,
    *,
    flight_id: str,
    hfov_deg: float | None = None,
    fuel_capacity_l: float | None = None,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> tuple[FlightLog, ImportSummary]:
    """Check the device, read the log with the pilot's settings, store it; for CLI and API.

    ``progress(done, total)`` is called with messages stored so far.
    """
    check_device(conn, pilot_id, device_id)
    drone = registry.get_pilot(conn, pilot_id).drone
    assert drone is not None  # a hybrid_drone pilot always has its [drone] section
    opts = LogOptions(
        flight_id,
        hfov_deg=hfov_deg,
        fuel_capacity_l=fuel_capacity_l,
        patrol_modes=drone.patrol_modes,
        max_gap_s=drone.max_gap_s,
        max_speed_mps=drone.max_speed_mps,
    )
    log = read_log(path, opts)
    messages = list(payloads(log, file_boot(path)))
    done = 0

    def step(n: int) -> None:
        nonlocal done
        done += n
        progress(done, len(messages))

    progress(0, len(messages))
    return log, store(conn, pilot_id, device_id, messages, step)
