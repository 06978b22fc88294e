"""ArduPilot DataFlash logs (.bin, the autopilot's own SD-card log) as ``hybrid_drone``
records, through pymavlink's DFReader.

Why a separate reader: the SD-card log has no MAVLink messages but its own (GPS, POS, MODE,
BAT, ARM, MSG, RFND, CAM/TRIG, GEN), every one timed by ``TimeUS`` on the vehicle clock;
UTC comes from the GPS week and milliseconds of a fixed GPS message (`devices.vehicle_clock`).
One record per GPS sample with a 3-D fix; height above ground from a downward rangefinder,
else POS ``RelHomeAlt`` (above home). The vehicle (Plane/QuadPlane, Copter, Rover, Sub)
comes from the firmware banner in MSG, and only vehicles that fly are imported.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Final

import numpy as np
from pymavlink import DFReader

from devices import flight_log as fl
from devices.flight_log import FlightLog, LogError, LogOptions, State
from devices.flight_modes import Vehicle, mode_class, mode_name, type_name
from devices.vehicle_clock import in_order, vehicle_utc

GPS_EPOCH: Final = 315_964_800  # 1980-01-06 in UNIX seconds
LEAP_S: Final = 18  # GPS − UTC since 2017
_FRESH_US: Final = 5_000_000
_BANNERS: Final = {"ArduPlane": Vehicle(1, 3), "ArduCopter": Vehicle(2, 3),
                   "ArduRover": Vehicle(10, 3), "ArduSub": Vehicle(12, 3),
                   "Blimp": Vehicle(7, 3)}  # fmt: skip
_USED: Final = frozenset({"GPS", "POS", "MODE", "BAT", "ARM", "MSG", "RFND", "CAM", "TRIG",
                          "GEN", "EFI", "RAD", "EV"})  # fmt: skip


def gps_to_unix(week: int, ms: int) -> float:
    return GPS_EPOCH + week * 604_800 + ms / 1000.0 - LEAP_S


def _messages(path: Path) -> list[Any]:
    try:
        reader = DFReader.DFReader_binary(str(path))
    except (OSError, ValueError) as exc:
        raise LogError(f"cannot read {path}: {exc}") from exc
    out = []
    try:
        while (msg := reader.recv_msg()) is not None:
            if msg.get_type() in _USED:
                out.append(msg)
    finally:
        reader.close()
    return out


def _vehicle(messages: list[Any]) -> Vehicle:
    for m in messages:
        if m.get_type() == "MSG":
            for banner, vehicle in _BANNERS.items():
                if str(m.Message).startswith(banner):
                    return vehicle
    return Vehicle(2, 3)  # no banner: assume ArduCopter, as ground stations do


def read_dataflash(path: Path, opts: LogOptions) -> FlightLog:
    """The records and events of an ArduPilot DataFlash log."""
    messages = _messages(path)
    vehicle = _vehicle(messages)
    if not vehicle.aerial:
        raise LogError(
            f"{path}: the vehicle is a {type_name(vehicle.mav_type)}, not a drone; nothing imported"
        )
    log = FlightLog("bin", f"{vehicle.family} ({type_name(vehicle.mav_type)})")
    gps = [m for m in messages if m.get_type() == "GPS"]
    boot = [m.TimeUS / 1e6 for m in gps]
    unix = [
        gps_to_unix(m.GWk, m.GMS) if m.Status >= fl.MIN_FIX and m.GWk > 0 else math.nan for m in gps
    ]
    if gps and not np.isfinite(unix).any():
        log.skipped["no_fix"] = len(gps)
        return fl.finish(log, State(), str(path), "GPS", 0, opts)
    utc, _, reboots = vehicle_utc(boot, boot, unix)
    keep, late, dups = in_order(utc) if gps else (np.empty(0, bool), 0, 0)
    log.skipped.update({"out_of_order": late, "duplicate_time": dups})
    when = {id(m): float(t) for m, t, k in zip(gps, utc, keep, strict=True) if k}
    state = State(armed=False)  # an autopilot's own log starts disarmed
    rel: dict[str, float] = {}
    for m in messages:
        kind = m.get_type()
        if kind == "GPS":
            if id(m) in when:
                _position(m, when[id(m)], rel, state, opts, log)
        elif kind == "POS":
            rel["alt"], rel["at"] = float(m.RelHomeAlt), float(m.TimeUS)
        elif kind == "RFND" and getattr(m, "Orient", 25) == 25 and m.Dist > 0:
            rel["range"], rel["range_at"] = float(m.Dist), float(m.TimeUS)
        else:
            _remember(kind, m, state, vehicle, opts, log)
    return fl.finish(log, state, str(path), "GPS", reboots, opts)


def _position(
    m: Any, t: float, rel: dict[str, float], state: State, opts: LogOptions, log: FlightLog
) -> None:
    state.gps_fix = min(int(m.Status), 6)
    if m.Status < fl.MIN_FIX or (m.Lat == 0 and m.Lng == 0):
        log.skipped["no_fix"] += 1
        return
    agl = None
    if "range" in rel and m.TimeUS - rel["range_at"] <= _FRESH_US:
        agl = rel["range"]
    elif "alt" in rel and m.TimeUS - rel["at"] <= _FRESH_US and rel["alt"] >= -1.0:
        agl = max(0.0, rel["alt"])
    course = float(m.GCrs) % 360.0
    fl.emit(state, t, float(m.Lat), float(m.Lng), opts, log, alt_m=float(m.Alt), agl_m=agl,
            speed_mps=max(0.0, float(m.Spd)), heading_deg=course)  # fmt: skip


def _remember(
    kind: str, m: Any, state: State, vehicle: Vehicle, opts: LogOptions, log: FlightLog
) -> None:
    if kind == "MODE":
        state.mode_name = mode_name(vehicle, int(m.ModeNum))
        armed = bool(state.armed)
        state.mode = mode_class(vehicle.family, state.mode_name, opts.patrol_modes)
        if not armed:
            state.mode = "landed"
    elif kind == "ARM":
        fl.set_armed(state, bool(m.ArmState))
        if state.mode_name is not None:
            cls = mode_class(vehicle.family, state.mode_name, opts.patrol_modes)
            state.mode = cls if state.armed else "landed"
    elif kind == "EV" and int(m.Id) in (10, 11):  # ARMED, DISARMED (logs without ARM)
        fl.set_armed(state, int(m.Id) == 10)
    elif kind == "BAT" and getattr(m, "Instance", 0) == opts.battery_id:
        volts = float(m.Volt)
        amps = float(m.Curr)
        pct = getattr(m, "RemPct", None)
        fl.battery(state, volts if volts > 0 else None, amps if volts > 0 else None,
                   None if pct is None else float(pct))  # fmt: skip
    elif kind == "MSG":
        text = str(m.Message)
        fl.status_text(state, text, 6)
    elif kind in ("CAM", "TRIG"):
        log.camera_messages = True
        state.camera_on = True
    elif kind == "GEN":
        log.generator_messages = True
        volts, amps = float(getattr(m, "Volt", math.nan)), float(getattr(m, "Curr", math.nan))
        power = volts * amps
        state.gen_power_w = power if math.isfinite(power) and power >= 0 else None
    elif kind == "RAD":
        state.rssi_dbm = fl.radio_rssi_dbm(int(m.RSSI))
