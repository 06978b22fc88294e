"""Verified streetlight savings, IPMVP Option B (retrofit isolation, all parameters measured).

Why: a pilot must prove the energy its adaptive dimming saves, in a form evaluators know.
Per treated luminaire i and night n (nights from `analytics.nights`, sunset → sunrise,
named by the local date of their sunset):

- burning hours ``h_on(i,n)`` = lamp-on records × record interval (metered);
- counterfactual ``E_cf(i,n) = P_full(i) · h_on(i,n)``; ``P_full`` is the median active
  power at 100 % light level while burning — the luminaire's own in the baseline
  (commissioning) window, else its own 100 % samples in the reporting nights (at least
  `MIN_FULL_POWER_SAMPLES`), else pooled over the control group, else the rated power
  (with a warning); each `per_luminaire` row names its `full_power_source`;
- actual energy from the cumulative register: per record the increase since the previous
  record; a decrease is a reset (the post-reset value is the energy since the reset); where
  the register is missing, or the previous record is more than 1.5 intervals back, the
  record's ``power_w × interval`` (so actual and counterfactual cover the same intervals
  and no gap is filled);
- a luminaire-night counts only with ≥ `sufficiency` of its expected intervals
  (⌊night length / interval⌋); others are listed in `excluded_nights`, never filled.
- findings are records: excluded nights, lamp-on records deep in daylight (`day_burning`),
  lamps metered off for over an hour of a night (`burning_anomalies`), device events.

The caller passes series covering the reporting nights [start, end) *and* the baseline
window (its nights, both ends inclusive) even when it lies outside [start, end).
Only treated luminaires (not the control group) enter the headline savings; the control
group gives a separate difference-in-differences estimate, and a baseline window a
regression baseline scored per ASHRAE Guideline 14 (`analytics.m_and_v`).
The per luminaire-night accounting lives in `analytics.luminaire_nights`, the grid one
computation shares and its tables in `analytics.savings_frame`, the result and its JSON
form in `analytics.savings_result`; this module combines them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from analytics.errors import InputError
from analytics.luminaire_nights import (
    SOURCES,
    BoolArray,
    FloatArray,
    FullPower,
    LuminaireSeries,
    NightTable,
    PoolSource,
    SavingsParams,
    check_series,
    full_power,
    interval_energy_wh,
    night_table,
)
from analytics.m_and_v import (
    BaselineRegression,
    DiDEstimate,
    baseline_regression,
    difference_in_differences,
)
from analytics.night_accounts import NightAccounts, account_series, units_sha256
from analytics.nights import NightCalendar, assign_nights, night_calendar
from analytics.savings_baseline import BaselineSummary, with_baseline_luminaires
from analytics.savings_frame import (
    DAY,
    SavingsFrame,
    build_frame,
    burning_anomalies,
    day_burning_rows,
    excluded_nights,
    per_luminaire_rows,
    per_night_rows,
    savings_calendar,
)
from analytics.savings_result import SavingsResult

__all__ = [
    "FullPower",
    "LuminaireSeries",
    "NightTable",
    "NonRoutineEvent",
    "SavingsParams",
    "SavingsResult",
    "combine_savings",
    "compute_savings",
    "full_power",
    "input_sha256",
    "interval_energy_wh",
    "night_table",
]


@dataclass(frozen=True)
class NonRoutineEvent:
    """A device event (fault, fault_cleared, config_changed, …) at `ts` epoch seconds."""

    device_id: str
    ts: float
    type: str
    code: str | None = None


def _check_params(params: SavingsParams, start: dt.date, end: dt.date) -> None:
    if end <= start:
        raise InputError(f"reporting end {end} must be after start {start}")
    if params.record_interval_s <= 0 or not 0 < params.sufficiency <= 1:
        raise InputError("record_interval_s must be > 0 and sufficiency in (0, 1]")
    if not 0 < params.confidence < 1 or params.meter_accuracy_pct < 0:
        raise InputError("confidence must be in (0, 1) and meter accuracy ≥ 0")
    if (params.baseline_start is None) != (params.baseline_end is None):
        raise InputError("give both baseline_start and baseline_end, or neither")
    if (
        params.baseline_start
        and params.baseline_end
        and params.baseline_end < params.baseline_start
    ):
        raise InputError("baseline_end is before baseline_start")
    if params.road_area_m2 is not None and params.road_area_m2 <= 0:
        raise InputError("road_area_m2 must be positive")


def _pfull_variance(fp: Sequence[FullPower], hours: FloatArray) -> tuple[float, FloatArray]:
    """Variance [Wh²] of Σ P_full·h from the full-power estimates: total and per night."""
    independent = np.array([f.se_independent for f in fp])
    total = float(np.sum((independent * hours.sum(axis=1)) ** 2))
    per_night = np.sum(independent[:, None] ** 2 * hours**2, axis=0)
    source = np.array([f.source for f in fp])
    for shared in ("control", "rated"):  # one shared estimate each
        group = source == shared
        if group.any():
            se = fp[int(np.flatnonzero(group)[0])].se_common
            total += (se * float(hours[group].sum())) ** 2
            per_night = per_night + (se * hours[group].sum(axis=0)) ** 2
    return total, per_night


def _events(
    events: Sequence[NonRoutineEvent],
    calendar: NightCalendar,
    lo: float,
    hi: float,
    groups: dict[str, str],
) -> list[dict[str, object]]:
    inside = sorted((e for e in events if lo < e.ts <= hi), key=lambda e: (e.ts, e.device_id))
    idx = assign_nights(np.array([e.ts for e in inside], dtype=np.float64), calendar)
    return [
        {
            "device_id": e.device_id,
            "ts": dt.datetime.fromtimestamp(e.ts, tz=dt.UTC).isoformat(),
            "type": e.type,
            "code": e.code,
            "night": calendar.dates[n].isoformat() if n >= 0 else None,
            "group": groups.get(e.device_id, "unknown"),
        }
        for e, n in zip(inside, idx, strict=True)
    ]


def input_sha256(
    accounts: NightAccounts,
    nights: BoolArray,
    events: Sequence[NonRoutineEvent],
    baseline: BaselineSummary | None = None,
    pool: Sequence[FloatArray] | None = None,
) -> str:
    """Hash of the input rows, so an evaluator can check a result was made from them: the
    rows of every luminaire-night unit in `nights` (`analytics.night_accounts`), the
    events, the baseline summary's rows and the control pool if it was used."""
    digest = hashlib.sha256(f"units:{units_sha256(accounts, nights)}".encode())
    for e in events:
        digest.update(repr((e.device_id, float(e.ts), e.type, e.code)).encode())
    if baseline is not None:
        digest.update(f"baseline:{baseline.sha256}".encode())
    if pool:
        digest.update(b"pool:")
        for part in pool:
            digest.update(np.ascontiguousarray(part, dtype=np.float64).tobytes() + b"\x1e")
    return digest.hexdigest()


