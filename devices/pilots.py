"""Pilot definitions: the TOML file a new pilot arrives as, checked before anything uses it.

A pilot is data, not code (DESIGN §1, §4). Loading reads the GeoJSON files the TOML names
and embeds their geometry, so the whole definition can be stored in the database as one
JSON document (``Pilot.to_json``) and read back unchanged (``Pilot.from_json``).
Every mistake becomes a ``PilotError`` naming the file, the dotted key and what is wrong.
"""

from __future__ import annotations

import difflib
import json
import math
import tomllib
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from devices.errors import PilotError
from devices.ids import validate_id
from devices.kinds import KINDS
from devices.lorawan import LorawanSettings

_CONFIG: Final = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
_AREAS: Final = frozenset({"Polygon", "MultiPolygon"})
_LINES: Final = frozenset({"LineString", "MultiLineString"})

DeviceId = Annotated[str, AfterValidator(lambda v: validate_id(v, "device id"))]
PilotId = Annotated[str, AfterValidator(lambda v: validate_id(v, "pilot id"))]
Text = Annotated[str, Field(min_length=1, max_length=200)]


# --- GeoJSON -------------------------------------------------------------------------------


def _position(value: object, where: str) -> list[float]:
    if not isinstance(value, list) or len(value) not in (2, 3):
        raise ValueError(f"{where}: a position is [lon, lat] (or [lon, lat, alt])")
    if not all(isinstance(c, int | float) and not isinstance(c, bool) for c in value):
        raise ValueError(f"{where}: coordinates must be numbers")
    lon, lat = float(value[0]), float(value[1])
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise ValueError(f"{where}: coordinates must be finite")
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise ValueError(f"{where}: [{lon}, {lat}] is not [lon, lat] in degrees WGS84")
    return [float(c) for c in value]


def _line(value: object, where: str, ring: bool) -> list[list[float]]:
    if not isinstance(value, list):
        raise ValueError(f"{where}: expected a list of positions")
    points = [_position(p, f"{where}[{i}]") for i, p in enumerate(value)]
    if ring:
        if len(points) < 4:
            raise ValueError(f"{where}: a linear ring needs at least 4 positions")
        if points[0] != points[-1]:
            raise ValueError(f"{where}: a linear ring must be closed (first == last position)")
    elif len(points) < 2:
        raise ValueError(f"{where}: a line needs at least 2 positions")
    return points


def _polygon(value: object, where: str) -> list[list[list[float]]]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{where}: a polygon is a non-empty list of rings")
    return [_line(r, f"{where}[{i}]", ring=True) for i, r in enumerate(value)]


def _many(value: object, where: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{where}: expected a non-empty list")
    return value


def geometry(value: object, allowed: frozenset[str]) -> dict[str, Any]:
    """A checked GeoJSON geometry of an ``allowed`` type; unwraps a Feature(Collection) of one."""
    if not isinstance(value, dict):
        raise ValueError("GeoJSON must be an object")
    if value.get("type") == "FeatureCollection":
        features = value.get("features")
        if not isinstance(features, list) or len(features) != 1:
            raise ValueError("a FeatureCollection must hold exactly one feature")
        value = features[0]
        if not isinstance(value, dict):
            raise ValueError("a feature must be an object")
    if value.get("type") == "Feature":
        value = value.get("geometry")
        if not isinstance(value, dict):
            raise ValueError("the feature has no geometry")
    kind = value.get("type")
    if kind not in allowed:
        raise ValueError(f"geometry type {kind!r}; expected {' or '.join(sorted(allowed))}")
    coords = value.get("coordinates")
    where = "coordinates"
    checked: list[Any]
    if kind == "Polygon":
        checked = _polygon(coords, where)
    elif kind == "MultiPolygon":
        checked = [_polygon(p, f"{where}[{i}]") for i, p in enumerate(_many(coords, where))]
    elif kind == "LineString":
        checked = _line(coords, where, ring=False)
    else:
        checked = [_line(x, f"{where}[{i}]", False) for i, x in enumerate(_many(coords, where))]
    result = {"type": kind, "coordinates": checked}
    if kind in _AREAS:
        from shapely.geometry import shape  # heavy import, only when areas are checked
        from shapely.validation import explain_validity

        shp = shape(result)
        if not shp.is_valid:
            raise ValueError(f"invalid polygon: {explain_validity(shp)}")
    return result


def _geometry_field(allowed: frozenset[str]) -> Any:
    def check(value: object) -> dict[str, Any]:
        try:
            return geometry(value, allowed)
        except ValueError as exc:
            raise PydanticCustomError("geojson", "{reason}", {"reason": str(exc)}) from None

    return check


# --- settings ------------------------------------------------------------------------------


class StreetlightSettings(BaseModel):
    """Parameters of a streetlight pilot's savings verification (IPMVP Option B)."""

    model_config = _CONFIG

    rated_power_w: Annotated[float, Field(gt=0)]
    record_interval_s: Annotated[float, Field(gt=0)]
    control_group: tuple[DeviceId, ...] = ()
    baseline_start: date | None = None
    baseline_end: date | None = None
    road_area_m2: Annotated[float, Field(gt=0)] | None = None
    grid_kg_co2_per_kwh: Annotated[float, Field(ge=0)]
    tariff_per_kwh: Annotated[float, Field(ge=0)]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]

    @model_validator(mode="after")
    def _baseline_window(self) -> StreetlightSettings:
        start, end = self.baseline_start, self.baseline_end
        if (start is None) != (end is None):
            missing = "baseline_end" if end is None else "baseline_start"
            raise PydanticCustomError(
                "baseline", "baseline_start and baseline_end go together", {"field": missing}
            )
        if start is not None and end is not None and end <= start:
            raise PydanticCustomError(
                "baseline", "must be after baseline_start", {"field": "baseline_end"}
            )
        return self


