"""Golden geometry and window figures of patrol coverage (DESIGN §6 "Patrol coverage").

Synthetic tracks are laid out in metres and converted to lon/lat with pyproj, so that the
expected areas are the textbook ones: a capsule L·W + π(W/2)², a disk π(W/2)².
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import shapely
from pyproj import Transformer

from analytics.coverage import CoverageParams, compute_coverage, day_edges
from analytics.errors import InputError
from analytics.geo import geometry_from_geojson, utm_epsg
from analytics.tracks import DroneSeries

FloatArray = npt.NDArray[np.float64]
MUKDAHAN = (104.72, 16.54)
HFOV = 70.0
# Keys DESIGN §7 requires of `kcity coverage --json` (the caller adds `pilot`).
DESIGN_KEYS = {
    "from", "to", "aoi_km2", "covered_km2", "area_coverage_pct", "border_km",
    "border_covered_km", "linear_coverage_pct", "revisit_s", "flight_hours", "distance_km",
    "detections", "battery_kwh", "generator_kwh", "fuel_l", "generator_share_pct",
}  # fmt: skip


class Site:
    """Metric offsets [m] around a place, converted to lon/lat by pyproj.

    ``crs="utm"`` offsets in the coverage's own UTM zone, so golden areas are exact;
    ``crs="aeqd"`` in true ground metres (azimuthal equidistant at the origin).
    """

    def __init__(self, lon0: float = MUKDAHAN[0], lat0: float = MUKDAHAN[1], crs: str = "utm"):
        if crs == "utm":
            src = f"EPSG:{utm_epsg(lon0, lat0)}"
            fwd = Transformer.from_crs("EPSG:4326", src, always_xy=True)
            self.x0, self.y0 = fwd.transform(lon0, lat0)
        else:
            src = f"+proj=aeqd +lat_0={lat0} +lon_0={lon0} +datum=WGS84 +units=m"
            self.x0 = self.y0 = 0.0
        self._inv = Transformer.from_crs(src, "EPSG:4326", always_xy=True)

    def lonlat(self, x: Any, y: Any) -> tuple[FloatArray, FloatArray]:
        lon, lat = self._inv.transform(
            np.asarray(x, dtype=float) + self.x0, np.asarray(y, dtype=float) + self.y0
        )
        return np.asarray(lon), np.asarray(lat)

    def rect(self, x0: float, y0: float, x1: float, y1: float) -> dict[str, Any]:
        lon, lat = self.lonlat([x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0])
        return {"type": "Polygon", "coordinates": [[[a, b] for a, b in zip(lon, lat, strict=True)]]}

    def line(self, xs: list[float], ys: list[float]) -> dict[str, Any]:
        lon, lat = self.lonlat(xs, ys)
        return {
            "type": "LineString",
            "coordinates": [[a, b] for a, b in zip(lon, lat, strict=True)],
        }

    def series(
        self,
        x: Any,
        y: Any,
        *,
        t0: float = 0.0,
        dt_s: float = 1.0,
        width_m: Any = 100.0,
        device: str = "drone-1",
        **columns: Any,
    ) -> DroneSeries:
        """A patrolling drone (camera on, 3-D fix) at 1 record per `dt_s` along x, y."""
        x = np.asarray(x, dtype=float)
        n = x.size
        lon, lat = self.lonlat(x, y)
        agl = np.broadcast_to(np.asarray(width_m, dtype=float), (n,)) / (
            2 * math.tan(math.radians(HFOV / 2))
        )
        base: dict[str, Any] = {
            "agl_m": agl, "mode": "patrol", "camera_on": True, "gps_fix": 4, "flight_id": "f1",
        }  # fmt: skip
        ts = columns.pop("ts", t0 + dt_s * np.arange(n))
        return DroneSeries.from_columns(device, ts, lat, lon, **(base | columns))


def params(site: Site, **kw: Any) -> CoverageParams:
    defaults: dict[str, Any] = {
        "aoi": site.rect(-50_000, -50_000, 50_000, 50_000), "border": None,
        "record_interval_s": 1.0, "hfov_deg": HFOV, "max_gap_s": 10.0, "max_speed_mps": 40.0,
    }  # fmt: skip
    return CoverageParams(**(defaults | kw))


def leg(x0: float, x1: float, speed: float = 10.0) -> FloatArray:
    """Positions along x from x0 to x1 (both included) at `speed` m per 1 s record."""
    n = round(abs(x1 - x0) / speed) + 1
    return np.linspace(x0, x1, n)


def covered_m2(site: Site, s: DroneSeries, **kw: Any) -> float:
    result = compute_coverage([s], params(site, **kw), float(s.ts[0]), float(s.ts[-1]) + 1)
    return result.covered_km2 * 1e6


def test_straight_track_covers_a_capsule() -> None:
    site = Site()
    x = leg(0, 2000)
    area = covered_m2(site, site.series(x, np.zeros_like(x), width_m=100.0))
    assert area == pytest.approx(2000 * 100 + math.pi * 50**2, rel=5e-4)


def test_single_point_covers_a_disk() -> None:
    site = Site()
    area = covered_m2(site, site.series([0.0], [0.0], width_m=120.0))
    assert area == pytest.approx(math.pi * 60**2, rel=5e-4)


def test_out_and_back_covers_the_same_as_one_pass() -> None:
    site = Site()
    out = leg(0, 2000)
    there_and_back = np.concatenate([out, out[-2::-1]])
    one = covered_m2(site, site.series(out, np.zeros_like(out)))
    two = covered_m2(site, site.series(there_and_back, np.zeros_like(there_and_back)))
    assert two == pytest.approx(one, rel=1e-4)
    assert one == pytest.approx(2000 * 100 + math.pi * 50**2, rel=5e-4)


def test_footprint_is_clipped_to_the_aoi() -> None:
    site = Site()
    x = leg(-1000, 1000)
    s = site.series(x, np.zeros_like(x))
    p = params(site, aoi=site.rect(0, -5000, 5000, 5000))
    result = compute_coverage([s], p, 0, float(s.ts[-1]) + 1)
    expected = 1000 * 100 + math.pi * 50**2 / 2
    assert result.covered_km2 * 1e6 == pytest.approx(expected, rel=5e-4)
    assert result.aoi_km2 == pytest.approx(50.0, rel=1e-9)
    assert result.area_coverage_pct == pytest.approx(100 * expected / 50e6, rel=5e-4)


def test_a_gap_is_not_bridged() -> None:
    site = Site()
    a, b = leg(0, 1000), leg(3000, 4000)
    x = np.concatenate([a, b])
    ts = np.concatenate([np.arange(a.size), 1000 + np.arange(b.size)]).astype(float)
    result = compute_coverage([site.series(x, np.zeros_like(x), ts=ts)], params(site), 0, 2000)
    capsule = 1000 * 100 + math.pi * 50**2
    assert result.covered_km2 * 1e6 == pytest.approx(2 * capsule, rel=5e-4)
    assert result.distance_km == pytest.approx(2.0, rel=1e-6)


def test_a_jump_within_max_gap_but_too_fast_is_not_bridged_either() -> None:
    site = Site()
    a, b = leg(0, 1000), leg(3000, 4000)
    x = np.concatenate([a, b])
    s = site.series(x, np.zeros_like(x))  # 2 km in 1 s: impossible
    result = compute_coverage([s], params(site), 0, x.size)
    # judged against the last kept point, the new stretch is rejected until max_gap_s
    # (10 s = 100 m) has passed; then a new run starts — nothing is bridged
    expected = (1000 + 900) * 100 + 2 * math.pi * 50**2
    assert result.covered_km2 * 1e6 == pytest.approx(expected, rel=5e-4)
    assert result.points["drone-1"].glitches == 10


def test_area_is_in_metres_not_degrees() -> None:
    """The same ground track at 16.54°N and at the equator covers the same m²."""
    areas = []
    for lat0 in (16.54, 0.0):
        site = Site(lat0=lat0, crs="aeqd")
        x = leg(0, 3000)
        y = 400 * np.sin(x / 500)
        areas.append(covered_m2(site, site.series(x, y)))
    assert areas[0] == pytest.approx(areas[1], rel=5e-3)
    # and both are close to the true ground area (UTM scale factor ≤ 0.1 %)
    straight = Site(lat0=16.54, crs="aeqd")
    x = leg(0, 3000)
    true = 3000 * 100 + math.pi * 50**2
    assert covered_m2(straight, straight.series(x, np.zeros_like(x))) == pytest.approx(
        true, rel=2e-3
    )


def test_varying_width_sweeps_its_integral() -> None:
    site = Site()
    x = leg(0, 3000)
    width = np.linspace(60.0, 140.0, x.size)  # climbing: pieces of near-constant width
    area = covered_m2(site, site.series(x, np.zeros_like(x), width_m=width))
    expected = 3000 * 100.0 + math.pi * (30**2 + 70**2) / 2
    assert area == pytest.approx(expected, rel=5e-3)


def test_border_linear_coverage() -> None:
    site = Site()
    x = leg(0, 2000)
    border = site.line([-4000, 6000], [30, 30])  # 10 km, 30 m off the track
    p = params(site, border=border)
    result = compute_coverage([site.series(x, np.zeros_like(x))], p, 0, x.size)
    covered = 2000 + 2 * math.sqrt(50**2 - 30**2)  # chord through each cap
    assert result.border_km == pytest.approx(10.0, rel=1e-9)
    assert result.border_covered_km * 1e3 == pytest.approx(covered, rel=1e-3)
    assert result.linear_coverage_pct == pytest.approx(100 * covered / 10_000, rel=1e-3)


def test_filtered_points_draw_no_footprint() -> None:
    site = Site()
    x = leg(0, 3000)
    mode = np.full(x.size, "patrol")
    mode[100:200] = "transit"  # 1 km in transit in the middle
    s = site.series(x, np.zeros_like(x), mode=mode)
    result = compute_coverage([s], params(site), 0, x.size)
    # patrol 0–990 m and 2000–3000 m; transit points neither swept nor bridged
    expected = (990 + 1000) * 100 + 2 * math.pi * 50**2
    assert result.covered_km2 * 1e6 == pytest.approx(expected, rel=5e-4)
    assert result.points["drone-1"].not_patrol == 100
    assert result.distance_km == pytest.approx(3.0, rel=1e-6)  # flight distance counts transit
    assert result.patrol_distance_km == pytest.approx(1.99, rel=1e-6)


def test_union_is_not_a_sum_and_days_follow_the_timezone() -> None:
    site = Site()
    x = leg(0, 2000)
    midnight_bkk = dt.datetime(2023, 8, 2, tzinfo=dt.timezone(dt.timedelta(hours=7))).timestamp()
    ts = np.concatenate([midnight_bkk - 3600 + np.arange(x.size), midnight_bkk + np.arange(x.size)])
    flights = np.repeat(["a", "b"], x.size)
    both = site.series(np.tile(x, 2), np.zeros(2 * x.size), ts=ts, flight_id=flights)
    p = params(site, timezone="Asia/Bangkok")
    result = compute_coverage([both], p, midnight_bkk - 7200, midnight_bkk + 7200)
    assert [d.day for d in result.per_day] == ["2023-08-01", "2023-08-02"]
    capsule = (2000 * 100 + math.pi * 50**2) / 1e6
    assert [d.covered_km2 for d in result.per_day] == pytest.approx([capsule] * 2, rel=5e-4)
    assert result.covered_km2 == pytest.approx(capsule, rel=5e-4)
    hours = [d.flight_hours for d in result.per_day]
    assert sum(hours) == pytest.approx(result.flight_hours)
    # a 2-hour dropout is a gap, not flight time: the record before it holds one interval
    # (1 s), as does the window's last
    assert hours == pytest.approx([x.size / 3600, x.size / 3600])


def test_day_edges_handle_dst() -> None:
    start = dt.datetime(2023, 3, 25, tzinfo=dt.UTC).timestamp()
    edges, dates = day_edges(start, start + 3 * 86400, "Europe/Berlin")
    lengths = np.diff(edges)[1:-1]
    assert dates[1] == "2023-03-26"
    assert lengths[0] == 23 * 3600


def test_revisit_of_a_back_and_forth_patrol_is_2d_over_v_at_the_ends() -> None:
    site = Site()
    d, v, cell, w = 2000.0, 10.0, 100.0, 20.0
    out = leg(0, d, v)
    lap = np.concatenate([out, out[-2:0:-1]])
    x = np.tile(lap, 6)
    p = params(site, aoi=site.rect(0, -cell / 2, d, cell / 2), grid_cell_m=cell)
    s = site.series(x, np.zeros_like(x), width_m=w)
    result = compute_coverage([s], p, 0, x.size)
    end_centre = d - cell / 2
    assert result.revisit.cells == 20
    assert result.revisit.never_visited_cells == 0
    assert result.revisit.max_s == pytest.approx(2 * (end_centre - w / 2) / v, abs=2.0)
    assert result.revisit.max_s == pytest.approx(2 * d / v, rel=0.05)
    middle = result.revisit.max_interval_per_cell_s[10]
    assert middle == pytest.approx(d / v, rel=0.1)


def test_hybrid_energy_through_coverage() -> None:
    site = Site()
    n = 3600
    x = np.zeros(n)
    s = site.series(x, x, gen_power_w=np.full(n, 500.0), battery_v=np.full(n, 50.0),
                    battery_a=np.full(n, 10.0), fuel_l=np.linspace(5.0, 4.0, n))  # fmt: skip
    result = compute_coverage([s], params(site), 0, n, detections=3)
    assert result.generator_kwh == pytest.approx(0.5)
    assert result.battery_kwh == pytest.approx(0.5)
    assert result.generator_share_pct == pytest.approx(50.0)
    assert result.fuel_l == pytest.approx(1.0)
    assert result.flight_hours == pytest.approx(1.0)
    assert result.detections == 3


def test_empty_window_is_all_zero_and_valid_json() -> None:
    site = Site()
    p = params(site, border=site.line([0, 1000], [0, 0]))
    for series, (start, end) in (([], (0.0, 0.0)), ([site.series([0.0], [0.0])], (500.0, 900.0))):
        result = compute_coverage(series, p, start, end)
        out = json.loads(json.dumps(result.to_json(), allow_nan=False))
        assert out.keys() >= DESIGN_KEYS
        assert out["covered_km2"] == 0 and out["flight_hours"] == 0
        assert out["linear_coverage_pct"] == 0
        assert out["revisit_s"] == {"mean": None, "p95": None, "max": None, "intervals": 0}
        assert out["never_visited_cells"] == out["cells"] > 0
        assert result.covered_geojson() is None and result.tracks_geojson() is None


def test_json_and_maps() -> None:
    site = Site()
    x = leg(0, 2000)
    s = site.series(x, np.zeros_like(x))
    p = params(site, border=site.line([0, 2000], [0, 0]), timezone="Asia/Bangkok")
    result = compute_coverage([s], p, 0, 86400, detections=[{"ts": 10.0}, {"ts": 20.0}])
    out = json.loads(json.dumps(result.to_json(), allow_nan=False))
    assert out.keys() >= DESIGN_KEYS
    assert {"per_day", "never_visited_cells", "cells", "parameters", "method_version", "epsg"} <= (
        out.keys()
    )
    assert out["epsg"] == 32648 and out["detections"] == 2
    assert out["per_day"][0]["detections"] == 2
    assert out["linear_coverage_pct"] == pytest.approx(100.0)
    covered = geometry_from_geojson(result.covered_geojson() or {}, {"Polygon", "MultiPolygon"})
    lon, lat = site.lonlat([1000.0, 1000.0], [0.0, 80.0])
    assert covered.contains(shapely.Point(lon[0], lat[0]))
    assert not covered.contains(shapely.Point(lon[1], lat[1]))
    tracks = result.tracks_geojson()
    assert tracks is not None and tracks["type"] == "MultiLineString"
    assert len(result.cells_geojson()["features"]) == result.revisit.cells


def test_bad_parameters_are_input_errors() -> None:
    site = Site()
    with pytest.raises(InputError):
        params(site, max_gap_s=0.0)
    with pytest.raises(InputError):
        params(site, timezone="Mars/Olympus")
    with pytest.raises(InputError):
        compute_coverage([], params(site, aoi=site.line([0, 1], [0, 1])), 0, 1)
    with pytest.raises(InputError):
        compute_coverage([], params(site), 10, 0)


def test_quad_segs_choice_is_documented_truth() -> None:
    """32 segments per quarter circle: a disk is short by 0.04 %; GEOS' default 8, 0.64 %."""
    site = Site()
    s = site.series([0.0], [0.0], width_m=100.0)
    disk = math.pi * 50**2
    for quad_segs in (8, 32):
        n = 4 * quad_segs
        inscribed = n * math.sin(2 * math.pi / n) / (2 * math.pi)
        area = covered_m2(site, s, quad_segs=quad_segs)
        assert area / disk == pytest.approx(inscribed, rel=1e-6)
    assert 1 - covered_m2(site, s) / disk < 5e-4


