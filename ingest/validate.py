"""Turn one MQTT message into rows to store or dead letters — pure, no I/O.

Checks, in order: size, topic, registry (unknown, revoked, wrong pilot), a payload that
names another device, the payload itself (``devices.payloads.parse_message``), each
item's time window and storability. Whatever is refused becomes a ``DeadLetter`` with a
stage and a reason; good records of a message with a bad one are kept.

Stages: ``size``, ``topic``, ``registry``, ``decode``, ``envelope``, ``record``, ``time``
(and ``store`` and ``conflict``, used by the batch writer when the database refuses a
message or a record's key is stored with another reading).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Final

from pydantic import BaseModel, ValidationError

from devices.errors import DevicesError, PayloadError
from devices.ids import TopicParts, parse_topic
from devices.kinds import KINDS
from devices.payloads import MAX_PAYLOAD_BYTES, ParsedMessage, item_adapter, parse_message
from ingest.fast_path import FastMessage, decode_envelope, decode_telemetry
from ingest.registry import DeviceInfo
from ingest.tables import EVENTS, INT_RANGES, READINGS, TableSpec, storable_text

MIN_TS: Final = datetime(2015, 1, 1, tzinfo=UTC)
MAX_AHEAD: Final = timedelta(minutes=5)
_MAX_REASON: Final = 2000


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message or record that cannot be stored, kept with its bytes and the reason."""

    topic: str
    payload: bytes
    stage: str
    code: str  # short machine label (metrics); ``reason`` starts with it in words
    reason: str
    pilot_id: str | None = None
    device_id: str | None = None
    index: int | None = None  # the refused item's position in ``records``/``events``


@dataclass(frozen=True, slots=True)
class MessageRow:
    """One ``ingest_messages`` row: the message's identity within its device's stream."""

    device_id: str
    boot: int
    seq: int
    channel: str
    sent_at: datetime | None
    records: int
    first_ts: datetime | None  # the earliest record: the day the message belongs to
    digest: bytes = b""  # its content (all but `sent_at`): a reused (boot, seq) differs


@dataclass(frozen=True, slots=True)
class StatusRow:
    """The latest retained status (or Last Will) of a device."""

    device_id: str
    state: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Suppressed:
    """Dead letters of one reason that were counted, not kept (the device's budget was spent)."""

    device_id: str  # '' when the topic names no device
    pilot_id: str | None
    stage: str
    code: str
    count: int


@dataclass(frozen=True, slots=True)
class Outcome:
    """Everything one message contributes to a batch."""

    device_id: str | None = None
    table: TableSpec | None = None
    rows: tuple[tuple[Any, ...], ...] = ()
    message: MessageRow | None = None
    status: StatusRow | None = None
    dead_letters: tuple[DeadLetter, ...] = ()
    suppressed: tuple[Suppressed, ...] = ()

    @property
    def size(self) -> int:
        """Rows this message adds to the batch (what the batch size counts)."""
        return len(self.rows) + len(self.dead_letters) + 1


@dataclass(frozen=True, slots=True)
class Received:
    """A judged message as the batch keeps it: raw bytes too, in case the database refuses it."""

    topic: str
    payload: bytes
    received_at: datetime
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class UnknownDevice:
    """The device is not in the registry snapshot; reload it before giving a verdict."""

    device_id: str


_SENT_AT: Final = re.compile(rb'"sent_at"\s*:\s*("(?:[^"\\]|\\.)*"|[-+0-9.eE]+|null)')


def content_digest(raw: bytes) -> bytes:
    """A fingerprint of a message's content: the same bytes but for `sent_at` (a resend
    stamps a new one) give the same digest; anything else under the same `(boot, seq)` is
    a reuse of the number, not a duplicate."""
    return hashlib.blake2b(_SENT_AT.sub(b"", raw, count=1), digest_size=16).digest()


def clean_text(text: str, limit: int = _MAX_REASON) -> str:
    """Text safe for a PostgreSQL ``text`` column: no NUL, no lone surrogates, bounded."""
    text = text.replace("\x00", "\\x00")
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def dead(
    topic: str,
    payload: bytes,
    stage: str,
    code: str,
    detail: str,
    pilot: str | None = None,
    device: str | None = None,
    index: int | None = None,
) -> DeadLetter:
    reason = clean_text(f"{code.replace('_', ' ')}: {detail}")
    return DeadLetter(clean_text(topic, 1000), payload, stage, code, reason, pilot, device, index)


