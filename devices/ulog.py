"""PX4 flight logs (.ulg) as ``hybrid_drone`` records, read with pyulog (BSD-3-Clause).

Why its own reader: PX4 logs uORB topics, not MAVLink messages. One record per
``vehicle_global_position`` sample, with the latest GPS fix, speed and course
(``vehicle_gps_position`` or ``sensor_gps``), navigation state and arming
(``vehicle_status``: ``nav_state`` named as PX4 does, e.g. AUTO.MISSION), height above
ground (``vehicle_local_position``: ``dist_bottom`` when valid, else −z above the origin),
battery (``battery_status``) and landed state (``vehicle_land_detected``). Timestamps are
µs since boot; GPS ``time_utc_usec`` anchors them to UTC (`devices.vehicle_clock`).
Failsafe and GPS-glitch log messages become alarms.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from devices import flight_log as fl
from devices.flight_log import FlightLog, LogError, LogOptions, State
from devices.flight_modes import PX4_NAV_STATES, Vehicle, mode_class, type_name
from devices.vehicle_clock import in_order, vehicle_utc

Columns = dict[str, npt.NDArray[Any]]
TOPICS: Final = ["vehicle_global_position", "vehicle_gps_position", "sensor_gps",
                 "vehicle_status", "vehicle_local_position", "battery_status",
                 "vehicle_land_detected"]  # fmt: skip
_ARMED: Final = 2  # vehicle_status.arming_state ARMING_STATE_ARMED
# vehicle_status.vehicle_type → MAV_TYPE (1 rotary wing, 2 fixed wing, 3 rover, 4 airship)
_TYPES: Final = {1: 2, 2: 1, 3: 10, 4: 7, 5: 11}


def _topics(path: Path) -> tuple[dict[str, Columns], list[Any]]:
    from pyulog import ULog

    try:
        ulog = ULog(str(path), TOPICS, disable_str_exceptions=True)
    except (OSError, ValueError, IndexError) as exc:
        raise LogError(f"cannot read {path}: {exc}") from exc
    topics = {d.name: d.data for d in ulog.data_list if d.multi_id == 0}
    return topics, list(ulog.logged_messages)


def _latest(cols: Columns | None, name: str, t_us: npt.NDArray[np.int64]) -> npt.NDArray[Any]:
    """The latest value of a topic's column at each time (NaN before its first sample)."""
    if cols is None or name not in cols:
        return np.full(t_us.shape, np.nan)
    idx = np.searchsorted(cols["timestamp"], t_us, side="right") - 1
    values = cols[name].astype(np.float64)
    return np.where(idx >= 0, values[np.maximum(idx, 0)], np.nan)


def read_ulog(path: Path, opts: LogOptions) -> FlightLog:
    """The records and events of a PX4 ULog."""
    topics, messages = _topics(path)
    status = topics.get("vehicle_status")
    vehicle = Vehicle(2, 12)
    if status is not None and len(status["timestamp"]):
        mav_type = _TYPES.get(int(status["vehicle_type"][0]), 2)
        if mav_type == 1 and "is_vtol" in status and status["is_vtol"][0]:
            mav_type = 22  # a fixed-wing VTOL
        vehicle = Vehicle(mav_type, 12)
    if not vehicle.aerial:
        raise LogError(f"{path}: the vehicle is a {type_name(vehicle.mav_type)}, not a drone; "
                       "nothing imported")  # fmt: skip
    log = FlightLog("ulg", f"px4 ({type_name(vehicle.mav_type)})")
    pos = topics.get("vehicle_global_position")
    gps = topics.get("vehicle_gps_position", topics.get("sensor_gps"))
    if pos is None or not len(pos["timestamp"]):
        return fl.finish(log, State(), str(path), "GPS", 0, opts)
    t_us = pos["timestamp"].astype(np.int64)
    fix = _latest(gps, "fix_type", t_us)
    usable = fix >= fl.MIN_FIX
    log.skipped["no_fix"] = int(np.count_nonzero(~usable))
    anchors = _anchors(gps)
    if anchors is None:
        log.skipped["no_fix"] = len(t_us)
        return fl.finish(log, State(), str(path), "GPS", 0, opts)
    a_boot, a_unix = anchors
    # anchors and positions in log order (by time): a backward step is then a reboot
    boot = np.concatenate([a_boot, t_us / 1e6])
    unix = np.concatenate([a_unix, np.full(len(t_us), np.nan)])
    order = np.argsort(boot, kind="stable")
    utc_sorted, _, reboots = vehicle_utc(boot[order], boot[order], unix[order])
    utc_all = np.empty_like(utc_sorted)
    utc_all[order] = utc_sorted
    utc = utc_all[len(a_boot) :]
    keep, late, dups = in_order(utc)
    log.skipped.update({"out_of_order": late, "duplicate_time": dups})
    cols = {
        "agl": _agl(topics.get("vehicle_local_position"), t_us),
        "speed": _latest(gps, "vel_m_s", t_us),
        "cog": _latest(gps, "cog_rad", t_us),
        "volts": _latest(topics.get("battery_status"), "voltage_v", t_us),
        "amps": _latest(topics.get("battery_status"), "current_a", t_us),
        "remaining": _latest(topics.get("battery_status"), "remaining", t_us),
    }
    stream = [(int(t), 1, i) for i, t in enumerate(t_us.tolist()) if keep[i] and usable[i]]
    stream += _changes(topics, messages)
    stream.sort(key=lambda e: (e[0], e[1]))
    state = State(armed=False)
    for _, kind, item in stream:
        if kind == 1:
            i = int(item)
            _position(i, float(utc[i]), pos, fix, cols, state, opts, log)
        else:
            _change(item, vehicle, state, opts)
    return fl.finish(log, state, str(path), "GPS", reboots, opts)


