"""Per luminaire and night: interval energy, burning records, full power, daylight burning.

Why: the savings computation (`analytics.savings`) and its findings all rest on one
accounting of each luminaire-night — which records are valid, which burn, the energy of
each interval from the cumulative register (or power × interval where it cannot be
trusted) and each luminaire's full power. Kept apart so each step is testable on its own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from analytics.errors import InputError
from analytics.nights import NightCalendar, assign_nights

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

SEM_MEDIAN = 1.2533  # sqrt(pi/2): standard error of a median ≈ 1.2533·σ/√n
MIN_FULL_POWER_SAMPLES = 12
"""Fewest 100 % samples from which a luminaire's own full power is trusted (baseline or
reporting window): an hour of 5-minute records, enough that the median's standard error
(≈ 1.25·σ/√12 ≈ 0.36·σ, σ ≈ 1 % of power) stays well under the few-percent spread between
luminaires of one model that pooling would ignore (METHODS "Per-luminaire full power")."""
FULL_POWER_SOURCES = ("baseline", "own_reporting", "control", "rated")
FULL_LEVEL_PCT = 100.0
GAP_FACTOR = 1.5  # a register diff over more than 1.5 intervals spans missing records
BURN_TOLERANCE_H = 1.0  # lamp metered off this long within a night: a finding (outage, failure)
SOURCES = ("register", "register-reset", "power-register-missing", "power-after-gap")


@dataclass(frozen=True)
class LuminaireSeries:
    """5-minute records of one luminaire, `ts` epoch seconds [s] strictly ascending.

    `power_w` [W], `energy_wh` cumulative register [Wh] (NaN where missing), `dim_pct`
    [%], `lamp_on` bool; all arrays of one length.
    """

    device_id: str
    ts: FloatArray
    power_w: FloatArray
    energy_wh: FloatArray
    dim_pct: FloatArray
    lamp_on: BoolArray


@dataclass(frozen=True)
class SavingsParams:
    """Pilot settings (DESIGN §4 `[streetlight]`) and method parameters."""

    timezone: str
    latitude: float
    longitude: float
    rated_power_w: float
    record_interval_s: float
    control_group: tuple[str, ...]
    baseline_start: dt.date | None
    baseline_end: dt.date | None
    road_area_m2: float | None
    grid_kg_co2_per_kwh: float
    tariff_per_kwh: float
    currency: str
    sufficiency: float = 0.9
    meter_accuracy_pct: float = 1.0
    confidence: float = 0.90
    day_burning_tolerance_min: float = 30.0
    rated_power_tolerance_pct: float = 10.0


@dataclass(frozen=True)
class FullPower:
    """Full-power estimate of one luminaire [W] and its standard errors [W]."""

    watts: float
    source: str
    samples: int
    se_independent: float
    se_common: float


@dataclass(frozen=True)
class NightTable:
    """Per-luminaire, per-night accounting (rows follow `device_ids`, columns the calendar)."""

    device_ids: tuple[str, ...]
    calendar: NightCalendar
    record_nights: tuple[IntArray, ...]  # night index of each record, -1 in daylight
    valid: FloatArray  # records with a known interval energy
    burning: FloatArray  # of which lamp on
    actual_wh: FloatArray
    sources: FloatArray  # luminaires × nights × len(SOURCES) record counts


def interval_energy_wh(
    ts: FloatArray, power_w: FloatArray, energy_wh: FloatArray, interval_s: float
) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """Energy [Wh] of the interval ending at each record, and its source (index in SOURCES).

    A record's energy depends only on itself and, when it lies within 1.5 intervals, on
    the record before it: records further back never matter, so a loader may skip them.
    """
    energy = power_w * (interval_s / 3600.0)
    source = np.full(ts.size, 2, dtype=np.int64)
    if ts.size == 0:
        return energy, source
    after_gap = np.where(np.isfinite(energy_wh), 3, 2)  # no usable previous record
    source[0] = after_gap[0]
    if ts.size > 1:
        diff = np.diff(energy_wh)
        known = np.isfinite(energy_wh[1:]) & np.isfinite(energy_wh[:-1])
        adjacent = np.diff(ts) <= GAP_FACTOR * interval_s
        use = known & adjacent
        energy[1:] = np.where(use, np.where(diff >= 0, diff, energy_wh[1:]), energy[1:])
        source[1:] = np.where(use, np.where(diff >= 0, 0, 1), np.where(adjacent, 2, after_gap[1:]))
    return energy, source


def check_series(series: LuminaireSeries) -> None:
    """Reject series whose arrays differ in shape or whose time runs backwards."""
    n = np.shape(series.ts)
    arrays = (series.power_w, series.energy_wh, series.dim_pct, series.lamp_on)
    if len(n) != 1 or any(np.shape(a) != n for a in arrays):
        raise InputError(f"{series.device_id}: arrays must be 1-D and of one length")
    if n[0] > 1 and not np.all(np.diff(series.ts) > 0):
        raise InputError(f"{series.device_id}: timestamps must be strictly ascending")


def night_table(
    series: Sequence[LuminaireSeries], calendar: NightCalendar, interval_s: float
) -> NightTable:
    """Count valid and burning records and sum actual energy per luminaire-night."""
    nights = len(calendar)
    shape = (len(series), nights)
    valid, burning, actual = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    sources = np.zeros((*shape, len(SOURCES)))
    record_nights = tuple(assign_nights(s.ts, calendar) for s in series)
    for row, (s, idx) in enumerate(zip(series, record_nights, strict=True)):
        energy, source = interval_energy_wh(s.ts, s.power_w, s.energy_wh, interval_s)
        keep = (idx >= 0) & np.isfinite(energy)
        at, on = idx[keep], np.asarray(s.lamp_on, dtype=bool)[keep]
        valid[row] = np.bincount(at, minlength=nights)
        burning[row] = np.bincount(at[on], minlength=nights)
        actual[row] = np.bincount(at, weights=energy[keep], minlength=nights)
        flat = np.bincount(at * len(SOURCES) + source[keep], minlength=nights * len(SOURCES))
        sources[row] = flat.reshape(nights, len(SOURCES))
    ids = tuple(s.device_id for s in series)
    return NightTable(ids, calendar, record_nights, valid, burning, actual, sources)


def full_level(s: LuminaireSeries) -> BoolArray:
    lit = np.asarray(s.lamp_on, dtype=bool) & np.isfinite(s.power_w)
    return np.asarray(lit & (s.dim_pct >= FULL_LEVEL_PCT - 1e-6), dtype=bool)


def _own_samples(s: LuminaireSeries, idx: IntArray, window: BoolArray | None) -> FloatArray | None:
    """Power [W] of the luminaire's lit 100 % records in the nights of `window`."""
    if window is None:
        return None
    inside = (idx >= 0) & window[np.maximum(idx, 0)]
    return np.asarray(s.power_w[full_level(s) & inside], dtype=np.float64)


