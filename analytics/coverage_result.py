"""What a coverage computation takes and returns: its settings, per-day and window figures.

Why: callers (the CLI, the report, the API) build `CoverageParams` and read
`CoverageResult` without needing the geometry pipeline of `analytics.coverage`; the JSON
shape of a result (DESIGN §7) is defined here, next to the fields it reads.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

from analytics.errors import InputError
from analytics.geo import LocalProjection, geometry_to_geojson
from analytics.hybrid_energy import generator_share_pct
from analytics.revisit import CellGrid, RevisitStats
from analytics.tracks import PointCounts

FloatArray = npt.NDArray[np.float64]

METHOD_VERSION = "patrol-coverage/1.1"

# the order of keys in CoverageResult.to_json()
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
    sensor: str = "auto"  # "auto" | "log" | "always" (analytics.sensor)

    def __post_init__(self) -> None:
        for name in ("record_interval_s", "max_gap_s", "max_speed_mps", "grid_cell_m"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise InputError(f"{name} must be a positive number, got {getattr(self, name)}")
        for name in ("min_agl_m", "simplify_m", "width_tolerance", "refuel_min_l"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise InputError(f"{name} must be ≥ 0, got {getattr(self, name)}")
        if not 0 < self.hfov_deg < 180:
            raise InputError(f"hfov_deg must be in (0, 180), got {self.hfov_deg}")
        if self.sensor not in ("auto", "log", "always"):
            raise InputError(f"sensor must be auto, log or always, got {self.sensor!r}")
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
    sensor_source: Mapping[str, str] = dataclasses.field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    battery_known: bool = True
    generator_known: bool = True

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
        if not self.generator_known:  # no generator or fuel data: unknown, not 0
            out |= {"generator_kwh": None, "fuel_l": None, "generator_share_pct": None}
        if not self.battery_known:  # no power module (0 V / −1): no battery data
            out |= {"battery_kwh": None, "battery_charged_kwh": None, "generator_share_pct": None}
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
            "sensor_source": dict(sorted(self.sensor_source.items())),
            "energy_split": "measured" if self.generator_known else "unknown",
            "warnings": list(self.warnings),
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
