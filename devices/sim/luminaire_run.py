"""One luminaire's true state over a run, and what its event log and the truth say.

`luminaire` simulates the physics and the readings; this module holds the shared state
(site clock, set-up, per-interval truth) and turns it into the controller's events and the
ground-truth rows (per night and per luminaire) that an evaluator checks a report against.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from devices.commands import DimmingProfile
from devices.sim.batching import FloatArray, iso_ms_one, ready_times
from devices.sim.lighting import IDLE_LEVEL, Road, driver_power_fraction
from devices.sim.streetlight_faults import FaultPlan
from devices.sim.truth import register_increments_wh

BoolArray = npt.NDArray[np.bool_]
FULL = float(driver_power_fraction(1.0))
IDLE = float(driver_power_fraction(IDLE_LEVEL))


@dataclass(frozen=True)
class SiteClock:
    """The time grid and site-wide conditions; per-night arrays have one entry per night,
    ``dates``/``noons``/``utc_offsets_s`` one more (the closing noon), per-interval arrays
    ``n``."""

    t0: float
    step: float
    n: int
    dates: list[dt.date]
    noons: FloatArray
    utc_offsets_s: FloatArray
    sunset: FloatArray
    sunrise: FloatArray
    weather_s: FloatArray
    feeder_v: FloatArray
    ambient_c: FloatArray


@dataclass(frozen=True)
class LuminaireSetup:
    """Where a luminaire stands and how it is controlled."""

    device_id: str
    index: int
    road: Road
    position_m: float
    road_length_m: float
    control: bool
    baseline: tuple[bool, ...]
    rated_power_w: float
    seed: int
    batch_records: int
    dimming: DimmingProfile | None = None  # a commanded profile instead of the default policy


@dataclass(frozen=True)
class Burning:
    """Periods with the lamp lit, split at night boundaries (local noon)."""

    start: FloatArray
    end: FloatArray
    full: BoolArray  # forced to 100 % (control, baseline, fault) rather than adaptive
    night: npt.NDArray[np.int64]


@dataclass(frozen=True)
class LuminaireRun:
    """One luminaire's true state per interval, shared by its records, events and truth."""

    s: LuminaireSetup
    clock: SiteClock
    p_full: float
    standby: float
    reg0: float
    boot0: int
    on: FloatArray  # photocell switch-on per night (when the lamp should light)
    off: FloatArray
    burn: Burning
    full_per: FloatArray  # seconds at 100 % per burning period
    t_on: FloatArray
    ts: FloatArray  # record times: a record closes its interval
    energy_j: FloatArray
    vehicles: npt.NDArray[np.int64]
    boots: npt.NDArray[np.int64]
    register: FloatArray
    keep: BoolArray  # False for records lost in the data gap
    ready: FloatArray
    lamp_per: FloatArray | None = None  # lamp energy per period / p_full (dimming profile)

    @property
    def lamp_j(self) -> FloatArray:
        """Lamp energy of each burning period (J)."""
        b = self.burn
        if self.lamp_per is not None:
            profiled: FloatArray = self.p_full * self.lamp_per
            return profiled
        out: FloatArray = self.p_full * (
            FULL * self.full_per + IDLE * (b.end - b.start - self.full_per)
        )
        return out


def mine(fault: Any, device_id: str) -> Any:
    """The fault if it strikes this luminaire, else None."""
    return fault if fault is not None and fault.device_id == device_id else None


