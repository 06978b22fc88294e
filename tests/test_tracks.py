"""Which telemetry points may draw footprints, and where tracks are split."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from analytics.errors import InputError
from analytics.footprints import swath_pieces
from analytics.geo import LocalProjection
from analytics.tracks import (
    DroneSeries,
    Track,
    airborne_mask,
    footprint_width_m,
    patrol_track,
    plausible_runs,
    series_digest,
)
from tests.test_coverage import Site

PROJ = LocalProjection.for_epsg(32648)


def kept(s: DroneSeries) -> tuple[Track, dict[str, int]]:
    x, y = PROJ.to_metres(s.lon, s.lat)
    track, counts = patrol_track(
        s, x, y, default_hfov_deg=70.0, min_agl_m=2.0, max_gap_s=10.0, max_speed_mps=40.0
    )
    return track, counts.to_json()


def straight(n: int = 50, **columns: Any) -> DroneSeries:
    x = np.arange(n) * 10.0
    return Site().series(x, np.zeros(n), **columns)


def test_footprint_width() -> None:
    w = footprint_width_m(np.array([100.0, 100.0, np.nan]), np.array([90.0, np.nan, 60.0]), 60.0)
    assert w[0] == pytest.approx(200.0)
    assert w[1] == pytest.approx(2 * 100 * math.tan(math.radians(30)))
    assert np.isnan(w[2])


@pytest.mark.parametrize(
    ("column", "bad_value", "reason"),
    [
        ("mode", "landed", "not_airborne"),
        ("agl_m", 0.5, "not_airborne"),
        ("mode", "transit", "not_patrol"),
        ("mode", "", "not_patrol"),
        ("camera_on", False, "camera_off"),
        ("gps_fix", 2, "bad_fix"),
        ("agl_m", np.nan, "no_footprint"),
    ],
)
def test_each_filter_drops_its_points_and_splits_the_run(
    column: str, bad_value: object, reason: str
) -> None:
    s = straight()
    values = getattr(s, column).copy()
    values[20:25] = bad_value
    track, counts = kept(straight(**{column: values}))
    assert counts[reason] == 5
    assert counts["kept"] == 45
    assert np.unique(track.run).size == 2  # no segment across the excluded stretch
    assert not np.any((track.ts >= 20) & (track.ts < 25))


def test_absent_fix_is_accepted() -> None:
    track, counts = kept(straight(gps_fix=-1))
    assert counts["kept"] == 50 and counts["bad_fix"] == 0
    assert np.unique(track.run).size == 1


def test_hfov_fallback_when_not_sent() -> None:
    track, _ = kept(straight(hfov_deg=np.nan))
    assert track.width_m == pytest.approx(np.full(50, 100.0))


def test_glitch_is_dropped_without_splitting() -> None:
    site = Site()
    x = np.arange(50) * 10.0
    y = np.zeros(50)
    y[30] = 5000.0  # one wild fix
    track, counts = kept(site.series(x, y))
    assert counts["glitches"] == 1 and counts["kept"] == 49
    assert np.unique(track.run).size == 1
    assert track.step_lengths_m().sum() == pytest.approx(490.0, rel=1e-6)


def test_gap_and_flight_change_split_runs() -> None:
    ts = np.arange(30.0)
    ts[10:] += 20  # a 21 s gap
    flights = np.array(["a"] * 20 + ["b"] * 10)
    track, _ = kept(straight(30, ts=ts, flight_id=flights))
    assert list(np.unique(track.run, return_counts=True)[1]) == [10, 10, 10]
    assert track.step_lengths_m().sum() == pytest.approx(27 * 10.0, rel=1e-6)


def test_plausible_runs_judges_against_the_last_kept_point() -> None:
    ts = np.arange(6.0)
    x = np.array([0.0, 10.0, 900.0, 20.0, 30.0, 40.0])
    ok = np.ones(6, dtype=bool)
    keep, run = plausible_runs(
        ts, x, np.zeros(6), ok, np.full(6, "f"), max_gap_s=10.0, max_speed_mps=40.0
    )
    assert keep.tolist() == [True, True, False, True, True, True]
    assert run.tolist() == [0, 0, -1, 0, 0, 0]


def test_airborne_without_agl_uses_mode() -> None:
    s = straight(4, agl_m=np.nan, mode=np.array(["transit", "landed", "", "hover"]))
    assert airborne_mask(s, 2.0).tolist() == [True, False, False, True]


def test_series_contract() -> None:
    s = straight(5)
    with pytest.raises(InputError):
        DroneSeries.from_columns("d", [2.0, 1.0], [0.0, 0.0], [0.0, 0.0])
    with pytest.raises(InputError):
        DroneSeries.from_columns("d", [1.0, 2.0], [0.0], [0.0, 0.0])
    with pytest.raises(InputError):
        DroneSeries.from_columns("d", [1.0], [0.0], [0.0], colour="red")
    assert len(s.window(1.0, 3.0)) == 2
    assert series_digest([s]) != series_digest([straight(5, gen_power_w=1.0)])
    assert series_digest([s]) == series_digest([straight(5)])


def test_swath_pieces_cut_at_days_and_width_changes() -> None:
    n = 300
    track = Track(
        "d", np.arange(n, dtype=float), np.arange(n, dtype=float) * 10.0, np.zeros(n),
        np.where(np.arange(n) < 150, 100.0, 150.0), np.zeros(n, dtype=np.int64),
    )  # fmt: skip
    day = (np.arange(n) >= 100).astype(np.int64)
    pieces = swath_pieces(track, day, simplify_m=0.5, width_tolerance=0.1)
    # day change at 100, width change at 150, and pieces of at most 128 segments
    assert sorted(set(pieces.radius_m.round(3))) == [50.0, 62.5, 75.0]
    assert set(pieces.day.tolist()) == {0, 1}
    lengths = [g.length for g in pieces.geoms]
    assert sum(lengths) == pytest.approx((n - 1) * 10.0)
    assert max(lengths) <= 128 * 10.0 + 1e-6
