"""Verified streetlight savings on synthetic luminaires whose true savings are known."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from astral import Observer
from astral.sun import sunrise, sunset

from analytics import nights
from analytics.errors import InputError
from analytics.luminaire_nights import MIN_FULL_POWER_SAMPLES
from analytics.savings import (
    LuminaireSeries,
    NonRoutineEvent,
    SavingsParams,
    SavingsResult,
    compute_savings,
    interval_energy_wh,
)
from analytics.savings_frame import savings_calendar

ZONE = ZoneInfo("Asia/Jakarta")
OBSERVER = Observer(latitude=-7.63, longitude=111.52)
STEP = 300.0
FIRST = dt.date(2023, 7, 1)
DAYS = 39  # records from 1 July 00:05 to 9 August 00:00 local
BASE = (dt.date(2023, 7, 1), dt.date(2023, 7, 7))
START, END = dt.date(2023, 7, 8), dt.date(2023, 8, 8)  # 31 reporting nights
Level = Callable[[dt.date, int, np.random.Generator], np.ndarray]


@dataclasses.dataclass
class Luminaire:
    """A simulated luminaire and its true nightly energies [Wh]."""

    series: LuminaireSeries
    actual: dict[dt.date, float]
    counterfactual: dict[dt.date, float]
    burning_h: dict[dt.date, float]


def _sun(day: dt.date) -> tuple[float, float]:
    after = day + dt.timedelta(days=1)
    return (
        sunset(OBSERVER, day, tzinfo=ZONE).timestamp(),
        sunrise(OBSERVER, after, tzinfo=ZONE).timestamp(),
    )


def full(day: dt.date, k: int, rng: np.random.Generator) -> np.ndarray:
    return np.full(k, 100.0)


def adaptive(day: dt.date, k: int, rng: np.random.Generator) -> np.ndarray:
    """100 % in the baseline week, else 40 % with traffic bursts to 100 %."""
    if BASE[0] <= day <= BASE[1]:
        return np.full(k, 100.0)
    return rng.choice(np.array([40.0, 100.0]), p=[0.8, 0.2], size=k)


def fixed(level: float) -> Level:
    def dims(day: dt.date, k: int, rng: np.random.Generator) -> np.ndarray:
        return np.full(k, 100.0 if BASE[0] <= day <= BASE[1] else level)

    return dims


def simulate(
    device_id: str, level: Level, *, full_w: float = 120.0, noise: float = 0.01, seed: int = 1
) -> Luminaire:
    """5-minute records; a lamp burns from sunset to sunrise, power = P·(0.15 + 0.85·dim)."""
    rng = np.random.default_rng(seed)
    t0 = dt.datetime(FIRST.year, FIRST.month, FIRST.day, tzinfo=ZONE).timestamp()
    ts = (t0 + STEP * np.arange(1, DAYS * 288 + 1)).astype(np.float64)
    lamp_on = np.zeros(ts.size, dtype=bool)
    dim = np.zeros(ts.size)
    nights: dict[dt.date, np.ndarray] = {}
    for k in range(-1, DAYS):
        day = FIRST + dt.timedelta(days=k)
        dusk, dawn = _sun(day)
        inside = (ts > dusk) & (ts <= dawn)
        lamp_on |= inside
        dim[inside] = level(day, int(inside.sum()), rng)
        nights[day] = inside
    scale = 1.0 + noise * rng.standard_normal(ts.size)
    power = np.where(lamp_on, full_w * (0.15 + 0.85 * dim / 100.0) * scale, 0.5).astype(np.float64)
    energy = np.cumsum(power * STEP / 3600.0)
    series = LuminaireSeries(device_id, ts, power, energy, dim, lamp_on)
    return Luminaire(
        series,
        {d: float(power[m].sum() * STEP / 3600.0) for d, m in nights.items()},
        {d: float(full_w * m.sum() * STEP / 3600.0) for d, m in nights.items()},
        {d: float(m.sum() * STEP / 3600.0) for d, m in nights.items()},
    )


def params(**changes: object) -> SavingsParams:
    base = SavingsParams(
        timezone="Asia/Jakarta",
        latitude=-7.63,
        longitude=111.52,
        rated_power_w=120.0,
        record_interval_s=STEP,
        control_group=("sl-c1",),
        baseline_start=BASE[0],
        baseline_end=BASE[1],
        road_area_m2=42000.0,
        grid_kg_co2_per_kwh=0.79,
        tariff_per_kwh=1444.70,
        currency="IDR",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def reporting(days: dict[dt.date, float]) -> float:
    return sum(v for d, v in days.items() if START <= d < END)


@pytest.fixture(scope="module")
def pilot() -> list[Luminaire]:
    treated = [simulate(f"sl-t{k}", adaptive, full_w=118.0 + k, seed=k) for k in range(4)]
    return [*treated, simulate("sl-c1", full, seed=99)]


@pytest.fixture(scope="module")
def clean(pilot: list[Luminaire]) -> SavingsResult:
    return compute_savings([lum.series for lum in pilot], [], params(), START, END)


def true_savings_kwh(luminaires: list[Luminaire]) -> float:
    treated = [lum for lum in luminaires if lum.series.device_id != "sl-c1"]
    return sum(reporting(lum.counterfactual) - reporting(lum.actual) for lum in treated) / 1000


def test_clean_data_savings_within_one_percent_of_truth(
    pilot: list[Luminaire], clean: SavingsResult
) -> None:
    truth = true_savings_kwh(pilot)
    treated = pilot[:4]
    assert clean.savings_kwh == pytest.approx(truth, rel=0.01)
    assert clean.actual_kwh == pytest.approx(
        sum(reporting(lum.actual) for lum in treated) / 1000, rel=1e-9
    )
    assert clean.ci_kwh[0] < truth < clean.ci_kwh[1]
    assert clean.full_power_source == "baseline"
    assert clean.completeness_pct == pytest.approx(100.0)
    assert clean.excluded_nights == ()
    assert not any("full power" in w for w in clean.warnings)
    out = clean.to_json()
    assert out["luminaires"] == 4
    assert len(out["per_night"]) == 31  # type: ignore[arg-type]
    per_lum = out["per_luminaire"]
    assert isinstance(per_lum, list)
    assert sum(row["savings_kwh"] for row in per_lum) == pytest.approx(clean.savings_kwh)
    assert {row["device_id"] for row in per_lum} == {"sl-t0", "sl-t1", "sl-t2", "sl-t3"}
    assert out["co2_kg"] == pytest.approx(clean.savings_kwh * 0.79)
    assert out["cost_saved"] == pytest.approx(clean.savings_kwh * 1444.70)


def test_json_has_the_contract_keys_and_no_nan(clean: SavingsResult) -> None:
    out = clean.to_json()
    text = json.dumps(out, allow_nan=False)  # raises on NaN or inf
    assert json.loads(text) == out
    for key in (
        "method", "luminaires", "actual_kwh", "baseline_kwh", "savings_kwh", "savings_pct",
        "ci90_kwh", "co2_kg", "cost_saved", "currency", "completeness_pct", "excluded_nights",
        "per_luminaire", "per_night", "full_power_w", "full_power_source", "control_group",
        "regression", "non_routine_events", "day_burning", "d_e_wh_per_m2", "warnings",
        "parameters", "method_version", "ci_formula", "input_sha256",
    ):  # fmt: skip
        assert key in out, key
    assert out["method"] == "ipmvp-b-counterfactual"
    assert out["currency"] == "IDR"
    row = out["per_luminaire"][0]  # type: ignore[index]
    assert {"device_id", "actual_kwh", "baseline_kwh", "savings_kwh"} <= set(row)


def test_regression_and_control_group_agree_with_truth(
    pilot: list[Luminaire], clean: SavingsResult
) -> None:
    truth = true_savings_kwh(pilot)
    reg = clean.to_json()["regression"]
    assert isinstance(reg, dict)
    assert reg["n"] == 7 and reg["m"] == 31
    assert reg["savings_kwh"] == pytest.approx(truth, rel=0.03)
    assert 0 < reg["cv_rmse"] < 0.05
    # a one-week baseline in early July cannot span August's shorter nights: flagged
    assert reg["extrapolates"] is True
    assert reg["reporting_night_hours"][0] < reg["baseline_night_hours"][0]
    assert any("extrapolates" in w for w in clean.warnings)
    did = clean.to_json()["control_group"]
    assert isinstance(did, dict)
    assert did["design"] == "difference-in-differences"
    assert did["luminaires"] == ["sl-c1"]
    assert did["savings_kwh"] == pytest.approx(truth, rel=0.05)


def test_difference_in_differences_removes_a_group_difference() -> None:
    """Control luminaires draw 120 W, treated 100 W: only DiD recovers the true saving."""
    treated = [simulate(f"sl-t{k}", fixed(60.0), full_w=100.0, noise=0.0) for k in range(3)]
    control = simulate("sl-c1", full, full_w=120.0, noise=0.0)
    series = [lum.series for lum in [*treated, control]]
    truth = sum(reporting(t.counterfactual) - reporting(t.actual) for t in treated) / 1000
    did = compute_savings(series, [], params(), START, END).control_group
    assert did is not None and did.design == "difference-in-differences"
    assert did.savings == pytest.approx(truth, rel=0.02)
    hours = sum(reporting(t.burning_h) for t in treated)
    cross = compute_savings(series, [], params(baseline_start=None, baseline_end=None), START, END)
    assert cross.control_group is not None
    assert cross.control_group.design == "cross-sectional"
    biased = (120.0 - 100.0 * (0.15 + 0.85 * 0.6)) * hours / 1000
    assert cross.control_group.savings == pytest.approx(biased, rel=0.01)
    assert cross.full_power_source == "control"
    assert cross.regression is None


def test_register_reset_counts_the_post_reset_value(
    pilot: list[Luminaire], clean: SavingsResult
) -> None:
    lum = pilot[0].series
    dusk, _ = _sun(dt.date(2023, 7, 20))
    r = int(np.searchsorted(lum.ts, dusk + 3 * 3600))
    energy = lum.energy_wh.copy()
    energy[r:] -= energy[r - 1]  # controller rebooted right after record r-1: register at 0
    reset = dataclasses.replace(lum, energy_wh=energy)
    series = [reset, *(p.series for p in pilot[1:])]
    result = compute_savings(series, [], params(), START, END)
    assert result.actual_kwh == pytest.approx(clean.actual_kwh, rel=1e-12)
    assert result.energy_sources["register-reset"] == 1
    assert result.per_luminaire[0]["register_resets"] == 1


def test_missing_register_integrates_power(pilot: list[Luminaire], clean: SavingsResult) -> None:
    lum = pilot[1].series
    dusk, _ = _sun(dt.date(2023, 7, 25))
    r = int(np.searchsorted(lum.ts, dusk + 3600))
    energy = lum.energy_wh.copy()
    energy[r : r + 24] = np.nan  # two hours without a register
    series = [
        pilot[0].series,
        dataclasses.replace(lum, energy_wh=energy),
        *(p.series for p in pilot[2:]),
    ]
    result = compute_savings(series, [], params(), START, END)
    assert result.actual_kwh == pytest.approx(clean.actual_kwh, rel=1e-12)
    assert result.energy_sources["power-register-missing"] == 25  # 24 + the record after
    assert result.excluded_nights == ()


def test_lamp_off_daylight_records_do_not_change_the_result(pilot: list[Luminaire]) -> None:
    """What `queries.load_luminaires` skips: lamp-off records neither in a night nor within
    1.5 intervals before its dusk. Here with a reset on a night's first record, a register
    missing across a dusk, and a day-burning hour."""
    p = params()
    first_dusk, _ = _sun(dt.date(2023, 7, 20))
    second_dusk, _ = _sun(dt.date(2023, 7, 24))
    a, b = pilot[0].series, pilot[1].series
    r = int(np.searchsorted(a.ts, first_dusk, side="right"))
    reset = a.energy_wh.copy()
    reset[r:] -= reset[r - 1] - 1.0
    m = int(np.searchsorted(b.ts, second_dusk))
    missing = b.energy_wh.copy()
    missing[m - 3 : m + 3] = np.nan
    noon = dt.datetime(2023, 7, 22, 12, tzinfo=ZONE).timestamp()
    lit = b.lamp_on | ((b.ts > noon) & (b.ts <= noon + 3600))
    series = [
        dataclasses.replace(a, energy_wh=reset),
        dataclasses.replace(b, energy_wh=missing, lamp_on=lit),
        *(lum.series for lum in pilot[2:]),
    ]
    cal = savings_calendar(p, START, END)
    lead = nights.NightCalendar(cal.timezone, cal.dates, cal.dusk - 1.5 * STEP, cal.dawn)
    skipped = [
        dataclasses.replace(
            s,
            **{
                f.name: getattr(s, f.name)[s.lamp_on | (nights.assign_nights(s.ts, lead) >= 0)]
                for f in dataclasses.fields(s)
                if f.name != "device_id"
            },
        )
        for s in series
    ]
    assert sum(s.ts.size for s in skipped) < 0.6 * sum(s.ts.size for s in series)
    whole = compute_savings(series, [], p, START, END)
    assert whole.energy_sources["register-reset"] == 1 and whole.day_burning
    assert whole.energy_sources["power-register-missing"] > 0
    part = compute_savings(skipped, [], p, START, END)
    assert part.to_json() == whole.to_json(), "the hash too: it covers the rows read (1.4.0)"
    # ... and a read row that changes changes it: one night record's power, by a milliwatt.
    k = int(np.flatnonzero(nights.assign_nights(skipped[2].ts, cal) == cal.index(START))[5])
    power = skipped[2].power_w.copy()
    power[k] += 0.001
    moved = [*skipped[:2], dataclasses.replace(skipped[2], power_w=power), *skipped[3:]]
    assert compute_savings(moved, [], p, START, END).input_sha256 != whole.input_sha256


def test_night_below_sufficiency_is_excluded_and_listed(pilot: list[Luminaire]) -> None:
    lum = pilot[2]
    night = dt.date(2023, 7, 15)
    dusk, dawn = _sun(night)
    gap = (lum.series.ts > dusk + 3600) & (lum.series.ts <= dusk + 3600 + 2.5 * 3600)
    keep = ~gap
    s = lum.series
    cut = LuminaireSeries(
        s.device_id, s.ts[keep], s.power_w[keep], s.energy_wh[keep], s.dim_pct[keep],
        s.lamp_on[keep],
    )  # fmt: skip
    control = pilot[4].series
    blank = (control.ts > _sun(dt.date(2023, 7, 20))[0]) & (
        control.ts <= _sun(dt.date(2023, 7, 21))[0]
    )
    control_cut = LuminaireSeries(
        control.device_id, control.ts[~blank], control.power_w[~blank],
        control.energy_wh[~blank], control.dim_pct[~blank], control.lamp_on[~blank],
    )  # fmt: skip
    series = [pilot[0].series, pilot[1].series, cut, pilot[3].series, control_cut]
    result = compute_savings(series, [], params(), START, END)
    expected_pct = 100.0 * (((dawn - dusk) / STEP) - 30) / ((dawn - dusk) / STEP)
    rows = {(row["device_id"], row["night"]): row for row in result.excluded_nights}
    assert set(rows) == {("sl-t2", "2023-07-15"), ("sl-c1", "2023-07-20")}
    assert rows["sl-t2", "2023-07-15"]["completeness_pct"] == pytest.approx(expected_pct, abs=1)
    assert "below 90 %" in str(rows["sl-t2", "2023-07-15"]["reason"])
    assert rows["sl-c1", "2023-07-20"]["reason"] == "no usable records"
    assert rows["sl-c1", "2023-07-20"]["group"] == "control"
    per = {row["device_id"]: row for row in result.per_luminaire}
    assert per["sl-t2"]["nights"] == 30 and per["sl-t2"]["nights_excluded"] == 1
    truth = true_savings_kwh(pilot) - (lum.counterfactual[night] - lum.actual[night]) / 1000
    assert result.savings_kwh == pytest.approx(truth, rel=0.01)
    assert result.completeness_pct is not None and 99.0 < result.completeness_pct < 100.0


def test_day_burning_is_flagged_and_events_listed(
    pilot: list[Luminaire], clean: SavingsResult
) -> None:
    s = pilot[3].series
    noon = dt.datetime(2023, 7, 22, 12, 0, tzinfo=ZONE).timestamp()
    lit = s.lamp_on.copy()
    burn = (s.ts > noon) & (s.ts <= noon + 3600)
    lit[burn] = True
    _, dawn = _sun(dt.date(2023, 7, 25))
    lit[int(np.searchsorted(s.ts, dawn + 600))] = True  # 10 min after sunrise: tolerated
    power = np.where(burn, 118.0 + 3, s.power_w)
    energy = s.energy_wh + np.cumsum((power - s.power_w) * STEP / 3600)
    burning = dataclasses.replace(s, lamp_on=lit, power_w=power, energy_wh=energy)
    events = [
        NonRoutineEvent("sl-t3", noon + 600, "fault", "day_burning"),
        NonRoutineEvent("sl-t3", noon + 3700, "fault_cleared", None),
        NonRoutineEvent("sl-t0", dt.datetime(2023, 6, 1, tzinfo=ZONE).timestamp(), "fault", "x"),
    ]
    series = [*(p.series for p in pilot[:3]), burning, pilot[4].series]
    result = compute_savings(series, events, params(), START, END)
    assert len(result.day_burning) == 1
    finding = result.day_burning[0]
    assert finding["device_id"] == "sl-t3" and finding["date"] == "2023-07-22"
    assert finding["records"] == 12 and finding["hours"] == pytest.approx(1.0)
    assert finding["energy_kwh"] == pytest.approx(12 * 121.0 * STEP / 3600 / 1000)
    assert result.savings_kwh == pytest.approx(clean.savings_kwh, rel=1e-9)
    assert [e["type"] for e in result.non_routine_events] == ["fault", "fault_cleared"]
    assert result.non_routine_events[0]["night"] is None
    assert result.non_routine_events[0]["code"] == "day_burning"


def test_rated_power_fallback_warns() -> None:
    """Treated luminaires never at 100 % in the reporting nights, no baseline, no control."""
    series = [simulate(f"sl-t{k}", fixed(60.0), seed=k).series for k in range(4)]
    result = compute_savings(
        series, [], params(control_group=(), baseline_start=None, baseline_end=None), START, END
    )
    assert result.full_power_source == "rated"
    assert {row["full_power_source"] for row in result.per_luminaire} == {"rated"}
    assert any("rated power" in w for w in result.warnings)
    assert result.control_group is None and result.regression is None
    out = result.to_json()
    assert out["full_power_w"] == 120.0
    lo, hi = result.ci_kwh
    assert out["ci90_kwh"] == [lo, hi]
    assert hi - lo > 0.05 * result.baseline_kwh  # a ±10 % rating tolerance widens the interval


def test_d_e_annualises_the_operated_power(pilot: list[Luminaire], clean: SavingsResult) -> None:
    year = 0.0
    for k in range(365):
        dusk, dawn = _sun(START + dt.timedelta(days=k))
        year += (dawn - dusk) / 3600
    energy = sum(reporting(lum.actual) for lum in pilot)
    hours = sum(reporting(lum.burning_h) for lum in pilot)
    expected = energy / hours * year * len(pilot) / 42000.0
    assert clean.to_json()["d_e_wh_per_m2"] == pytest.approx(expected, rel=1e-9)


def test_interval_energy_sources() -> None:
    ts = np.array([300.0, 600.0, 900.0, 1500.0, 1800.0, 2100.0])
    power = np.array([120.0, 120.0, 60.0, 72.0, 120.0, 36.0])
    register = np.array([100.0, 110.0, 5.0, 25.0, 35.0, np.nan])
    energy, source = interval_energy_wh(ts, power, register, 300.0)
    assert energy.tolist() == pytest.approx([10.0, 10.0, 5.0, 6.0, 10.0, 3.0])
    assert source.tolist() == [3, 0, 1, 3, 0, 2]


def test_no_usable_data_gives_json_safe_nulls(pilot: list[Luminaire]) -> None:
    s = pilot[0].series
    few = LuminaireSeries(s.device_id, s.ts[:10], s.power_w[:10], s.energy_wh[:10],
                          s.dim_pct[:10], s.lamp_on[:10])  # fmt: skip
    out = compute_savings([few], [], params(), START, END).to_json()
    json.dumps(out, allow_nan=False)
    assert out["savings_pct"] is None
    assert out["savings_kwh"] == 0.0
    excluded = out["excluded_nights"]
    assert isinstance(excluded, list)
    windows = [row["window"] for row in excluded]
    assert windows.count("reporting") == 31 and windows.count("baseline") == 7


def test_contract_violations_raise(pilot: list[Luminaire]) -> None:
    s = pilot[0].series
    backwards = dataclasses.replace(s, ts=s.ts[::-1].copy())
    with pytest.raises(InputError):
        compute_savings([backwards], [], params(), START, END)
    with pytest.raises(InputError):
        compute_savings([s, s], [], params(), START, END)
    with pytest.raises(InputError):
        compute_savings([s], [], params(), END, START)
    with pytest.raises(InputError):
        compute_savings([s], [], params(baseline_end=None), START, END)


def test_lamp_out_for_two_hours_is_a_burning_anomaly(
    pilot: list[Luminaire], clean: SavingsResult
) -> None:
    s = pilot[0].series
    dusk, _ = _sun(dt.date(2023, 7, 18))
    out = (s.ts > dusk + 4 * 3600) & (s.ts <= dusk + 6 * 3600)  # 24 records off
    power = np.where(out, 0.5, s.power_w)
    energy = s.energy_wh + np.cumsum((power - s.power_w) * STEP / 3600)
    dark = dataclasses.replace(s, lamp_on=s.lamp_on & ~out, power_w=power, energy_wh=energy)
    result = compute_savings([dark, *(p.series for p in pilot[1:])], [], params(), START, END)
    assert len(result.burning_anomalies) == 1
    row = result.burning_anomalies[0]
    assert row["device_id"] == "sl-t0" and row["night"] == "2023-07-18"
    assert row["burning_hours"] == pytest.approx(float(row["metered_hours"]) - 2.0)  # type: ignore[arg-type]
    lost_cf = 118.0 * 2.0 / 1000  # the lamp did not burn: no avoided energy either
    lost_actual = float(((s.power_w - 0.5) * out).sum()) * STEP / 3600 / 1000
    assert result.savings_kwh == pytest.approx(
        true_savings_kwh(pilot) - lost_cf + lost_actual, rel=0.01
    )
    assert clean.burning_anomalies == ()


def test_no_series_at_all_is_a_result_with_warnings() -> None:
    result = compute_savings([], [], params(), START, END)
    out = result.to_json()
    json.dumps(out, allow_nan=False)
    assert out["luminaires"] == 0 and out["completeness_pct"] is None
    assert any("sl-c1" in w for w in result.warnings)


def test_a_silent_treated_luminaire_is_named_and_counted_missing(
    pilot: list[Luminaire], clean: SavingsResult
) -> None:
    """Four treated luminaires report fully; a fifth is registered and never sends."""
    ids = [lum.series.device_id for lum in pilot]
    result = compute_savings(
        [lum.series for lum in pilot], [], params(), START, END, [*ids, "sl-t9"]
    )
    assert result.missing_luminaires == ("sl-t9",)
    body = result.to_json()
    assert body["missing_luminaires"] == ["sl-t9"]
    assert any("sl-t9" in w for w in result.warnings)
    # Its nights are expected and missing: four of five treated luminaires' nights are there.
    assert clean.completeness_pct == pytest.approx(100.0)
    assert result.completeness_pct == pytest.approx(100.0 * 4 / 5)
    assert result.savings_kwh == pytest.approx(clean.savings_kwh)
    # ... and each of its 31 reporting nights is an excluded night, as the truth says.
    dark = [row for row in result.excluded_nights if row["device_id"] == "sl-t9"]
    assert sorted(str(row["night"]) for row in dark) == [
        (START + dt.timedelta(days=k)).isoformat() for k in range((END - START).days)
    ]
    assert {row["reason"] for row in dark} == {"no usable records"}


def test_a_window_without_readings_warns(pilot: list[Luminaire]) -> None:
    later = START + dt.timedelta(days=400)
    series = [lum.series for lum in pilot]
    p = params(baseline_start=None, baseline_end=None)
    result = compute_savings(series, [], p, later, later + dt.timedelta(days=2))
    assert result.warnings[0] == "no readings from any luminaire of the pilot in this window"
    assert result.savings_kwh == 0


def test_per_luminaire_full_power_from_own_reporting_samples() -> None:
    """No baseline window; treated luminaires draw 116–124 W (±3 %) against a control group at
    120 W and brighten to 100 % on traffic: each luminaire's own 100 % samples set its full
    power, and per-luminaire savings match the simulated truth within 1.5 %."""
    watts = (116.0, 118.0, 122.0, 124.0)
    treated = [simulate(f"sl-t{k}", adaptive, full_w=w, seed=10 + k) for k, w in enumerate(watts)]
    control = simulate("sl-c1", full, full_w=120.0, seed=99)
    result = compute_savings(
        [lum.series for lum in [*treated, control]],
        [],
        params(baseline_start=None, baseline_end=None),
        START,
        END,
    )
    rows = {row["device_id"]: row for row in result.per_luminaire}
    assert result.full_power_source == "own_reporting"
    for lum, w in zip(treated, watts, strict=True):
        # truth: Σ (full − actual) energy over the reporting nights, from the simulated power
        truth = (reporting(lum.counterfactual) - reporting(lum.actual)) / 1000.0
        row = rows[lum.series.device_id]
        assert row["full_power_source"] == "own_reporting"
        assert row["full_power_samples"] >= 12
        assert row["full_power_w"] == pytest.approx(w, rel=0.005)
        assert row["savings_kwh"] == pytest.approx(truth, rel=0.015)
    truth_total = sum(reporting(t.counterfactual) - reporting(t.actual) for t in treated) / 1000
    assert result.ci_kwh[0] < truth_total < result.ci_kwh[1]
    assert not any("control-group value" in w for w in result.warnings)


def test_too_few_own_samples_fall_back_to_the_control_group() -> None:
    """Fewer than MIN_FULL_POWER_SAMPLES own 100 % samples: the control group's value, said."""

    def rare(day: dt.date, k: int, rng: np.random.Generator) -> np.ndarray:
        dims = np.full(k, 40.0)
        if day == START:
            dims[: MIN_FULL_POWER_SAMPLES - 1] = 100.0
        return dims

    lum = simulate("sl-t0", rare, full_w=116.0, noise=0.0)
    control = simulate("sl-c1", full, full_w=120.0, noise=0.0)
    result = compute_savings(
        [lum.series, control.series], [], params(baseline_start=None, baseline_end=None), START, END
    )
    (row,) = result.per_luminaire
    assert row["full_power_source"] == "control"
    assert row["full_power_w"] == pytest.approx(120.0)
    assert any("control-group value used: ['sl-t0']" in w for w in result.warnings)
