"""Seeded simulator of a hybrid-drone border patrol pilot (Mukdahan by default).

It schedules staggered daytime and evening flights for each drone, flies them along the
border (`drone_flight`), and streams what the drones would send at 1 Hz — position,
attitude of the mission, battery, generator, fuel, link — with take-off, landing,
detection and alarm events. The truth holds, per flight, the true track of the records that
count for coverage and the energy split exactly as streamed. Pure: same config, same output.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final
from zoneinfo import ZoneInfo

import numpy as np

from devices.errors import SimConfigError
from devices.sim.batching import Batch, DeviceStream, merge_streams
from devices.sim.drone_flight import CATCHUP_ITEMS, Flight, FlightSetup, Site, simulate_flight
from devices.sim.geo import LocalFrame, racetrack
from devices.sim.hybrid_power import HybridSpec

Point = tuple[float, float]

MUKDAHAN_BORDER: Final[tuple[Point, ...]] = (
    (104.700, 16.760),
    (104.725, 16.680),
    (104.738, 16.600),
    (104.745, 16.540),
    (104.760, 16.480),
    (104.790, 16.420),
    (104.830, 16.360),
)
"""The Mekong border near Mukdahan as (lon, lat), north to south."""


def strip_west(border: Sequence[Point], width_deg: float) -> tuple[Point, ...]:
    """Closed ring of the strip between a border line and the line ``width_deg`` west of it."""
    west = [(lon - width_deg, lat) for lon, lat in reversed(border)]
    ring = [*border, *west]
    return (*ring, ring[0])


MUKDAHAN_AOI: Final = strip_west(MUKDAHAN_BORDER, 0.04)
"""The area of interest: the Thai-side strip 0.04° wide along the border, as (lon, lat)."""
MUKDAHAN_BASE: Final[Point] = (16.545, 104.715)
"""The launch site as (lat, lon)."""

FIRST_SLOT_LOCAL = dt.time(6, 30)
OPERATING_DAY_H = 16.0  # flights spread over 06:30-22:30 local
MAX_AIRBORNE_H = 4.0
TRIM_M = 300.0


@dataclass(frozen=True, kw_only=True)
class DroneSimConfig:
    """One simulated patrol run of ``days`` days from local midnight of ``start``."""

    start: dt.date
    days: int
    seed: int
    pilot_id: str = "mukdahan"
    border: Sequence[Point] = MUKDAHAN_BORDER
    aoi: Sequence[Point] = MUKDAHAN_AOI
    base: Point = MUKDAHAN_BASE
    devices: int = 2
    timezone: str = "Asia/Bangkok"
    record_interval_s: float = 1.0
    hfov_deg: float = 70.0
    flights_per_day: int = 2
    batch_records: int = 10
    glitches: bool = True
    patrol_offset_m: float = 50.0
    turn_radius_m: float = 45.0

    def __post_init__(self) -> None:
        if self.days < 1 or self.devices < 1 or self.flights_per_day < 1:
            raise SimConfigError("days, devices and flights_per_day must be at least 1")
        if not 0.1 <= self.record_interval_s <= 60.0:
            raise SimConfigError("record_interval_s must be 0.1..60")
        if not 1 <= self.batch_records <= CATCHUP_ITEMS:
            raise SimConfigError(f"batch_records must be 1..{CATCHUP_ITEMS}")
        if len(self.border) < 2 or len(self.aoi) < 4:
            raise SimConfigError("border needs 2 points and aoi a ring of at least 4")
        if not 10.0 <= self.hfov_deg <= 150.0:
            raise SimConfigError("hfov_deg must be 10..150")
        if _airborne_h(self) < 0.5:
            raise SimConfigError("too many flights a day for the operating window")

    def device_ids(self) -> list[str]:
        """The drone ids, ``{pilot}-uav-1`` onwards."""
        return [f"{self.pilot_id}-uav-{i}" for i in range(1, self.devices + 1)]


def _airborne_h(cfg: DroneSimConfig) -> float:
    slot_h = OPERATING_DAY_H / (cfg.devices * cfg.flights_per_day)
    return min(MAX_AIRBORNE_H, cfg.devices * slot_h - 0.75)


def flight_schedule(cfg: DroneSimConfig) -> list[FlightSetup]:
    """Staggered flights: the next drone takes off shortly before the previous one lands."""
    tz = ZoneInfo(cfg.timezone)
    rng = np.random.default_rng([cfg.seed, 10])
    ids = cfg.device_ids()
    boots = [int(b) for b in rng.integers(20, 80, cfg.devices)]
    slots = cfg.devices * cfg.flights_per_day
    slot_h = OPERATING_DAY_H / slots
    airborne_h = _airborne_h(cfg)
    alarm_at = int(rng.integers(0, cfg.days * slots))
    out: list[FlightSetup] = []
    flown = [0] * cfg.devices
    for day in range(cfg.days):
        date = cfg.start + dt.timedelta(days=day)
        first = dt.datetime.combine(date, FIRST_SLOT_LOCAL, tzinfo=tz).timestamp()
        for j in range(slots):
            dev = j % cfg.devices
            jitter_min = float(rng.uniform(-5.0, 5.0))
            start = first + j * slot_h * 3600.0 + (jitter_min - 10.0) * 60.0
            start = round(start + float(rng.uniform(0.0, 1.0)), 3)
            flown[dev] += 1
            out.append(
                FlightSetup(
                    device_id=ids[dev],
                    flight_id=f"{ids[dev]}-{date:%Y%m%d}-{j // cfg.devices + 1}",
                    boot=boots[dev] + flown[dev],
                    start=start,
                    airborne_s=(airborne_h - float(rng.uniform(0.0, 0.2))) * 3600.0,
                    outer_first=(j // cfg.devices + dev) % 2 == 1,
                    rng_key=(cfg.seed, 20, dev, flown[dev]),
                    alarm=len(out) == alarm_at,
                    glitches=cfg.glitches,
                    step=cfg.record_interval_s,
                    hfov_deg=cfg.hfov_deg,
                    batch_records=cfg.batch_records,
                )
            )
    return out


@dataclass(frozen=True)
class DroneSim:
    """A finished run: ``batches()`` streams it, ``truth()`` says what really happened."""

    config: DroneSimConfig
    streams: tuple[DeviceStream, ...]
    flights: tuple[Flight, ...]

    def batches(self) -> Iterator[Batch]:
        """Every drone's messages merged in order of ``deliver_at``."""
        return merge_streams(self.streams)

    def truth(self) -> dict[str, Any]:
        """Ground truth as a JSON-able dict (built afresh on every call)."""
        cfg = self.config
        flights = [
            copy.deepcopy(f.truth) | {"track": {k: v.tolist() for k, v in f.track.items()}}
            for f in self.flights
        ]
        energy_keys = list(self.flights[0].truth["energy"]) if self.flights else []
        totals: dict[str, Any] = {"flights": len(flights)}
        for key in ("airborne_hours", "patrol_hours", "distance_km"):
            totals[key] = sum(float(f[key]) for f in flights)
        for key in ("records", "records_late", "gps_glitch_records", "detections", "alarms"):
            totals[key] = sum(int(f[key]) for f in flights)
        for key in energy_keys:
            totals[key] = sum(float(f["energy"][key]) for f in flights)
        # as the analytics define it: generator / (generator + battery discharge)
        supplied = totals.get("generator_kwh", 0.0) + totals.get("battery_kwh", 0.0)
        share = 100.0 * totals.get("generator_kwh", 0.0) / supplied if supplied else 0.0
        totals["generator_share_pct"] = share
        return {
            "kind": "hybrid_drone",
            "pilot_id": cfg.pilot_id,
            "seed": cfg.seed,
            "start": cfg.start.isoformat(),
            "days": cfg.days,
            "timezone": cfg.timezone,
            "record_interval_s": cfg.record_interval_s,
            "hfov_deg": cfg.hfov_deg,
            "border": [list(p) for p in cfg.border],
            "aoi": [list(p) for p in cfg.aoi],
            "base": {"lat": cfg.base[0], "lon": cfg.base[1]},
            "patrol": {
                "offsets_m": [cfg.patrol_offset_m, cfg.patrol_offset_m + 2 * cfg.turn_radius_m],
                "turn_radius_m": cfg.turn_radius_m,
                "ends_trimmed_m": TRIM_M,
                "counts_for_coverage": "mode patrol, camera on, airborne, gps_fix >= 3",
            },
            "flights": flights,
            "totals": totals,
        }


