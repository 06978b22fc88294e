"""Write a batch in one transaction: binary COPY into staging tables, then
``INSERT … SELECT … ON CONFLICT DO NOTHING`` into the hypertables (DESIGN §5).

Records are keyed (device, ts[, metric | type]), so a redelivered message stores nothing
twice; its ``ingest_messages`` row conflicts and counts it as a duplicate (or, with other
content under the same ``(boot, seq)``, as a reuse). A record whose key is stored with a
*different* reading is not dropped: it becomes a dead letter of stage ``conflict`` holding
both readings, and the stored one stays. Should the
database refuse a message (a value validation let through), the batch is bisected under
savepoints and only the refused message is dead-lettered, with stage ``store``.
Connection-level failures (``OperationalError``) propagate: the caller keeps the batch and
retries on a new connection.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ingest.dead_letter_budget import minute_of
from ingest.tables import (
    DEAD_LETTER_COLUMNS,
    DEAD_LETTER_TYPES,
    EVENTS,
    MESSAGES_COLUMNS,
    MESSAGES_TYPES,
    READINGS,
    TableSpec,
)
from ingest.validate import DeadLetter, Outcome, Received, clean_text

log = logging.getLogger(__name__)
_STAGED = (*READINGS.values(), EVENTS)
OUTAGE_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError)
# A batch committed this long after its oldest stamp (held through a database outage) is
# noted in `late_commits`: the rollups find new rows by `received_at` less a slack of
# minutes (kcity.rollups.SLACK_S; this stays well below it) and would never see it.
LATE_AFTER = timedelta(seconds=30)


@dataclass(slots=True)
class WriteResult:
    """What one committed batch changed."""

    stored: Counter[str] = field(default_factory=Counter)  # table -> new rows
    messages: int = 0  # messages with a sequence number
    duplicates: int = 0  # of those, already stored (redeliveries)
    new_messages: list[tuple[str, int, str, int]] = field(default_factory=list)
    dead_letters: Counter[tuple[str, str]] = field(default_factory=Counter)  # (stage, code)
    statuses: int = 0
    last_seen: dict[str, datetime] = field(default_factory=dict)
    # (device, stage, code) -> dead letters counted, not kept (the device's budget was spent)
    suppressed: Counter[tuple[str, str, str]] = field(default_factory=Counter)

    def merge(self, other: WriteResult) -> None:
        self.stored.update(other.stored)
        self.messages += other.messages
        self.duplicates += other.duplicates
        self.new_messages += other.new_messages
        self.dead_letters.update(other.dead_letters)
        self.statuses += other.statuses
        self.suppressed.update(other.suppressed)
        for device, seen in other.last_seen.items():
            if device not in self.last_seen or seen > self.last_seen[device]:
                self.last_seen[device] = seen


def _copy(
    cur: psycopg.Cursor[Any],
    table: str,
    columns: Sequence[str],
    types: Sequence[str],
    rows: Sequence[Sequence[Any]],
) -> None:
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
    with cur.copy(sql) as copy:
        copy.set_types(list(types))
        for row in rows:
            copy.write_row(row)


class BatchWriter:
    """Owns one connection and its session's staging tables."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        with conn.transaction():
            for name in (*(spec.name for spec in _STAGED), "ingest_messages"):
                conn.execute(
                    f"CREATE TEMP TABLE IF NOT EXISTS stage_{name} "
                    f"(LIKE {name} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
                )
        self._bisecting = False  # staging tables are emptied by each commit, or by hand

    def write(self, items: Sequence[Received]) -> WriteResult:
        """Store a batch atomically; refused messages become ``store`` dead letters."""
        self._bisecting = False
        with self.conn.transaction():
            result = self._resilient(items)
            oldest = min((item.received_at for item in items), default=None)
            if oldest is not None and oldest < datetime.now(UTC) - LATE_AFTER:
                self.conn.execute("INSERT INTO late_commits (oldest) VALUES (%s)", (oldest,))
        self._touch_last_seen(result.last_seen)
        return result

    def _touch_last_seen(self, last_seen: dict[str, datetime]) -> None:
        """``devices.last_seen``, in its own short transaction after the batch's commit: held
        for a whole batch, the device rows' locks made shared workers commit one at a time.
        A monitoring field: a failure is logged, not retried (the next batch moves it on)."""
        if not last_seen:
            return
        latest = sorted(last_seen.items())  # one lock order for all workers
        try:
            with self.conn.transaction():
                self.conn.execute(
                    "UPDATE devices d SET last_seen = GREATEST(d.last_seen, s.seen)"
                    " FROM unnest(%s::text[], %s::timestamptz[]) AS s(id, seen)"
                    " WHERE d.id = s.id",
                    ([k for k, _ in latest], [v for _, v in latest]),
                )
        except psycopg.Error as exc:
            log.warning("cannot update devices.last_seen: %s", exc)

    def write_stats(self, row: Sequence[Any]) -> None:
        """One ``ingest_stats`` snapshot (ts, worker, counters…, batch_latency_ms,
        broker_dropped)."""
        with self.conn.transaction():
            self.conn.execute(
                "INSERT INTO ingest_stats (ts, worker, received, stored, duplicates,"
                " dead_lettered, seq_gaps, batches, batch_latency_ms, broker_dropped)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                tuple(row),
            )

    def _resilient(self, items: Sequence[Received]) -> WriteResult:
        try:
            with self.conn.transaction():  # a savepoint inside the batch transaction
                return self._write_all(items)
        except OUTAGE_ERRORS:
            raise
        except Exception as exc:  # the database (or a dumper) refused something in here
            if self.conn.broken:
                raise
            self._bisecting = True  # several savepoints per transaction: empty stages by hand
            if len(items) > 1:
                half = len(items) // 2
                result = self._resilient(items[:half])
                result.merge(self._resilient(items[half:]))
                return result
            item = items[0]
            letter = DeadLetter(
                clean_text(item.topic, 1000),
                item.payload,
                "store",
                "store_failed",
                clean_text(f"store failed: {type(exc).__name__}: {exc}"),
                None,
                item.outcome.device_id,
            )
            refused = Received(
                item.topic,
                item.payload,
                item.received_at,
                Outcome(device_id=item.outcome.device_id, dead_letters=(letter,)),
            )
            with self.conn.transaction():
                return self._write_all([refused])

    def _write_all(self, items: Sequence[Received]) -> WriteResult:
        result = WriteResult()
        by_table: dict[str, list[tuple[Any, ...]]] = {}
        specs: dict[str, TableSpec] = {}
        messages: list[tuple[Any, ...]] = []
        letters: list[tuple[Any, ...]] = []
        topics: dict[str, str] = {}  # device -> a topic it published on, for conflicts
        statuses: dict[str, tuple[Any, ...]] = {}
        suppressed: Counter[tuple[str, datetime, str, str, str | None]] = Counter()
        for item in items:
            o = item.outcome
            for sup in o.suppressed:
                minute = minute_of(item.received_at)
                suppressed[(sup.device_id, minute, sup.stage, sup.code, sup.pilot_id)] += sup.count
                result.suppressed[(sup.device_id, sup.stage, sup.code)] += sup.count
            if o.table is not None and o.rows:
                specs[o.table.name] = o.table
                if o.device_id is not None:
                    topics[o.device_id] = item.topic
                rows = by_table.setdefault(o.table.name, [])
                if o.table is EVENTS:
                    rows.extend((*r[:4], Jsonb(r[4])) for r in o.rows)
                else:
                    rows.extend(o.rows)
            if o.message is not None:
                m = o.message
                messages.append(
                    (
                        m.device_id,
                        m.boot,
                        m.seq,
                        m.channel,
                        item.received_at,
                        m.sent_at,
                        m.records,
                        m.first_ts,
                        m.digest,
                    )
                )
            if o.status is not None:
                s = o.status
                statuses[s.device_id] = (s.device_id, s.state, Jsonb(s.payload), item.received_at)
            for d in o.dead_letters:
                letters.append(
                    (
                        item.received_at,
                        d.topic,
                        d.payload,
                        d.stage,
                        d.reason,
                        d.pilot_id,
                        d.device_id,
                        None,
                    )
                )
                result.dead_letters[(d.stage, d.code)] += 1
            if o.device_id is not None and (o.message is not None or o.status is not None):
                seen = result.last_seen.get(o.device_id)
                if seen is None or item.received_at > seen:
                    result.last_seen[o.device_id] = item.received_at
        with self.conn.cursor() as cur:
            for name, rows in by_table.items():
                inserted, conflicts = self._insert(cur, specs[name], rows, topics)
                result.stored[name] += inserted
                if conflicts:
                    letters += conflicts
                    result.dead_letters[("conflict", "conflict")] += len(conflicts)
            if messages:
                self._insert_messages(cur, messages, result)
            if letters:
                _copy(cur, "dead_letters", DEAD_LETTER_COLUMNS, DEAD_LETTER_TYPES, letters)
            if suppressed:
                rows = sorted(suppressed.items(), key=lambda kv: kv[0][:4])  # one lock order
                cur.executemany(
                    "INSERT INTO dead_letters_suppressed AS t (device_id, minute, stage, reason,"
                    " pilot_id, suppressed) VALUES (%s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (device_id, minute, stage, reason)"
                    " DO UPDATE SET suppressed = t.suppressed + EXCLUDED.suppressed",
                    [(*key, n) for key, n in rows],
                )
            if statuses:
                cur.executemany(
                    "INSERT INTO device_status (device_id, state, payload, received_at)"
                    " VALUES (%s, %s, %s, %s) ON CONFLICT (device_id) DO UPDATE"
                    " SET state = EXCLUDED.state, payload = EXCLUDED.payload,"
                    " received_at = EXCLUDED.received_at"
                    " WHERE device_status.received_at <= EXCLUDED.received_at",
                    sorted(statuses.values()),
                )
                result.statuses = len(statuses)
        return result

    def _insert(
        self,
        cur: psycopg.Cursor[Any],
        spec: TableSpec,
        rows: list[tuple[Any, ...]],
        topics: dict[str, str],
    ) -> tuple[int, list[tuple[Any, ...]]]:
        """Insert the new rows; return how many, and a `conflict` dead letter for each row
        whose key is stored with other values (the stored reading stays)."""
        stage = f"stage_{spec.name}"
        _copy(cur, stage, spec.columns, spec.types, rows)
        cols = ", ".join(spec.columns)
        cur.execute(
            f"INSERT INTO {spec.name} ({cols}) SELECT {cols} FROM {stage} ON CONFLICT DO NOTHING"
        )
        inserted = cur.rowcount
        # Every staged row was new: nothing can conflict (the usual case, no second look).
        conflicts = _conflicts(cur, spec, stage, topics) if inserted < len(rows) else []
        self._empty(cur, stage)
        return inserted, conflicts

    def _empty(self, cur: psycopg.Cursor[Any], stage: str) -> None:
        if self._bisecting:
            cur.execute(f"DELETE FROM {stage}")

    def _insert_messages(
        self, cur: psycopg.Cursor[Any], rows: list[tuple[Any, ...]], result: WriteResult
    ) -> None:
        _copy(cur, "stage_ingest_messages", MESSAGES_COLUMNS, MESSAGES_TYPES, rows)
        # A message seen again (a broker redelivery or a device resending) is stored once;
        # `copies` counts its arrivals with the stored content, `reuses` the arrivals of the
        # same (boot, seq) with other content (a reset counter), for the data-quality figures.
        cur.execute(
            "INSERT INTO ingest_messages (device_id, boot, seq, channel, received_at, sent_at,"
            " records, first_ts, digest, copies, reuses)"
            " SELECT device_id, boot, seq, channel, min(received_at), min(sent_at), max(records),"
            " min(first_ts), d0, count(*) FILTER (WHERE digest IS NOT DISTINCT FROM d0),"
            " count(*) FILTER (WHERE digest IS DISTINCT FROM d0)"
            " FROM (SELECT *, first_value(digest) OVER (PARTITION BY device_id, boot, seq, channel"
            " ORDER BY received_at) AS d0 FROM stage_ingest_messages) s"
            " GROUP BY device_id, boot, seq, channel, d0"
            " ON CONFLICT (device_id, boot, seq, channel) DO UPDATE SET"
            " copies = ingest_messages.copies + CASE WHEN ingest_messages.digest IS NULL"
            " OR ingest_messages.digest = excluded.digest THEN excluded.copies ELSE 0 END,"
            " reuses = ingest_messages.reuses + excluded.reuses + CASE WHEN"
            " ingest_messages.digest IS NULL OR ingest_messages.digest = excluded.digest"
            " THEN 0 ELSE excluded.copies END"
            " RETURNING device_id, boot, channel, seq, xmax = 0"
        )
        new = [row[:4] for row in cur.fetchall() if row[4]]
        self._empty(cur, "stage_ingest_messages")
        result.messages += len(rows)
        result.duplicates += len(rows) - len(new)
        result.new_messages += new


