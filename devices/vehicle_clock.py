"""Time from the vehicle: order and space a log's points on the autopilot's own clock.

Why: a ground station stamps each message when it *arrives*; over a radio link messages
arrive in bursts (real logs: a median 7 ms apart for points sent 240 ms apart), so speeds
and distances computed on receive times are wrong, and a speed filter throws good points
away as glitches. The vehicle clock (``time_boot_ms``, ``time_usec``, ``TimeUS``) is steady;
it is anchored to UTC per boot by ``SYSTEM_TIME`` (GPS time) when the log has it, else by
the least-delayed ground-station receive time (receive time minus vehicle time is the
link delay plus the offset; its minimum is the closest to the offset alone).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

REBOOT_S = 5.0  # the vehicle clock going back by more than this is a reboot
_EARTH_M = 6_371_008.8


@dataclass(frozen=True)
class ClockStats:
    """What the vehicle clock showed over *all* position points of a log."""

    anchor: str  # "SYSTEM_TIME", "GPS", "ground station"
    reboots: int = 0
    out_of_order: int = 0
    duplicates: int = 0
    dropouts: int = 0  # vehicle-clock gaps longer than max_gap_s between positions
    dropout_s: float = 0.0
    glitches: int = 0  # steps implying more than max_speed_mps

    def to_json(self) -> dict[str, object]:
        return {
            "anchor": self.anchor,
            "reboots": self.reboots,
            "out_of_order": self.out_of_order,
            "duplicates": self.duplicates,
            "dropouts": self.dropouts,
            "dropout_s": round(self.dropout_s, 3),
            "glitches": self.glitches,
        }


def vehicle_utc(
    boot_s: Sequence[float] | FloatArray,
    gcs_s: Sequence[float] | FloatArray,
    unix_s: Sequence[float] | FloatArray,
) -> tuple[FloatArray, str, int]:
    """UTC seconds for messages carrying a vehicle time, in file order.

    ``boot_s``: the vehicle time [s since boot]; ``gcs_s``: receive time [UNIX s];
    ``unix_s``: for SYSTEM_TIME messages with a real ``time_unix_usec`` the UTC time, else
    NaN. Returns the UTC times, the anchor used (of the first boot) and the reboot count.
    """
    boot = np.asarray(boot_s, dtype=np.float64)
    gcs = np.asarray(gcs_s, dtype=np.float64)
    unix = np.asarray(unix_s, dtype=np.float64)
    out = np.full(boot.shape, np.nan)
    if boot.size == 0:
        return out, "ground station", 0
    segment = np.zeros(boot.size, dtype=np.int64)
    top = boot[0]
    seg = 0
    for i, b in enumerate(boot.tolist()):
        if b < top - REBOOT_S:
            seg += 1
            top = b
        top = max(top, b)
        segment[i] = seg
    anchor = "ground station"
    for s in range(seg + 1):
        sel = segment == s
        real = sel & np.isfinite(unix)
        if real.any():
            offset = float(np.median(unix[real] - boot[real]))
            if s == 0:
                anchor = "SYSTEM_TIME"
        else:
            offset = float(np.min(gcs[sel] - boot[sel]))
        out[sel] = boot[sel] + offset
    return out, anchor, seg


def in_order(utc: FloatArray) -> tuple[BoolArray, int, int]:
    """Points to keep: each later than every kept one before it; (mask, out of order, dups)."""
    keep = np.zeros(utc.shape, dtype=np.bool_)
    last = -math.inf
    late = dups = 0
    for i, t in enumerate(utc.tolist()):
        if t > last:
            keep[i] = True
            last = t
        elif t == last:
            dups += 1
        else:
            late += 1
    return keep, late, dups


def track_stats(
    utc: FloatArray, lat: FloatArray, lon: FloatArray, *, max_gap_s: float, max_speed_mps: float
) -> tuple[int, float, int]:
    """Dropouts (count, seconds lost beyond ``max_gap_s``) and speed glitches of ordered points."""
    if utc.size < 2:
        return 0, 0.0, 0
    dt = np.diff(utc)
    gaps = dt > max_gap_s
    dist = haversine_m(lat[:-1], lon[:-1], lat[1:], lon[1:])
    with np.errstate(divide="ignore", invalid="ignore"):
        fast = ~gaps & (dist > max_speed_mps * dt)
    return int(gaps.sum()), float(dt[gaps].sum()), int(fast.sum())


def haversine_m(
    lat1: FloatArray, lon1: FloatArray, lat2: FloatArray, lon2: FloatArray
) -> FloatArray:
    """Great-circle distance [m] on the mean Earth sphere."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(lon2 - lon1)
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return np.asarray(2 * _EARTH_M * np.arcsin(np.sqrt(np.minimum(a, 1.0))), dtype=np.float64)
