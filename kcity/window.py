"""The evaluation window: local dates [from, to) of a pilot, shared by every analysis."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from kcity.errors import KcityError


class WindowError(KcityError):
    pass


@dataclass(frozen=True)
class Window:
    start: date  # first local date included
    end: date  # first local date excluded

    @classmethod
    def parse(cls, start: date, end: date) -> Window:
        if end <= start:
            raise WindowError(f"--to ({end}) must be after --from ({start})")
        return cls(start, end)

    def keys(self, pilot_id: str) -> dict[str, str]:
        """The pilot and window keys of every analysis's JSON (DESIGN §7)."""
        return {"pilot": pilot_id, "from": self.start.isoformat(), "to": self.end.isoformat()}

    def describe(self, tz: str) -> dict[str, str]:
        """The JSON's `window`: what the dates mean, so nobody reads them as UTC days."""
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "timezone": tz,
            "meaning": f"local dates in {tz}; 'from' included, 'to' excluded",
        }

    def utc(self, tz: str, *, extra_days: int = 0) -> tuple[datetime, datetime]:
        zone = ZoneInfo(tz)
        return (
            datetime.combine(self.start, time(), zone),
            datetime.combine(self.end + timedelta(days=extra_days), time(), zone),
        )
