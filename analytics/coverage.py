"""Patrol coverage of a drone pilot over a time window (DESIGN §6, METHODS "Patrol coverage").

Mukdahan's pilot must show how much of the Mekong border zone its drones see, how often,
and at what energy cost. This module turns per-drone telemetry arrays into those figures:

1. points are filtered and split into runs (`analytics.tracks`), in local UTM metres
   (`analytics.geo`) — never in degrees;
2. each run is swept by the camera footprint (`analytics.tracks.swath_pieces`): every
   segment buffered by W/2 with round caps and joins, so a straight track of length L
   covers L·W + π(W/2)² and a lone point π(W/2)². Arcs use ``quad_segs`` = 32 segments
   per quarter circle: the inscribed polygon underestimates a disk by 0.04 % (GEOS'
   default of 8, by 0.64 %; a capsule by less, in proportion to its caps' share). Pieces
   are unioned per day, then over the window;
3. area coverage = |AOI ∩ union| / |AOI| (a union: per-day areas do not add up);
   linear coverage = |border ∩ union| / |border| with the *unclipped* union, because a
   border often runs along the AOI's edge, where clipping first is numerically fragile;
4. revisit intervals per grid cell (`analytics.revisit`), flight hours and distance, and
   hybrid energy (`analytics.hybrid_energy`).

Per-day figures use local calendar days of ``timezone``; a segment, a sample's energy
and its held time belong to the day of the point that starts them. Flight hours count
airborne samples (any mode) with sample-and-hold capped at ``max_gap_s``; distance is
along airborne runs with a usable fix (any mode), never across a gap.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from numbers import Integral
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

from analytics.errors import InputError
from analytics.geo import (
    LINEAR,
    POLYGONAL,
    LocalProjection,
    geometry_from_geojson,
    geometry_to_geojson,
    utm_epsg,
)
from analytics.hybrid_energy import generator_share_pct, hold_s, hybrid_energy_samples
from analytics.revisit import CellGrid, RevisitStats, grid_over, revisit_stats, sightings
from analytics.tracks import (
    DroneSeries,
    PointCounts,
    SwathPieces,
    Track,
    airborne_mask,
    flight_track,
    patrol_track,
    series_digest,
    swath_pieces,
    track_lines,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

METHOD_VERSION = "patrol-coverage/1.0"
_XYWT = ("x", "y", "width_m", "ts")
Detections = int | Sequence[Mapping[str, Any]]  # a count, or detection events with "ts"

# figures summed per sample and per local day, and the order of keys in to_json()
_DAILY = ("flight_hours", "patrol_hours", "distance_km", "patrol_distance_km", "battery_kwh",
          "battery_charged_kwh", "generator_kwh", "fuel_l")  # fmt: skip
_AREA_KEYS = ("aoi_km2", "covered_km2", "area_coverage_pct", "border_km", "border_covered_km",
              "linear_coverage_pct")  # fmt: skip
_FLIGHT_KEYS = ("flight_hours", "distance_km", "detections", "battery_kwh", "generator_kwh",
                "fuel_l", "generator_share_pct", "patrol_hours", "patrol_distance_km",
                "battery_charged_kwh")  # fmt: skip


@dataclass(frozen=True, eq=False)
class CoverageParams:
    """A drone pilot's coverage settings (the pilot file's ``[drone]`` table, plus tuning).

    ``aoi``/``border`` are GeoJSON in lon/lat (geometry, Feature or FeatureCollection);
    ``border`` may be None. ``epsg`` None picks the UTM zone of the AOI's centroid.
    """

    aoi: Mapping[str, Any]
    border: Mapping[str, Any] | None
    record_interval_s: float
    hfov_deg: float
    max_gap_s: float
    max_speed_mps: float
    grid_cell_m: float = 250.0
    epsg: int | None = None
    timezone: str = "UTC"
    min_agl_m: float = 2.0
    quad_segs: int = 32
    simplify_m: float = 1.0
    width_tolerance: float = 0.1
    refuel_min_l: float = 0.2
    workers: int = 2

    def __post_init__(self) -> None:
        for name in ("record_interval_s", "max_gap_s", "max_speed_mps", "grid_cell_m"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise InputError(f"{name} must be a positive number, got {getattr(self, name)}")
        for name in ("min_agl_m", "simplify_m", "width_tolerance", "refuel_min_l"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise InputError(f"{name} must be ≥ 0, got {getattr(self, name)}")
        if not 0 < self.hfov_deg < 180:
            raise InputError(f"hfov_deg must be in (0, 180), got {self.hfov_deg}")
        if self.quad_segs < 1 or self.workers < 1:
            raise InputError(f"quad_segs and workers must be ≥ 1: {self.quad_segs}, {self.workers}")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise InputError(f"unknown timezone {self.timezone!r}") from exc

    def to_json(self) -> dict[str, Any]:
        """Scalar settings, with the AOI and border as SHA-256 of their canonical JSON."""
        out: dict[str, Any] = {
            f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("aoi", "border")
        }
        out["aoi_sha256"] = _json_sha256(self.aoi)
        out["border_sha256"] = _json_sha256(self.border) if self.border else None
        return out


@dataclass(frozen=True)
class DayCoverage:
    """Figures for one local calendar day of the window (clipped to the window)."""

    day: str
    start: float
    end: float
    covered_km2: float
    area_coverage_pct: float
    border_covered_km: float
    linear_coverage_pct: float | None
    detections: int | None
    flight_hours: float
    patrol_hours: float
    distance_km: float
    patrol_distance_km: float
    battery_kwh: float
    battery_charged_kwh: float
    generator_kwh: float
    fuel_l: float

    @property
    def generator_share_pct(self) -> float | None:
        return generator_share_pct(self.generator_kwh, self.battery_kwh)

    def to_json(self) -> dict[str, Any]:
        out = {f.name: _clean(getattr(self, f.name)) for f in fields(self)}
        out["start"], out["end"] = _iso(self.start), _iso(self.end)
        out["generator_share_pct"] = _clean(self.generator_share_pct)
        return out


@dataclass(frozen=True, eq=False)
class CoverageResult:
    """Coverage of a window; ``to_json()`` carries the DESIGN §7 keys (minus pilot)."""

    start: float
    end: float
    epsg: int
    aoi_km2: float
    covered_km2: float
    border_km: float
    border_covered_km: float
    detections: int
    flight_hours: float
    patrol_hours: float
    distance_km: float
    patrol_distance_km: float
    battery_kwh: float
    battery_charged_kwh: float
    generator_kwh: float
    fuel_l: float
    revisit: RevisitStats
    per_day: tuple[DayCoverage, ...]
    points: Mapping[str, PointCounts]
    parameters: CoverageParams
    input_sha256: str
    covered_m: BaseGeometry
    tracks_m: BaseGeometry
    grid: CellGrid
    projection: LocalProjection

    @property
    def area_coverage_pct(self) -> float:
        return 100.0 * self.covered_km2 / self.aoi_km2

    @property
    def linear_coverage_pct(self) -> float | None:
        return 100.0 * self.border_covered_km / self.border_km if self.border_km > 0 else None

    @property
    def generator_share_pct(self) -> float | None:
        return generator_share_pct(self.generator_kwh, self.battery_kwh)

    @property
    def revisit_intervals_s(self) -> FloatArray:
        """Every revisit interval [s] of every cell, for the report's histogram."""
        return self.revisit.intervals_s

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``json.dumps(..., allow_nan=False)`` works; NaN → None)."""
        r = self.revisit
        out: dict[str, Any] = {"from": _iso(self.start), "to": _iso(self.end)}
        out |= {name: _clean(getattr(self, name)) for name in _AREA_KEYS}
        out |= {name: _clean(getattr(self, name)) for name in _FLIGHT_KEYS}
        out["revisit_s"] = {
            "mean": _clean(r.mean_s),
            "p95": _clean(r.p95_s),
            "max": _clean(r.max_s),
            "intervals": int(r.intervals_s.size),
        }
        out |= {
            "cells": r.cells,
            "visited_cells": r.visited_cells,
            "never_visited_cells": r.never_visited_cells,
            "per_day": [d.to_json() for d in self.per_day],
            "points": {k: v.to_json() for k, v in sorted(self.points.items())},
            "parameters": self.parameters.to_json(),
            "method_version": METHOD_VERSION,
            "epsg": self.epsg,
            "input_sha256": self.input_sha256,
        }
        return out

    def covered_geojson(self, simplify_m: float = 0.0) -> dict[str, Any] | None:
        """The covered part of the AOI as lon/lat GeoJSON (None if nothing was covered)."""
        geom = shapely.simplify(self.covered_m, simplify_m) if simplify_m > 0 else self.covered_m
        return geometry_to_geojson(self.projection.geometry_to_lonlat(geom))

    def tracks_geojson(self, simplify_m: float = 5.0) -> dict[str, Any] | None:
        """The kept patrol runs as a lon/lat MultiLineString (gaps stay gaps)."""
        parts = shapely.get_parts(self.tracks_m)
        if simplify_m > 0:
            parts = shapely.simplify(parts, simplify_m, preserve_topology=False)
        geom = shapely.multilinestrings(parts)
        return geometry_to_geojson(self.projection.geometry_to_lonlat(geom))

    def cells_geojson(self) -> dict[str, Any]:
        """Grid cell centres with visits and worst revisit interval [s], for a map."""
        lon, lat = self.projection.to_lonlat(self.grid.centre_x, self.grid.centre_y)
        worst = self.revisit.max_interval_per_cell_s
        visits = self.revisit.visits_per_cell.tolist()
        rows = zip(lon.tolist(), lat.tolist(), visits, worst.tolist(), strict=True)
        features = [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [x, y]},
                "properties": {"visits": v, "max_revisit_s": _clean(w)},
            }
            for x, y, v, w in rows
        ]
        return {"type": "FeatureCollection", "features": features}


def compute_coverage(
    series: Sequence[DroneSeries],
    params: CoverageParams,
    start: float,
    end: float,
    detections: Detections = 0,
) -> CoverageResult:
    """Coverage, revisit, flight and energy figures of the drones over ``[start, end)``.

    ``start``/``end`` are epoch seconds; ``detections`` is a count or a list of detection
    events (with a ``ts`` in epoch seconds or an aware datetime, for per-day counts).
    An empty window or one without flights gives an all-zero result.
    """
    if not (math.isfinite(start) and math.isfinite(end) and end >= start):
        raise InputError(f"bad window [{start}, {end})")
    proj, aoi_m, border_m = _site(params)
    edges, dates = day_edges(start, end, params.timezone)
    sums = {name: np.zeros(len(dates)) for name in _DAILY}
    pieces: list[SwathPieces] = []
    tracks: list[Track] = []
    counts: dict[str, PointCounts] = {}
    for s in series:
        w = s.window(start, end)
        track, cnt = _device(w, proj, params, end, edges, sums)
        counts[w.device_id] = counts.get(w.device_id, PointCounts()) + cnt
        tday = day_index(track.ts, edges)
        opts = {"simplify_m": params.simplify_m, "width_tolerance": params.width_tolerance}
        pieces.append(swath_pieces(track, tday, **opts))
        tracks.append(track)
    day_unions = _footprints_by_day(SwathPieces.concat(pieces), len(dates), params)
    union = shapely.union_all(day_unions) if day_unions else shapely.Polygon()
    n_det, det_per_day = _detections(detections, edges)
    per_day = tuple(
        _day(dates[d], edges[d : d + 2], day_unions[d], aoi_m, border_m, sums, d, det_per_day)
        for d in range(len(dates))
    )
    grid = grid_over(aoi_m, params.grid_cell_m)
    cat = {k: np.concatenate([getattr(t, k) for t in tracks] or [np.empty(0)]) for k in _XYWT}
    cell, seen_t = sightings(grid, cat["x"], cat["y"], cat["width_m"] / 2.0, cat["ts"])
    covered = shapely.intersection(union, aoi_m)
    lines = [track_lines(t, params.simplify_m) for t in tracks]
    return CoverageResult(
        start=start,
        end=end,
        epsg=proj.epsg,
        aoi_km2=aoi_m.area / 1e6,
        covered_km2=covered.area / 1e6,
        border_km=border_m.length / 1e3,
        border_covered_km=shapely.intersection(union, border_m).length / 1e3,
        detections=n_det,
        **{name: float(sums[name].sum()) for name in _DAILY if name != "fuel_l"},
        fuel_l=max(float(sums["fuel_l"].sum()), 0.0),
        revisit=revisit_stats(grid.cells, cell, seen_t, visit_gap_s=params.max_gap_s),
        per_day=per_day,
        points=counts,
        parameters=params,
        input_sha256=series_digest(series),
        covered_m=covered,
        tracks_m=shapely.multilinestrings(np.concatenate(lines or [np.empty(0, dtype=object)])),
        grid=grid,
        projection=proj,
    )


def _site(params: CoverageParams) -> tuple[LocalProjection, BaseGeometry, BaseGeometry]:
    """The projection, and the AOI and border in its metres."""
    aoi_ll = geometry_from_geojson(params.aoi, POLYGONAL)
    epsg = params.epsg or utm_epsg(aoi_ll.centroid.x, aoi_ll.centroid.y)
    proj = LocalProjection.for_epsg(epsg)
    aoi_m = proj.geometry_to_metres(aoi_ll)
    if not aoi_m.area > 0:
        raise InputError("the area of interest has no area")
    border_m = (
        proj.geometry_to_metres(geometry_from_geojson(params.border, LINEAR))
        if params.border
        else shapely.MultiLineString()
    )
    return proj, aoi_m, border_m


def _footprints_by_day(
    pieces: SwathPieces, n_days: int, params: CoverageParams
) -> list[BaseGeometry]:
    """Per-day footprint unions; days are independent, so two threads share them.

    Shapely releases the GIL inside GEOS, so threads give real parallelism here.
    """

    def one(day: int) -> BaseGeometry:
        return pieces.footprint(day, params.quad_segs)

    if n_days < 2 or params.workers < 2:
        return [one(d) for d in range(n_days)]
    with ThreadPoolExecutor(max_workers=params.workers) as pool:
        return list(pool.map(one, range(n_days)))


def _day(
    date: str,
    bounds: FloatArray,
    footprint: BaseGeometry,
    aoi_m: BaseGeometry,
    border_m: BaseGeometry,
    sums: dict[str, FloatArray],
    d: int,
    detections: IntArray | None,
) -> DayCoverage:
    covered = shapely.intersection(footprint, aoi_m).area / 1e6
    border = shapely.intersection(footprint, border_m).length / 1e3
    border_km = border_m.length / 1e3
    return DayCoverage(
        day=date,
        start=float(bounds[0]),
        end=float(bounds[1]),
        covered_km2=covered,
        area_coverage_pct=100.0 * covered / (aoi_m.area / 1e6),
        border_covered_km=border,
        linear_coverage_pct=100.0 * border / border_km if border_km > 0 else None,
        detections=None if detections is None else int(detections[d]),
        **{name: float(sums[name][d]) for name in _DAILY if name != "fuel_l"},
        fuel_l=max(float(sums["fuel_l"][d]), 0.0),
    )


def _device(
    w: DroneSeries,
    proj: LocalProjection,
    params: CoverageParams,
    end: float,
    edges: FloatArray,
    sums: dict[str, FloatArray],
) -> tuple[Track, PointCounts]:
    """One drone's patrol track; adds its daily flight, distance and energy to `sums`."""
    x, y = proj.to_metres(w.lon, w.lat)
    limits = {"min_agl_m": params.min_agl_m, "max_gap_s": params.max_gap_s,
              "max_speed_mps": params.max_speed_mps}  # fmt: skip
    track, counts = patrol_track(w, x, y, default_hfov_deg=params.hfov_deg, **limits)
    flight = flight_track(w, x, y, **limits)
    last = min(params.record_interval_s, end - float(w.ts[-1])) if len(w) else 0.0
    held = hold_s(
        w.ts, np.ones(len(w), dtype=np.bool_), max_gap_s=params.max_gap_s, last_hold_s=last
    )
    energy = hybrid_energy_samples(
        w.ts, w.battery_v, w.battery_a, w.gen_power_w, w.fuel_l, max_gap_s=params.max_gap_s,
        last_hold_s=last, refuel_min_l=params.refuel_min_l,
    )  # fmt: skip
    day, tday = day_index(w.ts, edges), day_index(track.ts, edges)
    n = len(edges) - 1
    add = {
        "flight_hours": (day, held * airborne_mask(w, params.min_agl_m) / 3600.0),
        "patrol_hours": (tday, _patrol_hold_s(track, params) / 3600.0),
        "distance_km": (day_index(flight.ts, edges), flight.step_lengths_m() / 1e3),
        "patrol_distance_km": (tday, track.step_lengths_m() / 1e3),
        "battery_kwh": (day, energy.battery_kwh),
        "battery_charged_kwh": (day, energy.battery_charged_kwh),
        "generator_kwh": (day, energy.generator_kwh),
        "fuel_l": (day, energy.fuel_l),
    }
    for name, (idx, values) in add.items():
        if n > 0 and idx.size:
            sums[name] += np.bincount(idx, weights=values, minlength=n)
    return track, counts


