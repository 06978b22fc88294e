"""What every flight-log reader (.tlog, DataFlash .bin, PX4 .ulg) hands back, and the rules
they share: the latest state per message, events, refusals.

Why one shape: the importer, the tests and the field-log bench must not care which
autopilot wrote a log; units, sentinels ("not provided"), mode classes and refusals are
decided once, here and in `devices.flight_modes` / `devices.vehicle_clock`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np

from devices.errors import DevicesError
from devices.vehicle_clock import ClockStats, track_stats

UINT16_MAX: Final = 65535
MIN_FIX: Final = 3  # GPS fix_type below this is no usable position
_FAILSAFE = re.compile(r"fail-?safe", re.IGNORECASE)
_GLITCH = re.compile(r"gps\s*\d?\s*glitch", re.IGNORECASE)


class LogError(DevicesError):
    """A flight log that cannot be imported (unreadable, no fix, not a drone)."""


@dataclass(frozen=True)
class LogOptions:
    """How to read a log for one pilot: its camera, tank, battery and patrol modes."""

    flight_id: str
    hfov_deg: float | None = None
    fuel_capacity_l: float | None = None
    battery_id: int = 0
    patrol_modes: Collection[str] = ()
    max_gap_s: float = 10.0
    max_speed_mps: float = 40.0


@dataclass
class FlightLog:
    """Records and events of one vehicle, with what was left out and why."""

    fmt: str
    vehicle: str
    records: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> points
    modes: Counter[str] = field(default_factory=Counter)  # autopilot mode name -> points
    unknown_modes: Counter[str] = field(default_factory=Counter)
    clock: ClockStats = field(default_factory=lambda: ClockStats("ground station"))
    camera_messages: bool = False
    generator_messages: bool = False

    def summary(self) -> dict[str, Any]:
        return {
            "format": self.fmt,
            "vehicle": self.vehicle,
            "records": len(self.records),
            "events": len(self.events),
            "skipped": dict(sorted(self.skipped.items())),
            "modes": dict(self.modes.most_common()),
            "unknown_modes": dict(self.unknown_modes.most_common()),
            "clock": self.clock.to_json(),
            "camera_messages": self.camera_messages,
            "generator_messages": self.generator_messages,
        }


@dataclass
class State:
    """The latest converted value of each non-position message."""

    mode: str | None = None
    mode_name: str | None = None
    armed: bool | None = None
    landed_state: int | None = None
    gps_fix: int | None = None
    battery_v: float | None = None
    battery_a: float | None = None
    battery_pct: float | None = None
    battery_status_seen: bool = False
    gen_power_w: float | None = None
    fuel_l: float | None = None
    camera_on: bool | None = None
    rssi_dbm: float | None = None
    range_m: float | None = None
    range_at: float = -math.inf
    terrain_m: float | None = None
    terrain_at: float = -math.inf
    pending: list[dict[str, Any]] = field(default_factory=list)  # events awaiting a time


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def set_armed(state: State, armed: bool, *, from_landed_state: bool = False) -> None:
    """Arm changes are take-offs and landings unless the log has a landed state."""
    if state.armed is not None and armed != state.armed and state.landed_state is None:
        state.pending.append({"type": "takeoff" if armed else "landing", "detail": "arm state"})
    state.armed = armed


def set_landed_state(state: State, landed: int) -> None:
    """MAV_LANDED_STATE: 1 on ground, 2 in air, 3 taking off, 4 landing (0 = unknown)."""
    if landed == 0:
        return
    before = state.landed_state
    air, ground = landed in (2, 3), landed == 1
    if before is not None and before in (2, 3, 4) and ground:
        state.pending.append({"type": "landing", "detail": "landed state"})
    elif (before is None or before == 1) and air and (before is not None or state.armed):
        state.pending.append({"type": "takeoff", "detail": "landed state"})
    state.landed_state = landed


def status_text(state: State, text: str, severity: int) -> None:
    """Failsafes and GPS glitches (and any critical message) become alarms with the text."""
    code = None
    if _FAILSAFE.search(text):
        code = "failsafe"
    elif _GLITCH.search(text):
        code = "gps_glitch"
    elif severity <= 2:  # MAV_SEVERITY_EMERGENCY … CRITICAL
        code = "critical"
    if code:
        state.pending.append({"type": "alarm", "code": code, "detail": text.strip()[:500]})


def battery(state: State, volts: float | None, amps: float | None, pct: float | None) -> None:
    state.battery_v = volts if volts is not None and volts > 0 else None
    state.battery_a = amps
    state.battery_pct = None if pct is None or pct < 0 else float(min(pct, 100))


def sys_status(state: State, mv: int, ca: int, remaining: int) -> None:
    """SYS_STATUS battery, used only without BATTERY_STATUS; 0 V / −1 mean no power module."""
    if state.battery_status_seen:
        return
    battery(
        state,
        None if mv in (0, UINT16_MAX) else mv / 1000.0,
        None if ca == -1 else ca / 100.0,
        None if remaining == -1 else float(remaining),
    )


def radio_rssi_dbm(rssi: int) -> float | None:
    """SiK radios report RSSI as dBm·1.9 + 127·1.9 (255 = unknown)."""
    return None if rssi == 255 else round(rssi / 1.9 - 127.0, 1)


def emit(
    state: State,
    t: float,
    lat: float,
    lon: float,
    opts: LogOptions,
    log: FlightLog,
    **values: float | None,
) -> None:
    """One record at UTC ``t`` from a position and the latest state; pending events get ``t``."""
    record: dict[str, Any] = {
        "ts": iso(t),
        "flight_id": opts.flight_id,
        "lat": lat,
        "lon": lon,
        **values,
        "mode": state.mode,
        "camera_on": state.camera_on,
        "gps_fix": state.gps_fix,
        "battery_v": state.battery_v,
        "battery_a": state.battery_a,
        "battery_pct": state.battery_pct,
        "gen_power_w": state.gen_power_w,
        "fuel_l": state.fuel_l,
        "rssi_dbm": state.rssi_dbm,
        "hfov_deg": opts.hfov_deg,
    }
    log.records.append({k: v for k, v in record.items() if v is not None})
    if state.mode_name is not None:
        log.modes[state.mode_name] += 1
        if state.mode is None:
            log.unknown_modes[state.mode_name] += 1
    flush_events(state, t, lat, lon, opts, log)


def flush_events(
    state: State, t: float, lat: float, lon: float, opts: LogOptions, log: FlightLog
) -> None:
    for event in state.pending:
        where = {"lat": lat, "lon": lon} if event["type"] != "alarm" else {}
        log.events.append({"ts": iso(t), "flight_id": opts.flight_id, **where, **event})
    state.pending.clear()


def finish(
    log: FlightLog, state: State, source: str, anchor: str, reboots: int, opts: LogOptions
) -> FlightLog:
    """Refuse a log without a usable position; else time the last events, count the clock."""
    log.skipped = +log.skipped
    if not log.records:
        fix = log.skipped.get("no_fix", 0)
        why = f"no GPS fix in {fix} position messages" if fix else "no position messages"
        raise LogError(f"{source}: {why}; nothing imported")
    utc = np.array([datetime.fromisoformat(r["ts"]).timestamp() for r in log.records])
    if state.pending:  # after the last position: they happened at its time or later
        last = log.records[-1]
        flush_events(state, float(utc[-1]), last["lat"], last["lon"], opts, log)
    lat = np.array([r["lat"] for r in log.records])
    lon = np.array([r["lon"] for r in log.records])
    n, lost, glitches = track_stats(
        utc, lat, lon, max_gap_s=opts.max_gap_s, max_speed_mps=opts.max_speed_mps
    )
    log.clock = ClockStats(
        anchor,
        reboots=reboots,
        out_of_order=log.skipped.get("out_of_order", 0),
        duplicates=log.skipped.get("duplicate_time", 0),
        dropouts=n,
        dropout_s=lost,
        glitches=glitches,
    )
    return log
