"""Measurement-and-verification statistics: ASHRAE Guideline 14 baseline scoring and a
difference-in-differences estimate, as pure functions over numpy arrays.

They exist apart from `savings.py` so that evaluators can check each formula on its own
(the tests recompute them by hand). Formulas, as in METHODS.md:

- ``CV(RMSE) = sqrt(Σ(y−ŷ)² / (n−p)) / ȳ``;  ``NMBE = Σ(y−ŷ) / ((n−p)·ȳ)``
- ρ: lag-1 autocorrelation of the baseline residuals,
  ``ρ = Σ_{t≥2}(e_t−ē)(e_{t−1}−ē) / Σ_t(e_t−ē)²``;  ``n′ = n(1−ρ)/(1+ρ)``
- ``FSU = t·K·CV(RMSE)·sqrt((n/n′)·(1+2/n′)·(1/m)) / F`` and
  ``ΔS = E_pred·t·K·CV(RMSE)·sqrt((n/(m·n′))·(1+2/n′))``, t two-tailed Student's t with
  n−p degrees of freedom, K = 1.26 for hourly data, ``K = a·M² + b·M + d`` for daily data
  (Sun & Baltazar 2013; M months in the reporting period).

IPMVP conservatism: a negative ρ would make n′ > n and shrink the uncertainty, so the
regression uses ``max(ρ, 0)`` for n′ and reports both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats

from analytics.errors import InputError

FloatArray = npt.NDArray[np.float64]

K_HOURLY = 1.26
K_DAILY_A = -0.00024
K_DAILY_B = 0.03535
K_DAILY_D = 1.00286
DAYS_PER_MONTH = 365.25 / 12.0


def _pair(y: FloatArray, y_hat: FloatArray, p: int) -> tuple[FloatArray, FloatArray]:
    obs = np.asarray(y, dtype=np.float64)
    pred = np.asarray(y_hat, dtype=np.float64)
    if obs.shape != pred.shape or obs.ndim != 1:
        raise InputError("observations and predictions must be 1-D arrays of one length")
    if obs.size <= p:
        raise InputError(f"need more than p={p} points, got {obs.size}")
    return obs, pred


def cv_rmse(y: FloatArray, y_hat: FloatArray, p: int) -> float:
    """Coefficient of variation of the RMSE [fraction], n−p in the denominator."""
    obs, pred = _pair(y, y_hat, p)
    return float(np.sqrt(np.sum((obs - pred) ** 2) / (obs.size - p)) / np.mean(obs))


def nmbe(y: FloatArray, y_hat: FloatArray, p: int) -> float:
    """Normalised mean bias error [fraction], n−p in the denominator."""
    obs, pred = _pair(y, y_hat, p)
    return float(np.sum(obs - pred) / ((obs.size - p) * np.mean(obs)))


def lag1_autocorrelation(residuals: FloatArray) -> float:
    """Lag-1 autocorrelation of a residual series (0 for a constant series)."""
    e = np.asarray(residuals, dtype=np.float64)
    if e.size < 2:
        raise InputError("autocorrelation needs at least 2 residuals")
    dev = e - e.mean()
    denominator = float(np.sum(dev**2))
    if denominator == 0.0:
        return 0.0
    return float(np.sum(dev[1:] * dev[:-1]) / denominator)


def effective_sample_size(n: int, rho: float) -> float:
    """n′ = n(1−ρ)/(1+ρ): independent points worth of n autocorrelated ones."""
    if not -1.0 < rho < 1.0:
        raise InputError(f"autocorrelation must be in (-1, 1), got {rho}")
    return n * (1.0 - rho) / (1.0 + rho)


def k_daily(months: float) -> float:
    """Sun & Baltazar (2013) correction K for daily data over `months` reporting months."""
    return K_DAILY_A * months**2 + K_DAILY_B * months + K_DAILY_D


def t_value(confidence: float, dof: float) -> float:
    """Two-tailed Student's t at `confidence` (e.g. 0.90) for `dof` degrees of freedom."""
    if not 0.0 < confidence < 1.0 or dof <= 0:
        raise InputError(f"bad confidence {confidence} or degrees of freedom {dof}")
    return float(stats.t.ppf(0.5 + confidence / 2.0, dof))


