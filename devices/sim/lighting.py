"""The physics of one adaptive luminaire: photocell switching, traffic, light level, power.

Kept apart from the fleet simulator so that each piece is a pure function over numpy
arrays that can be checked on its own: vehicles arrive as a non-homogeneous Poisson
process per road, each luminaire brightens to 100 % for a hold time after a detection, and
the interval light level is the exact time-weighted average of that on/off signal.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final
from zoneinfo import ZoneInfo

import numpy as np
from astral import Observer
from astral.sun import sunrise, sunset

from devices.commands import DimmingProfile
from devices.sim.batching import FloatArray

IDLE_LEVEL: Final = 0.30  # light level with no traffic (traffic-responsive policy)
HOLD_S: Final = 90.0  # how long a luminaire stays at 100 % after a detection
DETECTION_PROB: Final = 0.95  # radar detection probability per passing vehicle

# Vehicles per hour on an arterial road (weight 1.0), per local hour; Madiun traffic is
# mostly motorcycles, with a morning peak (5-7 h) and an evening peak (17-20 h).
WEEKDAY_VPH: Final = np.array(
    [150, 90, 60, 50, 110, 420, 950, 1050, 850, 700, 650, 680,
     700, 680, 700, 780, 900, 1100, 1150, 1000, 780, 560, 380, 240],
    dtype=np.float64,
)  # fmt: skip
WEEKEND_VPH: Final = np.array(
    [140, 85, 55, 40, 60, 150, 330, 520, 640, 680, 640, 640,
     640, 620, 620, 650, 720, 820, 900, 860, 700, 520, 360, 230],
    dtype=np.float64,
)  # fmt: skip


@dataclass(frozen=True)
class Road:
    """A lit road: its name, traffic relative to an arterial, and luminaire spacing."""

    name: str
    traffic_weight: float
    spacing_m: float = 35.0


MADIUN_ROADS: Final = (
    Road("Jl. Pahlawan", 0.55, 38.0),
    Road("Jl. HOS Cokroaminoto", 0.3, 36.0),
    Road("Jl. Diponegoro", 0.18, 35.0),
    Road("Jl. Serayu", 0.08, 32.0),
    Road("Jl. Kutai", 0.03, 30.0),
)


def driver_power_fraction(level: FloatArray | float) -> FloatArray:
    """Input power of an LED driver as a fraction of full power at a light level 0..1.

    Drivers lose efficiency at low load, so 30 % light draws about 32 % power.
    """
    lv = np.asarray(level, dtype=np.float64)
    return 0.08 + 0.92 * lv**1.1


def photocell_times(
    latitude: float, longitude: float, tz: ZoneInfo, dates: list[dt.date]
) -> tuple[FloatArray, FloatArray]:
    """Astronomical sunset of each date and sunrise of the following morning (epoch s)."""
    obs = Observer(latitude=latitude, longitude=longitude)
    sets = [sunset(obs, date=d, tzinfo=tz).timestamp() for d in dates]
    rises = [sunrise(obs, date=d + dt.timedelta(days=1), tzinfo=tz).timestamp() for d in dates]
    return np.array(sets), np.array(rises)


def local_clock(
    t: FloatArray, utc_offsets_s: FloatArray, t0: float
) -> tuple[FloatArray, FloatArray]:
    """Local hour of day (0..24) and weekday (0 = Monday) of epoch times.

    ``utc_offsets_s[k]`` is the zone's offset on simulated day k counted from ``t0``.
    """
    k = np.clip(((t - t0) // 86400).astype(np.int64), 0, len(utc_offsets_s) - 1)
    local = t + utc_offsets_s[k]
    hours = (local % 86400.0) / 3600.0
    weekday = ((local // 86400.0).astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    return hours, weekday.astype(np.float64)


def traffic_rate(hours: FloatArray, weekday: FloatArray) -> FloatArray:
    """Arterial traffic in vehicles/h, interpolated between hourly means (cyclic)."""
    xp = np.arange(-0.5, 24.5 + 1e-9, 1.0)
    wk = np.interp(hours, xp, np.concatenate([WEEKDAY_VPH[-1:], WEEKDAY_VPH, WEEKDAY_VPH[:1]]))
    we = np.interp(hours, xp, np.concatenate([WEEKEND_VPH[-1:], WEEKEND_VPH, WEEKEND_VPH[:1]]))
    rate: FloatArray = np.where(weekday >= 5, we, wk)
    return rate


def road_arrivals(
    rng: np.random.Generator,
    weight: float,
    t_start: float,
    t_end: float,
    utc_offsets_s: FloatArray,
    t0: float,
) -> FloatArray:
    """Vehicle entry times on a road: a non-homogeneous Poisson process, by thinning.

    Each day gets its own busyness factor (weather, events), so nights differ.
    """
    n_days = len(utc_offsets_s)
    day_factor = np.exp(rng.normal(0.0, 0.12, n_days))
    lam_max = float(max(WEEKDAY_VPH.max(), WEEKEND_VPH.max()) * weight * day_factor.max())
    n = rng.poisson(lam_max * (t_end - t_start) / 3600.0)
    t = np.sort(rng.uniform(t_start, t_end, n))
    hours, weekday = local_clock(t, utc_offsets_s, t0)
    k = np.clip(((t - t0) // 86400).astype(np.int64), 0, n_days - 1)
    lam = traffic_rate(hours, weekday) * weight * day_factor[k]
    keep = rng.uniform(0.0, lam_max, n) < lam
    arrivals: FloatArray = t[keep]
    return arrivals


def luminaire_detections(
    rng: np.random.Generator, arrivals: FloatArray, position_m: float, road_length_m: float
) -> FloatArray:
    """When the luminaire at ``position_m`` sees the road's vehicles (both directions)."""
    speed = rng.uniform(7.0, 15.0, len(arrivals))
    eastbound = rng.uniform(size=len(arrivals)) < 0.5
    distance = np.where(eastbound, position_m, road_length_m - position_m)
    seen = rng.uniform(size=len(arrivals)) < DETECTION_PROB
    detections: FloatArray = np.sort((arrivals + distance / speed)[seen])
    return detections