def test_two_drones_on_the_same_track_cover_it_once() -> None:
    site = Site()
    x = leg(0, 2000)
    drones = [site.series(x, np.zeros_like(x), device=f"drone-{i}") for i in (1, 2)]
    result = compute_coverage(drones, params(site), 0, x.size)
    assert result.covered_km2 * 1e6 == pytest.approx(2000 * 100 + math.pi * 50**2, rel=5e-4)
    assert result.flight_hours == pytest.approx(2 * x.size / 3600)
    assert result.distance_km == pytest.approx(4.0, rel=1e-6)
    assert set(result.points) == {"drone-1", "drone-2"}


def test_projection_helpers() -> None:
    assert utm_epsg(*MUKDAHAN) == 32648
    assert utm_epsg(111.52, -7.63) == 32749  # Madiun, southern hemisphere
    square = Site().rect(0, 0, 1000, 1000)
    feature = {"type": "Feature", "geometry": square, "properties": {}}
    collection = {"type": "FeatureCollection", "features": [feature]}
    assert geometry_from_geojson(collection, {"Polygon"}).equals(
        geometry_from_geojson(square, {"Polygon"})
    )
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
    repaired = geometry_from_geojson(bowtie, {"Polygon", "MultiPolygon"})
    assert repaired.is_valid and repaired.area == pytest.approx(0.5)
    with pytest.raises(InputError):
        geometry_from_geojson({"type": "Point", "coordinates": [0, 0]}, {"Polygon"})
