"""One luminaire controller over a whole run: when it burns, at what level, what it reports.

The fleet simulator (`streetlights`) sets up the site and the faults; this module turns one
luminaire's burning periods and detections into the readings its controller would report
every interval and the messages it sends. The energy register is the exact integral of the
true power, as is the ground truth, so the two agree to the register's 1 Wh resolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.signal import lfilter

from devices.commands import DimmingProfile
from devices.sim.batching import (
    DeviceStream,
    FloatArray,
    iso_ms,
    late_records,
    plan_messages,
    ready_times,
)
from devices.sim.lighting import (
    IDLE_LEVEL,
    BusyProfile,
    busy_profile,
    driver_power_fraction,
    luminaire_detections,
    profile_levels,
)
from devices.sim.luminaire_run import (
    FULL,
    IDLE,
    Burning,
    LuminaireRun,
    LuminaireSetup,
    SiteClock,
    luminaire_events,
    luminaire_summary,
    mine,
    night_truth,
)
from devices.sim.streetlight_faults import FaultPlan

HOUSING_TAU_S = 1200.0  # thermal time constant of the luminaire housing


@dataclass(frozen=True)
class Luminaire:
    """A simulated luminaire: what it sends and the truth about it."""

    setup: LuminaireSetup
    stream: DeviceStream
    nights: list[dict[str, Any]]
    summary: dict[str, Any]
    non_routine: list[dict[str, Any]]


def _burning(
    s: LuminaireSetup, faults: FaultPlan, on: FloatArray, off: FloatArray, sunrises: FloatArray
) -> Burning:
    """Burning periods: one per night inside sunset..sunrise, plus a day-burning fault."""
    lf, db = mine(faults.lamp_failure, s.device_id), mine(faults.day_burning, s.device_id)
    out: list[tuple[float, float, bool, int]] = []
    for n in range(len(on)):
        if lf and lf.first <= n < lf.first + lf.nights:
            continue  # commanded on, but the lamp does not light
        out.append((float(on[n]), float(off[n]), s.control or s.baseline[n], n))
    if db:  # the lamp stays lit at full output; after sunrise it burns by day (night -1)
        sunrise = float(sunrises[db.day - 1])
        out.append((float(off[db.day - 1]), sunrise, True, db.day - 1))
        out.append((sunrise, db.repaired_at, True, -1))
    out.sort()
    cols = list(zip(*out, strict=True)) if out else [(), (), (), ()]
    return Burning(
        np.array(cols[0], dtype=np.float64),
        np.array(cols[1], dtype=np.float64),
        np.array(cols[2], dtype=bool),
        np.array(cols[3], dtype=np.int64),
    )


def _slices(a: float, b: float, clock: SiteClock) -> tuple[Any, FloatArray, FloatArray]:
    """The intervals a burning period [a, b) touches, and its part of each."""
    k0 = int((a - clock.t0) // clock.step)
    k1 = min(int(np.ceil((b - clock.t0) / clock.step)), clock.n)
    ks = np.arange(k0, k1)
    lo = np.clip(clock.t0 + ks * clock.step, a, b)
    hi = np.clip(clock.t0 + (ks + 1) * clock.step, a, b)
    return ks, lo, hi


def _light(
    burn: Burning, busy: BusyProfile, clock: SiteClock
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Seconds lit and seconds at 100 % per interval, and seconds at 100 % per period."""
    t_on = np.zeros(clock.n)
    t_full = np.zeros(clock.n)
    full_per = np.zeros(len(burn.start))
    for j, (a, b) in enumerate(zip(burn.start.tolist(), burn.end.tolist(), strict=True)):
        ks, lo, hi = _slices(a, b, clock)
        full = hi - lo if burn.full[j] else busy.measure(hi) - busy.measure(lo)
        t_on[ks] += hi - lo
        t_full[ks] += full
        full_per[j] = float(full.sum())
    return t_on, t_full, full_per


@dataclass(frozen=True)
class Profiled:
    """Per-interval light under a commanded dimming profile (fractions × seconds)."""

    lamp_frac: FloatArray  # Σ driver power fraction × seconds
    level_sum: FloatArray  # Σ light level × seconds
    lamp_per: FloatArray  # lamp_frac per burning period


