"""Verdicts on rejected data, sent back to the device that sent it (DESIGN §4).

A firm integrating a gateway should not have to ask the platform why a payload was
refused: for every message that produced dead letters, ingest publishes one short verdict
on the device's own ``kcity/v1/{pilot}/{device}/feedback`` topic (the broker's ACL lets
only that device read it), after the dead letters are committed.

``verdict`` is pure; ``FeedbackLimiter`` bounds what one device's flood can cost — the
first ``per_minute`` verdicts of a minute go out, the rest are counted and the count rides
on the next verdict sent (``suppressed``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final

from devices.ids import feedback_topic
from ingest.validate import Received

MAX_REASON: Final = 300  # characters of the first dead letter's reason
WINDOW_S: Final = 60.0
_FORGET_AFTER: Final = 10_000  # devices tracked before old windows are dropped


@dataclass(frozen=True, slots=True)
class Verdict:
    """One feedback message: where it goes and its JSON bytes."""

    device_id: str
    topic: str
    payload: bytes


def verdict(item: Received, suppressed: int = 0) -> Verdict | None:
    """The verdict on one judged message, or None when it had no dead letters (or no
    identifiable device: a malformed topic has nobody to answer)."""
    letters = item.outcome.dead_letters
    if not letters:
        return None
    first = letters[0]
    if first.pilot_id is None or first.device_id is None:
        return None
    message = item.outcome.message
    whole = message is None and item.outcome.status is None
    if message is not None:
        boot: int | None = message.boot
        seq: int | None = message.seq
        rejected = len(letters)
    else:
        boot, seq, items = _envelope(item.payload) if first.stage != "size" else (None, None, 0)
        rejected = items if whole else len(letters)
    body: dict[str, Any] = {
        "v": 1,
        "boot": boot,
        "seq": seq,
        "stage": first.stage,
        "reason": first.reason[:MAX_REASON],
        "records_rejected": rejected,
    }
    if len(letters) > 1:
        body["dead_letters"] = len(letters)
    if suppressed:
        body["suppressed"] = suppressed
    payload = json.dumps(body, ensure_ascii=False).encode("utf-8", "backslashreplace")
    return Verdict(first.device_id, feedback_topic(first.pilot_id, first.device_id), payload)


def _envelope(raw: bytes) -> tuple[int | None, int | None, int]:
    """``boot``, ``seq`` and the item count of a refused message, as far as it can be read."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        return None, None, 0
    if not isinstance(body, dict):
        return None, None, 0
    boot, seq = body.get("boot"), body.get("seq")
    items = body.get("records", body.get("events"))
    return (
        boot if isinstance(boot, int) and not isinstance(boot, bool) else None,
        seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
        len(items) if isinstance(items, list) else 0,
    )


@dataclass(slots=True)
class _Window:
    started: float
    sent: int = 0
    suppressed: int = 0


@dataclass(slots=True)
class FeedbackLimiter:
    """At most ``per_minute`` verdicts per device and minute; ``per_minute = 0`` sends none.

    Times are ``time.monotonic()`` seconds passed in, so the policy is testable.
    """

    per_minute: int
    _windows: dict[str, _Window] = field(default_factory=dict)

    def allow(self, device: str, now: float) -> int | None:
        """None to stay silent; else how many verdicts were suppressed since the last one."""
        if self.per_minute <= 0:
            return None
        w = self._windows.get(device)
        if w is None or now - w.started >= WINDOW_S:
            if len(self._windows) >= _FORGET_AFTER:
                self._forget(now)
            carried = w.suppressed if w is not None else 0
            w = self._windows[device] = _Window(now, suppressed=carried)
        if w.sent >= self.per_minute:
            w.suppressed += 1
            return None
        w.sent += 1
        suppressed, w.suppressed = w.suppressed, 0
        return suppressed

    def _forget(self, now: float) -> None:
        self._windows = {
            d: w for d, w in self._windows.items() if now - w.started < WINDOW_S or w.suppressed
        }