def luminaire_events(
    run: LuminaireRun, faults: FaultPlan, late: int
) -> tuple[list[tuple[dict[str, Any], float, int]], list[dict[str, Any]]]:
    """The controller's events (with send time and boot) and the truth's non-routine list."""
    s, clock = run.s, run.clock
    out = mine(faults.outage, s.device_id)
    rb = mine(faults.reboot, s.device_id)
    reboot_at = clock.t0 + rb.interval * clock.step if rb else np.inf
    events: list[tuple[dict[str, Any], float, int]] = []
    non_routine: list[dict[str, Any]] = []

    def event(t: float, kind: str, code: str | None, detail: str) -> None:
        t = round(t, 3)  # the instant the text says, to the millisecond
        body: dict[str, Any] = {"ts": iso_ms_one(t), "type": kind}
        if code:
            body["code"] = code
        body["detail"] = detail
        deliver = float(ready_times(np.array([t]), [(out.lost, out.restored)] if out else [])[0])
        events.append((body, deliver, run.boot0 + int(t >= reboot_at)))

    def fault(code: str, a: float, b: float, **extra: Any) -> None:
        row = {"device_id": s.device_id, "code": code, "start": iso_ms_one(a)}
        non_routine.append(row | {"end": iso_ms_one(b)} | extra)

    lf, db = mine(faults.lamp_failure, s.device_id), mine(faults.day_burning, s.device_id)
    if lf:
        t = float(run.on[lf.first])
        event(t + 30.0, "fault", "lamp_failure", "no lamp current after switch-on")
        event(lf.repaired_at, "fault_cleared", "lamp_failure", "lamp replaced")
        fault("lamp_failure", t, lf.repaired_at)
    if db:
        t = float(run.off[db.day - 1])
        event(t + 900.0, "fault", "day_burning", "lamp lit in daylight; photocell relay stuck")
        event(db.repaired_at, "fault_cleared", "day_burning", "relay replaced")
        fault("day_burning", t, db.repaired_at)
    if out:
        event(out.lost + 60.0, "fault", "comm_failure", "uplink lost; buffering records")
        event(out.restored, "fault_cleared", "comm_failure", "uplink restored; sending backlog")
        fault("comm_failure", out.lost, out.restored, records_late=late)
    if rb:
        detail = "firmware 2.4.1 installed; controller restarted, energy register reset"
        event(float(reboot_at) + 45.0, "config_changed", None, detail)
        fault("register_reset", float(reboot_at), float(reboot_at), boot_after=run.boot0 + 1)
    gap = mine(faults.gap, s.device_id)
    if gap:
        g0 = float(clock.sunset[gap.night]) + gap.after_sunset_s
        fault("data_gap", g0, g0 + gap.duration_s, records_lost=int((~run.keep).sum()))
    if not s.control:
        for k in range(1, len(s.baseline)):
            if s.baseline[k] != s.baseline[k - 1]:
                detail = (
                    "dimming profile: full output (baseline period)"
                    if s.baseline[k]
                    else "dimming profile: traffic-adaptive, 30 % idle, 90 s hold"
                )
                event(float(clock.noons[k]) + 30.0, "config_changed", None, detail)
    return events, non_routine


def night_truth(run: LuminaireRun, non_routine: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Truth per night: sunset to sunrise, holding the records with sunset < ts <= sunrise.

    ``actual_kwh`` is the lamp's exact energy while burning; ``window_kwh`` what the
    register adds up over the night's records (standby before switch-on included).
    """
    s, clock, burn = run.s, run.clock, run.burn
    lamp_j = run.lamp_j
    rows = []
    for k in range(len(clock.sunset)):
        this = burn.night == k
        burning_s = float((burn.end - burn.start)[this].sum())
        w0, w1 = float(clock.sunset[k]), float(clock.sunrise[k])
        lo, hi = (int(i) for i in np.searchsorted(run.ts, [w0, w1], side="right"))
        codes = sorted(
            {
                f["code"]
                for f in non_routine
                if _iso_epoch(f["start"]) < w1 and _iso_epoch(f["end"]) >= w0
            }
        )
        actual = float(lamp_j[this].sum()) / 3.6e6
        cf = run.p_full * burning_s / 3.6e6
        streamed = int(run.keep[lo:hi].sum())
        rows.append(
            {
                "device_id": s.device_id,
                "night": clock.dates[k].isoformat(),
                "dimming": "control" if s.control else "baseline" if s.baseline[k] else "adaptive",
                "burning_hours": burning_s / 3600.0,
                "actual_kwh": actual,
                "counterfactual_kwh": cf,
                "savings_kwh": cf - actual,
                "window_kwh": float(run.energy_j[lo:hi].sum()) / 3.6e6,
                "vehicles": int(run.vehicles[lo:hi].sum()),
                "expected_records": hi - lo,
                "streamed_records": streamed,
                "completeness": streamed / max(hi - lo, 1),
                "complete": bool(streamed >= 0.9 * (hi - lo)),
                "non_routine": codes,
            }
        )
    return rows


def luminaire_summary(run: LuminaireRun) -> dict[str, Any]:
    """Truth per luminaire over the whole run."""
    s, keep, burn = run.s, run.keep, run.burn
    return {
        "road": s.road.name,
        "traffic_weight": s.road.traffic_weight,
        "position_m": s.position_m,
        "control": s.control,
        "p_full_w": run.p_full,
        "p_idle_w": run.p_full * IDLE,
        "standby_w": run.standby,
        "boot_first": run.boot0,
        "boot_last": int(run.boots[-1]),
        "register_start_wh": run.reg0,
        "energy_kwh": float(run.energy_j.sum()) / 3.6e6,
        "register_kwh": register_increments_wh(run.register[keep].tolist(), run.reg0) / 1000.0,
        "standby_kwh": run.standby * float((run.clock.step - run.t_on).sum()) / 3.6e6,
        "lamp_kwh": float(run.lamp_j.sum()) / 3.6e6,
        "burning_hours": float((burn.end - burn.start).sum()) / 3600.0,
        "day_burning_hours": float((burn.end - burn.start)[burn.night < 0].sum()) / 3600.0,
        "day_burning_kwh": float(run.lamp_j[burn.night < 0].sum()) / 3.6e6,
        "records_expected": len(run.ts),
        "records_streamed": int(keep.sum()),
        "records_lost": int((~keep).sum()),
        "vehicles_streamed": int(run.vehicles[keep].sum()),
    }


def _iso_epoch(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
