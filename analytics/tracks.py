"""Drone telemetry as arrays, and the rules that decide which points make a patrol track.

Coverage is only credible if the points that draw footprints are the ones where the drone
was really looking: airborne, camera recording, in patrol mode, with a usable fix, at a
plausible position. This module applies those rules and splits what is left into *runs*
— stretches that may be joined by straight lines. A run ends at a data gap longer than
``max_gap_s``, at a flight change and wherever a point was excluded by the rules above, so
that no gap is ever bridged. A point implying an impossible speed from the previous kept
point is dropped as a GPS glitch without ending the run (its neighbours are consistent).

Runs are then cut into *swath pieces* by `analytics.footprints` (which depends on this
module's `Track`, never the reverse), each buffered once by a single radius: that is what
makes a week of 1 Hz data fast to union.

Choices: ``gps_fix`` −1 (not sent) is accepted — the speed check still guards against
wild positions; ``mode`` "" (not sent) is *not* patrol. If the first point of a stretch is
itself the glitch, later points are rejected until ``max_gap_s`` has passed since it, so at
most ``max_gap_s`` of data is lost.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from analytics.errors import InputError

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
StrArray = npt.NDArray[np.str_]

MODES = ("patrol", "transit", "hover", "rtl", "landed")
_FLIGHT_MODES = frozenset(MODES) - {"landed"}

_FLOAT_FIELDS = (
    *("ts", "lat", "lon", "agl_m", "hfov_deg"),
    *("battery_v", "battery_a", "gen_power_w", "fuel_l"),
)


@dataclass(frozen=True, eq=False)
class DroneSeries:
    """One drone's records in a window, one array element per record, NaN where not sent.

    ``ts`` epoch seconds [s] ascending; ``lat``/``lon`` WGS 84 [deg]; ``agl_m`` [m];
    ``hfov_deg`` [deg]; ``mode`` str ("" when absent); ``camera_on`` bool (False when
    absent; ``camera_sent`` says which records carried it); ``gps_fix`` int (−1 when absent);
    ``flight_id`` str; ``battery_v`` [V]; ``battery_a`` [A], positive =
    discharging; ``gen_power_w`` [W]; ``fuel_l`` remaining [L].
    """

    device_id: str
    ts: FloatArray
    lat: FloatArray
    lon: FloatArray
    agl_m: FloatArray
    hfov_deg: FloatArray
    mode: StrArray
    camera_on: BoolArray
    gps_fix: IntArray
    flight_id: StrArray
    battery_v: FloatArray
    battery_a: FloatArray
    gen_power_w: FloatArray
    fuel_l: FloatArray
    camera_sent: BoolArray | None = None  # whether each record carried camera_on (None: all)

    def __post_init__(self) -> None:
        sent = (
            np.ones(self.ts.shape, dtype=np.bool_) if self.camera_sent is None else self.camera_sent
        )
        object.__setattr__(self, "camera_sent", np.asarray(sent, dtype=np.bool_))
        for name in _FLOAT_FIELDS:
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=np.float64))
        object.__setattr__(self, "mode", np.asarray(self.mode).astype(np.str_))
        object.__setattr__(self, "flight_id", np.asarray(self.flight_id).astype(np.str_))
        object.__setattr__(self, "camera_on", np.asarray(self.camera_on, dtype=np.bool_))
        object.__setattr__(self, "gps_fix", np.asarray(self.gps_fix, dtype=np.int64))
        n = self.ts.shape
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray) and value.shape != n:
                raise InputError(f"{self.device_id}: {f.name} has shape {value.shape}, ts {n}")
        if self.ts.ndim != 1 or not np.all(np.isfinite(self.ts)):
            raise InputError(f"{self.device_id}: ts must be a 1-D array of finite seconds")
        if np.any(np.diff(self.ts) < 0):
            raise InputError(f"{self.device_id}: ts must be sorted ascending")

    @classmethod
    def from_columns(
        cls,
        device_id: str,
        ts: npt.ArrayLike,
        lat: npt.ArrayLike,
        lon: npt.ArrayLike,
        **columns: Any,
    ) -> DroneSeries:
        """Build a series, filling every column not given with its 'absent' value."""
        t = np.asarray(ts, dtype=np.float64)
        n = t.shape[0]
        nan = np.full(n, np.nan)
        defaults: dict[str, Any] = {
            "agl_m": nan,
            "hfov_deg": nan,
            "mode": np.full(n, "", dtype=np.str_),
            "camera_on": np.zeros(n, dtype=np.bool_),
            "gps_fix": np.full(n, -1),
            "flight_id": np.full(n, "", dtype=np.str_),
            "battery_v": nan,
            "battery_a": nan,
            "gen_power_w": nan,
            "fuel_l": nan,
            "camera_sent": np.ones(n, dtype=np.bool_),
        }
        unknown = set(columns) - set(defaults)
        if unknown:
            raise InputError(f"unknown DroneSeries columns: {sorted(unknown)}")
        merged = {k: np.broadcast_to(columns.get(k, v), (n,)).copy() for k, v in defaults.items()}
        return cls(device_id=device_id, ts=t, lat=np.asarray(lat), lon=np.asarray(lon), **merged)

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def window(self, start: float, end: float) -> DroneSeries:
        """The records with ``start <= ts < end``."""
        lo, hi = np.searchsorted(self.ts, [start, end], side="left")
        if lo == 0 and hi == len(self):
            return self
        return dataclasses.replace(
            self, **{f.name: getattr(self, f.name)[lo:hi] for f in fields(self)[1:]}
        )


@dataclass(frozen=True)
class PointCounts:
    """Why points were not used for footprints; each point counted under its first reason."""

    points: int = 0
    not_airborne: int = 0
    not_patrol: int = 0
    camera_off: int = 0
    bad_fix: int = 0
    no_footprint: int = 0
    glitches: int = 0
    kept: int = 0
    no_mode: int = 0  # records without a mode (an autopilot mode we could not name)
    dropouts: int = 0  # gaps longer than max_gap_s between consecutive records
    flight_glitches: int = 0  # airborne points (any mode) dropped for an impossible speed

    def __add__(self, other: PointCounts) -> PointCounts:
        return PointCounts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def to_json(self) -> dict[str, int]:
        return {f.name: int(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True, eq=False)
class Track:
    """Kept points of one drone in metres; consecutive points with the same ``run`` join."""

    device_id: str
    ts: FloatArray
    x: FloatArray
    y: FloatArray
    width_m: FloatArray
    run: IntArray

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def joined(self) -> BoolArray:
        """For each point, whether a segment joins it to the previous point."""
        out = np.zeros(len(self), dtype=np.bool_)
        out[1:] = self.run[1:] == self.run[:-1]
        return out

    def joined_next(self) -> BoolArray:
        """For each point, whether a segment joins it to the next point."""
        out = np.zeros(len(self), dtype=np.bool_)
        out[:-1] = self.run[1:] == self.run[:-1]
        return out

    def step_lengths_m(self) -> FloatArray:
        """Length [m] of the segment ending at each point (0 where a run starts)."""
        step = np.zeros(len(self))
        step[1:] = np.hypot(np.diff(self.x), np.diff(self.y))
        return np.where(self.joined(), step, 0.0)


def footprint_width_m(
    agl_m: FloatArray, hfov_deg: FloatArray, default_hfov_deg: float
) -> FloatArray:
    """Swath width W = 2·agl·tan(hfov/2) [m] of a nadir camera; NaN where unknown.

    A missing or impossible ``hfov_deg`` (not in (0, 180)) falls back to the pilot default.
    """
    hfov = np.where((hfov_deg > 0) & (hfov_deg < 180), hfov_deg, default_hfov_deg)
    with np.errstate(invalid="ignore"):
        return 2.0 * agl_m * np.tan(np.radians(hfov) / 2.0)


def airborne_mask(series: DroneSeries, min_agl_m: float) -> BoolArray:
    """Airborne: not ``landed`` and above ``min_agl_m`` (or, without AGL, in a flight mode)."""
    in_flight_mode = np.isin(series.mode, list(_FLIGHT_MODES))
    with np.errstate(invalid="ignore"):
        high = np.where(np.isfinite(series.agl_m), series.agl_m > min_agl_m, in_flight_mode)
    return np.asarray(high & (series.mode != "landed"), dtype=np.bool_)


def usable_fix(series: DroneSeries) -> BoolArray:
    """A 3-D fix or better, or no fix reported at all (−1)."""
    return np.asarray((series.gps_fix >= 3) | (series.gps_fix == -1), dtype=np.bool_)


def patrol_track(
    series: DroneSeries,
    x: FloatArray,
    y: FloatArray,
    *,
    default_hfov_deg: float,
    min_agl_m: float,
    max_gap_s: float,
    max_speed_mps: float,
) -> tuple[Track, PointCounts]:
    """The footprint-drawing points of one drone, split into runs, with exclusion counts."""
    width = footprint_width_m(series.agl_m, series.hfov_deg, default_hfov_deg)
    reasons = {
        "not_airborne": airborne_mask(series, min_agl_m),
        "not_patrol": series.mode == "patrol",
        "camera_off": series.camera_on,
        "bad_fix": usable_fix(series),
        "no_footprint": np.isfinite(x) & np.isfinite(y) & (width > 0),
    }
    ok = np.ones(len(series), dtype=np.bool_)
    dropped: dict[str, int] = {}
    for reason, mask in reasons.items():
        dropped[reason] = int(np.count_nonzero(ok & ~mask))
        ok &= mask
    kept, run = plausible_runs(
        series.ts, x, y, ok, series.flight_id, max_gap_s=max_gap_s, max_speed_mps=max_speed_mps
    )
    n_kept = int(np.count_nonzero(kept))
    glitches = int(np.count_nonzero(ok)) - n_kept
    counts = PointCounts(points=len(series), glitches=glitches, kept=n_kept, **dropped)
    track = Track(series.device_id, series.ts[kept], x[kept], y[kept], width[kept], run[kept])
    return track, counts


def flight_track(
    series: DroneSeries,
    x: FloatArray,
    y: FloatArray,
    *,
    min_agl_m: float,
    max_gap_s: float,
    max_speed_mps: float,
) -> tuple[Track, int]:
    """All airborne points with a usable fix (any mode), for flight distance; and glitches."""
    ok = airborne_mask(series, min_agl_m) & usable_fix(series) & np.isfinite(x) & np.isfinite(y)
    kept, run = plausible_runs(
        series.ts, x, y, ok, series.flight_id, max_gap_s=max_gap_s, max_speed_mps=max_speed_mps
    )
    n_kept = int(np.count_nonzero(kept))
    zeros = np.zeros(n_kept)
    track = Track(series.device_id, series.ts[kept], x[kept], y[kept], zeros, run[kept])
    return track, int(np.count_nonzero(ok)) - n_kept


def plausible_runs(
    ts: FloatArray,
    x: FloatArray,
    y: FloatArray,
    eligible: BoolArray,
    flight_id: StrArray,
    *,
    max_gap_s: float,
    max_speed_mps: float,
) -> tuple[BoolArray, IntArray]:
    """Drop speed glitches among `eligible` points and number the runs (−1 = not kept).

    Vectorised; only stretches holding a suspect step are walked point by point, because
    a glitch is judged against the previous *kept* point.
    """
    n = ts.shape[0]
    kept = np.zeros(n, dtype=np.bool_)
    run = np.full(n, -1, dtype=np.int64)
    idx = np.flatnonzero(eligible)
    if idx.size == 0:
        return kept, run
    t, px, py = ts[idx], x[idx], y[idx]
    new_block = np.ones(idx.size, dtype=np.bool_)
    new_block[1:] = (np.diff(idx) > 1) | (flight_id[idx[1:]] != flight_id[idx[:-1]])
    dt = np.diff(t)
    gap = dt > max_gap_s
    fast = ~gap & (np.hypot(np.diff(px), np.diff(py)) > max_speed_mps * dt)
    starts = new_block.copy()
    starts[1:] |= gap
    keep = np.ones(idx.size, dtype=np.bool_)
    suspect = np.zeros(idx.size, dtype=np.bool_)
    suspect[1:] = fast & ~new_block[1:]
    if suspect.any():
        edges = np.append(np.flatnonzero(new_block), idx.size)
        block = np.cumsum(new_block) - 1
        for b in np.unique(block[suspect]):
            lo, hi = int(edges[b]), int(edges[b + 1])
            keep[lo:hi], starts[lo:hi] = _walk(
                t[lo:hi], px[lo:hi], py[lo:hi], max_gap_s, max_speed_mps
            )
    kept[idx[keep]] = True
    run[idx[keep]] = np.cumsum(starts[keep]) - 1
    return kept, run


def _walk(
    t: FloatArray, x: FloatArray, y: FloatArray, max_gap_s: float, max_speed_mps: float
) -> tuple[BoolArray, BoolArray]:
    tl, xl, yl = t.tolist(), x.tolist(), y.tolist()
    keep = [True] + [False] * (len(tl) - 1)
    start = list(keep)
    pt, px, py = tl[0], xl[0], yl[0]
    for i in range(1, len(tl)):
        dt = tl[i] - pt
        if dt > max_gap_s:
            start[i] = True
        elif math.hypot(xl[i] - px, yl[i] - py) > max_speed_mps * dt:
            continue
        keep[i] = True
        pt, px, py = tl[i], xl[i], yl[i]
    return np.array(keep, dtype=np.bool_), np.array(start, dtype=np.bool_)


def series_digest(series: Sequence[DroneSeries]) -> str:
    """SHA-256 over every input array, so a result names exactly the rows it came from."""
    h = hashlib.sha256()
    for s in sorted(series, key=lambda s: s.device_id):
        h.update(s.device_id.encode())
        for f in fields(s):
            value = getattr(s, f.name)
            if isinstance(value, np.ndarray):
                h.update(f.name.encode())
                data = value.astype("U") if value.dtype.kind == "U" else value
                h.update(np.ascontiguousarray(data).tobytes())
    return h.hexdigest()