def _own(samples: FloatArray | None, source: str) -> FullPower | None:
    """A luminaire's own median full power, if it has enough samples."""
    if samples is None or samples.size < MIN_FULL_POWER_SAMPLES:
        return None
    se = SEM_MEDIAN * float(np.std(samples, ddof=1)) / np.sqrt(samples.size)
    return FullPower(float(np.median(samples)), source, samples.size, se, 0.0)


def own_full_power(
    s: LuminaireSeries, idx: IntArray, window: BoolArray | None, source: str
) -> FullPower | None:
    """The luminaire's own median over its 100 % samples in the nights of `window`."""
    return _own(_own_samples(s, idx, window), source)


def pool_parts(series: Sequence[LuminaireSeries], control: set[str]) -> list[FloatArray]:
    """The control luminaires' 100 % power samples [W], in series order."""
    return [s.power_w[full_level(s)] for s in series if s.device_id in control]


PoolSource = Callable[[], Sequence[FloatArray]]
"""The control group's 100 % power samples [W] per control luminaire (device order), asked
for only when some luminaire needs the pooled value."""


@dataclass
class _Pool:
    """The pooled control-group value, computed on first use."""

    parts: PoolSource
    _done: tuple[FloatArray, list[float]] | None = None

    def get(self) -> tuple[FloatArray, list[float]]:
        if self._done is None:
            parts = list(self.parts())
            medians = [float(np.median(p)) for p in parts if p.size >= MIN_FULL_POWER_SAMPLES]
            self._done = (np.concatenate(parts) if parts else np.empty(0), medians)
        return self._done

    def value(self) -> FullPower | None:
        pool, medians = self.get()
        if pool.size < MIN_FULL_POWER_SAMPLES:
            return None
        spread = float(np.std(medians, ddof=1)) if len(medians) >= 2 else 0.0
        se_pool = SEM_MEDIAN * float(np.std(pool, ddof=1)) / np.sqrt(pool.size)
        return FullPower(float(np.median(pool)), "control", pool.size, spread, se_pool)


