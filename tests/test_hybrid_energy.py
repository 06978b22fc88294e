"""Hybrid energy integration: sample-and-hold with capped gaps, fuel with refuels."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.hybrid_energy import (
    energy_kwh,
    fuel_used_l,
    generator_share_pct,
    hold_s,
    hybrid_energy_samples,
)


def test_constant_500_w_for_one_hour_is_half_a_kwh() -> None:
    ts = np.arange(3600.0)  # 1 Hz, the last record stands for its own second
    e = energy_kwh(ts, np.full(3600, 500.0), max_gap_s=10.0, last_hold_s=1.0)
    assert e.sum() == pytest.approx(0.5)


def test_a_60_s_gap_is_capped_at_max_gap() -> None:
    ts = np.arange(3600.0)
    ts = ts[(ts <= 1000) | (ts >= 1060)]  # records 1001–1059 lost
    e = energy_kwh(ts, np.full(ts.size, 500.0), max_gap_s=10.0, last_hold_s=1.0)
    assert e.sum() == pytest.approx(500.0 * (3600 - 60 + 10) / 3.6e6)


def test_missing_samples_are_skipped_not_zeroed() -> None:
    ts = np.arange(100.0)
    power = np.full(100, 360.0)
    power[1::2] = np.nan  # power sent every 2 s
    e = energy_kwh(ts, power, max_gap_s=10.0, last_hold_s=2.0)
    assert e.sum() == pytest.approx(360.0 * 100 / 3.6e6)


def test_hold_of_the_last_sample_never_exceeds_max_gap() -> None:
    held = hold_s(np.array([0.0, 5.0]), np.array([True, True]), max_gap_s=3.0, last_hold_s=60.0)
    assert held.tolist() == [3.0, 3.0]


def test_battery_discharge_and_charge_are_apart() -> None:
    n = 7200
    ts = np.arange(float(n))
    amps = np.where(ts < 3600, 20.0, -10.0)  # 1 h discharging, 1 h charging
    e = hybrid_energy_samples(
        ts, np.full(n, 50.0), amps, np.full(n, np.nan), np.full(n, np.nan),
        max_gap_s=10.0, last_hold_s=1.0, refuel_min_l=0.2,
    )  # fmt: skip
    assert e.battery_kwh.sum() == pytest.approx(1.0)
    assert e.battery_charged_kwh.sum() == pytest.approx(0.5)
    assert e.generator_kwh.sum() == 0.0
    assert e.fuel_l.sum() == 0.0


def test_fuel_used_ignores_refuels_and_nets_gauge_noise() -> None:
    level = np.array([10.0, 9.5, 9.6, 9.0, np.nan, 8.0, 20.0, 19.0])
    used = fuel_used_l(level, refuel_min_l=0.2)
    # 0.5 − 0.1 (wobble) + 0.6 + 1.0, refuel of 12 L left out, then 1.0
    assert used.sum() == pytest.approx(3.0)
    assert used[6] == 0.0


def test_generator_share() -> None:
    assert generator_share_pct(3.0, 1.0) == pytest.approx(75.0)
    assert generator_share_pct(0.0, 0.0) is None
