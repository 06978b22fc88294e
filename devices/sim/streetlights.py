"""Seeded simulator of a traffic-adaptive streetlight pilot (Madiun by default).

It produces what the luminaire controllers would send — 5-minute TALQ-style records and
fault events, batched and timed as over a real, sometimes broken, uplink — together with
the ground truth an evaluator needs to check a savings report: per luminaire and night the
true burning hours, actual energy and full-power counterfactual energy. Pure: no I/O, the
same config (seed included) gives the same stream.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from devices.commands import DimmingProfile
from devices.errors import SimConfigError
from devices.sim.batching import (
    MAX_ITEMS,
    Batch,
    DeviceStream,
    FloatArray,
    iso_ms_one,
    merge_streams,
)
from devices.sim.lighting import (
    DETECTION_PROB,
    HOLD_S,
    IDLE_LEVEL,
    MADIUN_ROADS,
    Road,
    photocell_times,
    road_arrivals,
)
from devices.sim.luminaire import Luminaire, simulate_luminaire
from devices.sim.luminaire_run import LuminaireSetup, SiteClock
from devices.sim.streetlight_faults import FaultPlan, plan_faults

AMBIENT_C = np.array(
    [25.0, 24.6, 24.3, 24.0, 23.8, 23.6, 23.8, 24.8, 26.3, 27.8, 29.2, 30.3,
     31.1, 31.6, 31.8, 31.5, 30.6, 29.3, 28.0, 27.1, 26.5, 26.0, 25.6, 25.3],
)  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class StreetlightSimConfig:
    """One simulated pilot run of ``days`` nights: local noon of ``start`` to local noon
    ``days`` later, so every night (sunset to sunrise) lies wholly inside.

    Dates of ``baseline_start``..``baseline_end`` (inclusive) are nights, named by the
    local date of sunset, with dimming off: every luminaire at 100 % when lit.
    """

    start: dt.date
    days: int
    seed: int
    pilot_id: str = "madiun"
    latitude: float = -7.63
    longitude: float = 111.52
    timezone: str = "Asia/Jakarta"
    devices: int = 60
    control_group: tuple[str, ...] = tuple(f"madiun-sl-{i:03d}" for i in range(1, 7))
    rated_power_w: float = 120.0
    record_interval_s: int = 300
    baseline_start: dt.date | None = None
    baseline_end: dt.date | None = None
    batch_records: int = 12
    faults: bool = True
    roads: tuple[Road, ...] = MADIUN_ROADS
    dimming: DimmingProfile | None = None  # a commanded profile replaces the default policy

    def __post_init__(self) -> None:
        if self.days < 1 or self.devices < 1:
            raise SimConfigError("days and devices must be at least 1")
        if self.record_interval_s <= 0 or 86400 % self.record_interval_s:
            raise SimConfigError("record_interval_s must divide a day")
        if not 1 <= self.batch_records <= MAX_ITEMS:
            raise SimConfigError(f"batch_records must be 1..{MAX_ITEMS}")
        if (self.baseline_start is None) != (self.baseline_end is None):
            raise SimConfigError("give both baseline_start and baseline_end, or neither")
        if self.baseline_start and self.baseline_end and self.baseline_end < self.baseline_start:
            raise SimConfigError("baseline_end is before baseline_start")
        if not self.roads:
            raise SimConfigError("at least one road")
        for step in self.dimming.steps if self.dimming else []:
            if (step.at.hour * 3600 + step.at.minute * 60) % self.record_interval_s:
                raise SimConfigError(
                    f"dimming step {step.from_} is not on the {self.record_interval_s} s grid"
                )

    def device_ids(self) -> list[str]:
        """The luminaire ids, ``{pilot}-sl-001`` onwards."""
        return [f"{self.pilot_id}-sl-{i:03d}" for i in range(1, self.devices + 1)]

    def controls(self) -> set[str]:
        """Control-group ids that exist in this run."""
        return set(self.control_group) & set(self.device_ids())

    def is_baseline(self, night: dt.date) -> bool:
        """True when dimming is off on the night that starts at dusk of ``night``."""
        b0, b1 = self.baseline_start, self.baseline_end
        return b0 is not None and b1 is not None and b0 <= night <= b1


@dataclass(frozen=True)
class StreetlightSim:
    """A finished run: ``batches()`` streams it, ``truth()`` says what really happened."""

    config: StreetlightSimConfig
    streams: tuple[DeviceStream, ...]
    truth_data: dict[str, Any]

    def batches(self) -> Iterator[Batch]:
        """Every device's messages merged in order of ``deliver_at``."""
        return merge_streams(self.streams)

    def truth(self) -> dict[str, Any]:
        """Ground truth as a JSON-able dict (a fresh copy)."""
        return copy.deepcopy(self.truth_data)


