"""Dead letters bounded per device (DESIGN §5): one device's flood costs counters, not
gigabytes.

Each worker keeps the first ``per_minute`` dead letters of a device in every UTC minute in
full (topic, bytes, reason); the rest of that minute are counted per device and reason and
stored as ``dead_letters_suppressed`` rows by the batch writer. Windows are the minutes of
``received_at``, so the policy is pure and testable, and the counts line up with the table.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime

from ingest.validate import Outcome, Suppressed

_FORGET_AFTER = 10_000  # devices tracked before windows of past minutes are dropped


def minute_of(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


@dataclass(slots=True)
class DeadLetterBudget:
    """Keeps at most ``per_minute`` dead letters per device and minute (``per_minute >= 1``)."""

    per_minute: int
    _windows: dict[str, tuple[datetime, int]] = field(default_factory=dict)  # device -> kept

    def apply(self, outcome: Outcome, received_at: datetime) -> Outcome:
        """The outcome with the dead letters beyond the device's budget turned into counts."""
        letters = outcome.dead_letters
        if not letters:
            return outcome
        device = letters[0].device_id or ""
        minute = minute_of(received_at)
        window = self._windows.get(device)
        kept = window[1] if window is not None and window[0] == minute else 0
        room = max(0, self.per_minute - kept)
        if window is None and len(self._windows) >= _FORGET_AFTER:
            self._windows = {d: w for d, w in self._windows.items() if w[0] >= minute}
        self._windows[device] = (minute, kept + min(room, len(letters)))
        if room >= len(letters):
            return outcome
        over = Counter((d.stage, d.code) for d in letters[room:])
        pilot = letters[0].pilot_id
        suppressed = tuple(
            Suppressed(device, pilot, stage, code, n) for (stage, code), n in sorted(over.items())
        )
        return replace(
            outcome, dead_letters=letters[:room], suppressed=outcome.suppressed + suppressed
        )

    def spent(self, device: str, received_at: datetime) -> bool:
        """True when ``device`` has no dead letters left to keep in this minute."""
        window = self._windows.get(device)
        return (
            window is not None
            and window[0] == minute_of(received_at)
            and window[1] >= self.per_minute
        )