def _control_group(f: SavingsFrame, confidence: float, warnings: list[str]) -> DiDEstimate | None:
    energy = np.where(f.counted, f.table.actual_wh / 1000.0, np.nan)
    t, c = energy[f.treated], energy[~f.treated]
    if not c.shape[0]:
        warnings.append("no control-group luminaires: no difference-in-differences estimate")
        return None
    try:
        return difference_in_differences(
            t[:, f.rep],
            c[:, f.rep],
            None if f.base is None else t[:, f.base],
            None if f.base is None else c[:, f.base],
            confidence=confidence,
        )
    except InputError as exc:
        warnings.append(f"no control-group estimate: {exc}")
        return None


def _nightly_means(energy: FloatArray) -> tuple[FloatArray, FloatArray, BoolArray]:
    """Per-night mean and count over counted luminaires, and which nights have any."""
    count = np.isfinite(energy).sum(axis=0).astype(np.float64)
    have = count > 0
    total = np.where(np.isfinite(energy), energy, 0.0).sum(axis=0)
    return total[have] / count[have], count[have], have


def _regression(
    f: SavingsFrame, confidence: float, warnings: list[str]
) -> BaselineRegression | None:
    if f.base is None:
        return None
    energy = np.where(f.counted, f.table.actual_wh / 1000.0, np.nan)[f.treated]
    yb, _, have_b = _nightly_means(energy[:, f.base])
    yr, wr, have_r = _nightly_means(energy[:, f.rep])
    x_base, x_rep = f.cal.hours[f.base][have_b], f.cal.hours[f.rep][have_r]
    try:
        fit = baseline_regression(x_base, yb, x_rep, yr, wr, confidence=confidence)
    except InputError as exc:
        warnings.append(f"no regression baseline: {exc}")
        return None
    if fit.extrapolates:
        lo, hi = fit.x_base_range
        warnings.append(
            f"regression baseline extrapolates beyond the baseline night lengths"
            f" {lo:.2f}–{hi:.2f} h; its G14 interval omits slope error"
        )
    return fit