def _anchors(gps: Columns | None) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None:
    if gps is None or "time_utc_usec" not in gps:
        return None
    ok = (gps["fix_type"] >= fl.MIN_FIX) & (gps["time_utc_usec"] > 0)
    if not ok.any():
        return None
    return gps["timestamp"][ok] / 1e6, gps["time_utc_usec"][ok] / 1e6


def _agl(local: Columns | None, t_us: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    height = -_latest(local, "z", t_us)
    bottom = _latest(local, "dist_bottom", t_us)
    valid = _latest(local, "dist_bottom_valid", t_us) == 1
    return np.where(valid & np.isfinite(bottom), bottom, height)


def _changes(topics: dict[str, Columns], messages: list[Any]) -> list[tuple[int, int, Any]]:
    """Mode, arming and landed-state changes, and log messages, as (µs, 0, change)."""
    out: list[tuple[int, int, Any]] = []
    status = topics.get("vehicle_status")
    if status is not None:
        prev = None
        for t, nav, arm in zip(status["timestamp"].tolist(), status["nav_state"].tolist(),
                               status["arming_state"].tolist(), strict=True):  # fmt: skip
            if (nav, arm) != prev:
                out.append((t, 0, ("status", int(nav), int(arm) == _ARMED)))
                prev = (nav, arm)
    land = topics.get("vehicle_land_detected")
    if land is not None:
        last = None
        for t, landed in zip(land["timestamp"].tolist(), land["landed"].tolist(), strict=True):
            if landed != last:
                out.append((t, 0, ("landed", bool(landed))))
                last = landed
    for m in messages:
        level = int(m.log_level) if str(m.log_level).isdigit() else 6
        out.append((int(m.timestamp), 0, ("text", str(m.message), level)))
    return out


def _change(item: Any, vehicle: Vehicle, state: State, opts: LogOptions) -> None:
    if item[0] == "status":
        _, nav, armed = item
        fl.set_armed(state, armed)
        state.mode_name = PX4_NAV_STATES.get(nav, f"NAV_STATE({nav})")
        cls = mode_class(vehicle.family, state.mode_name, opts.patrol_modes)
        state.mode = cls if armed else "landed"
    elif item[0] == "landed":
        fl.set_landed_state(state, 1 if item[1] else 2)
    else:
        fl.status_text(state, item[1], item[2])


def _position(
    i: int,
    t: float,
    pos: Columns,
    fix: npt.NDArray[np.float64],
    cols: dict[str, npt.NDArray[np.float64]],
    state: State,
    opts: LogOptions,
    log: FlightLog,
) -> None:
    state.gps_fix = min(int(fix[i]), 6)
    volts, amps, rem = cols["volts"][i], cols["amps"][i], cols["remaining"][i]
    if math.isfinite(volts) and volts > 0:
        fl.battery(state, float(volts), float(amps) if amps >= 0 else None,
                   100.0 * float(rem) if rem >= 0 else None)  # fmt: skip
    else:
        fl.battery(state, None, None, None)
    agl, speed, cog = cols["agl"][i], cols["speed"][i], cols["cog"][i]
    fl.emit(
        state,
        t,
        float(pos["lat"][i]),
        float(pos["lon"][i]),
        opts,
        log,
        alt_m=float(pos["alt"][i]),
        agl_m=max(0.0, float(agl)) if agl >= -1 else None,
        speed_mps=float(speed) if speed >= 0 else None,
        heading_deg=math.degrees(float(cog)) % 360.0 if math.isfinite(cog) else None,
    )
