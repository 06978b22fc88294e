"""Hybrid drone energy: battery and generator energy and fuel burnt, from sampled telemetry.

The pilot must show at what energy cost it patrols, and how much of that energy came from
the petrol generator. Telemetry gives instantaneous power (battery V·A, generator W) and a
fuel *level*, sampled over a lossy link, so energy is integrated with explicit rules:

- sample-and-hold: a sample stands for the time until the next sample carrying the same
  field, capped at ``max_gap_s`` — a data gap never turns into hours of assumed power;
  the last sample stands for ``last_hold_s`` (the nominal record interval);
- battery: ``battery_kwh`` counts discharge only (positive V·A — energy the pack
  delivered); charging (negative V·A, from the generator in flight or a ground charger)
  is reported apart as ``battery_charged_kwh`` and never nets discharge down;
- generator: ``generator_kwh`` integrates ``gen_power_w`` (negative readings count as 0);
- generator share = generator / (generator + battery discharge). Energy the generator
  puts into the pack and the pack gives back is counted on both sides, so the share is a
  share of energy *delivered by the two sources*, not of energy consumed by the motors;
- fuel is a level, so fuel used is its net fall between consecutive readings, except that
  a rise of more than ``refuel_min_l`` is a refuel and is left out (small rises are gauge
  noise and offset small falls, so noise does not inflate the total). Gaps are not capped
  for fuel: a level difference is real however long the gap.

Every function returns per-sample contributions, so the caller can sum them per window
or bin them per day with ``np.bincount``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

J_PER_KWH = 3.6e6


def hold_s(ts: FloatArray, valid: BoolArray, *, max_gap_s: float, last_hold_s: float) -> FloatArray:
    """Seconds [s] each valid sample stands for (0 for invalid samples).

    Until the next valid sample, capped at ``max_gap_s``; the last valid one holds
    ``min(last_hold_s, max_gap_s)``.
    """
    out = np.zeros(ts.shape[0])
    idx = np.flatnonzero(valid)
    if idx.size:
        out[idx[:-1]] = np.minimum(np.diff(ts[idx]), max_gap_s)
        out[idx[-1]] = max(min(last_hold_s, max_gap_s), 0.0)
    return out


def energy_kwh(
    ts: FloatArray, power_w: FloatArray, *, max_gap_s: float, last_hold_s: float
) -> FloatArray:
    """Per-sample energy [kWh] of a sampled power [W]; NaN samples are skipped."""
    valid = np.isfinite(power_w)
    held = hold_s(ts, valid, max_gap_s=max_gap_s, last_hold_s=last_hold_s)
    return np.where(valid, power_w, 0.0) * held / J_PER_KWH


def fuel_used_l(fuel_l: FloatArray, *, refuel_min_l: float) -> FloatArray:
    """Per-sample fuel used [L]: fall of the level since the previous reading, refuels out.

    Attributed to the later reading; may be slightly negative where the gauge wobbles
    up, so sums over a window should be floored at zero by the caller.
    """
    out = np.zeros(fuel_l.shape[0])
    idx = np.flatnonzero(np.isfinite(fuel_l))
    if idx.size > 1:
        rise = np.diff(fuel_l[idx])
        out[idx[1:]] = np.where(rise > refuel_min_l, 0.0, -rise)
    return out


@dataclass(frozen=True, eq=False)
class EnergySamples:
    """Per-sample contributions of one drone, aligned with its ``ts``."""

    battery_kwh: FloatArray
    battery_charged_kwh: FloatArray
    generator_kwh: FloatArray
    fuel_l: FloatArray


def hybrid_energy_samples(
    ts: FloatArray,
    battery_v: FloatArray,
    battery_a: FloatArray,
    gen_power_w: FloatArray,
    fuel_l: FloatArray,
    *,
    max_gap_s: float,
    last_hold_s: float,
    refuel_min_l: float,
) -> EnergySamples:
    """Battery discharge/charge, generator energy [kWh] and fuel [L] per sample."""
    battery_w = battery_v * battery_a
    battery = energy_kwh(ts, battery_w, max_gap_s=max_gap_s, last_hold_s=last_hold_s)
    generator = energy_kwh(
        ts, np.clip(gen_power_w, 0.0, None), max_gap_s=max_gap_s, last_hold_s=last_hold_s
    )
    return EnergySamples(
        battery_kwh=np.clip(battery, 0.0, None),
        battery_charged_kwh=np.clip(-battery, 0.0, None),
        generator_kwh=generator,
        fuel_l=fuel_used_l(fuel_l, refuel_min_l=refuel_min_l),
    )


def generator_share_pct(generator_kwh: float, battery_kwh: float) -> float | None:
    """Generator energy as % of generator + battery discharge; None when both are zero."""
    total = generator_kwh + battery_kwh
    return 100.0 * generator_kwh / total if total > 0 else None