@dataclass(frozen=True)
class BusyProfile:
    """The union of [detection, detection + hold] as a cumulative measure F(t)."""

    knots_t: FloatArray
    knots_f: FloatArray

    def measure(self, t: FloatArray) -> FloatArray:
        """Seconds at 100 % (from traffic) up to each time ``t``."""
        out: FloatArray = np.interp(t, self.knots_t, self.knots_f)
        return out


def busy_profile(detections: FloatArray, hold_s: float = HOLD_S) -> BusyProfile:
    """Merge overlapping hold windows; F rises with slope 1 inside them, 0 outside."""
    if len(detections) == 0:
        return BusyProfile(np.array([0.0, 1.0]), np.array([0.0, 0.0]))
    new = np.ones(len(detections), dtype=bool)
    new[1:] = np.diff(detections) > hold_s
    starts = detections[new]
    ends = np.append(detections[np.flatnonzero(new)[1:] - 1], detections[-1]) + hold_s
    lengths = ends - starts
    before = np.concatenate([[0.0], np.cumsum(lengths)[:-1]])
    knots_t = np.empty(2 * len(starts))
    knots_f = np.empty(2 * len(starts))
    knots_t[0::2], knots_t[1::2] = starts, ends
    knots_f[0::2], knots_f[1::2] = before, before + lengths
    return BusyProfile(knots_t, knots_f)


def profile_levels(
    profile: DimmingProfile, t: FloatArray, utc_offsets_s: FloatArray, t0: float
) -> FloatArray:
    """The commanded base level (0..1) of a dimming profile at epoch times ``t``."""
    hours, _ = local_clock(t, utc_offsets_s, t0)
    minutes = np.floor(hours * 60.0 + 1e-6)
    steps = sorted(profile.steps, key=lambda s: s.at)
    starts = np.array([s.at.hour * 60 + s.at.minute for s in steps], dtype=np.float64)
    levels = np.array([s.level_pct / 100.0 for s in steps], dtype=np.float64)
    idx = np.searchsorted(starts, minutes, side="right") - 1  # -1: yesterday's last step holds
    out: FloatArray = levels[idx]
    return out
