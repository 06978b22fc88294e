"""One simulated patrol flight of a hybrid drone: records, events and the truth about it.

The flight is planned (take-off, transit, racetrack patrol beside the border, return,
landing), flown by `flightplan`, powered by `hybrid_power`, and then seen through the
drone's sensors and uplink: GPS noise and the odd glitch, a varying link with short
dropouts whose records arrive late. The truth keeps the true positions of the records
that count for coverage, so coverage computed from the stream can be checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from devices.sim.batching import (
    FloatArray,
    iso_ms,
    iso_ms_one,
    late_records,
    plan_messages,
    ready_times,
)
from devices.sim.flightplan import V_TURN, Hold, Leg, Path, leg_duration, patrol_legs, sample_legs
from devices.sim.geo import LocalFrame, Racetrack, arc_length, cut, nearest_on
from devices.sim.hybrid_power import HybridSpec, demand_w, power_flow, smooth_noise

BASE_GROUND_M = 141.0  # terrain height at the base, m AMSL (Mekong plain)
V_TRANSIT = 15.0
V_RTL = 16.0
LABELS = ("person", "boat", "vehicle")
CATCHUP_ITEMS = 500  # a drone record is ~400 bytes: 500 stay well under 256 KiB


@dataclass(frozen=True)
class Site:
    """The patrol area in a metric frame centred on the base."""

    frame: LocalFrame
    loop: Racetrack


@dataclass(frozen=True)
class FlightSetup:
    """What the schedule decides about one flight."""

    device_id: str
    flight_id: str
    boot: int
    start: float  # epoch of the first record (power-on, still on the ground)
    airborne_s: float  # planned take-off to touch-down
    outer_first: bool  # join the outer (south-bound) leg rather than the inner one
    rng_key: tuple[int, ...]
    alarm: bool
    glitches: bool
    step: float
    hfov_deg: float
    batch_records: int


@dataclass(frozen=True)
class Flight:
    """A simulated flight: streamed columns (all records), readiness and truth."""

    setup: FlightSetup
    ts: FloatArray
    columns: dict[str, np.ndarray[Any, Any]]
    plan: list[tuple[int, int, float, int]]  # message plan over this flight's records
    events: list[tuple[dict[str, Any], float]]
    truth: dict[str, Any]
    track: dict[str, np.ndarray[Any, Any]]  # true positions of the records that count


def ground_m(x: FloatArray, y: FloatArray) -> FloatArray:
    """Terrain height (m AMSL): gentle relief of a few metres around the base's level."""
    relief = (
        3.5 * (np.sin(x / 700.0 + 0.3) - math.sin(0.3))
        + 2.5 * np.sin(y / 1900.0)
        + 1.5 * np.sin((x + y) / 450.0)
    )
    return np.asarray(BASE_GROUND_M + relief, dtype=np.float64)


def _plan(site: Site, fs: FlightSetup, rng: np.random.Generator, h_c: float) -> list[Leg]:
    loop = site.loop
    (a0, a1), (b0, _) = loop.turns
    lo, hi = (a1, b0) if fs.outer_first else (0.0, a0)
    px, py = cut(loop.x, loop.y, lo, hi)
    s_entry = lo + nearest_on(px, py, arc_length(px, py), 0.0, 0.0)
    ex = float(np.interp(s_entry, loop.s, loop.x))
    ey = float(np.interp(s_entry, loop.s, loop.y))
    head: list[Leg] = [
        Hold("landed", 90.0, 0.0, 0.0, False),
        Hold("hover", h_c / 2.5, 0.0, h_c, True),
        Hold("hover", 5.0, h_c, h_c, True),
    ]
    transit = Path(
        "transit", False, np.array([0.0, ex]), np.array([0.0, ey]), 0.0, V_TRANSIT, V_TURN
    )
    descent_s = h_c / 1.6
    used = sum(leg_duration(leg) for leg in head[1:]) + leg_duration(transit) + descent_s
    patrol = patrol_legs(
        loop,
        s_entry,
        V_TURN,
        fs.airborne_s - used,
        lambda x, y: np.hypot(x, y) / V_RTL + V_RTL / 1.5,
        lambda: float(rng.uniform(12.0, 16.0)),
    )
    last = patrol[-1] if patrol else transit
    home = Path(
        "rtl",
        False,
        np.array([last.x[-1], 0.0]),
        np.array([last.y[-1], 0.0]),
        last.v_out,
        V_RTL,
        0.0,
    )
    tail: list[Leg] = [
        home,
        Hold("rtl", descent_s, h_c, 0.0, True),
        Hold("landed", 60.0, 0.0, 0.0, False),
    ]
    return [*head, transit, *patrol, *tail]


