"""ASHRAE G14 statistics and the difference-in-differences estimate, checked by hand."""

from __future__ import annotations

import csv
import gzip
import importlib.metadata
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from analytics.errors import InputError
from analytics.m_and_v import (
    baseline_regression,
    cv_rmse,
    difference_in_differences,
    effective_sample_size,
    fractional_savings_uncertainty,
    k_daily,
    lag1_autocorrelation,
    nmbe,
    savings_uncertainty,
)

X_BASE = [11.0, 11.2, 11.5, 11.4, 11.8, 12.0, 11.9, 12.2, 12.1, 11.7]
Y_BASE = [1.10, 1.13, 1.15, 1.16, 1.20, 1.22, 1.21, 1.21, 1.19, 1.15]
X_REP = [11.6, 11.9, 12.1, 11.3]
Y_REP = [0.71, 0.74, 0.73, 0.69]


def _hand_fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    n = len(xs)
    mx = sum(xs) / n
    my = sum(ys) / n
    sxy = 0.0
    sxx = 0.0
    for x, y in zip(xs, ys, strict=True):
        sxy += (x - mx) * (y - my)
        sxx += (x - mx) ** 2
    slope = sxy / sxx
    return my - slope * mx, slope


def test_cv_rmse_and_nmbe_by_hand() -> None:
    y = [10.0, 12.0, 9.0, 11.0, 13.0]
    y_hat = [9.5, 12.5, 9.5, 10.0, 12.0]
    p = 2
    n = len(y)
    mean = sum(y) / n
    squares = 0.0
    bias = 0.0
    for obs, pred in zip(y, y_hat, strict=True):
        squares += (obs - pred) ** 2
        bias += obs - pred
    hand_cv = math.sqrt(squares / (n - p)) / mean
    hand_nmbe = bias / ((n - p) * mean)
    assert cv_rmse(np.array(y), np.array(y_hat), p) == pytest.approx(hand_cv, rel=1e-12)
    assert nmbe(np.array(y), np.array(y_hat), p) == pytest.approx(hand_nmbe, rel=1e-12)
    assert hand_nmbe != 0.0


def test_autocorrelation_and_effective_n_by_hand() -> None:
    e = [0.5, 0.4, 0.3, -0.1, -0.4, -0.5, -0.2, 0.1, 0.3, 0.2]
    mean = sum(e) / len(e)
    num = 0.0
    den = 0.0
    for i, value in enumerate(e):
        den += (value - mean) ** 2
        if i > 0:
            num += (value - mean) * (e[i - 1] - mean)
    rho = num / den
    assert rho > 0.3  # a smooth residual series is positively autocorrelated
    assert lag1_autocorrelation(np.array(e)) == pytest.approx(rho, rel=1e-12)
    assert effective_sample_size(len(e), rho) == pytest.approx(10 * (1 - rho) / (1 + rho))
    with pytest.raises(InputError):
        effective_sample_size(10, 1.0)


def test_regression_fsu_by_hand() -> None:
    intercept, slope = _hand_fit(X_BASE, Y_BASE)
    n, p, m = len(X_BASE), 2, len(X_REP)
    residuals = [y - (intercept + slope * x) for x, y in zip(X_BASE, Y_BASE, strict=True)]
    mean_y = sum(Y_BASE) / n
    squares = 0.0
    for r in residuals:
        squares += r * r
    cv = math.sqrt(squares / (n - p)) / mean_y
    num = 0.0
    den = 0.0
    mean_r = sum(residuals) / n
    for i, r in enumerate(residuals):
        den += (r - mean_r) ** 2
        if i > 0:
            num += (r - mean_r) * (residuals[i - 1] - mean_r)
    rho = num / den
    assert rho > 0.2  # positively autocorrelated residuals: n′ < n
    rho_used = max(rho, 0.0)
    n_prime = n * (1 - rho_used) / (1 + rho_used)
    t = float(stats.t.ppf(0.95, n - p))
    months = m / (365.25 / 12)
    k = -0.00024 * months**2 + 0.03535 * months + 1.00286
    predicted = 0.0
    for x in X_REP:
        predicted += intercept + slope * x
    actual = sum(Y_REP)
    fraction = (predicted - actual) / predicted
    fsu = t * k * cv * math.sqrt((n / n_prime) * (1 + 2 / n_prime) * (1 / m)) / fraction
    delta_s = predicted * t * k * cv * math.sqrt((n / (m * n_prime)) * (1 + 2 / n_prime))

    fit = baseline_regression(
        np.array(X_BASE), np.array(Y_BASE), np.array(X_REP), np.array(Y_REP), confidence=0.90
    )
    assert (fit.intercept, fit.slope) == pytest.approx((intercept, slope), rel=1e-9)
    assert fit.cv_rmse == pytest.approx(cv, rel=1e-9)
    assert fit.rho == pytest.approx(rho, rel=1e-9)
    assert fit.n_prime == pytest.approx(n_prime, rel=1e-9)
    assert fit.t == pytest.approx(t, rel=1e-12)
    assert fit.k == pytest.approx(k, rel=1e-12)
    assert fit.savings == pytest.approx(predicted - actual, rel=1e-9)
    assert fit.fsu == pytest.approx(fsu, rel=1e-9)
    assert fit.delta_s == pytest.approx(delta_s, rel=1e-9)
    assert fit.delta_s == pytest.approx(fit.fsu * fit.savings, rel=1e-9)
    assert fit.fsu_68 < fit.fsu  # a 68 % interval is narrower than a 90 % one


