"""Energy of a hybrid (petrol generator + battery) multirotor along a sampled flight.

The generator carries the cruise load and tops the battery up; the battery covers what the
generator cannot give — the take-off climb while the engine is still warming, gusts, a
derated generator. Fuel burns in proportion to generator output. The quantities streamed
(battery V and A, generator W, fuel L) are rounded here, before anything is integrated,
so that the ground truth is exactly the integral of what the device reports.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from devices.sim.batching import FloatArray
from devices.sim.flightplan import FlightTrack

G = 9.81
# 12S LiPo open-circuit voltage per cell at state of charge 0, 0.1, ..., 1.0
_OCV_CELL = np.array([3.30, 3.60, 3.68, 3.73, 3.77, 3.81, 3.86, 3.93, 4.00, 4.08, 4.20])


@dataclass(frozen=True)
class HybridSpec:
    """A 20 kg class hybrid hexacopter with a 2.6 kW generator and a 12S 22 Ah pack."""

    hover_w: float = 1950.0
    mass_kg: float = 20.0
    climb_efficiency: float = 0.75
    avionics_w: float = 110.0
    camera_w: float = 35.0
    gen_max_w: float = 2600.0
    gen_idle_w: float = 250.0
    gen_warmup_s: float = 60.0
    cells: int = 12
    battery_wh: float = 977.0
    battery_ohm: float = 0.022
    soc_target: float = 0.95
    sfc_l_per_kwh: float = 0.6


def smooth_noise(rng: np.random.Generator, n: int, sigma: float, tau_steps: float) -> FloatArray:
    """Stationary AR(1) noise with standard deviation ``sigma`` and correlation time."""
    phi = float(np.exp(-1.0 / max(tau_steps, 1e-9)))
    white = rng.normal(0.0, sigma * np.sqrt(1.0 - phi * phi), n)
    white[0] = rng.normal(0.0, sigma) if n else 0.0
    out = np.asarray(lfilter([1.0], [1.0, -phi], white), dtype=np.float64)
    return out


def demand_w(
    track: FlightTrack, wind_xy: tuple[float, float], spec: HybridSpec, rng: np.random.Generator
) -> FloatArray:
    """Electrical power the drone needs: rotors (by airspeed and climb rate) plus payload."""
    rad = np.radians(track.heading)
    ax = track.speed * np.sin(rad) - wind_xy[0]
    ay = track.speed * np.cos(rad) - wind_xy[1]
    va = np.hypot(ax, ay)
    induced = spec.hover_w * (1.0 - 0.022 * va + 0.0012 * va**2)
    climb = np.where(
        track.vz > 0,
        spec.mass_kg * G * track.vz / spec.climb_efficiency,
        0.35 * spec.mass_kg * G * track.vz,
    )
    gusts = 1.0 + smooth_noise(rng, len(track.t), 0.03, 8.0)
    rotors = np.where(track.airborne, np.maximum(induced * gusts + climb, 300.0), 0.0)
    payload = spec.avionics_w + np.where(track.camera_on, spec.camera_w, 0.0)
    return np.asarray(rotors + payload, dtype=np.float64)


@dataclass(frozen=True)
class PowerFlow:
    """The streamed energy columns of one flight (already rounded as reported)."""

    gen_w: FloatArray
    battery_v: FloatArray
    battery_a: FloatArray
    battery_pct: FloatArray
    fuel_l: FloatArray


def power_flow(
    demand: FloatArray,
    engine_on: np.ndarray[tuple[int], np.dtype[np.bool_]],
    derate: FloatArray,
    step: float,
    soc0: float,
    fuel0: float,
    spec: HybridSpec,
    rng: np.random.Generator,
) -> PowerFlow:
    """Split the demand between generator and battery, second by second."""
    n = len(demand)
    since = np.zeros(n)
    run = 0.0
    for k, on in enumerate(engine_on.tolist()):  # seconds since the engine started
        run = run + step if on else 0.0
        since[k] = run
    avail = spec.gen_max_w * derate * np.clip(since / spec.gen_warmup_s, 0.0, 1.0)
    wobble = (1.0 + rng.normal(0.0, 0.01, n)).tolist()
    cap_j = spec.battery_wh * 3600.0
    gen_l = [0.0] * n
    soc = soc0
    target, idle, per_w = spec.soc_target, spec.gen_idle_w, step / cap_j
    dem_l, avail_l, on_l = demand.tolist(), avail.tolist(), engine_on.tolist()
    for k in range(n):  # a plain loop: the controller reacts to the charge it left behind
        d = dem_l[k]
        g = 0.0
        if on_l[k]:
            charge = 4000.0 * (target - soc)
            charge = 0.0 if charge < 0.0 else 400.0 if charge > 400.0 else charge
            g = (d + charge if d + charge > idle else idle) * wobble[k]
            g = min(g, avail_l[k], (1.0 - soc) / per_w + d)  # never overcharge the pack
            g = g if g > 0.0 else 0.0
            gen_l[k] = g
        soc -= (d - g) * per_w
    gen = np.round(np.array(gen_l), 1)  # as reported; everything below follows from it
    batt = demand - gen
    soc_arr = soc0 - np.cumsum(batt) * per_w
    ocv = spec.cells * np.interp(soc_arr, np.linspace(0.0, 1.0, 11), _OCV_CELL)
    volts = (ocv + np.sqrt(np.maximum(ocv**2 - 4.0 * spec.battery_ohm * batt, 0.0))) / 2.0
    volts = np.round(volts + rng.normal(0.0, 0.02, n), 2)
    amps = np.round(batt / volts, 2)
    fuel: FloatArray = fuel0 - spec.sfc_l_per_kwh * np.cumsum(gen * step) / 3.6e6
    fuel = np.asarray(np.round(np.maximum(fuel, 0.0), 3), dtype=np.float64)
    return PowerFlow(
        gen_w=gen,
        battery_v=volts,
        battery_a=amps,
        battery_pct=np.round(np.clip(soc_arr, 0.0, 1.0) * 100.0, 1),
        fuel_l=fuel,
    )
