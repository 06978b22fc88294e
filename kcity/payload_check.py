"""`kcity payload check` and `POST …/payloads/check`: ingest's verdict, nothing stored.

The shell's part is only the registry lookup: the device must be the pilot's; the verdict
itself is `ingest.check.check_message`, the same validation the ingest service runs.
"""

from __future__ import annotations

from datetime import datetime

import psycopg

from devices.ids import CHANNELS
from ingest.check import CheckReport, check_message
from ingest.registry import DeviceInfo
from kcity.errors import KcityError, NotFound
from kcity.registry import get_device


class CheckError(KcityError):
    """The check cannot run: an unknown channel."""


def check_payload(
    conn: psycopg.Connection,
    pilot: str,
    device: str,
    raw: bytes,
    now: datetime,
    channel: str = "telemetry",
) -> CheckReport:
    """What ingest would do with `raw` from `device` of `pilot` on `channel`, right now."""
    if channel not in CHANNELS:
        raise CheckError(f"unknown channel {channel!r}; expected one of {', '.join(CHANNELS)}")
    try:
        found = get_device(conn, device)
    except NotFound:
        found = None
    if found is None or found.pilot_id != pilot:
        raise NotFound(f"pilot {pilot!r} has no device {device!r}")
    info = DeviceInfo(found.pilot_id, found.kind, not found.active)
    return check_message(pilot, device, channel, raw, info, now)