def savings_uncertainty(
    *, predicted: float, cv: float, n: int, n_prime: float, m: int, t: float, k: float
) -> float:
    """Absolute savings uncertainty ΔS, in the units of `predicted` (G14 Annex B)."""
    if n_prime <= 0 or m <= 0:
        raise InputError("n′ and m must be positive")
    return predicted * t * k * cv * float(np.sqrt((n / (m * n_prime)) * (1.0 + 2.0 / n_prime)))


def fractional_savings_uncertainty(
    *, savings_fraction: float, cv: float, n: int, n_prime: float, m: int, t: float, k: float
) -> float:
    """FSU = ΔS / S [fraction]; infinite when there are no savings."""
    if savings_fraction == 0.0:
        return float("inf")
    unit = savings_uncertainty(predicted=1.0, cv=cv, n=n, n_prime=n_prime, m=m, t=t, k=k)
    return abs(unit / savings_fraction)


@dataclass(frozen=True)
class BaselineRegression:
    """A straight-line baseline `y = intercept + slope·x` scored per ASHRAE G14.

    `predicted`, `actual`, `savings` and `delta_s` are totals over the reporting points,
    each point weighted (e.g. by the luminaires it stands for); units are those of `y`.
    """

    intercept: float
    slope: float
    n: int
    p: int
    m: int
    months: float
    k: float
    confidence: float
    t: float
    cv_rmse: float
    nmbe: float
    rho: float
    rho_used: float
    n_prime: float
    predicted: float
    actual: float
    savings: float
    savings_fraction: float
    fsu: float
    delta_s: float
    fsu_68: float
    x_base_range: tuple[float, float]
    x_rep_range: tuple[float, float]

    @property
    def extrapolates(self) -> bool:
        """Reporting x outside the baseline range: the FSU formula omits slope error."""
        return self.x_rep_range[0] < self.x_base_range[0] or (
            self.x_rep_range[1] > self.x_base_range[1]
        )


def baseline_regression(
    x_base: FloatArray,
    y_base: FloatArray,
    x_rep: FloatArray,
    y_rep: FloatArray,
    weights_rep: FloatArray | None = None,
    *,
    confidence: float = 0.90,
    frequency: Literal["daily", "hourly"] = "daily",
) -> BaselineRegression:
    """Fit y ~ a + b·x on ordered baseline points, predict the reporting points, score (G14)."""
    xb, yb = np.asarray(x_base, np.float64), np.asarray(y_base, np.float64)
    xr, yr = np.asarray(x_rep, np.float64), np.asarray(y_rep, np.float64)
    w = np.ones_like(yr) if weights_rep is None else np.asarray(weights_rep, np.float64)
    if xb.shape != yb.shape or xr.shape != yr.shape or w.shape != yr.shape:
        raise InputError("regression arrays must pair up")
    p = 2
    n, m = xb.size, xr.size
    if n < p + 2 or m < 1:
        raise InputError(f"need at least {p + 2} baseline points and 1 reporting point")
    if np.ptp(xb) > 0:
        slope, intercept = (float(c) for c in np.polyfit(xb, yb, 1))
    else:  # no spread in x: the line degenerates to the mean (slope 0)
        slope, intercept = 0.0, float(yb.mean())
    fitted = intercept + slope * xb
    cv = cv_rmse(yb, fitted, p)
    rho = lag1_autocorrelation(yb - fitted)
    rho_used = min(max(rho, 0.0), 0.99)
    n_prime = effective_sample_size(n, rho_used)
    months = m / DAYS_PER_MONTH if frequency == "daily" else m / (24.0 * DAYS_PER_MONTH)
    k = k_daily(months) if frequency == "daily" else K_HOURLY
    predicted = float(np.sum(w * (intercept + slope * xr)))
    actual = float(np.sum(w * yr))
    savings = predicted - actual
    fraction = savings / predicted if predicted else 0.0

    def fsu_at(level: float) -> float:
        return fractional_savings_uncertainty(
            savings_fraction=fraction,
            cv=cv,
            n=n,
            n_prime=n_prime,
            m=m,
            k=k,
            t=t_value(level, n - p),
        )

    t = t_value(confidence, n - p)
    delta_s = savings_uncertainty(predicted=predicted, cv=cv, n=n, n_prime=n_prime, m=m, t=t, k=k)
    return BaselineRegression(
        intercept=intercept,
        slope=slope,
        n=n,
        p=p,
        m=m,
        months=months,
        k=k,
        confidence=confidence,
        t=t,
        cv_rmse=cv,
        nmbe=nmbe(yb, fitted, p),
        rho=rho,
        rho_used=rho_used,
        n_prime=n_prime,
        predicted=predicted,
        actual=actual,
        savings=savings,
        savings_fraction=fraction,
        fsu=fsu_at(confidence),
        delta_s=delta_s,
        fsu_68=fsu_at(0.68),
        x_base_range=(float(xb.min()), float(xb.max())),
        x_rep_range=(float(xr.min()), float(xr.max())),
    )