def simulate_drones(cfg: DroneSimConfig, spec: HybridSpec | None = None) -> DroneSim:
    """Simulate every scheduled flight of every drone."""
    frame = LocalFrame(cfg.base[0], cfg.base[1])
    bx, by = frame.to_xy(np.array([p[0] for p in cfg.border]), np.array([p[1] for p in cfg.border]))
    loop = racetrack(bx, by, cfg.patrol_offset_m, cfg.turn_radius_m, TRIM_M)
    site = Site(frame, loop)
    flights = [simulate_flight(site, fs, spec or HybridSpec()) for fs in flight_schedule(cfg)]
    streams = []
    for device_id in cfg.device_ids():
        mine = [f for f in flights if f.setup.device_id == device_id]
        streams.append(_device_stream(device_id, mine))
    return DroneSim(cfg, tuple(streams), tuple(flights))


def _device_stream(device_id: str, flights: list[Flight]) -> DeviceStream:
    """One drone's records of all its flights, one message plan, one event list."""
    if not flights:
        return DeviceStream(device_id, {}, [], [])
    columns = {k: np.concatenate([f.columns[k] for f in flights]) for k in flights[0].columns}
    plan: list[tuple[int, int, float, int]] = []
    events: list[tuple[dict[str, Any], float, int]] = []
    offset = 0
    for f in flights:
        plan.extend((a + offset, b + offset, d, boot) for a, b, d, boot in f.plan)
        events.extend((e, d, f.setup.boot) for e, d in f.events)
        offset += len(f.ts)
    return DeviceStream(device_id, columns, plan, events)
