"""Plane geometry for flight planning: a local metric frame, offset lines and a racetrack.

Planning needs metres (offsets of 50 m, turn radii), while devices report WGS84 degrees.
Over a few tens of kilometres an equirectangular frame at the site latitude is accurate to
well under a metre per kilometre, which is far below GPS noise, so no projection library
is needed here (the analytics use UTM).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from devices.sim.batching import FloatArray


@dataclass(frozen=True)
class LocalFrame:
    """x east, y north in metres from (lat0, lon0)."""

    lat0: float
    lon0: float

    @property
    def m_per_deg_lat(self) -> float:
        phi = math.radians(self.lat0)
        return 111132.92 - 559.82 * math.cos(2 * phi) + 1.175 * math.cos(4 * phi)

    @property
    def m_per_deg_lon(self) -> float:
        phi = math.radians(self.lat0)
        return 111412.84 * math.cos(phi) - 93.5 * math.cos(3 * phi)

    def to_xy(self, lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Metres east and north of the origin."""
        return (lon - self.lon0) * self.m_per_deg_lon, (lat - self.lat0) * self.m_per_deg_lat

    def to_lonlat(self, x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Degrees of longitude and latitude of points given in metres."""
        return self.lon0 + x / self.m_per_deg_lon, self.lat0 + y / self.m_per_deg_lat


def arc_length(x: FloatArray, y: FloatArray) -> FloatArray:
    """Cumulative length along a polyline, starting at 0."""
    return np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(x), np.diff(y)))])


def cut(x: FloatArray, y: FloatArray, s0: float, s1: float) -> tuple[FloatArray, FloatArray]:
    """The part of a polyline between arc lengths s0 < s1 (vertices kept in between)."""
    s = arc_length(x, y)
    inner = (s > s0) & (s < s1)
    ss = np.concatenate([[s0], s[inner], [s1]])
    return np.interp(ss, s, x), np.interp(ss, s, y)


def west_normals(x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Per-vertex unit-offset vectors (mitred) pointing to the west side of the line."""
    dx, dy = np.diff(x), np.diff(y)
    norm = np.hypot(dx, dy)
    nx, ny = -dy / norm, dx / norm  # left normal of each segment
    flip = np.where(nx > 0, -1.0, 1.0)
    nx, ny = nx * flip, ny * flip
    vx = np.concatenate([[nx[0]], nx[:-1] + nx[1:], [nx[-1]]])
    vy = np.concatenate([[ny[0]], ny[:-1] + ny[1:], [ny[-1]]])
    vn = np.hypot(vx, vy)
    vx, vy = vx / vn, vy / vn
    # mitre: scale so that each segment is offset by exactly the distance asked for
    seg_x = np.concatenate([[nx[0]], nx])
    seg_y = np.concatenate([[ny[0]], ny])
    cos_half = np.clip(vx * seg_x + vy * seg_y, 0.5, 1.0)
    return vx / cos_half, vy / cos_half


@dataclass(frozen=True)
class Racetrack:
    """A closed patrol loop beside a border: out on the inner line, back on the outer one.

    ``x``/``y`` run from the inner line's start (one end of the border) around the loop;
    ``turns`` are the arc-length ranges of the two U-turns, flown slowly.
    """

    x: FloatArray
    y: FloatArray
    s: FloatArray
    turns: tuple[tuple[float, float], tuple[float, float]]

    @property
    def length(self) -> float:
        return float(self.s[-1])


def racetrack(
    bx: FloatArray, by: FloatArray, offset_m: float, radius_m: float, trim_m: float
) -> Racetrack:
    """Loop at ``offset_m`` and ``offset_m + 2·radius_m`` west of a border polyline.

    The ends are trimmed by ``trim_m`` so the U-turns stay inside the patrol zone.
    """
    cx, cy = cut(bx, by, trim_m, float(arc_length(bx, by)[-1]) - trim_m)
    wx, wy = west_normals(cx, cy)
    inner = (cx + offset_m * wx, cy + offset_m * wy)
    outer_d = offset_m + 2 * radius_m
    outer = (cx + outer_d * wx, cy + outer_d * wy)
    # inner line walked from the last border vertex to the first, outer line back again
    ix, iy = inner[0][::-1], inner[1][::-1]
    ox, oy = outer

    def turn(px: float, py: float, tx: float, ty: float, nx: float, ny: float) -> FloatArray:
        """Semicircle from the inner to the outer line: centre between them."""
        phi = np.linspace(0.0, math.pi, 25)[1:-1]
        cxm, cym = px + (offset_m + radius_m) * nx, py + (offset_m + radius_m) * ny
        return np.stack(
            [
                cxm - radius_m * nx * np.cos(phi) + radius_m * tx * np.sin(phi),
                cym - radius_m * ny * np.cos(phi) + radius_m * ty * np.sin(phi),
            ]
        )

    def unit(ax: float, ay: float) -> tuple[float, float]:
        n = math.hypot(ax, ay)
        return ax / n, ay / n

    t_first = unit(float(cx[0] - cx[1]), float(cy[0] - cy[1]))  # heading out past vertex 0
    t_last = unit(float(cx[-1] - cx[-2]), float(cy[-1] - cy[-2]))
    arc_a = turn(float(cx[0]), float(cy[0]), *t_first, float(wx[0]), float(wy[0]))
    arc_b = turn(float(cx[-1]), float(cy[-1]), *t_last, float(wx[-1]), float(wy[-1]))
    # arc_b goes inner -> outer at the far end; walking outer -> inner we reverse it
    x = np.concatenate([ix, arc_a[0], ox, arc_b[0][::-1], ix[:1]])
    y = np.concatenate([iy, arc_a[1], oy, arc_b[1][::-1], iy[:1]])
    s = arc_length(x, y)
    n_i, n_a, n_o = len(ix), arc_a.shape[1], len(ox)
    turn_a = (float(s[n_i - 1]), float(s[n_i + n_a]))
    turn_b = (float(s[n_i + n_a + n_o - 1]), float(s[-1]))
    return Racetrack(x, y, s, (turn_a, turn_b))


def nearest_on(x: FloatArray, y: FloatArray, s: FloatArray, px: float, py: float) -> float:
    """Arc length of the point of a polyline nearest to (px, py)."""
    ax, ay, bx, by = x[:-1], y[:-1], x[1:], y[1:]
    dx, dy = bx - ax, by - ay
    seg2 = np.maximum(dx * dx + dy * dy, 1e-12)
    u = np.clip(((px - ax) * dx + (py - ay) * dy) / seg2, 0.0, 1.0)
    d2 = (ax + u * dx - px) ** 2 + (ay + u * dy - py) ** 2
    k = int(np.argmin(d2))
    return float(s[k] + u[k] * math.sqrt(seg2[k]))