def _episodes(
    rng: np.random.Generator, pool: npt.NDArray[np.int64], count: int, lo: float, hi: float
) -> list[tuple[int, int]]:
    """``count`` non-overlapping index ranges of lo..hi samples starting within ``pool``."""
    out: list[tuple[int, int]] = []
    for _ in range(count):
        if len(pool) == 0:
            break
        start = int(rng.choice(pool))
        stop = start + int(rng.uniform(lo, hi))
        if all(stop + 60 < a or start > b + 60 for a, b in out):
            out.append((start, stop))
    return sorted(out)


def simulate_flight(site: Site, fs: FlightSetup, spec: HybridSpec) -> Flight:
    """Fly, power and observe one flight."""
    rng = np.random.default_rng(list(fs.rng_key))
    h_c = float(rng.uniform(110.0, 125.0))
    wind_speed, wind_dir = float(rng.uniform(1.0, 6.0)), float(rng.uniform(0, 2 * math.pi))
    wind = (wind_speed * math.sin(wind_dir), wind_speed * math.cos(wind_dir))
    tr = sample_legs(_plan(site, fs, rng, h_c), fs.start, fs.step, h_c)
    n = len(tr.t)
    air = np.flatnonzero(tr.airborne)
    i_up, i_down = int(air[0]), int(air[-1]) + 1  # first airborne sample, first one after
    patrol_idx = np.flatnonzero(tr.mode == "patrol")

    ground = ground_m(tr.x, tr.y)
    baro = smooth_noise(rng, n, 0.8, 20.0 / fs.step)
    alt = np.where(tr.airborne, BASE_GROUND_M + tr.h + baro, ground + 0.1 * baro)
    agl = np.where(tr.airborne, np.maximum(alt - ground, 0.0), 0.0)

    fix = np.where(smooth_noise(rng, n, 1.0, 300.0 / fs.step) > 0.3, 4, 3).astype(np.int64)
    ex = smooth_noise(rng, n, 1.2, 20.0 / fs.step)
    ey = smooth_noise(rng, n, 1.2, 20.0 / fs.step)
    n_glitch = int(rng.integers(0, 3)) if fs.glitches else 0
    for a, b in _episodes(rng, patrol_idx, n_glitch, 2, 7):
        jump = float(rng.uniform(200.0, 600.0))
        ang = float(rng.uniform(0.0, 2 * math.pi))
        ex[a:b] += jump * math.sin(ang) + rng.normal(0, 15.0, b - a)
        ey[a:b] += jump * math.cos(ang) + rng.normal(0, 15.0, b - a)
        fix[a:b] = int(rng.integers(1, 3))
    lon, lat = site.frame.to_lonlat(tr.x + ex, tr.y + ey)
    true_lon, true_lat = site.frame.to_lonlat(tr.x, tr.y)

    dist_km = np.hypot(tr.x, tr.y) / 1000.0
    rssi = -52.0 - 20.0 * np.log10(1.0 + dist_km) + smooth_noise(rng, n, 1.5, 10.0 / fs.step)
    n_drop = int(rng.integers(0, 3)) if fs.glitches else 0
    drops = _episodes(rng, patrol_idx, n_drop, 30.0 / fs.step, 120.0 / fs.step)
    outages = []
    for a, b in drops:
        b = min(b, n - 1)
        pre = np.arange(max(a - 20, 0), a)
        rssi[pre] -= np.linspace(0.0, 12.0, len(pre))
        rssi[a:b] = -104.0 + rng.normal(0.0, 1.5, b - a)
        outages.append((float(tr.t[a]), float(tr.t[b])))
    ready = ready_times(tr.t, outages)

    derate = np.ones(n)
    events: list[tuple[dict[str, Any], float]] = []

    def event(k: int, body: dict[str, Any]) -> None:
        t = round(float(tr.t[k]) + float(rng.uniform(0.0, fs.step)), 3)
        full = {"ts": iso_ms_one(t), "flight_id": fs.flight_id, **body}
        events.append((full, float(ready_times(np.array([t]), outages)[0])))

    base_lon, base_lat = site.frame.lon0, site.frame.lat0
    event(i_up, {"type": "takeoff", "lat": base_lat, "lon": base_lon})
    if fs.alarm and len(patrol_idx):
        k = int(rng.choice(patrol_idx))
        derate[k : k + int(240 / fs.step)] = 0.6
        detail = "generator cylinder head 182 °C; output limited to 60 % for 4 min"
        event(k, {"type": "alarm", "code": "generator_overtemp", "detail": detail})
    n_det = int(rng.poisson(2.5)) if len(patrol_idx) else 0
    for k in sorted(int(i) for i in rng.choice(patrol_idx, n_det)) if n_det else []:
        w = 2.0 * agl[k] * math.tan(math.radians(fs.hfov_deg) / 2.0)
        across, along = float(rng.uniform(-0.4, 0.4)) * w, float(rng.uniform(-20.0, 40.0))
        hd = math.radians(float(tr.heading[k]))
        dx = along * math.sin(hd) + across * math.cos(hd)
        dy = along * math.cos(hd) - across * math.sin(hd)
        dlon, dlat = site.frame.to_lonlat(np.array([tr.x[k] + dx]), np.array([tr.y[k] + dy]))
        body = {
            "type": "detection",
            "lat": round(float(dlat[0]), 7),
            "lon": round(float(dlon[0]), 7),
            "label": str(rng.choice(LABELS, p=[0.45, 0.35, 0.2])),
            "confidence": round(float(rng.uniform(0.55, 0.97)), 2),
        }
        event(k, body)
    event(i_down, {"type": "landing", "lat": base_lat, "lon": base_lon})

    engine_on = (tr.t >= tr.t[i_up] - 15.0) & (tr.t < tr.t[i_down])
    flow = power_flow(
        demand_w(tr, wind, spec, rng),
        engine_on,
        derate,
        fs.step,
        float(rng.uniform(0.85, 0.95)),  # packs are topped up in flight, not on the ground
        float(rng.uniform(7.2, 7.6)),
        spec,
        rng,
    )
    columns: dict[str, np.ndarray[Any, Any]] = {
        "ts": iso_ms(tr.t),
        "flight_id": np.full(n, fs.flight_id),
        "lat": np.round(lat, 7),
        "lon": np.round(lon, 7),
        "alt_m": np.round(alt, 1),
        "agl_m": np.round(agl, 1),
        "speed_mps": np.round(np.maximum(tr.speed + rng.normal(0, 0.08, n), 0.0), 2),
        "heading_deg": np.round(tr.heading, 1) % 360.0,
        "mode": tr.mode,
        "camera_on": tr.camera_on,
        "hfov_deg": np.full(n, fs.hfov_deg),
        "gps_fix": fix,
        "battery_v": flow.battery_v,
        "battery_a": flow.battery_a,
        "battery_pct": flow.battery_pct,
        "gen_power_w": flow.gen_w,
        "fuel_l": flow.fuel_l,
        "rssi_dbm": np.round(rssi, 1),
    }
    boots = np.full(n, fs.boot, dtype=np.int64)
    window = fs.batch_records * fs.step
    plan = plan_messages(tr.t, boots, ready, float(tr.t[0]) - fs.step / 2, window, CATCHUP_ITEMS)
    counted = (tr.mode == "patrol") & tr.camera_on & tr.airborne & (fix >= 3)
    p_batt = flow.battery_v * flow.battery_a
    to_kwh = fs.step / 3.6e6
    energy = {
        "battery_kwh": float(p_batt[p_batt >= 0].sum()) * to_kwh,  # discharge
        "battery_charged_kwh": float(-p_batt[p_batt < 0].sum()) * to_kwh,
        "battery_net_kwh": float(p_batt.sum()) * to_kwh,
        "generator_kwh": float(flow.gen_w.sum()) * to_kwh,
        "fuel_l": float(flow.fuel_l[0] - flow.fuel_l[-1]),
    }
    moved = np.hypot(np.diff(tr.x), np.diff(tr.y))[tr.airborne[1:] & tr.airborne[:-1]]
    truth = {
        "flight_id": fs.flight_id,
        "device_id": fs.device_id,
        "boot": fs.boot,
        "takeoff": events[0][0]["ts"],
        "landing": events[-1][0]["ts"],
        "airborne_hours": float(tr.airborne.sum()) * fs.step / 3600.0,
        "patrol_hours": float(counted.sum()) * fs.step / 3600.0,
        "distance_km": float(moved.sum()) / 1000.0,
        "cruise_agl_m": h_c,
        "wind_mps": wind_speed,
        "records": n,
        "records_late": late_records(plan, tr.t),
        "gps_glitch_records": int((fix < 3).sum()),
        "dropouts": [{"start": iso_ms_one(a), "end": iso_ms_one(b)} for a, b in outages],
        "detections": sum(1 for e, _ in events if e["type"] == "detection"),
        "alarms": sum(1 for e, _ in events if e["type"] == "alarm"),
        "energy": energy,
    }
    track = {
        "ts": columns["ts"][counted],
        "lat": np.round(true_lat[counted], 7),
        "lon": np.round(true_lon[counted], 7),
        "agl_m": columns["agl_m"][counted],
        "hfov_deg": columns["hfov_deg"][counted],
    }
    return Flight(fs, tr.t, columns, plan, events, truth, track)
