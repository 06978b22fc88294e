"""Kinematics of a multirotor patrol flight: legs flown with bounded acceleration.

A flight is a list of legs — holds on the spot (on the ground, climbing, descending) and
paths flown with a trapezoidal speed profile (accelerate, cruise, slow down for the next
turn). Sampling the legs at the record interval gives positions, speeds and headings that
never jump, so the only impossible speeds in the stream are the injected GPS glitches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from devices.sim.batching import FloatArray
from devices.sim.geo import Racetrack, arc_length, cut

ACCEL = 1.5  # m/s², along-track acceleration limit
V_TURN = 6.0  # m/s through the U-turns (radius ~45 m: 0.8 m/s² lateral)


@dataclass(frozen=True)
class Hold:
    """Stay over one point for ``duration_s`` while height goes from ``h_from`` to ``h_to``."""

    mode: str
    duration_s: float
    h_from: float
    h_to: float
    airborne: bool


@dataclass(frozen=True)
class Path:
    """Fly along a polyline (metres) with entry, cruise and exit speeds."""

    mode: str
    camera_on: bool
    x: FloatArray
    y: FloatArray
    v_in: float
    v_cruise: float
    v_out: float

    @property
    def length(self) -> float:
        return float(arc_length(self.x, self.y)[-1])


Leg = Hold | Path


@dataclass(frozen=True)
class _Trapezoid:
    v_in: float
    v_c: float
    v_out: float
    t_acc: float
    t_cru: float
    t_dec: float
    d_acc: float

    @property
    def duration(self) -> float:
        return self.t_acc + self.t_cru + self.t_dec


def _trapezoid(length: float, v_in: float, v_c: float, v_out: float) -> _Trapezoid:
    a = ACCEL
    v_c = max(v_c, v_in, v_out)
    d_acc = (v_c**2 - v_in**2) / (2 * a)
    d_dec = (v_c**2 - v_out**2) / (2 * a)
    if d_acc + d_dec > length:  # too short to reach cruise speed: a triangle
        v_c = max(math.sqrt(a * length + (v_in**2 + v_out**2) / 2), v_in, v_out)
        d_acc = max((v_c**2 - v_in**2) / (2 * a), 0.0)
        d_dec = max(min((v_c**2 - v_out**2) / (2 * a), length - d_acc), 0.0)
    t_cru = max(length - d_acc - d_dec, 0.0) / v_c if v_c > 0 else 0.0
    return _Trapezoid(v_in, v_c, v_out, (v_c - v_in) / a, t_cru, (v_c - v_out) / a, d_acc)


def _along(tr: _Trapezoid, tau: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Distance flown and speed ``tau`` seconds into a trapezoidal leg."""
    a = ACCEL
    t1, t2 = tr.t_acc, tr.t_acc + tr.t_cru
    tau = np.clip(tau, 0.0, tr.duration)
    u = tau - t2
    s = np.where(
        tau < t1,
        tr.v_in * tau + 0.5 * a * tau**2,
        np.where(
            tau < t2,
            tr.d_acc + tr.v_c * (tau - t1),
            tr.d_acc + tr.v_c * tr.t_cru + tr.v_c * u - 0.5 * a * u**2,
        ),
    )
    v = np.where(tau < t1, tr.v_in + a * tau, np.where(tau < t2, tr.v_c, tr.v_c - a * u))
    return s, v


def leg_duration(leg: Leg) -> float:
    """Seconds the leg takes."""
    if isinstance(leg, Hold):
        return leg.duration_s
    return _trapezoid(leg.length, leg.v_in, leg.v_cruise, leg.v_out).duration


@dataclass(frozen=True)
class FlightTrack:
    """A flight sampled at the record interval (true values, before sensor noise)."""

    t: FloatArray
    x: FloatArray
    y: FloatArray
    h: FloatArray  # height above the take-off point
    vz: FloatArray
    speed: FloatArray  # horizontal ground speed
    heading: FloatArray  # degrees clockwise from north
    mode: npt.NDArray[np.str_]
    camera_on: npt.NDArray[np.bool_]
    airborne: npt.NDArray[np.bool_]