def _conflicts(
    cur: psycopg.Cursor[Any], spec: TableSpec, stage: str, topics: dict[str, str]
) -> list[tuple[Any, ...]]:
    """Dead-letter rows (as `dead_letters` COPY rows) of staged readings whose key is stored
    with a different reading; an exact re-send matches and stays a plain duplicate."""
    values = [c for c in spec.columns if c not in spec.key and c != "received_at"]
    same = " AND ".join(f"s.{k} = t.{k}" for k in spec.key)
    differs = f"({', '.join('s.' + v for v in values)}) IS DISTINCT FROM" + (
        f" ({', '.join('t.' + v for v in values)})"
    )
    cur.execute(
        f"SELECT s.device_id, s.received_at, s.ts, (to_jsonb(s) - 'received_at')::text,"
        f" (to_jsonb(t) - 'received_at')::text, {', '.join('s.' + v for v in values)},"
        f" {', '.join('t.' + v for v in values)}"
        f" FROM {stage} s JOIN {spec.name} t ON {same} WHERE {differs}"
    )
    letters = []
    for row in cur.fetchall():
        device, received_at, ts, new, old = row[:5]
        n = len(values)
        changed = [
            f"{name} {a!r} → {b!r}"
            for name, a, b in zip(values, row[5 + n :], row[5 : 5 + n], strict=True)
            if a != b
        ]
        key = json.loads(new)
        where = ", ".join(f"{k} {key[k]}" for k in spec.key if k != "device_id")
        topic = topics.get(device, "")
        letters.append(
            (
                received_at,
                topic,
                f'{{"stored":{old},"received":{new}}}'.encode(),
                "conflict",
                clean_text(
                    f"conflict: {spec.name} already holds {where} with other values"
                    f" ({'; '.join(changed)}); the stored reading stays"
                ),
                topic.split("/")[2] if topic.count("/") >= 3 else None,
                device,
                ts,
            )
        )
    return letters