def validate(
    topic: str,
    raw: bytes,
    registry: Mapping[str, DeviceInfo],
    received_at: datetime,
    *,
    unknown_is_final: bool,
    quiet: bool = False,
) -> Outcome | UnknownDevice:
    """Judge one message against the contract and the registry snapshot.

    ``unknown_is_final``: the snapshot is newer than the message, so a device missing from
    it is dead-lettered; otherwise ``UnknownDevice`` asks the caller to reload and retry.
    ``quiet``: the device's dead letters will only be counted (its budget is spent), so
    a telemetry message's refused records become letters with a stage and code but no
    words or bytes — the same verdict per record at a fraction of the cost.
    """
    split = _split_topic(topic)
    parts = split if isinstance(split, TopicParts) else None
    pilot = parts.pilot if parts else None
    device = parts.device if parts else None

    def reject(stage: str, code: str, detail: str) -> Outcome:
        return _only(dead(topic, raw, stage, code, detail, pilot, device))

    if len(raw) > MAX_PAYLOAD_BYTES:
        return reject("size", "oversize", f"{len(raw)} bytes exceeds the {MAX_PAYLOAD_BYTES} limit")
    if parts is None:
        return reject("topic", "bad_topic", str(split))
    assert device is not None
    if parts.channel == "status" and not raw:
        return Outcome(device_id=device)  # a retained status being cleared: nothing to store
    info = registry.get(device)
    if info is None:
        if not unknown_is_final:
            return UnknownDevice(device)
        return reject("registry", "unknown_device", f"{device!r} is not registered")
    if info.revoked:
        return reject("registry", "revoked_device", f"{device!r} has been revoked")
    if info.pilot_id != pilot:
        detail = f"{device!r} belongs to pilot {info.pilot_id!r}, not {pilot!r}"
        return reject("topic", "wrong_pilot", detail)
    if b"device_id" in raw:
        claimed = _claimed_device(raw, device)
        if claimed is not None:
            detail = f"payload names device {claimed!r}, published on the topic of {device!r}"
            return reject("topic", "claims_other_device", detail)
    return _judge(parts, info, topic, raw, received_at, quiet)


@lru_cache(maxsize=65536)
def _split_topic(topic: str) -> TopicParts | str:
    """Topics repeat (three per device): parse each once. A string is the refusal."""
    try:
        return parse_topic(topic)
    except DevicesError as exc:
        return str(exc)


def _only(letter: DeadLetter) -> Outcome:
    return Outcome(device_id=letter.device_id, dead_letters=(letter,))


def _judge(
    parts: TopicParts,
    info: DeviceInfo,
    topic: str,
    raw: bytes,
    received_at: datetime,
    quiet: bool = False,
) -> Outcome:
    pilot, device, channel = parts.pilot, parts.device, parts.channel

    def reject(stage: str, code: str, detail: str) -> Outcome:
        return _only(dead(topic, raw, stage, code, detail, pilot, device))

    table = EVENTS if channel == "event" else READINGS.get(info.kind)
    if table is None or info.kind not in KINDS:
        return reject("registry", "unsupported_kind", f"kind {info.kind!r} has no readings table")
    if channel == "telemetry":
        fast = decode_telemetry(info.kind, raw)
        if fast is not None and fast.names == table.field_names:
            taken = _fast_outcome(fast, table, device, raw, received_at)
            if taken is not None:
                return taken
        if quiet:
            counted = _judge_quietly(parts, info.kind, table, topic, raw, received_at)
            if counted is not None:
                return counted
    try:
        parsed = parse_message(info.kind, channel, raw)
    except PayloadError as exc:
        return _only(_whole_message_error(topic, raw, info.kind, channel, exc, pilot, device))
    except (RecursionError, ValueError, TypeError) as exc:  # e.g. JSON nested too deep
        return reject("decode", "bad_json", f"cannot be decoded: {type(exc).__name__}")
    if parsed.status is not None:
        payload = parsed.status.model_dump(mode="json")
        if not _storable_json(payload):
            return reject("envelope", "unstorable", "status holds NUL or unencodable text")
        return Outcome(device_id=device, status=StatusRow(device, parsed.status.state, payload))
    if parsed.boot > INT_RANGES["int4"][1]:
        return reject("envelope", "wrong_schema", f"boot: {parsed.boot} is out of range")
    if parsed.rejected and not parsed.items:
        mismatch = _other_kind(raw, info.kind, channel)
        if mismatch:
            detail = f"{device!r} is a {info.kind} device but sent {mismatch} {channel}"
            return reject("registry", "kind_mismatch", detail)
    rows, letters = _rows(parsed, table, topic, pilot, device, received_at)
    first_ts = min((item.ts for item in parsed.items), default=None)  # type: ignore[attr-defined]
    message = MessageRow(
        device,
        parsed.boot,
        parsed.seq,
        channel,
        parsed.sent_at,
        len(rows),
        first_ts,
        content_digest(raw),
    )
    return Outcome(
        device_id=device,
        table=table,
        rows=tuple(rows),
        message=message,
        dead_letters=tuple(letters),
    )