def _site_clock(cfg: StreetlightSimConfig) -> SiteClock:
    """Everything shared by the luminaires of the site: time grid, sun, weather, feeder."""
    tz = ZoneInfo(cfg.timezone)
    dates = [cfg.start + dt.timedelta(days=n) for n in range(cfg.days + 1)]
    noons = [dt.datetime.combine(d, dt.time(12), tzinfo=tz).timestamp() for d in dates]
    offsets = np.array(
        [
            dt.datetime.combine(d, dt.time(12), tzinfo=tz).utcoffset() or dt.timedelta()
            for d in dates
        ]
    )
    offsets_s = np.array([o.total_seconds() for o in offsets], dtype=np.float64)
    sunset, sunrise = photocell_times(cfg.latitude, cfg.longitude, tz, dates[:-1])
    step = float(cfg.record_interval_s)
    n = round((noons[-1] - noons[0]) / step)
    mid = noons[0] + (np.arange(n) + 0.5) * step
    day = np.clip(((mid - noons[0]) // 86400).astype(np.int64), 0, cfg.days - 1)
    hours = ((mid + offsets_s[day]) % 86400.0) / 3600.0
    rng = np.random.default_rng([cfg.seed, 4])
    weather = rng.normal(0.0, 150.0, cfg.days)  # cloudy dusks light the lamps earlier
    feeder = (
        221.5
        + 3.0 * np.cos(2 * np.pi * (hours - 3.5) / 24)
        - 6.0 * np.exp(-(((hours - 19.5) / 1.8) ** 2))
        + rng.normal(0.0, 1.5, cfg.days)[day]
    )
    xp = np.arange(-0.5, 24.5 + 1e-9, 1.0)
    table = np.concatenate([AMBIENT_C[-1:], AMBIENT_C, AMBIENT_C[:1]])
    ambient = np.interp(hours, xp, table) + rng.normal(0.0, 0.8, cfg.days)[day]
    cloud = rng.uniform(0.3, 1.0, cfg.days)[day]
    solar = 7.0 * np.clip(np.sin(np.pi * (hours - 6.0) / 12.0), 0.0, None) * cloud
    return SiteClock(
        t0=noons[0],
        step=step,
        n=n,
        dates=dates,
        noons=np.array(noons),
        utc_offsets_s=offsets_s,
        sunset=sunset,
        sunrise=sunrise,
        weather_s=weather,
        feeder_v=feeder,
        ambient_c=ambient + solar,
    )


def simulate_streetlights(cfg: StreetlightSimConfig) -> StreetlightSim:
    """Simulate every luminaire of the pilot for the configured nights."""
    clock = _site_clock(cfg)
    ids = cfg.device_ids()
    controls = cfg.controls()
    faults = (
        plan_faults(
            cfg.seed,
            [d for d in ids if d not in controls],
            cfg.days,
            clock.t0,
            clock.noons.tolist(),
            clock.step,
        )
        if cfg.faults
        else FaultPlan()
    )
    t_end = float(clock.noons[-1])
    arrivals: list[FloatArray] = []
    for k, road in enumerate(cfg.roads):
        rng = np.random.default_rng([cfg.seed, 1, k])
        arrivals.append(
            road_arrivals(
                rng, road.traffic_weight, clock.t0 - 120.0, t_end, clock.utc_offsets_s, clock.t0
            )
        )
    n_roads = len(cfg.roads)
    per_road = [len(range(k, cfg.devices, n_roads)) for k in range(n_roads)]
    lums: list[Luminaire] = []
    for i, device_id in enumerate(ids):
        road_k, pos = i % n_roads, i // n_roads
        road = cfg.roads[road_k]
        setup = LuminaireSetup(
            device_id=device_id,
            index=i + 1,
            road=road,
            position_m=(pos + 0.5) * road.spacing_m,
            road_length_m=per_road[road_k] * road.spacing_m,
            control=device_id in controls,
            baseline=tuple(cfg.is_baseline(d) for d in clock.dates[:-1]),
            rated_power_w=cfg.rated_power_w,
            seed=cfg.seed,
            batch_records=cfg.batch_records,
            dimming=cfg.dimming,
        )
        lums.append(simulate_luminaire(setup, clock, faults, arrivals[road_k]))
    return StreetlightSim(cfg, tuple(lum.stream for lum in lums), _truth(cfg, clock, faults, lums))


def _truth(
    cfg: StreetlightSimConfig, clock: SiteClock, faults: FaultPlan, lums: list[Luminaire]
) -> dict[str, Any]:
    nights = [n for lum in lums for n in lum.nights]
    routine = [n for n in nights if n["dimming"] == "adaptive" and not n["non_routine"]]

    def sums(rows: list[dict[str, Any]]) -> dict[str, float]:
        actual = sum(r["actual_kwh"] for r in rows)
        cf = sum(r["counterfactual_kwh"] for r in rows)
        return {
            "luminaire_nights": len(rows),
            "burning_hours": sum(r["burning_hours"] for r in rows),
            "actual_kwh": actual,
            "counterfactual_kwh": cf,
            "savings_kwh": cf - actual,
            "savings_pct": 100.0 * (cf - actual) / cf if cf > 0 else 0.0,
        }

    lum_rows = {lum.setup.device_id: lum.summary for lum in lums}
    totals: dict[str, Any] = sums(nights)
    for key in ("energy_kwh", "register_kwh", "standby_kwh"):
        totals[key] = sum(float(r[key]) for r in lum_rows.values())
    for key in ("records_expected", "records_streamed", "records_lost", "records_late", "events"):
        totals[key] = sum(int(r[key]) for r in lum_rows.values())
    totals["vehicles_streamed"] = sum(int(r["vehicles_streamed"]) for r in lum_rows.values())
    return {
        "kind": "streetlight",
        "pilot_id": cfg.pilot_id,
        "seed": cfg.seed,
        "start": cfg.start.isoformat(),
        "days": cfg.days,
        "timezone": cfg.timezone,
        "record_interval_s": cfg.record_interval_s,
        "night_definition": (
            "sunset to next sunrise (astral), named by the local date of sunset; "
            "a record belongs to the night when sunset < ts <= sunrise"
        ),
        "policy": {
            "idle_pct": 100.0 * IDLE_LEVEL,
            "hold_s": HOLD_S,
            "dimming_profile": cfg.dimming.model_dump(mode="json", by_alias=True)
            if cfg.dimming
            else None,
            "detection_prob": DETECTION_PROB,
            "control_group": sorted(cfg.controls()),
            "baseline_start": cfg.baseline_start.isoformat() if cfg.baseline_start else None,
            "baseline_end": cfg.baseline_end.isoformat() if cfg.baseline_end else None,
        },
        "astronomical_nights": [
            {
                "night": clock.dates[n].isoformat(),
                "sunset": iso_ms_one(float(clock.sunset[n])),
                "sunrise": iso_ms_one(float(clock.sunrise[n])),
                "hours": float(clock.sunrise[n] - clock.sunset[n]) / 3600.0,
            }
            for n in range(cfg.days)
        ],
        "luminaires": lum_rows,
        "nights": nights,
        "non_routine": [e for lum in lums for e in lum.non_routine],
        "faults_omitted": list(faults.omitted),
        "totals": totals,
        "totals_by_dimming": {
            mode: sums([n for n in nights if n["dimming"] == mode])
            for mode in ("adaptive", "control", "baseline")
        },
        "totals_routine_adaptive": sums(routine),
    }
