"""MAVLink bridge: a drone's telemetry log (.tlog) as ``hybrid_drone`` records in SI units.

Hybrid drones already speak MAVLink; firms should not have to re-implement its units and
"not provided" sentinels to join a pilot. One record is produced per GLOBAL_POSITION_INT
of the vehicle, carrying the latest values of the other messages (METHODS.md "MAVLink
units"), timed on the vehicle clock (`devices.vehicle_clock`):

- GLOBAL_POSITION_INT: lat/lon degE7 → deg; ``alt`` mm AMSL → ``alt_m``; vx, vy cm/s →
  ground ``speed_mps``; ``hdg`` cdeg → ``heading_deg`` (65535 = unknown → None).
  Positions of exactly (0, 0), or while GPS_RAW_INT reports no 3-D fix, are skipped.
- ``agl_m`` (height above *ground*) comes from the best fresh source: a downward
  DISTANCE_SENSOR (cm), else TERRAIN_REPORT ``current_height`` (m), else — as a
  fallback only — GLOBAL_POSITION_INT ``relative_alt``, which is height above the *home*
  position, not above the ground under the drone (wrong over slopes and relief).
- BATTERY_STATUS: cell ``voltages`` mV (UINT16_MAX = no cell) summed → ``battery_v``;
  ``current_battery`` cA (−1 = unknown) → ``battery_a``; ``battery_remaining`` %. Without
  BATTERY_STATUS, SYS_STATUS (0 V or −1 = no power module: missing, not zero).
- GENERATOR_STATUS ``power_generated`` W (NaN = not provided) → ``gen_power_w``;
  EFI_STATUS ``fuel_consumed`` cm³ → ``fuel_l`` remaining when the tank size is given.
- HEARTBEAT of the flight controller (not of a ground station, camera or gimbal):
  disarmed → ``landed``; armed → the class of its named mode (`devices.flight_modes`).
  A vehicle that does not fly (a rover, a boat, a submarine) is refused.
- GPS_RAW_INT ``fix_type`` → ``gps_fix``; RADIO_STATUS ``rssi`` → ``rssi_dbm``;
  CAMERA_CAPTURE_STATUS → ``camera_on``; STATUSTEXT failsafes and GPS glitches → alarms;
  take-off and landing from EXTENDED_SYS_STATE's landed state, else from arming.

A .tlog is a sequence of 8-byte big-endian UNIX microseconds (the ground station's receive
time), each followed by one MAVLink 1 or 2 frame.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Final

import numpy as np
from pymavlink.dialects.v20 import ardupilotmega as mavlink

from devices import flight_log as fl
from devices.flight_log import FlightLog, LogError, LogOptions, State
from devices.flight_modes import (
    AUTOPILOT_INVALID,
    GCS,
    Vehicle,
    mode_class,
    mode_name,
    type_name,
)
from devices.vehicle_clock import in_order, vehicle_utc

UINT16_MAX: Final = 65535
_ARMED: Final = 128  # MAV_MODE_FLAG_SAFETY_ARMED
_DOWNWARD: Final = 25  # MAV_SENSOR_ROTATION_PITCH_270
_FRESH_S: Final = 5.0  # how long a rangefinder or terrain height stays usable
_V1, _V2 = 0xFE, 0xFD
_CHUNK: Final = 1 << 20
_USED: Final = frozenset(
    {
        "GLOBAL_POSITION_INT", "HEARTBEAT", "GPS_RAW_INT", "BATTERY_STATUS", "SYS_STATUS",
        "GENERATOR_STATUS", "EFI_STATUS", "DISTANCE_SENSOR", "TERRAIN_REPORT", "SYSTEM_TIME",
        "CAMERA_CAPTURE_STATUS", "CAMERA_TRIGGER", "CAMERA_IMAGE_CAPTURED", "STATUSTEXT",
        "RADIO_STATUS", "EXTENDED_SYS_STATE",
    }
)  # fmt: skip
_DEFAULT_VEHICLE: Final = Vehicle(2, 3)  # no heartbeat at all: assume ArduCopter


class TlogError(LogError):
    """A telemetry log that cannot be read at all."""


# --- reading a .tlog -----------------------------------------------------------------------


def iter_tlog(path: Path | str) -> Iterator[tuple[float, Any]]:
    """(UNIX seconds, decoded message) for every valid frame of a .tlog, in file order.

    Corrupt bytes, and messages of dialects we do not know, are skipped by resynchronising
    on the next frame whose checksum holds.
    """
    try:
        with Path(path).open("rb") as handle:
            yield from _frames(handle)
    except OSError as exc:
        raise TlogError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _frames(handle: BinaryIO) -> Iterator[tuple[float, Any]]:
    mav = mavlink.MAVLink(None)
    buf = b""
    pos = 0
    eof = False
    while True:
        if len(buf) - pos < 8 + 280 and not eof:  # 280: the largest signed MAVLink 2 frame
            more = handle.read(_CHUNK)
            eof = not more
            buf = buf[pos:] + more
            pos = 0
        if len(buf) - pos < 8 + 3:
            return
        magic = buf[pos + 8]
        if magic == _V1:
            size = buf[pos + 9] + 8
        elif magic == _V2:
            size = buf[pos + 9] + 12 + (13 if buf[pos + 10] & 1 else 0)
        else:
            pos += 1
            continue
        if len(buf) - pos < 8 + size:
            if eof:  # a truncated last frame, or a false start near the end
                pos += 1
            continue
        try:
            msg = mav.decode(bytearray(buf[pos + 8 : pos + 8 + size]))
        except (mavlink.MAVError, struct.error, IndexError):
            msg = None
        if msg is None or isinstance(msg, mavlink.MAVLink_unknown):
            # Not a frame, or one whose checksum cannot be verified (unknown message id):
            # trusting its length could skip real frames, so resynchronise byte by byte.
            pos += 1
            continue
        (usec,) = struct.unpack(">Q", buf[pos : pos + 8])
        pos += 8 + size
        yield usec / 1e6, msg


def read_tlog(path: Path | str, opts: LogOptions) -> FlightLog:
    """The records and events of the flying vehicle in a MAVLink telemetry log."""
    return convert(iter_tlog(path), opts, source=str(path))


# --- converting ----------------------------------------------------------------------------


def _vehicle(messages: list[tuple[float, Any]]) -> tuple[Vehicle, int | None, int | None]:
    """The flight controller: the first heartbeat that is not a GCS nor a non-autopilot."""
    for _, msg in messages:
        if msg.get_type() == "HEARTBEAT" and msg.type != GCS and msg.autopilot != AUTOPILOT_INVALID:
            return Vehicle(msg.type, msg.autopilot), msg.get_srcSystem(), msg.get_srcComponent()
    for _, msg in messages:
        if msg.get_type() == "GLOBAL_POSITION_INT":
            return _DEFAULT_VEHICLE, msg.get_srcSystem(), None
    return _DEFAULT_VEHICLE, None, None


def convert(
    stream: Iterator[tuple[float, Any]], opts: LogOptions, *, source: str = "log"
) -> FlightLog:
    """Convert (receive time, MAVLink message) pairs into one vehicle's records and events.

    Other systems (ground stations, other drones) are ignored, and so are the heartbeats of
    the vehicle's other components (cameras, gimbals, companion computers).
    """
    messages = [(t, m) for t, m in stream if m.get_type() in _USED]
    vehicle, system, component = _vehicle(messages)
    if not vehicle.aerial:
        raise LogError(
            f"{source}: the vehicle is a {type_name(vehicle.mav_type)} (MAV_TYPE "
            f"{vehicle.mav_type}), not a drone; nothing imported"
        )

    def ours(msg: Any) -> bool:
        if msg.get_type() == "RADIO_STATUS":
            return True  # sent by the radio modem, under its own system id
        if msg.get_srcSystem() != system:
            return False
        return msg.get_type() != "HEARTBEAT" or component in (None, msg.get_srcComponent())

    messages = [(t, m) for t, m in messages if ours(m)]
    utc, anchor, reboots = _clock(messages)
    log = FlightLog("tlog", f"{vehicle.family} ({type_name(vehicle.mav_type)})")
    state = State()
    positions = [i for i, (_, m) in enumerate(messages) if m.get_type() == "GLOBAL_POSITION_INT"]
    keep, late, dups = in_order(utc[positions]) if positions else (np.empty(0, bool), 0, 0)
    log.skipped.update({"out_of_order": late, "duplicate_time": dups})
    kept = {positions[j] for j in np.flatnonzero(keep).tolist()}
    for i, (t, msg) in enumerate(messages):
        if msg.get_type() == "GLOBAL_POSITION_INT":
            if i in kept:
                _position(float(utc[i]), t, msg, state, opts, log)
        else:
            _remember(t, msg, state, vehicle, opts, log)
    return fl.finish(log, state, source, anchor, reboots, opts)


def _clock(messages: list[tuple[float, Any]]) -> tuple[Any, str, int]:
    """UTC per message on the vehicle clock (NaN for messages without a vehicle time).

    A log whose positions all carry the same ``time_boot_ms`` has no vehicle clock; its
    receive times are used as they are.
    """
    clocked = ("GLOBAL_POSITION_INT", "SYSTEM_TIME")
    timed = [i for i, (_, m) in enumerate(messages) if m.get_type() in clocked]
    out = np.full(len(messages), np.nan)
    boots = {messages[i][1].time_boot_ms for i in timed
             if messages[i][1].get_type() == "GLOBAL_POSITION_INT"}  # fmt: skip
    if len(boots) < 2:
        out[:] = [t for t, _ in messages]
        return out, "ground station", 0
    boot = [messages[i][1].time_boot_ms / 1e3 for i in timed]
    gcs = [messages[i][0] for i in timed]
    unix = [
        m.time_unix_usec / 1e6 if m.get_type() == "SYSTEM_TIME" and m.time_unix_usec > 0 else np.nan
        for m in (messages[i][1] for i in timed)
    ]
    utc, anchor, reboots = vehicle_utc(boot, gcs, unix)
    out[timed] = utc
    return out, anchor, reboots


def _position(
    t: float, gcs_t: float, msg: Any, state: State, opts: LogOptions, log: FlightLog
) -> None:
    if msg.lat == 0 and msg.lon == 0:
        log.skipped["no_fix"] += 1  # what an autopilot reports before its first fix
        return
    if state.gps_fix is not None and state.gps_fix < fl.MIN_FIX:
        log.skipped["no_fix"] += 1
        return
    fl.emit(
        state,
        t,
        msg.lat / 1e7,
        msg.lon / 1e7,
        opts,
        log,
        alt_m=msg.alt / 1000.0,
        agl_m=_agl(gcs_t, msg.relative_alt / 1000.0, state),
        speed_mps=math.hypot(msg.vx, msg.vy) / 100.0,
        heading_deg=None if msg.hdg == UINT16_MAX else msg.hdg / 100.0,
    )


def _agl(t: float, relative_m: float, state: State) -> float | None:
    """Height above ground: rangefinder, else terrain, else height above home (clamped)."""
    if state.range_m is not None and t - state.range_at <= _FRESH_S:
        return state.range_m
    if state.terrain_m is not None and t - state.terrain_at <= _FRESH_S:
        return max(0.0, state.terrain_m)
    if relative_m >= -1.0:  # sensor noise on the ground; further below home is unknown
        return max(0.0, relative_m)
    return None


def _remember(
    t: float, msg: Any, state: State, vehicle: Vehicle, opts: LogOptions, log: FlightLog
) -> None:
    kind = msg.get_type()
    if kind == "HEARTBEAT":
        armed = bool(msg.base_mode & _ARMED)
        fl.set_armed(state, armed)
        state.mode_name = mode_name(vehicle, msg.custom_mode)
        state.mode = (
            mode_class(vehicle.family, state.mode_name, opts.patrol_modes) if armed else "landed"
        )
    elif kind == "EXTENDED_SYS_STATE":
        fl.set_landed_state(state, msg.landed_state)
    elif kind == "GPS_RAW_INT":
        state.gps_fix = min(int(msg.fix_type), 6)
    elif kind == "BATTERY_STATUS" and msg.id == opts.battery_id:
        state.battery_status_seen = True
        fl.battery(
            state,
            _pack_voltage(msg),
            None if msg.current_battery == -1 else msg.current_battery / 100.0,
            float(msg.battery_remaining),
        )
    elif kind == "SYS_STATUS":
        fl.sys_status(state, msg.voltage_battery, msg.current_battery, msg.battery_remaining)
    elif kind == "GENERATOR_STATUS":
        log.generator_messages = True
        power = msg.power_generated
        state.gen_power_w = None if not math.isfinite(power) or power < 0 else float(power)
    elif kind == "EFI_STATUS":
        log.generator_messages = True
        used_l = msg.fuel_consumed / 1000.0  # cm³ → L
        if opts.fuel_capacity_l is None or not math.isfinite(used_l):
            state.fuel_l = None
        else:
            state.fuel_l = max(0.0, opts.fuel_capacity_l - used_l)
    elif kind == "DISTANCE_SENSOR" and msg.orientation == _DOWNWARD:
        if msg.min_distance <= msg.current_distance <= msg.max_distance:
            state.range_m, state.range_at = msg.current_distance / 100.0, t
    elif kind == "TERRAIN_REPORT" and math.isfinite(msg.current_height):
        state.terrain_m, state.terrain_at = float(msg.current_height), t
    elif kind == "CAMERA_CAPTURE_STATUS":
        log.camera_messages = True
        state.camera_on = msg.video_status == 1 or msg.image_status in (1, 3)
    elif kind in ("CAMERA_TRIGGER", "CAMERA_IMAGE_CAPTURED"):
        log.camera_messages = True
        state.camera_on = True
    elif kind == "STATUSTEXT":
        fl.status_text(state, msg.text, msg.severity)
    elif kind == "RADIO_STATUS":
        state.rssi_dbm = fl.radio_rssi_dbm(msg.rssi)


def _pack_voltage(msg: Any) -> float | None:
    """Sum of the cells present; cell 0 alone holds the pack voltage when cells are unknown."""
    cells = [v for v in msg.voltages if v != UINT16_MAX]
    cells += [v for v in getattr(msg, "voltages_ext", ()) if v not in (0, UINT16_MAX)]
    return sum(cells) / 1000.0 if cells else None
