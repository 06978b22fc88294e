"""A savings result and its JSON form (DESIGN §7 keys and more).

Why: the savings arithmetic (`analytics.savings`) and the shape evaluators read change for
different reasons; the result type and its JSON assembly — key names, notes, NaN → null —
live here, and the arithmetic depends on them, never the reverse.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

import numpy as np

from analytics.luminaire_nights import (
    BURN_TOLERANCE_H,
    GAP_FACTOR,
    MIN_FULL_POWER_SAMPLES,
    SavingsParams,
)
from analytics.m_and_v import BaselineRegression, DiDEstimate

METHOD = "ipmvp-b-counterfactual"
METHOD_VERSION = "1.4.0"  # 1.1: day-burning energy from active power; 1.2: own-reporting P_full;
# 1.3: the input hash covers the window's rows and the baseline summary's (same figures);
# 1.4: ... the rows of the window's luminaire-night units only, the rows the method reads
# (`analytics.night_accounts`; same figures)
CI_FORMULA = (
    "savings ± z·sqrt(Σ_i (σ_i·H_i)² + (σ_pool·H_pool)² + (σ_rated·H_rated)² + (a/100·E_actual)²)"
    "; σ_i = 1.2533·s_i/√n_i (standard error of luminaire i's full-power median, s_i and n_i"
    " the spread and count of its own 100 % samples, baseline or reporting window) or, for the"
    " pooled control-group value, the"
    " between-luminaire spread of control medians with σ_pool = 1.2533·s/√n of the pool;"
    " σ_rated = P_rated·tol/100/√3; H burning hours [h]; a meter accuracy [%];"
    " z = Φ⁻¹(0.5 + confidence/2)"
)


@dataclass(frozen=True)
class SavingsResult:
    """Everything `kcity savings --json` reports except `pilot`, `from`, `to`."""

    start: dt.date
    end: dt.date
    treated: tuple[str, ...]
    control: tuple[str, ...]
    actual_kwh: float
    baseline_kwh: float
    savings_kwh: float
    ci_kwh: tuple[float, float]
    completeness_pct: float | None
    full_power_w: float | None
    full_power_source: str
    per_luminaire: tuple[dict[str, object], ...]
    per_night: tuple[dict[str, object], ...]
    excluded_nights: tuple[dict[str, object], ...]
    control_group: DiDEstimate | None
    regression: BaselineRegression | None
    non_routine_events: tuple[dict[str, object], ...]
    day_burning: tuple[dict[str, object], ...]
    burning_anomalies: tuple[dict[str, object], ...]
    energy_sources: dict[str, int]
    burning_hours: float
    astronomical_hours: float
    d_e: dict[str, float] | None
    params: SavingsParams
    input_sha256: str
    warnings: tuple[str, ...] = field(default=())
    # Treated luminaires registered but without a usable reading in the reporting nights.
    missing_luminaires: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, object]:
        return savings_json(self)


def _json_safe(value: object) -> object:
    """Plain JSON types: numpy scalars unwrapped, NaN/inf → None, dates ISO.

    The exact-type checks come first: a result can hold hundreds of thousands of values.
    """
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        return value if math.isfinite(value) else None  # type: ignore[arg-type]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def pct(part: float, whole: float) -> float | None:
    return 100.0 * part / whole if whole else None


def _did_json(r: SavingsResult) -> dict[str, object] | None:
    d = r.control_group
    if d is None:
        return None
    actual = d.treated_reporting_mean * d.treated_luminaire_nights
    note = (
        "((C_rep − T_rep) − (C_base − T_base)) × treated luminaire-nights; se from the"
        " night-to-night spread of the nightly control − treated difference"
        if d.design == "difference-in-differences"
        else "no baseline window: cross-sectional (C_rep − T_rep) × treated luminaire-nights,"
        " assuming treated and control luminaires would draw the same energy undimmed"
    )
    return {
        "design": d.design,
        "luminaires": list(r.control),
        "savings_kwh": d.savings,
        "savings_pct": pct(d.savings, actual + d.savings),
        "ci90_kwh": list(d.ci) if d.ci else None,
        "se_kwh": d.se,
        "confidence": d.confidence,
        "effect_per_luminaire_night_kwh": d.effect_per_luminaire_night,
        "treated_reporting_mean_kwh": d.treated_reporting_mean,
        "control_reporting_mean_kwh": d.control_reporting_mean,
        "treated_baseline_mean_kwh": d.treated_baseline_mean,
        "control_baseline_mean_kwh": d.control_baseline_mean,
        "treated_luminaire_nights": d.treated_luminaire_nights,
        "control_luminaire_nights": d.control_luminaire_nights,
        "note": note,
    }


def _regression_json(r: SavingsResult) -> dict[str, object] | None:
    g = r.regression
    if g is None:
        return None
    return {
        "basis": "pooled: one point per night, mean nightly energy [kWh] of the counted treated"
        " luminaires ~ a + b·night length [h]; predictions weighted by counted luminaires",
        "intercept_kwh": g.intercept,
        "slope_kwh_per_h": g.slope,
        "n": g.n,
        "p": g.p,
        "m": g.m,
        "months": g.months,
        "k": g.k,
        "confidence": g.confidence,
        "t": g.t,
        "cv_rmse": g.cv_rmse,
        "nmbe": g.nmbe,
        "rho": g.rho,
        "rho_used": g.rho_used,
        "n_prime": g.n_prime,
        "baseline_kwh": g.predicted,
        "actual_kwh": g.actual,
        "savings_kwh": g.savings,
        "savings_pct": 100.0 * g.savings_fraction,
        "ci90_kwh": [g.savings - g.delta_s, g.savings + g.delta_s],
        "delta_s_kwh": g.delta_s,
        "fsu": g.fsu,
        "fsu_68": g.fsu_68,
        "meets_g14_fsu_50pct_at_68": g.fsu_68 < 0.5,
        "baseline_night_hours": list(g.x_base_range),
        "reporting_night_hours": list(g.x_rep_range),
        "extrapolates": g.extrapolates,
    }


def savings_json(r: SavingsResult) -> dict[str, object]:
    p = r.params
    out: dict[str, object] = {
        "method": METHOD,
        "method_version": METHOD_VERSION,
        "luminaires": len(r.treated),
        "control_luminaires": len(r.control),
        "actual_kwh": r.actual_kwh,
        "baseline_kwh": r.baseline_kwh,
        "savings_kwh": r.savings_kwh,
        "savings_pct": pct(r.savings_kwh, r.baseline_kwh),
        "ci90_kwh": list(r.ci_kwh),
        "confidence": p.confidence,
        "ci_formula": CI_FORMULA,
        "co2_kg": r.savings_kwh * p.grid_kg_co2_per_kwh,
        "cost_saved": r.savings_kwh * p.tariff_per_kwh,
        "currency": p.currency,
        "completeness_pct": r.completeness_pct,
        "missing_luminaires": list(r.missing_luminaires),
        "excluded_nights": r.excluded_nights,
        "per_luminaire": r.per_luminaire,
        "per_night": r.per_night,
        "full_power_w": r.full_power_w,
        "full_power_source": r.full_power_source,
        "control_group": _did_json(r),
        "regression": _regression_json(r),
        "non_routine_events": r.non_routine_events,
        "day_burning": r.day_burning,
        "burning_anomalies": r.burning_anomalies,
        "burning_hours": {
            "metered_h": r.burning_hours,
            "astronomical_h": r.astronomical_hours,
            "ratio": r.burning_hours / r.astronomical_hours if r.astronomical_hours else None,
        },
        "energy_sources": r.energy_sources,
        "d_e_wh_per_m2": None if r.d_e is None else r.d_e["as_operated"],
        "d_e": r.d_e,
        "warnings": r.warnings,
        "parameters": {
            **{k: getattr(p, k) for k in p.__dataclass_fields__},
            "start": r.start,
            "end": r.end,
            "min_full_power_samples": MIN_FULL_POWER_SAMPLES,
            "gap_factor": GAP_FACTOR,
            "burn_tolerance_h": BURN_TOLERANCE_H,
            "night": "sunset to next sunrise (astral)",
            "day_burning_energy": "active power × record interval",
            "baseline_window": "nights with sunset local date in [baseline_start, baseline_end]",
        },
        "input_sha256": r.input_sha256,
    }
    keys = list(out)
    out.pop("day_burning")  # plain JSON already (`savings_frame.day_burning_rows`)
    safe = _json_safe(out)
    assert isinstance(safe, dict)
    safe["day_burning"] = list(r.day_burning)
    return {k: safe[k] for k in keys}