class DroneSettings(BaseModel):
    """Parameters of a drone pilot's coverage computation, with its geometry embedded."""

    model_config = _CONFIG

    area_of_interest: Text  # file name as given, kept for provenance
    border_line: Text
    aoi: dict[str, Any]  # GeoJSON Polygon or MultiPolygon, lon/lat WGS84
    border: dict[str, Any]  # GeoJSON LineString or MultiLineString
    record_interval_s: Annotated[float, Field(gt=0)]
    hfov_deg: Annotated[float, Field(gt=0, lt=180)]
    max_gap_s: Annotated[float, Field(gt=0)]
    max_speed_mps: Annotated[float, Field(gt=0)]
    base_lat: Annotated[float, Field(ge=-90, le=90)] | None = None
    base_lon: Annotated[float, Field(ge=-180, le=180)] | None = None
    grid_cell_m: Annotated[float, Field(gt=0)] = 250.0
    # Longest acceptable time [s] a piece of the border may go unwatched (Grafana alert).
    max_revisit_s: Annotated[float, Field(gt=0)] | None = None
    # when the sensor records: "log" = the records' camera_on only; "always" = whenever
    # airborne in a patrol mode; "auto" = camera_on where a drone sends it, else "always"
    sensor: Literal["auto", "log", "always"] = "auto"
    # the autopilot's own mode names that count as patrol (replacing the defaults)
    patrol_modes: tuple[Annotated[str, Field(min_length=1, max_length=32)], ...] = ()
    epsg: Annotated[int, Field(ge=1024, le=999999)] | None = None  # default: UTM zone of the AOI

    _check_aoi = field_validator("aoi", mode="before")(_geometry_field(_AREAS))
    _check_border = field_validator("border", mode="before")(_geometry_field(_LINES))