def _fast_outcome(
    fast: FastMessage, table: TableSpec, device: str, raw: bytes, received_at: datetime
) -> Outcome | None:
    """A telemetry message whose records are all storable, without a pydantic model; None
    when anything needs a dead letter (the pydantic path then words it)."""
    if fast.boot > INT_RANGES["int4"][1]:
        return None
    newest = received_at + MAX_AHEAD
    rows = []
    for values in fast.values:
        ts: datetime = values[0]
        row = (device, received_at, *values)
        if ts < MIN_TS or ts > newest or _unstorable(row, table) is not None:
            return None
        rows.append(row)
    first_ts = min(v[0] for v in fast.values)
    message = MessageRow(
        device,
        fast.boot,
        fast.seq,
        "telemetry",
        fast.sent_at,
        len(rows),
        first_ts,
        content_digest(raw),
    )
    return Outcome(device_id=device, table=table, rows=tuple(rows), message=message)


def _judge_quietly(
    parts: TopicParts, kind: str, table: TableSpec, topic: str, raw: bytes, received_at: datetime
) -> Outcome | None:
    """A telemetry message of a device whose dead letters are only counted: each record is
    judged by the same model on its own raw JSON (as the fallback path does), refused ones
    become letters without words or bytes. None where the full path must speak: a bad
    envelope, or no record valid and perhaps another kind's message (kind_mismatch)."""
    try:
        env = decode_envelope(kind, raw)
    except RecursionError:  # nested too deep: the full path words it (bad_json)
        return None
    if env is None or env.boot > INT_RANGES["int4"][1] or table.field_names[0] != "ts":
        return None
    pilot, device = parts.pilot, parts.device
    check = item_adapter(kind, "telemetry").validate_json
    good: list[tuple[int, BaseModel]] = []
    letters: list[DeadLetter] = []
    for index, record in enumerate(env.records):
        try:
            good.append((index, check(bytes(record))))
        except ValidationError:
            letters.append(
                DeadLetter(topic, b"", "record", "record_schema", "", pilot, device, index)
            )
    if not good and any(
        decode_telemetry(other, raw) is not None
        for other in KINDS
        if other not in (kind, "generic")
    ):
        return None
    rows: list[tuple[Any, ...]] = []
    newest = received_at + MAX_AHEAD
    for index, item in good:
        row = (device, received_at, *[getattr(item, n) for n in table.field_names])
        ts: datetime = row[2]
        if ts < MIN_TS or ts > newest:
            code = "ancient_timestamp" if ts < MIN_TS else "future_timestamp"
            letters.append(DeadLetter(topic, b"", "time", code, "", pilot, device, index))
        elif _unstorable(row, table) is not None:
            letters.append(DeadLetter(topic, b"", "record", "unstorable", "", pilot, device, index))
        else:
            rows.append(row)
    first_ts = min((item.ts for _, item in good), default=None)  # type: ignore[attr-defined]
    message = MessageRow(
        device,
        env.boot,
        env.seq,
        "telemetry",
        env.sent_at,
        len(rows),
        first_ts,
        content_digest(raw),
    )
    return Outcome(
        device_id=device,
        table=table,
        rows=tuple(rows),
        message=message,
        dead_letters=tuple(letters),
    )


