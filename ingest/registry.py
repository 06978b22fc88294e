"""A cache of the device registry (``devices`` table) for the validation hot path.

Devices are provisioned while ingest runs, so an unknown device is not yet a verdict:
the cache is reloaded (at most once per ``min_interval_s``) and only a device still
missing from a snapshot taken *after* its message arrived is dead-lettered. A periodic
reload also picks up revocations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import psycopg


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What validation needs to know about one registered device."""

    pilot_id: str
    kind: str
    revoked: bool = False


def load_devices(conn: psycopg.Connection) -> Mapping[str, DeviceInfo]:
    """Read the whole registry (a pilot has hundreds to thousands of devices)."""
    rows = conn.execute("SELECT id, pilot_id, kind, revoked_at IS NOT NULL FROM devices").fetchall()
    conn.commit()
    return MappingProxyType({r[0]: DeviceInfo(r[1], r[2], bool(r[3])) for r in rows})


class Registry:
    """The current snapshot plus the bookkeeping of when it may be reloaded.

    Times are ``time.monotonic()`` seconds, passed in so the policy is testable.
    """

    def __init__(self, min_interval_s: float = 1.0, max_age_s: float = 60.0) -> None:
        self.devices: Mapping[str, DeviceInfo] = MappingProxyType({})
        self.loaded_at: float | None = None  # monotonic time of the last successful load
        self._last_attempt: float | None = None
        self._min_interval_s = min_interval_s
        self._max_age_s = max_age_s

    def may_reload(self, now: float) -> bool:
        return self._last_attempt is None or now - self._last_attempt >= self._min_interval_s

    def stale(self, now: float) -> bool:
        return self.loaded_at is None or now - self.loaded_at >= self._max_age_s

    def reload(self, conn: psycopg.Connection, now: float) -> None:
        """Replace the snapshot; psycopg errors propagate (the caller retries later)."""
        self._last_attempt = now
        self.devices = load_devices(conn)
        self.loaded_at = now

    def expire(self) -> None:
        """Allow the next reload at once (shutdown: judge parked messages if possible)."""
        self._last_attempt = None

    def fresh_since(self, t: float) -> bool:
        """True when the snapshot was taken at or after monotonic time ``t``."""
        return self.loaded_at is not None and self.loaded_at >= t