def _patrol_hold_s(track: Track, params: CoverageParams) -> FloatArray:
    """Time [s] each kept point stands for: to the next point of its run, else one interval."""
    hold = np.full(len(track), min(params.record_interval_s, params.max_gap_s))
    if len(track) > 1:
        nxt = track.joined()[1:]
        hold[:-1][nxt] = np.diff(track.ts)[nxt]
    return hold


def day_edges(start: float, end: float, timezone: str) -> tuple[FloatArray, list[str]]:
    """Boundaries [s] of the local calendar days covering ``[start, end)``, and their dates.

    ``edges[0] == start`` and ``edges[-1] == end``; an empty window has no days.
    """
    if end <= start:
        return np.array([start], dtype=np.float64), []
    tz = ZoneInfo(timezone)
    day = dt.datetime.fromtimestamp(start, tz).date()
    edges, dates = [start], []
    while True:
        dates.append(day.isoformat())
        day += dt.timedelta(days=1)
        boundary = dt.datetime.combine(day, dt.time(0), tzinfo=tz).timestamp()
        if boundary >= end:
            edges.append(end)
            return np.array(edges, dtype=np.float64), dates
        edges.append(boundary)


def day_index(ts: FloatArray, edges: FloatArray) -> IntArray:
    """Index of the day (between `edges`) holding each time."""
    idx = np.searchsorted(edges, ts, side="right") - 1
    return np.clip(idx, 0, max(len(edges) - 2, 0)).astype(np.int64)


def _detections(detections: Detections, edges: FloatArray) -> tuple[int, IntArray | None]:
    if isinstance(detections, Integral) or not isinstance(detections, Sequence):
        return int(detections), None  # a count (numpy integers included)
    times = []
    for event in detections:
        ts = event.get("ts")
        if isinstance(ts, dt.datetime):
            ts = ts.timestamp()
        if not isinstance(ts, int | float):
            return len(detections), None
        times.append(float(ts))
    n = len(edges) - 1
    per_day = np.bincount(day_index(np.array(times), edges), minlength=n) if n else None
    return len(detections), per_day


def _clean(value: Any) -> Any:
    """Plain JSON value: NaN/inf → None, numpy scalars → Python."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat().replace("+00:00", "Z")


def _json_sha256(obj: Mapping[str, Any]) -> str:
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