def _profiled(
    burn: Burning, busy: BusyProfile, clock: SiteClock, profile: DimmingProfile
) -> Profiled:
    """The profile's base level per interval (steps on the interval grid), raised to the
    on-detect level while busy; forced periods (control, baseline, faults) stay at 100 %."""
    starts = np.asarray(clock.t0 + np.arange(clock.n) * clock.step, dtype=np.float64)
    base = profile_levels(profile, starts, clock.utc_offsets_s, clock.t0)
    detect = np.maximum(base, profile.adaptive.on_detect_pct / 100.0 if profile.adaptive else 0)
    f_base, f_detect = driver_power_fraction(base), driver_power_fraction(detect)
    lamp_frac, level_sum = np.zeros(clock.n), np.zeros(clock.n)
    lamp_per = np.zeros(len(burn.start))
    for j, (a, b) in enumerate(zip(burn.start.tolist(), burn.end.tolist(), strict=True)):
        ks, lo, hi = _slices(a, b, clock)
        if burn.full[j]:
            frac, level = FULL * (hi - lo), hi - lo
        else:
            busy_s = busy.measure(hi) - busy.measure(lo)
            rest = hi - lo - busy_s
            frac = f_detect[ks] * busy_s + f_base[ks] * rest
            level = detect[ks] * busy_s + base[ks] * rest
        lamp_frac[ks] += frac
        level_sum[ks] += level
        lamp_per[j] = float(frac.sum())
    return Profiled(lamp_frac, level_sum, lamp_per)


def simulate_luminaire(
    s: LuminaireSetup, clock: SiteClock, faults: FaultPlan, arrivals: FloatArray
) -> Luminaire:
    """Simulate one luminaire from its own random stream (independent of the others)."""
    rng = np.random.default_rng([s.seed, 2, s.index])
    p_full = s.rated_power_w * float(rng.uniform(0.95, 1.05))
    standby = float(rng.uniform(0.4, 0.6))
    reg0 = float(rng.integers(150_000, 1_200_000))
    boot0 = int(rng.integers(1, 12))
    nights = len(clock.sunset)
    # Photocells switch some minutes after sunset and before sunrise, earlier on cloudy
    # evenings; each has its own bias. They stay within the astronomical night.
    on = clock.sunset + 300.0 + rng.normal(0, 120) + clock.weather_s + rng.normal(0, 60, nights)
    on = np.maximum(on, clock.sunset + 60.0)
    off = clock.sunrise - 180.0 + rng.normal(0, 90) - 0.5 * clock.weather_s
    off = np.minimum(off + rng.normal(0, 60, nights), clock.sunrise - 60.0)
    detections = luminaire_detections(rng, arrivals, s.position_m, s.road_length_m)
    burn = _burning(s, faults, on, off, clock.sunrise)
    profile = s.dimming
    if profile is None:
        busy = busy_profile(detections)
    elif profile.adaptive is None:
        busy = busy_profile(np.empty(0))  # steps only: detections change nothing
    else:
        busy = busy_profile(detections, float(profile.adaptive.hold_s))
    t_on, t_full, full_per = _light(burn, busy, clock)
    profiled = _profiled(burn, busy, clock, profile) if profile is not None else None

    step, n = clock.step, clock.n
    ts = np.asarray(clock.t0 + (np.arange(n) + 1.0) * step, dtype=np.float64)
    lamp_frac = FULL * t_full + IDLE * (t_on - t_full) if profiled is None else profiled.lamp_frac
    energy_j = p_full * lamp_frac + standby * (step - t_on)
    cum_wh = np.cumsum(energy_j) / 3600.0
    boots = np.full(n, boot0, dtype=np.int64)
    register = np.floor(reg0 + cum_wh)
    rb = mine(faults.reboot, s.device_id)
    if rb:
        boots[rb.interval :] += 1
        register[rb.interval :] = np.floor(cum_wh[rb.interval :] - cum_wh[rb.interval - 1])
    keep = np.ones(n, dtype=bool)
    gap = mine(faults.gap, s.device_id)
    if gap:
        g0 = float(clock.sunset[gap.night]) + gap.after_sunset_s
        keep &= ~((ts >= g0) & (ts < g0 + gap.duration_s))
    out = mine(faults.outage, s.device_id)
    edges = clock.t0 + np.arange(n + 1) * step
    run = LuminaireRun(
        s=s,
        clock=clock,
        p_full=p_full,
        standby=standby,
        reg0=reg0,
        boot0=boot0,
        on=on,
        off=off,
        burn=burn,
        full_per=full_per,
        t_on=t_on,
        ts=ts,
        energy_j=energy_j,
        vehicles=np.diff(np.searchsorted(detections, edges, side="right")).astype(np.int64),
        boots=boots,
        register=register,
        keep=keep,
        ready=ready_times(ts, [(out.lost, out.restored)] if out else []),
        lamp_per=profiled.lamp_per if profiled is not None else None,
    )
    columns = _columns(run, t_full, rng, profiled)
    plan = plan_messages(
        ts[keep], boots[keep], run.ready[keep], clock.t0 + step / 2, s.batch_records * step
    )
    events, non_routine = luminaire_events(run, faults, late_records(plan, ts[keep]))
    summary = luminaire_summary(run) | {
        "records_late": late_records(plan, ts[keep]),
        "events": len(events),
    }
    stream = DeviceStream(s.device_id, columns, plan, events)
    return Luminaire(s, stream, night_truth(run, non_routine), summary, non_routine)