@dataclass(frozen=True)
class DiDEstimate:
    """Control-group estimate of savings, in the units of the energy matrices.

    `design` is "difference-in-differences" with a baseline window, else "cross-sectional"
    (which assumes treated and control luminaires would use the same energy undimmed).
    `se` comes from the night-to-night spread of the nightly control−treated difference.
    """

    design: str
    treated_reporting_mean: float
    control_reporting_mean: float
    treated_baseline_mean: float | None
    control_baseline_mean: float | None
    effect_per_luminaire_night: float
    treated_luminaire_nights: int
    control_luminaire_nights: int
    savings: float
    se: float | None
    confidence: float
    ci: tuple[float, float] | None


def _night_differences(treated: FloatArray, control: FloatArray) -> FloatArray:
    both = np.any(np.isfinite(treated), axis=0) & np.any(np.isfinite(control), axis=0)
    if not np.any(both):
        return np.empty(0, dtype=np.float64)
    c = np.nanmean(control[:, both], axis=0)
    t = np.nanmean(treated[:, both], axis=0)
    return np.asarray(c - t, dtype=np.float64)


def _var_of_mean(d: FloatArray) -> float | None:
    return float(np.var(d, ddof=1) / d.size) if d.size >= 2 else None


def difference_in_differences(
    treated_rep: FloatArray,
    control_rep: FloatArray,
    treated_base: FloatArray | None = None,
    control_base: FloatArray | None = None,
    *,
    confidence: float = 0.90,
) -> DiDEstimate:
    """Savings = ((C_rep − T_rep) − (C_base − T_base)) × treated reporting luminaire-nights.

    Matrices are luminaires × nights of nightly energy, NaN where a luminaire-night does
    not count; means are over counted luminaire-nights.
    """
    tr, cr = np.asarray(treated_rep, np.float64), np.asarray(control_rep, np.float64)
    if not (np.isfinite(tr).any() and np.isfinite(cr).any()):
        raise InputError("treated and control groups both need reporting nights")
    t_rep, c_rep = float(np.nanmean(tr)), float(np.nanmean(cr))
    var = _var_of_mean(_night_differences(tr, cr))
    t_base = c_base = None
    effect = c_rep - t_rep
    design = "cross-sectional"
    if treated_base is not None and control_base is not None:
        tb, cb = np.asarray(treated_base, np.float64), np.asarray(control_base, np.float64)
        if np.isfinite(tb).any() and np.isfinite(cb).any():
            design = "difference-in-differences"
            t_base, c_base = float(np.nanmean(tb)), float(np.nanmean(cb))
            effect -= c_base - t_base
            var_base = _var_of_mean(_night_differences(tb, cb))
            var = None if var is None or var_base is None else var + var_base
    count = int(np.isfinite(tr).sum())
    se = None if var is None else float(np.sqrt(var)) * count
    savings = effect * count
    z = float(stats.norm.ppf(0.5 + confidence / 2.0))
    return DiDEstimate(
        design=design,
        treated_reporting_mean=t_rep,
        control_reporting_mean=c_rep,
        treated_baseline_mean=t_base,
        control_baseline_mean=c_base,
        effect_per_luminaire_night=effect,
        treated_luminaire_nights=count,
        control_luminaire_nights=int(np.isfinite(cr).sum()),
        savings=savings,
        se=se,
        confidence=confidence,
        ci=None if se is None else (savings - z * se, savings + z * se),
    )
