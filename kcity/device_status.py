"""Device status for a firm: last seen, completeness today and yesterday, last dead letter.

The console's device list and `GET …/devices/{d}/status` need one row per registered
device, silent ones included (a device that never sent anything is the one to look at
first). Completeness comes from the data-quality analysis itself (`run_quality`, not
stored); today's is measured against the part of the day that has passed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

import psycopg

from devices.pilots import Pilot
from kcity.analyses import run_quality
from kcity.registry import get_pilot, list_devices
from kcity.window import Window

SILENT_MIN: Final = timedelta(minutes=15)
SILENT_INTERVALS: Final = 3  # nominal intervals without a message before a device is silent


@dataclass(frozen=True, slots=True)
class LastDeadLetter:
    id: int
    received_at: datetime
    stage: str
    reason: str


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """One device as its firm needs to see it."""

    device_id: str
    kind: str
    active: bool
    last_seen: datetime | None
    state: str | None  # the device's own retained status: online / offline
    silent: bool
    completeness_today_pct: float | None
    completeness_yesterday_pct: float | None
    last_dead_letter: LastDeadLetter | None

    def to_json(self) -> dict[str, Any]:
        d = self.last_dead_letter
        return {
            "device_id": self.device_id,
            "kind": self.kind,
            "active": self.active,
            "last_seen": self.last_seen.isoformat() if self.last_seen else None,
            "state": self.state,
            "silent": self.silent,
            "completeness_today_pct": self.completeness_today_pct,
            "completeness_yesterday_pct": self.completeness_yesterday_pct,
            "last_dead_letter": None
            if d is None
            else {
                "id": d.id,
                "received_at": d.received_at.isoformat(),
                "stage": d.stage,
                "reason": d.reason,
            },
        }


def interval_s(pilot: Pilot) -> float | None:
    """The pilot's nominal record interval, if its kind has one."""
    if pilot.streetlight:
        return float(pilot.streetlight.record_interval_s)
    if pilot.drone:
        return float(pilot.drone.record_interval_s)
    return None


def silent_after(pilot: Pilot) -> timedelta:
    step = interval_s(pilot)
    return max(SILENT_MIN, timedelta(seconds=SILENT_INTERVALS * step) if step else SILENT_MIN)


def device_statuses(
    conn: psycopg.Connection, pilot_id: str, now: datetime, device: str | None = None
) -> list[DeviceStatus]:
    """Every device of the pilot (or just `device`): silent ones first, then by id."""
    pilot = get_pilot(conn, pilot_id)
    devices = [d for d in list_devices(conn, pilot_id) if device is None or d.id == device]
    today = now.astimezone(ZoneInfo(pilot.timezone)).date()
    yesterday = today - timedelta(days=1)
    quality = run_quality(
        conn, pilot_id, Window(yesterday, today + timedelta(days=1)), persist=False
    )
    by_day = {(r["device_id"], r["day"]): r for r in quality["per_device_day"]}
    start_today = Window(today, today + timedelta(days=1)).utc(pilot.timezone)[0]
    elapsed = min(1.0, max((now - start_today).total_seconds() / 86400.0, 1e-6))
    states: dict[str, str] = dict(
        conn.execute(
            "SELECT device_id, state FROM device_status WHERE device_id = ANY(%s)",
            ([d.id for d in devices],),
        ).fetchall()
    )
    letters = {
        r[0]: LastDeadLetter(r[1], r[2], r[3], r[4])
        for r in conn.execute(
            "SELECT DISTINCT ON (device_id) device_id, id, received_at, stage, reason"
            " FROM dead_letters WHERE pilot_id = %s AND device_id = ANY(%s)"
            " ORDER BY device_id, id DESC",
            (pilot_id, [d.id for d in devices]),
        ).fetchall()
    }
    quiet = silent_after(pilot)
    step = interval_s(pilot)
    out = []
    for d in devices:
        today_row = by_day.get((d.id, today.isoformat()))
        yday_row = by_day.get((d.id, yesterday.isoformat()))
        out.append(
            DeviceStatus(
                device_id=d.id,
                kind=d.kind,
                active=d.active,
                last_seen=d.last_seen,
                state=states.get(d.id),
                silent=d.active and (d.last_seen is None or now - d.last_seen > quiet),
                completeness_today_pct=_today_pct(today_row, pilot.kind, step, elapsed),
                completeness_yesterday_pct=_day_pct(yday_row, pilot.kind, step),
                last_dead_letter=letters.get(d.id),
            )
        )
    out.sort(key=lambda s: (not s.silent, s.device_id))
    return out


def _day_pct(row: dict[str, Any] | None, kind: str, step: float | None) -> float | None:
    """A whole day's completeness; a day without records is 0 % where the kind reports all
    day (streetlights), unknown where it reports only in use (drones fly some days)."""
    if row is not None:
        pct = row.get("completeness_pct")
        return None if pct is None else float(pct)
    return 0.0 if step and kind != "hybrid_drone" else None


def _today_pct(
    row: dict[str, Any] | None, kind: str, step: float | None, elapsed: float
) -> float | None:
    """Completeness of the part of today that has passed (streetlights: records against
    the intervals elapsed so far); drones' own flight-based figure as it stands."""
    if row is None or kind == "hybrid_drone" or not row.get("expected"):
        return _day_pct(row, kind, step)
    records, expected = float(row["records"]), float(row["expected"])
    return round(min(100.0, 100.0 * records / (expected * elapsed)), 2)
