"""The device's durable outbox: records survive link outages, broker restarts and crashes.

A field gateway cannot trust its uplink, so every record is committed to a local SQLite
file (WAL) *before* anything is sent, and deleted only once the broker has acknowledged
the message that carried it (PUBACK). Records wait unpacked until the sender can send:
it then packs up to ``batch_max`` of them into one message, numbers it (boot, seq) and
stores the exact payload, so a resend after a reconnect or a restart is byte-identical
and the ingest service can drop it as a duplicate.

``seq`` counts messages per channel within a boot (telemetry and events separately);
``boot`` is kept in the file and goes up by one at every start unless the caller sets it.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from devices.errors import DevicesError

CHANNELS: Final = ("telemetry", "event")
_ITEM_KEY: Final = {"telemetry": "records", "event": "events"}

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    channel  TEXT NOT NULL,
    body     TEXT NOT NULL            -- one record or event, compact JSON
);
CREATE TABLE IF NOT EXISTS messages (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    channel  TEXT NOT NULL,
    boot     INTEGER NOT NULL,
    seq      INTEGER NOT NULL,
    items    INTEGER NOT NULL,
    payload  BLOB NOT NULL            -- exactly what is (re)sent
);
"""


class OutboxError(DevicesError):
    """The outbox file cannot be used (unwritable, corrupt, full)."""


class OutboxFull(OutboxError):
    """Appending would exceed the outbox's bound; the caller decides what to drop."""


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A packed message waiting for its PUBACK."""

    id: int
    channel: str
    boot: int
    seq: int
    items: int
    payload: bytes


class Outbox:
    """A SQLite outbox shared by the publishing thread and the sender thread."""

    def __init__(
        self, path: Path | str, *, fsync: bool = True, max_items: int | None = 5_000_000
    ) -> None:
        self.path = Path(path)
        self.max_items = max_items
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=30
            )
            self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # only takes on a new file
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL survives power loss; NORMAL survives a killed process (simulators).
            self._db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
            self._db.executescript(_SCHEMA)
            self._backlog = self._count()
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot open the outbox {self.path}: {exc}") from exc

    # -- boot and sequence ------------------------------------------------------------------

    def start_boot(self, boot: int | None = None) -> int:
        """Begin a boot: `boot` if given, else the stored one plus one; seqs restart at 0."""
        with self._lock, self._tx():
            stored = self._meta("boot")
            if boot is None:
                boot = 0 if stored is None else stored + 1
            if boot != stored:
                for channel in CHANNELS:
                    self._set_meta(f"seq:{channel}", 0)
            self._set_meta("boot", boot)
        return boot

    # -- the publishing side ----------------------------------------------------------------

    def append(self, channel: str, bodies: Sequence[str]) -> None:
        """Commit records (or events) as JSON texts; durable when this returns."""
        if channel not in CHANNELS:
            raise OutboxError(f"unknown channel {channel!r}")
        with self._lock:
            if self.max_items is not None and self._backlog + len(bodies) > self.max_items:
                raise OutboxFull(
                    f"the outbox holds {self._backlog} items; {len(bodies)} more would exceed "
                    f"its bound of {self.max_items}"
                )
            with self._tx():
                self._db.executemany(
                    "INSERT INTO items (channel, body) VALUES (?, ?)",
                    [(channel, body) for body in bodies],
                )
            self._backlog += len(bodies)

    @property
    def backlog(self) -> int:
        """Records and events not yet acknowledged by the broker."""
        return self._backlog

    # -- the sending side -------------------------------------------------------------------

    def next_stored(self, after_id: int) -> StoredMessage | None:
        """The oldest packed message with an id above `after_id` (resends, in seq order)."""
        with self._lock:
            row = self._q(
                "SELECT id, channel, boot, seq, items, payload FROM messages"
                " WHERE id > ? ORDER BY id LIMIT 1",
                (after_id,),
            ).fetchone()
        return None if row is None else StoredMessage(*row)

    def pack(self, max_items: int, max_bytes: int) -> StoredMessage | None:
        """Pack the oldest waiting items of one channel into a numbered message, or None."""
        with self._lock:
            head = self._q("SELECT channel FROM items ORDER BY id LIMIT 1", ()).fetchone()
            if head is None:
                return None
            channel = str(head[0])
            rows = self._q(
                "SELECT id, body FROM items WHERE channel = ? ORDER BY id LIMIT ?",
                (channel, max_items),
            ).fetchall()
            with self._tx():
                boot = self._meta("boot") or 0
                seq = self._meta(f"seq:{channel}") or 0
                payload = self._fit(channel, boot, seq, rows, max_bytes)
                used = rows[: payload[1]]
                cur = self._db.execute(
                    "INSERT INTO messages (channel, boot, seq, items, payload)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (channel, boot, seq, len(used), payload[0]),
                )
                self._db.execute(
                    "DELETE FROM items WHERE channel = ? AND id <= ?", (channel, used[-1][0])
                )
                self._set_meta(f"seq:{channel}", seq + 1)
            msg_id = cur.lastrowid
            assert msg_id is not None
            return StoredMessage(msg_id, channel, boot, seq, len(used), payload[0])

    def _fit(
        self,
        channel: str,
        boot: int,
        seq: int,
        rows: list[tuple[int, str]],
        max_bytes: int,
    ) -> tuple[bytes, int]:
        """The payload of as many leading rows as fit in `max_bytes`, and how many."""
        count = len(rows)
        while True:
            sent_at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            head = f'{{"v":1,"boot":{boot},"seq":{seq},"sent_at":"{sent_at}",'
            body = ",".join(b for _, b in rows[:count])
            payload = f'{head}"{_ITEM_KEY[channel]}":[{body}]}}'.encode()
            if len(payload) <= max_bytes or count == 1:
                return payload, count
            count = max(1, count * max_bytes // len(payload) - 1)

    def acknowledge(self, message_id: int) -> int:
        """The broker has the message: forget it and its items; return how many items."""
        with self._lock:
            with self._tx():
                row = self._q(
                    "DELETE FROM messages WHERE id = ? RETURNING items", (message_id,)
                ).fetchone()
            items = 0 if row is None else int(row[0])
            self._backlog -= items
            if self._backlog == 0 and items:
                self._q("PRAGMA incremental_vacuum", ()).fetchall()
            return items

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- helpers ----------------------------------------------------------------------------

    def _count(self) -> int:
        items = self._q("SELECT count(*) FROM items", ()).fetchone()[0]
        packed = self._q("SELECT coalesce(sum(items), 0) FROM messages", ()).fetchone()[0]
        return int(items) + int(packed)

    def _meta(self, key: str) -> int | None:
        row = self._q("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else int(row[0])

    def _set_meta(self, key: str, value: int) -> None:
        self._q(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def _q(self, sql: str, params: tuple[object, ...]) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, params)
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {self.path}: {exc}") from exc

    def _tx(self) -> _Transaction:
        return _Transaction(self._db, self.path)


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, rolled back on error (the connection is in autocommit)."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self._path = path

    def __enter__(self) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {self._path}: {exc}") from exc

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        try:
            self._db.execute("COMMIT" if kind is None else "ROLLBACK")
        except sqlite3.Error as exc:
            if kind is None:
                raise OutboxError(f"outbox {self._path}: {exc}") from exc