def _columns(
    run: LuminaireRun, t_full: FloatArray, rng: np.random.Generator, profiled: Profiled | None
) -> dict[str, np.ndarray[Any, Any]]:
    """What the controller reports for each interval (records lost in a gap left out)."""
    ts, burn, n, keep = run.ts, run.burn, len(run.ts), run.keep
    idx = np.searchsorted(burn.start, ts, side="right") - 1
    lamp_on = (idx >= 0) & (ts < burn.end[np.clip(idx, 0, None)]) if len(burn.start) else (ts < 0)
    # Readings average over the part of the interval spent in the state reported at ts (the
    # controller restarts its averages at a switch), so power and dim level always describe
    # the same state; the register alone carries the exact energy of switching intervals.
    lit = np.maximum(run.t_on, 1e-9)
    if profiled is None:
        level = IDLE_LEVEL + (1.0 - IDLE_LEVEL) * t_full / lit
        lamp_w = run.p_full * (FULL * t_full + IDLE * (run.t_on - t_full)) / lit
    else:
        level = profiled.level_sum / lit
        lamp_w = run.p_full * profiled.lamp_frac / lit
    dim = np.where(lamp_on, np.round(100.0 * level, 1), 0.0)
    power = np.where(lamp_on, lamp_w, run.standby)
    reading = np.clip(power * (1 + rng.normal(0, 0.004, n)) + rng.normal(0, 0.02, n), 0, None)
    reading = np.round(reading, 1)
    volts = run.clock.feeder_v + rng.normal(0, 1.0) - 0.012 * power + rng.normal(0, 0.35, n)
    frac = power / run.p_full
    pf = np.where(
        frac > 0.05,
        np.clip(0.86 + 0.12 * frac + rng.normal(0, 0.003, n), 0.0, 0.99),
        0.42 + rng.normal(0, 0.01, n),
    )
    # the housing warms with a time constant of ~20 min after the lamp switches
    lag = float(np.exp(-run.clock.step / HOUSING_TAU_S))
    heat = lfilter([1.0 - lag], [1.0, -lag], 9.0 * frac)
    temp = run.clock.ambient_c + heat + rng.normal(0, 0.6) + rng.normal(0, 0.25, n)
    return {
        "ts": iso_ms(ts[keep]),
        "power_w": reading[keep],
        "energy_wh": run.register[keep],
        "dim_pct": dim[keep],
        "lamp_on": lamp_on[keep],
        "vehicles": run.vehicles[keep],
        "voltage_v": np.round(volts, 1)[keep],
        "current_a": np.round(reading / (volts * pf), 3)[keep],
        "power_factor": np.round(pf, 3)[keep],
        "temp_c": np.round(temp, 1)[keep],
    }