class Pilot(BaseModel):
    """One pilot: where, who, which device kind, and the kind's evaluation settings."""

    model_config = _CONFIG

    id: PilotId
    name: Text
    kind: str
    programme_year: Annotated[int, Field(ge=2015, le=2100)]
    track: Text
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
    city: Text
    timezone: str
    latitude: Annotated[float, Field(ge=-90, le=90)]
    longitude: Annotated[float, Field(ge=-180, le=180)]
    firm: Text
    # Days of raw readings the Apache edition keeps (`kcity retention apply`); None: all.
    retain_raw_days: Annotated[int, Field(ge=1)] | None = None
    streetlight: StreetlightSettings | None = None
    drone: DroneSettings | None = None
    lorawan: LorawanSettings | None = None  # devices behind a LoRaWAN network server

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value not in KINDS:
            raise PydanticCustomError(
                "kind",
                "unknown kind '{kind}'; known kinds: {known}",
                {"kind": value, "known": ", ".join(KINDS)},
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _real_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise PydanticCustomError(
                "timezone", "unknown IANA time zone '{zone}'", {"zone": value}
            ) from None
        return value

    @model_validator(mode="after")
    def _settings_for_kind(self) -> Pilot:
        needed = {"streetlight": "streetlight", "hybrid_drone": "drone"}
        for kind, section in needed.items():
            present = getattr(self, section) is not None
            if kind == self.kind and not present:
                raise PydanticCustomError(
                    "section",
                    "section [{section}] is required when kind = '{kind}'",
                    {"field": section, "section": section, "kind": kind},
                )
            if kind != self.kind and present:
                raise PydanticCustomError(
                    "section",
                    "section [{section}] does not apply to kind = '{kind}'",
                    {"field": section, "section": section, "kind": self.kind},
                )
        return self

    @model_validator(mode="after")
    def _lorawan_fields_exist(self) -> Pilot:
        if self.lorawan is None:
            return self
        known = set(KINDS[self.kind].record_model.model_fields)
        for key, target in self.lorawan.fields.items():
            if target.field not in known or target.field == "ts":
                raise PydanticCustomError(
                    "lorawan",
                    "lorawan.fields.{key}: {target} is not a {kind} record field",
                    {"key": key, "target": target.field, "kind": self.kind},
                )
        return self

    @property
    def tzinfo(self) -> ZoneInfo:
        """The pilot's local time zone."""
        return ZoneInfo(self.timezone)

    def to_json(self) -> dict[str, Any]:
        """The whole definition, geometry included, as JSON-ready data (for a jsonb column)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, data: dict[str, Any] | str | bytes) -> Pilot:
        """Read back what ``to_json`` produced (a dict, or its JSON text)."""
        try:
            if isinstance(data, str | bytes):
                return cls.model_validate_json(data)
            return cls.model_validate(data)
        except ValidationError as exc:
            raise _pilot_error("<json>", exc) from exc


# --- loading -------------------------------------------------------------------------------

_MESSAGES: Final = {"extra_forbidden": "unknown key", "missing": "missing key"}


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "(top level)"


def _pilot_error(file: str, exc: ValidationError) -> PilotError:
    # An unknown key explains a missing one (a typo), so report it first.
    errors = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
    err = errors[0]
    loc = tuple(err["loc"])
    field = (err.get("ctx") or {}).get("field")
    if isinstance(field, str):
        loc = (*loc, field)
    message = _MESSAGES.get(err["type"], err["msg"].removeprefix("Value error, "))
    if err["type"] == "extra_forbidden":
        missing = [
            str(e["loc"][-1])
            for e in errors
            if e["type"] == "missing" and e["loc"][:-1] == loc[:-1]
        ]
        close = difflib.get_close_matches(str(loc[-1]), missing, n=1)
        if close:
            message += f" (did you mean {close[0]!r}?)"
    shown = err.get("input")
    if err["type"] not in _MESSAGES and not isinstance(shown, dict) and repr(shown) not in message:
        message += f" (got {shown!r})"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem(s))"
    return PilotError(file, _dotted(loc), message)


def _read_geojson(toml_file: Path, field: str, name: object) -> object:
    if not isinstance(name, str) or not name:
        raise PilotError(str(toml_file), field, "expected the name of a GeoJSON file")
    path = toml_file.parent / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PilotError(str(toml_file), field, f"cannot read {path}: {exc.strerror}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PilotError(str(toml_file), field, f"{path} is not valid JSON: {exc}") from exc


def load_pilot(path: Path) -> Pilot:
    """Read and check a pilot TOML file, embedding the GeoJSON files it names."""
    file = str(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise PilotError(file, "(file)", f"cannot read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise PilotError(file, "(file)", f"invalid TOML: {exc}") from exc
    drone = data.get("drone")
    if isinstance(drone, dict):
        for embedded in ("aoi", "border"):
            if embedded in drone:
                raise PilotError(
                    file, f"drone.{embedded}", "unknown key (geometry comes from the GeoJSON file)"
                )
        drone = dict(drone)
        for key, target in (("area_of_interest", "aoi"), ("border_line", "border")):
            if key in drone:
                drone[target] = _read_geojson(path, f"drone.{key}", drone[key])
        data = {**data, "drone": drone}
    try:
        return Pilot.model_validate(data)
    except ValidationError as exc:
        err = _pilot_error(file, exc)
        # Name the key the author wrote, not the embedded field derived from it.
        for key, target in (("area_of_interest", "aoi"), ("border_line", "border")):
            if err.field.startswith(f"drone.{target}"):
                raise PilotError(file, f"drone.{key}", err.message) from exc
        raise err from exc
