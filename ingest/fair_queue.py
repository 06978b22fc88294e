"""Judged messages waiting for a batch, kept per device (DESIGN §5: one device's flood
never delays another device's data).

Messages are judged as they arrive, but a batch is only cut when the writer can take it.
A batch takes everything waiting when that fits in ``max_rows``; otherwise it takes the
devices' messages round robin, one message per device per pass, so a device with a backlog
(a flood of valid data, a gateway catching up after a week) gets the same share of a batch
as any other device that has something waiting, and the rest of its backlog waits —
unacknowledged — for the next batches. Alone, a device still fills whole batches. Each
device's own messages stay in arrival order (its first reading of a key is the one stored).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from ingest.batch import AckToken, Batch
from ingest.validate import Received


@dataclass(frozen=True, slots=True)
class _Waiting:
    item: Received
    token: AckToken | None
    arrived: float  # monotonic time of receipt


class FairQueue:
    """Per-device FIFO queues of judged messages; ``take`` cuts a fair batch."""

    __slots__ = ("_by_device", "_oldest", "messages", "rows")

    def __init__(self) -> None:
        self._by_device: dict[str, deque[_Waiting]] = {}  # round-robin order = key order
        self.rows = 0  # rows the waiting messages will write (what ``Batch.size`` counts)
        self.messages = 0
        self._oldest: float | None = None  # receipt of the oldest waiting message

    def __len__(self) -> int:
        return self.messages

    def add(self, device: str, item: Received, token: AckToken | None, arrived: float) -> None:
        waiting = self._by_device.get(device)
        if waiting is None:
            waiting = self._by_device[device] = deque()
        waiting.append(_Waiting(item, token, arrived))
        self.rows += item.outcome.size
        self.messages += 1
        if self._oldest is None:
            self._oldest = arrived

    @property
    def oldest(self) -> float | None:
        """When the longest-waiting message arrived (``None``: nothing waits)."""
        return self._oldest

    def take(self, max_rows: int) -> Batch | None:
        """The next batch: all that waits if it fits in ``max_rows``, else about
        ``max_rows`` rows round robin across devices (``None`` if nothing waits)."""
        if not self.messages:
            return None
        if self.rows <= max_rows:
            queues = list(self._by_device.values())
            self._by_device = {}
            batch = Batch(started=self._oldest or 0.0)
            for waiting in queues:
                for w in waiting:
                    batch.add(w.item, w.token)
            self.rows = self.messages = 0
            self._oldest = None
            return batch
        batch = Batch(started=0.0)
        started: float | None = None
        by_device = self._by_device
        turn = list(by_device)
        while turn and batch.size < max_rows:
            served = 0
            for device in turn:
                waiting = by_device[device]
                w = waiting.popleft()
                batch.add(w.item, w.token)
                if started is None or w.arrived < started:
                    started = w.arrived
                served += 1
                if not waiting:
                    del by_device[device]
                if batch.size >= max_rows:
                    break
            # Devices served last in a partial pass go to the back of the next batch's turn.
            for device in turn[:served] if served < len(turn) else ():
                if device in by_device:
                    by_device[device] = by_device.pop(device)
            turn = [d for d in turn if d in by_device] if served == len(turn) else []
        batch.started = started or 0.0
        self.rows -= batch.size
        self.messages -= len(batch)
        self._oldest = min((q[0].arrived for q in by_device.values()), default=None)
        return batch
