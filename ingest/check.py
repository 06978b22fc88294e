"""The payload checker: ingest's own verdict on a message, without storing anything.

A firm fixing a gateway wants to know what ingest *would* do with a payload. This runs the
very ``validate`` the service runs (same stages, same reasons) and turns its outcome into
one verdict per record; the shell's API and CLI call it with the device's registry entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from devices.ids import TOPIC_ROOT
from ingest.registry import DeviceInfo
from ingest.validate import Outcome, validate


@dataclass(frozen=True, slots=True)
class RecordVerdict:
    """What ingest would do with one item of ``records`` (or ``events``)."""

    index: int
    accepted: bool
    stage: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class CheckReport:
    """The whole message's fate, then each record's."""

    accepted: bool  # the message itself is usable (its good records would be stored)
    stage: str | None  # when refused whole: where, and why
    reason: str | None
    records: tuple[RecordVerdict, ...]

    @property
    def records_accepted(self) -> int:
        return sum(r.accepted for r in self.records)

    def to_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "stage": self.stage,
            "reason": self.reason,
            "records_accepted": self.records_accepted,
            "records_rejected": len(self.records) - self.records_accepted,
            "records": [
                {"index": r.index, "accepted": r.accepted, "stage": r.stage, "reason": r.reason}
                for r in self.records
            ],
        }


def check_message(
    pilot: str, device: str, channel: str, raw: bytes, info: DeviceInfo | None, now: datetime
) -> CheckReport:
    """Judge ``raw`` as if ``device`` had published it on ``channel`` at ``now``."""
    topic = f"{TOPIC_ROOT}/{pilot}/{device}/{channel}"
    registry = {device: info} if info is not None else {}
    outcome = validate(topic, raw, registry, now, unknown_is_final=True)
    assert isinstance(outcome, Outcome)  # unknown_is_final: never UnknownDevice
    if outcome.message is None and outcome.status is None and outcome.dead_letters:
        first = outcome.dead_letters[0]
        return CheckReport(False, first.stage, first.reason, ())
    refused = {d.index: d for d in outcome.dead_letters if d.index is not None}
    total = len(outcome.rows) + len(refused)
    verdicts = tuple(
        RecordVerdict(i, False, refused[i].stage, refused[i].reason)
        if i in refused
        else RecordVerdict(i, True)
        for i in range(total)
    )
    return CheckReport(True, None, None, verdicts)