def test_negative_autocorrelation_does_not_shrink_the_interval() -> None:
    x = np.array([11.0, 11.5, 12.0, 11.2, 11.8, 11.4, 12.1, 11.6])
    y = 0.1 * x + np.array([0.02, -0.02, 0.02, -0.02, 0.02, -0.02, 0.02, -0.02])
    fit = baseline_regression(x, y, x[:3], 0.8 * y[:3])
    assert fit.rho < 0
    assert fit.rho_used == 0.0
    assert fit.n_prime == fit.n


def test_uncertainty_formulas_agree_and_k_daily() -> None:
    assert k_daily(12.0) == pytest.approx(-0.00024 * 144 + 0.03535 * 12 + 1.00286)
    delta = savings_uncertainty(predicted=500.0, cv=0.1, n=30, n_prime=20.0, m=60, t=1.7, k=1.05)
    fsu = fractional_savings_uncertainty(
        savings_fraction=0.2, cv=0.1, n=30, n_prime=20.0, m=60, t=1.7, k=1.05
    )
    assert fsu == pytest.approx(delta / (0.2 * 500.0))
    zero = fractional_savings_uncertainty(
        savings_fraction=0.0, cv=0.1, n=30, n_prime=20.0, m=60, t=1.7, k=1.05
    )
    assert zero == math.inf


def test_difference_in_differences_by_hand() -> None:
    nan = math.nan
    treated_rep = np.array([[6.0, 6.2, nan], [5.8, 6.0, 6.1]])
    control_rep = np.array([[12.0, 12.4, 12.2]])
    treated_base = np.array([[10.0, 10.2], [9.8, 10.0]])
    control_base = np.array([[12.1, 12.3]])
    did = difference_in_differences(treated_rep, control_rep, treated_base, control_base)
    t_rep = (6.0 + 6.2 + 5.8 + 6.0 + 6.1) / 5
    c_rep = (12.0 + 12.4 + 12.2) / 3
    t_base = (10.0 + 10.2 + 9.8 + 10.0) / 4
    c_base = (12.1 + 12.3) / 2
    effect = (c_rep - t_rep) - (c_base - t_base)
    assert did.design == "difference-in-differences"
    assert did.effect_per_luminaire_night == pytest.approx(effect)
    assert did.treated_luminaire_nights == 5
    assert did.savings == pytest.approx(effect * 5)
    assert did.se is not None and did.ci is not None
    assert did.ci[0] < did.savings < did.ci[1]
    cross = difference_in_differences(treated_rep, control_rep)
    assert cross.design == "cross-sectional"
    assert cross.savings == pytest.approx((c_rep - t_rep) * 5)


def test_difference_in_differences_recovers_a_known_effect() -> None:
    rng = np.random.default_rng(7)
    nights = 60
    night_effect = rng.normal(0.0, 0.3, size=(1, nights))  # common to both groups
    control_base = 12.0 + night_effect[:, :30] + rng.normal(0, 0.05, (3, 30))
    treated_base = 10.0 + night_effect[:, :30] + rng.normal(0, 0.05, (8, 30))
    control_rep = 12.5 + night_effect[:, 30:] + rng.normal(0, 0.05, (3, 30))
    treated_rep = 10.5 - 4.0 + night_effect[:, 30:] + rng.normal(0, 0.05, (8, 30))
    did = difference_in_differences(treated_rep, control_rep, treated_base, control_base)
    assert did.effect_per_luminaire_night == pytest.approx(4.0, abs=0.05)
    assert did.ci is not None and did.ci[0] < 4.0 * 240 < did.ci[1]


def _eemeter_sample(name: str) -> Path:
    dist = importlib.metadata.distribution("eemeter")
    return Path(str(dist.locate_file(f"eemeter/eemeter/samples/{name}")))


def _rows(path: Path) -> list[tuple[str, float]]:
    with gzip.open(path, "rt") as fh:
        reader = csv.reader(fh)
        next(reader)
        return [(stamp, float(value)) for stamp, value in reader]


def test_fsu_interval_covers_eemeters_known_ten_percent_saving() -> None:
    """eemeter 4.x ships simulated daily gas use with a true 10 % saving (heating only).

    Only its data files are read (eemeter itself is not imported). A daily model
    use ~ a + b·HDD60 on the year before the blackout must give a 90 % G14 interval that
    holds the known saving, 10 % of the predicted baseline.
    """
    meta = json.loads(_eemeter_sample("metadata.json").read_text())["il-gas-hdd-only-daily"]
    assert meta["annual_reporting_total_load"] == 0.9 * meta["annual_baseline_total_load"]
    use = {stamp[:10]: v for stamp, v in _rows(_eemeter_sample(meta["meter_data_filename"]))}
    hourly: dict[str, list[float]] = {}
    for stamp, temp in _rows(_eemeter_sample(meta["temperature_filename"])):
        hourly.setdefault(stamp[:10], []).append(temp)
    days = sorted(d for d in use if d in hourly and math.isfinite(use[d]))
    balance = meta["baseline_heating_balance_point"]

    def hdd(day: str) -> float:
        return max(float(balance) - sum(hourly[day]) / len(hourly[day]), 0.0)

    base = [d for d in days if "2015-12-26" <= d < meta["blackout_start_date"]]
    rep = [d for d in days if meta["blackout_end_date"] <= d < "2018-01-04"]
    assert len(base) >= 365 and len(rep) >= 365
    fit = baseline_regression(
        np.array([hdd(d) for d in base]),
        np.array([use[d] for d in base]),
        np.array([hdd(d) for d in rep]),
        np.array([use[d] for d in rep]),
        confidence=0.90,
    )
    true_saving = 0.10 * fit.predicted
    assert abs(fit.savings - true_saving) <= fit.delta_s
    assert 0.0 < fit.fsu < 1.0
    assert fit.cv_rmse > 0.05  # the sample is noisy: the interval is not trivially tight
