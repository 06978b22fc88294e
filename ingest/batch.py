"""The batch being filled: judged messages and the acknowledgements owed for them.

A batch is sealed by size or age and handed to the writer; its acknowledgements are sent
only after the writer's transaction has committed (DESIGN §5).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ingest.validate import Received


@dataclass(frozen=True, slots=True)
class AckToken:
    """What ``client.ack`` needs, plus the connection it was received on.

    A message id is only meaningful on its own connection: after a reconnect the broker
    redelivers unacknowledged messages under new ids, so stale tokens are dropped.
    """

    mid: int
    qos: int
    generation: int


@dataclass(slots=True)
class Batch:
    """Messages judged since the last seal, in arrival order."""

    started: float  # monotonic time of the first message
    items: list[Received] = field(default_factory=list)
    tokens: list[AckToken] = field(default_factory=list)
    size: int = 0  # rows (records, dead letters, message rows) it will write

    def add(self, item: Received, token: AckToken | None) -> None:
        self.items.append(item)
        if token is not None:
            self.tokens.append(token)
        self.size += item.outcome.size

    def __len__(self) -> int:
        return len(self.items)
