"""The pilot definition as applied, written back as TOML with its GeoJSON files, so that a
bundle carries the definition in the form a firm wrote it and `load_pilot` can read it."""

from __future__ import annotations

import json
import math
from pathlib import PurePosixPath
from typing import Any

from devices.pilots import Pilot
from kcity.errors import BundleError

_GEOMETRY = (("area_of_interest", "aoi"), ("border_line", "border"))


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise BundleError(f"cannot write {value!r} in a pilot TOML")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items() if v is not None)
        return "{ " + inner + " }" if inner else "{}"
    raise BundleError(f"cannot write {type(value).__name__} in a pilot TOML")


def _key(key: str) -> str:
    return key if key.replace("_", "a").replace("-", "a").isalnum() else json.dumps(key)


def _table(data: dict[str, Any], path: str, out: list[str]) -> None:
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    for key, value in data.items():
        if value is not None and key not in tables:
            out.append(f"{_key(key)} = {_value(value)}")
    for key, value in tables.items():
        name = f"{path}.{_key(key)}" if path else _key(key)
        out.append(f"\n[{name}]")
        _table(value, name, out)


def geojson_name(name: str, fallback: str) -> str:
    """The file name a definition gave, if it is a safe relative path; else `fallback`."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        return fallback
    return str(path)


def pilot_files(pilot: Pilot) -> dict[str, bytes]:
    """`pilot.toml` and the GeoJSON files it names, by path relative to the TOML."""
    data = pilot.to_json()
    files: dict[str, bytes] = {}
    drone = data.get("drone")
    if isinstance(drone, dict):
        for name_key, geometry_key in _GEOMETRY:
            name = geojson_name(str(drone[name_key]), f"{geometry_key}.geojson")
            drone[name_key] = name
            files[name] = json.dumps(drone.pop(geometry_key), indent=1).encode()
    lines: list[str] = ["# The pilot definition as applied when this bundle was exported."]
    _table(data, "", lines)
    files["pilot.toml"] = ("\n".join(lines) + "\n").encode()
    return files