def _window_own(
    full_w: FloatArray, full_night: IntArray, window: BoolArray | None, source: str
) -> FullPower | None:
    """A luminaire's own median over its lit 100 % samples in the nights of `window`."""
    return None if window is None else _own(full_w[window[full_night]], source)


def full_power(
    device_ids: Sequence[str],
    full_w: Sequence[FloatArray],
    full_night: Sequence[IntArray],
    baseline: BoolArray | None,
    control: set[str],
    params: SavingsParams,
    reporting: BoolArray | None = None,
    *,
    own_baseline: Sequence[FullPower | None] | None = None,
    pool: PoolSource,
) -> tuple[list[FullPower], list[str]]:
    """P_full per luminaire, first that applies (source in `FULL_POWER_SOURCES`):

    its own baseline median; its own median over its 100 % samples in the `reporting`
    nights (luminaires that brighten on traffic); the pooled control group; rated power.
    Luminaires of one model differ by a few percent, so a pooled value is a last resort.
    `full_w`/`full_night` are each luminaire's lit 100 % samples inside nights and their
    night index (`analytics.night_accounts`); `own_baseline` gives the baseline medians
    already measured (`analytics.savings_baseline`) and `pool` the control group's samples.
    """
    warnings: list[str] = []
    pooled = _Pool(pool)
    rated_se = params.rated_power_w * params.rated_power_tolerance_pct / 100.0 / np.sqrt(3.0)
    result: list[FullPower] = []
    fallback: dict[str, list[str]] = {"own_reporting": [], "control": [], "rated": []}
    for k, device_id in enumerate(device_ids):
        base = (
            own_baseline[k]
            if own_baseline is not None
            else _window_own(full_w[k], full_night[k], baseline, "baseline")
        )
        own = base or _window_own(full_w[k], full_night[k], reporting, "own_reporting")
        if own is not None:
            result.append(own)
        else:
            result.append(
                pooled.value() or FullPower(params.rated_power_w, "rated", 0, 0.0, rated_se)
            )
        source = result[-1].source
        # A control luminaire's own samples are in the pool: it falls back only on its own.
        if source in fallback and (
            device_id not in control or (source != "own_reporting" and not pooled.get()[0].size)
        ):
            fallback[source].append(device_id)
    if baseline is not None and fallback["own_reporting"]:
        warnings.append(
            "too few baseline full-power samples, own reporting-window 100 % samples used:"
            f" {fallback['own_reporting']}"
        )
    if fallback["control"]:
        warnings.append(
            f"too few own full-power samples, control-group value used: {fallback['control']}"
        )
    if fallback["rated"]:
        warnings.append(f"no measured full power, rated power used: {fallback['rated']}")
    if any(f.source == "control" for f in result) and len(pooled.get()[1]) < 2:
        warnings.append("fewer than 2 control luminaires: between-luminaire spread unknown")
    return result, warnings


def iso_seconds(ts: FloatArray) -> list[str]:
    """RFC 3339 UTC strings of epoch seconds, to the second."""
    seconds = np.round(ts).astype("datetime64[s]")
    return [f"{t}+00:00" for t in np.datetime_as_string(seconds)]