def sample_legs(legs: Sequence[Leg], t0: float, step: float, cruise_h: float) -> FlightTrack:
    """Positions at t0, t0 + step, ... until the last leg ends (paths fly at ``cruise_h``)."""
    durations = np.array([leg_duration(leg) for leg in legs])
    starts = np.concatenate([[0.0], np.cumsum(durations)])
    n = int(starts[-1] // step) + 1
    tau_all = np.arange(n) * step
    which = np.clip(np.searchsorted(starts, tau_all, side="right") - 1, 0, len(legs) - 1)
    x, y, h, vz = (np.zeros(n) for _ in range(4))
    speed, heading = np.zeros(n), np.full(n, np.nan)
    mode = np.empty(n, dtype="<U8")
    camera = np.zeros(n, dtype=bool)
    airborne = np.zeros(n, dtype=bool)
    px = py = 0.0
    for k, leg in enumerate(legs):
        sel = which == k
        tau = tau_all[sel] - starts[k]
        mode[sel] = leg.mode
        if isinstance(leg, Hold):
            frac = tau / leg.duration_s if leg.duration_s > 0 else np.zeros_like(tau)
            h[sel] = leg.h_from + (leg.h_to - leg.h_from) * frac
            vz[sel] = (leg.h_to - leg.h_from) / leg.duration_s if leg.duration_s > 0 else 0.0
            x[sel], y[sel] = px, py
            airborne[sel] = leg.airborne
            continue
        tr = _trapezoid(leg.length, leg.v_in, leg.v_cruise, leg.v_out)
        s, v = _along(tr, tau)
        cum = arc_length(leg.x, leg.y)
        x[sel], y[sel] = np.interp(s, cum, leg.x), np.interp(s, cum, leg.y)
        seg = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(cum) - 2)
        dx, dy = np.diff(leg.x)[seg], np.diff(leg.y)[seg]
        heading[sel] = np.degrees(np.arctan2(dx, dy)) % 360.0
        speed[sel], h[sel], camera[sel], airborne[sel] = v, cruise_h, leg.camera_on, True
        px, py = float(leg.x[-1]), float(leg.y[-1])
    # holds keep the heading they had (the first hold faces the first path)
    valid = ~np.isnan(heading)
    if valid.any():
        idx = np.where(valid, np.arange(n), -1)
        np.maximum.accumulate(idx, out=idx)
        first = int(np.argmax(valid))
        idx[idx < 0] = first
        heading = heading[idx]
    else:
        heading = np.zeros(n)
    t = np.asarray(tau_all + t0, dtype=np.float64)
    return FlightTrack(t, x, y, h, vz, speed, heading, mode, camera, airborne)


def patrol_legs(
    loop: Racetrack,
    s_entry: float,
    v_in: float,
    budget_s: float,
    rtl_s: Callable[[FloatArray, FloatArray], FloatArray],
    cruise: Callable[[], float],
) -> list[Path]:
    """Patrol round the loop from ``s_entry`` until it is time to fly home.

    The patrol stops (slowing to a halt) at the first point where the time flown plus
    ``rtl_s(x, y)`` (time to get home from there) reaches ``budget_s``.
    """
    (a0, a1), (b0, _) = loop.turns
    bounds = [0.0, a0, a1, b0, loop.length]
    legs: list[Path] = []
    elapsed, s, v = 0.0, s_entry, v_in
    while True:
        k = int(np.searchsorted(bounds, s, side="right")) - 1
        k = min(k, len(bounds) - 2)
        end = bounds[k + 1]
        is_turn = k in (1, 3)
        if end - s < 1.0:
            s = 0.0 if end >= loop.length else end
            continue
        x, y = cut(loop.x, loop.y, s, end)
        v_c = V_TURN if is_turn else cruise()
        leg = Path("patrol", True, x, y, v, v_c, V_TURN)
        dur = leg_duration(leg)
        # where along this leg would we have to turn for home?
        cum = arc_length(x, y)
        probe = np.linspace(0.0, cum[-1], max(int(cum[-1] // 50.0), 2))
        px, py = np.interp(probe, cum, x), np.interp(probe, cum, y)
        t_probe = elapsed + probe / max(v_c, 1.0)
        late = np.flatnonzero(t_probe + rtl_s(px, py) >= budget_s)
        if late.size:
            stop = float(probe[late[0]])
            if stop < 20.0:  # no room for a meaningful last leg: stop where we are
                if legs:
                    last = legs.pop()
                    legs.append(
                        Path(last.mode, True, last.x, last.y, last.v_in, last.v_cruise, 0.0)
                    )
                return legs
            sx, sy = cut(x, y, 0.0, stop)
            legs.append(Path("patrol", True, sx, sy, v, v_c, 0.0))
            return legs
        legs.append(leg)
        elapsed += dur
        s, v = (0.0 if end >= loop.length else end), V_TURN