def _d_e(
    f: SavingsFrame, watts: FloatArray, params: SavingsParams, start: dt.date
) -> dict[str, float] | None:
    """EN 13201-5 D_E [Wh/m²]: mean operated power × a year of nights × luminaires / area."""
    if params.road_area_m2 is None:
        return None
    year = night_calendar(
        start,
        start + dt.timedelta(days=364),
        timezone=params.timezone,
        latitude=params.latitude,
        longitude=params.longitude,
    ).hours.sum()
    counted = f.counted & f.rep[None, :]
    burned = float((f.table.burning * counted).sum()) * f.interval / 3600.0
    if burned <= 0:
        return None
    operated_w = float((f.table.actual_wh * counted).sum()) / burned
    return {
        "as_operated": operated_w * year * len(f.ids) / params.road_area_m2,
        "full_power": float(watts.sum()) * year / params.road_area_m2,
        "annual_night_hours": float(year),
        "mean_operated_power_w": operated_w,
    }


def compute_savings(
    series: Sequence[LuminaireSeries],
    events: Sequence[NonRoutineEvent],
    params: SavingsParams,
    start: dt.date,
    end: dt.date,
    expected: Sequence[str] = (),
    *,
    baseline: BaselineSummary | None = None,
    pool: PoolSource | None = None,
) -> SavingsResult:
    """Verified savings over the nights whose sunset local date is in [start, end).

    `expected` are the pilot's registered luminaires: a treated one without rows counts its
    reporting nights as expected and missing, and is named in `missing_luminaires`.
    With a `baseline` summary (`analytics.savings_baseline`) `series` need not hold the
    baseline nights, and `pool` gives the control group's 100 % samples when a luminaire
    needs them (by default those of `series`); both enter the input hash."""
    _check_params(params, start, end)
    for s in series:
        check_series(s)
    if baseline is not None:
        series = with_baseline_luminaires(series, baseline)
    accounts = account_series(series, savings_calendar(params, start, end), params)
    return combine_savings(
        accounts, events, params, start, end, expected, baseline=baseline, pool=pool
    )