def _rows(
    parsed: ParsedMessage,
    table: TableSpec,
    topic: str,
    pilot: str,
    device: str,
    received_at: datetime,
) -> tuple[list[tuple[Any, ...]], list[DeadLetter]]:
    letters = [
        dead(topic, _item_json(r.item), "record", "record_schema", r.reason, pilot, device, r.index)
        for r in parsed.rejected
    ]
    refused = {r.index for r in parsed.rejected}
    positions = (i for i in range(len(parsed.items) + len(refused)) if i not in refused)
    rows: list[tuple[Any, ...]] = []
    newest = received_at + MAX_AHEAD
    is_events = table is EVENTS
    names = table.field_names
    for item, index in zip(parsed.items, positions, strict=False):
        ts: datetime = item.ts  # type: ignore[attr-defined]
        if ts < MIN_TS or ts > newest:
            code, when = (
                ("ancient_timestamp", "before 2015")
                if ts < MIN_TS
                else ("future_timestamp", "more than 5 minutes in the future")
            )
            letters.append(
                dead(
                    topic,
                    _model_json(item),
                    "time",
                    code,
                    f"ts {ts.isoformat()} is {when}",
                    pilot,
                    device,
                    index,
                )
            )
            continue
        if is_events:
            data = item.model_dump(mode="json", exclude={"ts", "type"}, exclude_none=True)
            row: tuple[Any, ...] = (device, received_at, ts, item.type, data)  # type: ignore[attr-defined]
            problem = None if _storable_json(data) and storable_text(row[3]) else "unstorable text"
        else:
            row = (device, received_at, *[getattr(item, n) for n in names])
            problem = _unstorable(row, table)
        if problem:
            letters.append(
                dead(
                    topic, _model_json(item), "record", "unstorable", problem, pilot, device, index
                )
            )
            continue
        rows.append(row)
    return rows, letters


def _unstorable(row: tuple[Any, ...], table: TableSpec) -> str | None:
    for pos, name, lo, hi in table.int_checks:
        value = row[pos]
        if value is not None and not lo <= value <= hi:
            return f"{name}: {value} is out of the column's range {lo}..{hi}"
    for pos, name in table.text_checks:
        value = row[pos]
        if value is not None and not storable_text(value):
            return f"{name}: holds NUL or unencodable text"
    return None


def _storable_json(data: object) -> bool:
    try:
        text = json.dumps(data, ensure_ascii=False, allow_nan=False)
    except ValueError:
        return False
    return "\\u0000" not in text and storable_text(text)


def _item_json(item: object) -> bytes:
    try:
        return json.dumps(item, ensure_ascii=False).encode("utf-8", "backslashreplace")
    except (TypeError, ValueError, RecursionError):
        return repr(item).encode("utf-8", "backslashreplace")


def _model_json(item: BaseModel) -> bytes:
    return item.model_dump_json(exclude_none=True).encode("utf-8", "backslashreplace")


def _whole_message_error(
    topic: str, raw: bytes, kind: str, channel: str, exc: PayloadError, pilot: str, device: str
) -> DeadLetter:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return dead(
            topic, raw, "decode", "bad_utf8", f"not valid UTF-8 (byte {err.start})", pilot, device
        )
    try:
        json.loads(text)
    except (ValueError, RecursionError) as err:
        return dead(topic, raw, "decode", "bad_json", f"not valid JSON: {err}", pilot, device)
    mismatch = _other_kind(raw, kind, channel)
    if mismatch:
        return dead(
            topic,
            raw,
            "registry",
            "kind_mismatch",
            f"{device!r} is a {kind} device but sent {mismatch} {channel}",
            pilot,
            device,
        )
    return dead(topic, raw, "envelope", "wrong_schema", str(exc), pilot, device)


def _other_kind(raw: bytes, kind: str, channel: str) -> str | None:
    """The typed kind whose models accept every item, when the device's own refused them."""
    if channel == "status":
        return None
    for other in KINDS:
        if other in (kind, "generic"):
            continue
        try:
            parsed = parse_message(other, channel, raw)
        except (DevicesError, RecursionError, ValueError, TypeError):
            continue
        if parsed.items and not parsed.rejected:
            return other
    return None


def _claimed_device(raw: bytes, device: str) -> str | None:
    """A ``device_id`` in the envelope or an item that differs from the topic's device."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(body, dict):
        return None
    candidates = [body.get("device_id")]
    for key in ("records", "events"):
        items = body.get(key)
        if isinstance(items, list):
            candidates += [i.get("device_id") for i in items if isinstance(i, dict)]
    for claimed in candidates:
        if claimed is not None and claimed != device:
            return clean_text(str(claimed), 100)
    return None
