"""Projection helpers: every coverage figure is computed in metres, never in degrees.

A degree of longitude shrinks with latitude (about 106.7 km at Mukdahan, 111.3 km at the
equator), so buffering or measuring in degrees is wrong by several per cent. Geometry is
projected once to a local UTM zone (EPSG:326zz north / 327zz south) with pyproj in
``always_xy`` order (x = lon, y = lat), worked on in metres, and projected back to lon/lat
only for maps. The UTM scale factor (0.9996 on the central meridian, up to ~1.001 at the
zone edge) changes areas by at most ~0.2 %, and AOI and footprints alike, so percentages
are unaffected.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from pyproj import Transformer
from pyproj.exceptions import CRSError
from shapely.geometry.base import BaseGeometry

from analytics.errors import InputError

FloatArray = npt.NDArray[np.float64]
_XYFunc = Callable[[FloatArray, FloatArray], tuple[FloatArray, FloatArray]]

POLYGONAL = frozenset({"Polygon", "MultiPolygon"})
LINEAR = frozenset({"LineString", "MultiLineString"})


def utm_epsg(lon: float, lat: float) -> int:
    """EPSG code of the WGS 84 UTM zone holding (lon, lat); Mukdahan → 32648.

    The standard 6° zones; the Norway/Svalbard exceptions are ignored (no pilot there).
    """
    if not (np.isfinite(lon) and np.isfinite(lat)) or abs(lat) > 90:
        raise InputError(f"cannot choose a UTM zone for lon={lon}, lat={lat}")
    zone = int(np.floor(((lon + 180.0) % 360.0) / 6.0)) + 1
    zone = min(max(zone, 1), 60)
    return (32600 if lat >= 0 else 32700) + zone


@dataclass(frozen=True)
class LocalProjection:
    """A pair of WGS 84 ↔ metric transformers for one EPSG code."""

    epsg: int
    _forward: Transformer = field(repr=False, compare=False)
    _inverse: Transformer = field(repr=False, compare=False)

    @classmethod
    def for_epsg(cls, epsg: int) -> LocalProjection:
        """Build the transformers; an unknown code is an `InputError`."""
        try:
            forward = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True)
            inverse = Transformer.from_crs(f"EPSG:{epsg}", "EPSG:4326", always_xy=True)
        except CRSError as exc:
            raise InputError(f"unknown projection EPSG:{epsg}") from exc
        return cls(epsg, forward, inverse)

    @property
    def crs_name(self) -> str:
        """The projection's own name, e.g. "WGS 84 / UTM zone 48N"."""
        return (
            str(self._forward.target_crs.name) if self._forward.target_crs else f"EPSG:{self.epsg}"
        )

    def to_metres(self, lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Project lon/lat degrees to x/y metres."""
        x, y = self._forward.transform(
            np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
        )
        return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)

    def to_lonlat(self, x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Project x/y metres back to lon/lat degrees."""
        lon, lat = self._inverse.transform(
            np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        )
        return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)

    def geometry_to_metres(self, geom: BaseGeometry) -> BaseGeometry:
        """Project a lon/lat geometry to metres."""
        return _transform(geom, self.to_metres)

    def geometry_to_lonlat(self, geom: BaseGeometry) -> BaseGeometry:
        """Project a metric geometry back to lon/lat."""
        return _transform(geom, self.to_lonlat)


def _transform(geom: BaseGeometry, func: _XYFunc) -> BaseGeometry:
    def apply(coords: FloatArray) -> FloatArray:
        x, y = func(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    out: BaseGeometry = shapely.transform(geom, apply)
    return out


def geometry_from_geojson(obj: Mapping[str, Any], allowed: Collection[str]) -> BaseGeometry:
    """Read a GeoJSON geometry, Feature or FeatureCollection into one shapely geometry.

    Only geometry types in `allowed` are accepted; several are unioned. An invalid polygon
    (e.g. a hand-drawn self-intersection) is repaired with `make_valid`.
    """
    geoms = [_one_geometry(g, allowed) for g in _geometries(obj)]
    if not geoms:
        raise InputError("GeoJSON holds no geometry")
    merged: BaseGeometry = geoms[0] if len(geoms) == 1 else shapely.union_all(geoms)
    if merged.is_empty:
        raise InputError("GeoJSON geometry is empty")
    return merged


def _geometries(obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    kind = obj.get("type")
    if kind == "FeatureCollection":
        return [g for f in obj.get("features") or [] for g in _geometries(f)]
    if kind == "Feature":
        geometry = obj.get("geometry")
        return _geometries(geometry) if isinstance(geometry, Mapping) else []
    if kind == "GeometryCollection":
        return [g for sub in obj.get("geometries") or [] for g in _geometries(sub)]
    return [obj]


def _one_geometry(obj: Mapping[str, Any], allowed: Collection[str]) -> BaseGeometry:
    kind = obj.get("type")
    if kind not in allowed:
        raise InputError(f"GeoJSON type {kind!r} is not one of {sorted(allowed)}")
    try:
        geom = shapely.from_geojson(json.dumps(obj))
    except (shapely.errors.GEOSException, ValueError, TypeError) as exc:
        raise InputError(f"bad GeoJSON {kind}: {exc}") from exc
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
        if kind in POLYGONAL:
            geom = _polygonal_part(geom)
    return geom


def _polygonal_part(geom: BaseGeometry) -> BaseGeometry:
    parts = shapely.get_parts(geom)
    polys = [p for p in parts if p.geom_type in POLYGONAL]
    return shapely.union_all(polys) if polys else shapely.Polygon()


def geometry_to_geojson(geom: BaseGeometry | None) -> dict[str, Any] | None:
    """A shapely geometry as a GeoJSON dict with lists (``None`` for an empty geometry)."""
    if geom is None or geom.is_empty:
        return None
    result: dict[str, Any] = json.loads(shapely.to_geojson(geom))
    return result
