"""MAVLink bridge: a drone's telemetry log (.tlog) as ``hybrid_drone`` records in SI units.

Hybrid drones already speak MAVLink; firms should not have to re-implement its units and
"not provided" sentinels to join a pilot. One record is produced per GLOBAL_POSITION_INT,
carrying the latest values of the other messages (METHODS.md "MAVLink units"):

- GLOBAL_POSITION_INT: lat/lon degE7 → deg; ``alt`` mm AMSL → ``alt_m``; vx, vy cm/s →
  ground ``speed_mps``; ``hdg`` cdeg → ``heading_deg`` (65535 = unknown → None).
  Positions of exactly (0, 0) are what autopilots send before a fix and are skipped.
- ``agl_m`` (height above *ground*) comes from the best fresh source: a downward
  DISTANCE_SENSOR (cm), else TERRAIN_REPORT ``current_height`` (m), else — as a
  fallback only — GLOBAL_POSITION_INT ``relative_alt``, which is height above the *home*
  position, not above the ground under the drone (wrong over slopes and relief).
- BATTERY_STATUS: cell ``voltages`` mV (UINT16_MAX = no cell; ``voltages_ext`` 0 = no
  cell) summed → ``battery_v``; ``current_battery`` cA (−1 = unknown) → ``battery_a``;
  ``battery_remaining`` % (−1 = unknown) → ``battery_pct``.
- GENERATOR_STATUS ``power_generated`` W (NaN = not provided) → ``gen_power_w``.
- EFI_STATUS ``fuel_consumed`` cm³ → ``fuel_l`` as *remaining* fuel when the tank
  capacity is given (``fuel_capacity_l``), else None.
- HEARTBEAT (of the autopilot, not of a ground station): disarmed → ``landed``; armed →
  ``mode_map(custom_mode, base_mode, mav_type)`` (default: ArduCopter flight modes).
- GPS_RAW_INT ``fix_type`` → ``gps_fix`` (7 static and 8 PPP are reported as 6).
- CAMERA_CAPTURE_STATUS: recording video or capturing images → ``camera_on``.

Timestamps come from the log (a .tlog is a sequence of 8-byte big-endian UNIX
microseconds, each followed by one MAVLink 1 or 2 frame).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Final

from pymavlink.dialects.v20 import ardupilotmega as mavlink

from devices.errors import DevicesError

ModeMap = Callable[[int, int, int], str | None]

UINT16_MAX: Final = 65535
_ARMED: Final = 128  # MAV_MODE_FLAG_SAFETY_ARMED
_GCS: Final = 6  # MAV_TYPE_GCS
_AUTOPILOT_INVALID: Final = 8  # MAV_AUTOPILOT_INVALID: not a flight controller
_DOWNWARD: Final = 25  # MAV_SENSOR_ROTATION_PITCH_270
_FRESH_S: Final = 5.0  # how long a rangefinder or terrain height stays usable
_V1, _V2 = 0xFE, 0xFD
_CHUNK: Final = 1 << 20
_USED: Final = frozenset(
    {
        "GLOBAL_POSITION_INT",
        "HEARTBEAT",
        "GPS_RAW_INT",
        "BATTERY_STATUS",
        "GENERATOR_STATUS",
        "EFI_STATUS",
        "DISTANCE_SENSOR",
        "TERRAIN_REPORT",
        "CAMERA_CAPTURE_STATUS",
    }
)

# ArduCopter custom_mode numbers → the contract's modes.
ARDUCOPTER_MODES: Final[dict[int, str]] = {
    0: "transit",  # STABILIZE
    2: "hover",  # ALT_HOLD
    3: "patrol",  # AUTO (the mission is the patrol)
    4: "transit",  # GUIDED
    5: "hover",  # LOITER
    6: "rtl",  # RTL
    9: "rtl",  # LAND
    16: "hover",  # POSHOLD
    17: "hover",  # BRAKE
    21: "rtl",  # SMART_RTL
}


class TlogError(DevicesError):
    """A telemetry log that cannot be read at all."""


def arducopter_mode(custom_mode: int, base_mode: int, mav_type: int) -> str | None:
    """Default mode mapping: ArduCopter's flight modes, None for the others."""
    return ARDUCOPTER_MODES.get(custom_mode)


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


def read_tlog(
    path: Path | str,
    flight_id: str,
    camera_hfov_deg: float | None = None,
    *,
    mode_map: ModeMap = arducopter_mode,
    fuel_capacity_l: float | None = None,
    battery_id: int = 0,
) -> Iterator[dict[str, Any]]:
    """``hybrid_drone`` records from a MAVLink telemetry log."""
    return records(
        iter_tlog(path),
        flight_id,
        camera_hfov_deg,
        mode_map=mode_map,
        fuel_capacity_l=fuel_capacity_l,
        battery_id=battery_id,
    )


# --- converting ----------------------------------------------------------------------------


@dataclass
class _Latest:
    """The latest converted value of each non-position message."""

    mode: str | None = None
    gps_fix: int | None = None
    battery_v: float | None = None
    battery_a: float | None = None
    battery_pct: float | None = None
    gen_power_w: float | None = None
    fuel_l: float | None = None
    camera_on: bool | None = None
    range_m: float | None = None
    range_at: float = -math.inf
    terrain_m: float | None = None
    terrain_at: float = -math.inf