def combine_savings(
    accounts: NightAccounts,
    events: Sequence[NonRoutineEvent],
    params: SavingsParams,
    start: dt.date,
    end: dt.date,
    expected: Sequence[str] = (),
    *,
    baseline: BaselineSummary | None = None,
    pool: PoolSource | None = None,
) -> SavingsResult:
    """`compute_savings` from luminaire-night accounts over `savings_calendar(params, start,
    end)` (`analytics.night_accounts`): only the reporting nights' units are read (and the
    baseline nights' without a `baseline` summary); `pool` is required when the accounts
    carry no `pool_w`."""
    _check_params(params, start, end)
    control_ids = set(params.control_group)
    if pool is None:
        if accounts.pool_w is None:
            raise InputError("accounts without their pool need the control group's samples")
        own_pool = accounts.pool_w
        pool = lambda: [  # noqa: E731
            p for i, p in zip(accounts.device_ids, own_pool, strict=True) if i in control_ids
        ]
    pooled: list[FloatArray] = []
    parts = pool

    def pool_parts() -> Sequence[FloatArray]:
        pooled.extend(parts())
        return pooled

    f, warnings = build_frame(accounts.table, params, start, end, baseline)
    fp, fp_warnings = full_power(
        f.ids,
        accounts.full_w,
        accounts.full_night,
        f.base,
        control_ids,
        params,
        f.rep,
        own_baseline=None
        if baseline is None
        else [None if (b := baseline.get(i)) is None else b.full_power for i in f.ids],
        pool=pool_parts,
    )
    warnings += fp_warnings
    use = f.counted & f.rep[None, :] & f.treated[:, None]
    hours = np.where(use, f.table.burning * f.interval / 3600.0, 0.0)
    watts = np.array([p.watts for p in fp], dtype=np.float64).reshape(-1)
    actual = np.where(use, f.table.actual_wh, 0.0)
    cf = watts[:, None] * hours
    pf_total, pf_night = _pfull_variance(fp, hours)
    meter = params.meter_accuracy_pct / 100.0
    z = float(stats.norm.ppf(0.5 + params.confidence / 2.0))
    saved = float(cf.sum() - actual.sum()) / 1000.0
    half = z * np.sqrt(pf_total + (meter * actual.sum()) ** 2) / 1000.0
    night_half = z * np.sqrt(pf_night + (meter * actual.sum(axis=0)) ** 2) / 1000.0
    absent = sorted(set(expected) - set(f.ids) - control_ids)
    silent = [
        i
        for i, t, v in zip(f.ids, f.treated, f.table.valid[:, f.rep].sum(axis=1), strict=True)
        if t and not v
    ]
    missing = tuple(sorted([*absent, *silent]))
    if not f.table.valid[:, f.rep].any():
        warnings.insert(0, "no readings from any luminaire of the pilot in this window")
    if missing:
        warnings.append(f"treated luminaires without usable data: {', '.join(missing)}")
    if not use.any():
        warnings.append("no treated luminaire-night meets the sufficiency rule")
    treated_fp = [fp[k] for k in np.flatnonzero(f.treated)]
    kinds = {p.source for p in treated_fp}
    windows = {"reporting": f.rep}
    if f.base is not None:
        windows["baseline"] = f.base & ~f.rep
    return SavingsResult(
        start=start,
        end=end,
        treated=tuple(i for i, t in zip(f.ids, f.treated, strict=True) if t),
        control=tuple(i for i, t in zip(f.ids, f.treated, strict=True) if not t),
        actual_kwh=float(actual.sum()) / 1000.0,
        baseline_kwh=float(cf.sum()) / 1000.0,
        savings_kwh=saved,
        ci_kwh=(saved - half, saved + half),
        completeness_pct=f.completenesspct(f.treated, absent=len(absent)),
        full_power_w=float(np.median([p.watts for p in treated_fp])) if treated_fp else None,
        full_power_source=kinds.pop() if len(kinds) == 1 else ("mixed" if kinds else "none"),
        per_luminaire=tuple(per_luminaire_rows(f, fp, use, actual, cf)),
        per_night=tuple(per_night_rows(f, use, actual, cf, night_half)),
        excluded_nights=(
            *excluded_nights(f, windows, params.sufficiency),
            # A registered luminaire without a row misses each reporting night, like any other.
            *(
                {
                    "device_id": d,
                    "night": f.cal.dates[n].isoformat(),
                    "reason": "no usable records",
                    "completeness_pct": 0.0,
                    "window": "reporting",
                    "group": "treated",
                }
                for d in absent
                for n in np.flatnonzero(f.rep)
            ),
        ),
        control_group=_control_group(f, params.confidence, warnings),
        regression=_regression(f, params.confidence, warnings),
        non_routine_events=tuple(
            _events(
                events,
                f.cal,
                f.cal.dawn[f.cal.index(start - DAY)],
                f.cal.dawn[f.cal.index(end - DAY)],
                dict(zip(f.ids, f.groups, strict=True)),
            )
        ),
        day_burning=tuple(day_burning_rows(f, accounts.burns, f.rep)),
        burning_anomalies=tuple(burning_anomalies(f)),
        energy_sources={
            name: int(c) for name, c in zip(SOURCES, f.table.sources[use].sum(axis=0), strict=True)
        },
        burning_hours=float(hours.sum()),
        astronomical_hours=float((use * f.cal.hours[None, :]).sum()),
        d_e=_d_e(f, watts, params, start),
        params=params,
        input_sha256=input_sha256(
            accounts,
            f.rep | f.base if baseline is None and f.base is not None else f.rep,
            events,
            baseline,
            pooled,
        ),
        warnings=tuple(warnings),
        missing_luminaires=missing,
    )
