"""Autopilot flight modes → the contract's mode classes (``patrol``, ``transit``, ``hover``,
``rtl``, ``landed``).

Why: a mode number means nothing without the vehicle and the autopilot that sent it
(ArduCopter 3 is AUTO, ArduPlane 3 is TRAINING; PX4 packs main and sub mode into
``custom_mode``). Names first, classes second: a pilot may list its own patrol modes by the
autopilot's names (``[drone] patrol_modes``), and a mode we cannot name is reported by
number, never silently dropped.

Default classes: the mission (AUTO, PX4 AUTO.MISSION) and, on fixed wings, the orbits a
plane flies to watch a spot (CIRCLE, LOITER, GUIDED) are patrol; position holds are hover;
return and landing modes are rtl; everything else flown is transit.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Final

from pymavlink import mavutil

AUTOPILOT_ARDUPILOT: Final = 3
AUTOPILOT_PX4: Final = 12
GCS: Final = 6
AUTOPILOT_INVALID: Final = 8

# MAV_TYPE values of vehicles that fly (fixed wing, multirotors, helicopters, VTOLs, …)
AERIAL_TYPES: Final = frozenset({1, 2, 3, 4, 7, 13, 14, 15, 16, 19, 20, 21, 22, 23, 24, 25,
                                 28, 29, 35})  # fmt: skip
_FIXED_WING: Final = frozenset({1, 16, 19, 20, 21, 22, 23, 24, 25})

_COPTER: Final[dict[str, str]] = {
    "AUTO": "patrol", "CIRCLE": "patrol", "GUIDED": "transit", "STABILIZE": "transit",
    "ACRO": "transit", "SPORT": "transit", "DRIFT": "transit", "FLIP": "transit",
    "THROW": "transit", "FOLLOW": "transit", "ZIGZAG": "transit", "GUIDED_NOGPS": "transit",
    "AUTOTUNE": "hover", "ALT_HOLD": "hover", "LOITER": "hover", "POSHOLD": "hover",
    "POSITION": "hover", "BRAKE": "hover", "OF_LOITER": "hover", "FLOWHOLD": "hover",
    "SYSTEMID": "hover", "AVOID_ADSB": "transit", "RTL": "rtl", "LAND": "rtl",
    "SMART_RTL": "rtl", "AUTO_RTL": "rtl", "AUTOROTATE": "rtl", "TURTLE": "landed",
    "RATE_ACRO": "transit",
}  # fmt: skip
_PLANE: Final[dict[str, str]] = {
    "AUTO": "patrol", "CIRCLE": "patrol", "LOITER": "patrol", "GUIDED": "patrol",
    "THERMAL": "transit", "MANUAL": "transit", "STABILIZE": "transit", "TRAINING": "transit",
    "ACRO": "transit", "FBWA": "transit", "FBWB": "transit", "CRUISE": "transit",
    "AUTOTUNE": "transit", "TAKEOFF": "transit", "AVOID_ADSB": "transit",
    "QSTABILIZE": "transit", "QACRO": "transit", "QAUTOTUNE": "hover", "QHOVER": "hover",
    "QLOITER": "hover", "RTL": "rtl", "QLAND": "rtl", "QRTL": "rtl", "LOITERALTQLAND": "rtl",
    "AUTOLAND": "rtl", "INITIALISING": "landed",
}  # fmt: skip
_PX4: Final[dict[str, str]] = {
    "AUTO.MISSION": "patrol", "POSCTL.ORBIT": "patrol", "AUTO.LOITER": "hover",
    "POSCTL": "hover", "POSCTL.SLOW": "hover", "ALTCTL": "hover", "AUTO.RTL": "rtl",
    "AUTO.LAND": "rtl", "AUTO.PRECLAND": "rtl", "AUTO.RTGS": "rtl", "DESCEND": "rtl",
    "AUTO.TAKEOFF": "transit", "AUTO.VTOL_TAKEOFF": "transit", "AUTO.FOLLOW_TARGET": "transit",
    "MANUAL": "transit", "STABILIZED": "transit", "ACRO": "transit", "RATTITUDE": "transit",
    "OFFBOARD": "transit", "SIMPLE": "transit", "AUTO.READY": "landed", "TERMINATION": "rtl",
}  # fmt: skip

_PX4_MAIN: Final = {1: "MANUAL", 2: "ALTCTL", 3: "POSCTL", 4: "AUTO", 5: "ACRO", 6: "OFFBOARD",
                    7: "STABILIZED", 8: "RATTITUDE", 9: "SIMPLE", 10: "TERMINATION"}  # fmt: skip
_PX4_AUTO: Final = {1: "READY", 2: "TAKEOFF", 3: "LOITER", 4: "MISSION", 5: "RTL", 6: "LAND",
                    7: "RTGS", 8: "FOLLOW_TARGET", 9: "PRECLAND", 10: "VTOL_TAKEOFF"}  # fmt: skip
_PX4_POSCTL: Final = {0: "", 1: "ORBIT", 2: "SLOW"}

# PX4 vehicle_status.nav_state (ULog) → the same names as HEARTBEAT decoding
PX4_NAV_STATES: Final[dict[int, str]] = {
    0: "MANUAL", 1: "ALTCTL", 2: "POSCTL", 3: "AUTO.MISSION", 4: "AUTO.LOITER", 5: "AUTO.RTL",
    6: "POSCTL.SLOW", 10: "ACRO", 12: "DESCEND", 13: "TERMINATION", 14: "OFFBOARD",
    15: "STABILIZED", 17: "AUTO.TAKEOFF", 18: "AUTO.LAND", 19: "AUTO.FOLLOW_TARGET",
    20: "AUTO.PRECLAND", 21: "POSCTL.ORBIT", 22: "AUTO.VTOL_TAKEOFF",
}  # fmt: skip


@dataclass(frozen=True)
class Vehicle:
    """Who sends the modes: MAV_TYPE and MAV_AUTOPILOT of the flight controller."""

    mav_type: int
    autopilot: int

    @property
    def aerial(self) -> bool:
        return self.mav_type in AERIAL_TYPES

    @property
    def family(self) -> str:
        """``px4``, ``plane`` (fixed wings and QuadPlanes) or ``copter``."""
        if self.autopilot == AUTOPILOT_PX4:
            return "px4"
        return "plane" if self.mav_type in _FIXED_WING else "copter"


def type_name(mav_type: int) -> str:
    """MAV_TYPE as a readable word (``submarine``, ``quadrotor``), for error messages."""
    entry = mavutil.mavlink.enums["MAV_TYPE"].get(mav_type)
    return entry.name.removeprefix("MAV_TYPE_").lower() if entry else f"type {mav_type}"


def px4_mode_name(custom_mode: int) -> str:
    main = (custom_mode >> 16) & 0xFF
    sub = (custom_mode >> 24) & 0xFF
    name = _PX4_MAIN.get(main)
    if name is None:
        return f"PX4({main}.{sub})"
    if main == 4:
        return f"AUTO.{_PX4_AUTO.get(sub, sub)}"
    if main == 3 and _PX4_POSCTL.get(sub):
        return f"POSCTL.{_PX4_POSCTL[sub]}"
    return name


def mode_name(vehicle: Vehicle, custom_mode: int) -> str:
    """The autopilot's own name of a mode (``QLOITER``, ``AUTO.MISSION``), else ``MODE(n)``."""
    if vehicle.autopilot == AUTOPILOT_PX4:
        return px4_mode_name(custom_mode)
    names = mavutil.mode_mapping_bynumber(vehicle.mav_type) or {}
    name = names.get(custom_mode)
    return str(name) if name else f"MODE({custom_mode})"


def mode_class(family: str, name: str, patrol_modes: Collection[str] = ()) -> str | None:
    """Class of a named mode; ``patrol_modes`` (the pilot's own list) wins; None if unknown."""
    if patrol_modes and name.upper() in {m.upper() for m in patrol_modes}:
        return "patrol"
    table = {"px4": _PX4, "plane": _PLANE}.get(family, _COPTER)
    cls = table.get(name)
    if cls == "patrol" and patrol_modes:
        return "transit"  # the pilot's list replaces the default patrol modes
    return cls