def records(
    messages: Iterable[tuple[float, Any]],
    flight_id: str,
    camera_hfov_deg: float | None = None,
    *,
    mode_map: ModeMap = arducopter_mode,
    fuel_capacity_l: float | None = None,
    battery_id: int = 0,
) -> Iterator[dict[str, Any]]:
    """Convert (UNIX seconds, MAVLink message) pairs of one vehicle into records.

    The vehicle is the system that sends the first message used here (ground-station
    heartbeats aside); other systems (ground stations, other drones) are ignored.
    """
    latest = _Latest()
    vehicle: int | None = None
    for t, msg in messages:
        kind = msg.get_type()
        source = msg.get_srcSystem()
        if kind == "HEARTBEAT" and (msg.type == _GCS or msg.autopilot == _AUTOPILOT_INVALID):
            continue
        if vehicle is None and kind in _USED:
            vehicle = source
        if source != vehicle:
            continue
        if kind == "GLOBAL_POSITION_INT":
            record = _position(t, msg, flight_id, latest)
            if record is not None:
                if camera_hfov_deg is not None:
                    record["hfov_deg"] = camera_hfov_deg
                yield record
        else:
            _remember(t, kind, msg, latest, mode_map, fuel_capacity_l, battery_id)


def _position(t: float, msg: Any, flight_id: str, latest: _Latest) -> dict[str, Any] | None:
    if msg.lat == 0 and msg.lon == 0:
        return None  # what an autopilot reports before its first fix
    speed = math.hypot(msg.vx, msg.vy) / 100.0
    record: dict[str, Any] = {
        "ts": datetime.fromtimestamp(t, UTC).isoformat(timespec="microseconds")[:-6] + "Z",
        "flight_id": flight_id,
        "lat": msg.lat / 1e7,
        "lon": msg.lon / 1e7,
        "alt_m": msg.alt / 1000.0,
        "agl_m": _agl(t, msg.relative_alt / 1000.0, latest),
        "speed_mps": speed,
        "heading_deg": None if msg.hdg == UINT16_MAX else msg.hdg / 100.0,
        "mode": latest.mode,
        "camera_on": latest.camera_on,
        "gps_fix": latest.gps_fix,
        "battery_v": latest.battery_v,
        "battery_a": latest.battery_a,
        "battery_pct": latest.battery_pct,
        "gen_power_w": latest.gen_power_w,
        "fuel_l": latest.fuel_l,
    }
    return {k: v for k, v in record.items() if v is not None}


def _agl(t: float, relative_m: float, latest: _Latest) -> float | None:
    """Height above ground: rangefinder, else terrain, else height above home (clamped)."""
    if latest.range_m is not None and t - latest.range_at <= _FRESH_S:
        return latest.range_m
    if latest.terrain_m is not None and t - latest.terrain_at <= _FRESH_S:
        return max(0.0, latest.terrain_m)
    if relative_m >= -1.0:  # sensor noise on the ground; further below home is unknown
        return max(0.0, relative_m)
    return None


def _remember(
    t: float,
    kind: str,
    msg: Any,
    latest: _Latest,
    mode_map: ModeMap,
    fuel_capacity_l: float | None,
    battery_id: int,
) -> None:
    if kind == "HEARTBEAT":
        armed = bool(msg.base_mode & _ARMED)
        latest.mode = mode_map(msg.custom_mode, msg.base_mode, msg.type) if armed else "landed"
    elif kind == "GPS_RAW_INT":
        latest.gps_fix = min(int(msg.fix_type), 6)
    elif kind == "BATTERY_STATUS" and msg.id == battery_id:
        latest.battery_v = _pack_voltage(msg)
        latest.battery_a = None if msg.current_battery == -1 else msg.current_battery / 100.0
        remaining = msg.battery_remaining
        latest.battery_pct = None if remaining < 0 else float(min(remaining, 100))
    elif kind == "GENERATOR_STATUS":
        power = msg.power_generated
        latest.gen_power_w = None if not math.isfinite(power) or power < 0 else float(power)
    elif kind == "EFI_STATUS":
        used_l = msg.fuel_consumed / 1000.0  # cm³ → L
        if fuel_capacity_l is None or not math.isfinite(used_l):
            latest.fuel_l = None
        else:
            latest.fuel_l = max(0.0, fuel_capacity_l - used_l)
    elif kind == "DISTANCE_SENSOR" and msg.orientation == _DOWNWARD:
        if msg.min_distance <= msg.current_distance <= msg.max_distance:
            latest.range_m, latest.range_at = msg.current_distance / 100.0, t
    elif kind == "TERRAIN_REPORT" and math.isfinite(msg.current_height):
        latest.terrain_m, latest.terrain_at = float(msg.current_height), t
    elif kind == "CAMERA_CAPTURE_STATUS":
        latest.camera_on = msg.video_status == 1 or msg.image_status in (1, 3)


def _pack_voltage(msg: Any) -> float | None:
    """Sum of the cells present; cell 0 alone holds the pack voltage when cells are unknown."""
    cells = [v for v in msg.voltages if v != UINT16_MAX]
    cells += [v for v in getattr(msg, "voltages_ext", ()) if v not in (0, UINT16_MAX)]
    return sum(cells) / 1000.0 if cells else None
