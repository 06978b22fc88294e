"""Pilot definitions: the shipped pilots load, mistakes are named, JSON round-trips."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from devices.errors import DevicesError, PilotError
from devices.pilots import Pilot, geometry, load_pilot

PILOTS = Path(__file__).resolve().parent.parent / "pilots"

MADIUN = (PILOTS / "madiun.toml").read_text(encoding="utf-8")
MUKDAHAN = (PILOTS / "mukdahan.toml").read_text(encoding="utf-8")
SQUARE = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}
LINE = {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}


def write(tmp: Path, text: str, name: str = "pilot.toml") -> Path:
    path = tmp / name
    path.write_text(text, encoding="utf-8")
    return path


def drone_dir(tmp: Path, aoi: object = SQUARE, border: object = LINE) -> Path:
    (tmp / "mukdahan-aoi.geojson").write_text(json.dumps(aoi), encoding="utf-8")
    (tmp / "mukdahan-border.geojson").write_text(json.dumps(border), encoding="utf-8")
    return write(tmp, MUKDAHAN)


def error_of(path: Path) -> PilotError:
    with pytest.raises(PilotError) as info:
        load_pilot(path)
    assert isinstance(info.value, DevicesError)
    assert str(info.value) == f"{info.value.file}: {info.value.field}: {info.value.message}"
    return info.value


# --- the shipped pilots --------------------------------------------------------------------


def test_madiun_loads() -> None:
    pilot = load_pilot(PILOTS / "madiun.toml")
    assert (pilot.id, pilot.kind, pilot.country, pilot.timezone) == (
        "madiun",
        "streetlight",
        "ID",
        "Asia/Jakarta",
    )
    assert pilot.drone is None
    sl = pilot.streetlight
    assert sl is not None
    assert sl.control_group == tuple(f"madiun-sl-{i:03d}" for i in range(1, 7))
    assert (sl.baseline_start, sl.baseline_end) == (date(2026, 10, 1), date(2026, 10, 7))
    assert sl.road_area_m2 == 60 * 30 * 10
    assert (sl.rated_power_w, sl.record_interval_s, sl.currency) == (120.0, 300.0, "IDR")
    assert pilot.tzinfo.key == "Asia/Jakarta"


def test_mukdahan_loads_with_geometry_embedded() -> None:
    pilot = load_pilot(PILOTS / "mukdahan.toml")
    assert (pilot.id, pilot.kind, pilot.country) == ("mukdahan", "hybrid_drone", "TH")
    drone = pilot.drone
    assert drone is not None and pilot.streetlight is None
    assert drone.border["type"] == "LineString"
    assert drone.border["coordinates"][0] == [104.700, 16.760]
    assert drone.border["coordinates"][-1] == [104.830, 16.360]
    assert drone.aoi["type"] == "Polygon"
    ring = drone.aoi["coordinates"][0]
    assert ring[0] == ring[-1]
    # The strip is the border line and the same line 0.04° west: every border vertex is on it.
    for lon, lat in drone.border["coordinates"]:
        assert [lon, lat] in ring
        assert [round(lon - 0.04, 3), lat] in ring
    assert (drone.base_lat, drone.base_lon, drone.grid_cell_m) == (16.545, 104.715, 250.0)
    assert (drone.record_interval_s, drone.hfov_deg, drone.max_gap_s, drone.max_speed_mps) == (
        1.0,
        70.0,
        10.0,
        40.0,
    )


@pytest.mark.parametrize("name", ["madiun.toml", "mukdahan.toml"])
def test_json_round_trip(name: str) -> None:
    pilot = load_pilot(PILOTS / name)
    data = pilot.to_json()
    assert json.loads(json.dumps(data)) == data  # plain JSON, storable as jsonb
    assert Pilot.from_json(data) == pilot
    assert Pilot.from_json(json.dumps(data)) == pilot


def test_from_json_validates_too() -> None:
    data = load_pilot(PILOTS / "mukdahan.toml").to_json()
    data["drone"]["aoi"] = LINE
    with pytest.raises(PilotError) as info:
        Pilot.from_json(data)
    assert info.value.field == "drone.aoi"
    assert "Polygon" in info.value.message


# --- mistakes are named --------------------------------------------------------------------


def test_typo_key_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, MADIUN.replace("rated_power_w", "rated_powr_w"))
    err = error_of(path)
    assert err.file == str(path)
    assert err.field == "streetlight.rated_powr_w"
    assert err.message.startswith("unknown key (did you mean 'rated_power_w'?)")


def test_typo_top_level_key(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, MADIUN.replace("timezone =", "time_zone =")))
    assert err.field == "time_zone"
    assert "unknown key (did you mean 'timezone'?)" in err.message


def test_missing_key_is_named(tmp_path: Path) -> None:
    text = "\n".join(line for line in MADIUN.splitlines() if not line.startswith("currency"))
    err = error_of(write(tmp_path, text))
    assert (err.field, err.message) == ("streetlight.currency", "missing key")


@pytest.mark.parametrize(
    ("old", "new", "field", "words"),
    [
        ('id = "madiun"', 'id = "Madiun"', "id", "pilot id"),
        ('country = "ID"', 'country = "idn"', "country", "pattern"),
        (
            'timezone = "Asia/Jakarta"',
            'timezone = "Asia/Madiun"',
            "timezone",
            "time zone 'Asia/Madiun'",
        ),
        (
            'kind = "streetlight"',
            'kind = "parking"',
            "kind",
            "unknown kind 'parking'; known kinds: streetlight, hybrid_drone, generic",
        ),
        ("latitude = -7.63", "latitude = -97.63", "latitude", "greater than or equal"),
        ("longitude = 111.52", "longitude = nan", "longitude", "finite"),
        ("programme_year = 2022", "programme_year = 1999", "programme_year", "greater"),
        ('currency = "IDR"', 'currency = "idr"', "streetlight.currency", "pattern"),
        ("rated_power_w = 120.0", "rated_power_w = 0", "streetlight.rated_power_w", "greater"),
        ('"madiun-sl-006"', '"Madiun SL 6"', "streetlight.control_group[5]", "device id"),
        (
            'baseline_end = "2026-10-07"',
            'baseline_end = "2026-09-01"',
            "streetlight.baseline_end",
            "after baseline_start",
        ),
        ('baseline_end = "2026-10-07"', "", "streetlight.baseline_end", "go together"),
        (
            'baseline_start = "2026-10-01"',
            'baseline_start = "yesterday"',
            "streetlight.baseline_start",
            "date",
        ),
        (
            "grid_kg_co2_per_kwh = 0.79",
            "grid_kg_co2_per_kwh = -0.79",
            "streetlight.grid_kg_co2_per_kwh",
            "greater",
        ),
    ],
)
def test_bad_values_are_named(tmp_path: Path, old: str, new: str, field: str, words: str) -> None:
    assert old in MADIUN
    err = error_of(write(tmp_path, MADIUN.replace(old, new)))
    assert err.field == field
    assert words in err.message


def test_kind_needs_its_section(tmp_path: Path) -> None:
    text = MADIUN.split("[streetlight]")[0]
    err = error_of(write(tmp_path, text))
    assert err.field == "streetlight"
    assert "section [streetlight] is required when kind = 'streetlight'" in err.message
    err = error_of(write(tmp_path, MADIUN.replace('kind = "streetlight"', 'kind = "hybrid_drone"')))
    assert err.field in ("drone", "streetlight")
    assert "kind = 'hybrid_drone'" in err.message


def test_unreadable_files(tmp_path: Path) -> None:
    err = error_of(tmp_path / "absent.toml")
    assert err.field == "(file)" and "cannot read" in err.message
    err = error_of(write(tmp_path, 'id = "x'))
    assert err.field == "(file)" and "invalid TOML" in err.message


# --- drone geometry ------------------------------------------------------------------------


def test_drone_geojson_missing_or_broken(tmp_path: Path) -> None:
    path = write(tmp_path, MUKDAHAN)
    err = error_of(path)
    assert err.field == "drone.area_of_interest" and "cannot read" in err.message
    (tmp_path / "mukdahan-aoi.geojson").write_text("{", encoding="utf-8")
    err = error_of(path)
    assert err.field == "drone.area_of_interest" and "not valid JSON" in err.message


def test_geometry_may_come_wrapped_in_a_feature(tmp_path: Path) -> None:
    feature = {"type": "Feature", "properties": {}, "geometry": SQUARE}
    collection = {"type": "FeatureCollection", "features": [{**feature, "geometry": LINE}]}
    pilot = load_pilot(drone_dir(tmp_path, aoi=feature, border=collection))
    assert pilot.drone is not None
    assert pilot.drone.aoi == {"type": "Polygon", "coordinates": SQUARE["coordinates"]}
    assert pilot.drone.border == LINE


@pytest.mark.parametrize(
    ("aoi", "border", "field", "words"),
    [
        (LINE, LINE, "drone.area_of_interest", "Polygon"),
        (SQUARE, SQUARE, "drone.border_line", "LineString"),
        (
            {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]},
            LINE,
            "drone.area_of_interest",
            "closed",
        ),
        (
            {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [0, 0]]]},
            LINE,
            "drone.area_of_interest",
            "at least 4",
        ),
        (
            {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]},
            LINE,
            "drone.area_of_interest",
            "Self-intersection",
        ),
        (
            SQUARE,
            {"type": "LineString", "coordinates": [[0, 0], [200, 1]]},
            "drone.border_line",
            "lon, lat",
        ),
        (
            SQUARE,
            {"type": "LineString", "coordinates": [[0, 0]]},
            "drone.border_line",
            "2 positions",
        ),
        (SQUARE, {"type": "FeatureCollection", "features": []}, "drone.border_line", "exactly one"),
        (
            SQUARE,
            {"type": "MultiLineString", "coordinates": [[[0, "a"], [1, 1]]]},
            "drone.border_line",
            "numbers",
        ),
    ],
)
def test_bad_geometry_is_named(
    tmp_path: Path, aoi: object, border: object, field: str, words: str
) -> None:
    err = error_of(drone_dir(tmp_path, aoi=aoi, border=border))
    assert err.field == field
    assert words in err.message


def test_geometry_accepts_multi_types() -> None:
    multi: dict[str, Any] = {"type": "MultiPolygon", "coordinates": [SQUARE["coordinates"]]}
    assert geometry(multi, frozenset({"Polygon", "MultiPolygon"})) == multi
    lines = {"type": "MultiLineString", "coordinates": [[[0.0, 0.0], [1.0, 1.0]]]}
    assert geometry(lines, frozenset({"LineString", "MultiLineString"})) == lines


def test_embedded_geometry_keys_are_not_allowed_in_toml(tmp_path: Path) -> None:
    path = drone_dir(tmp_path)
    path.write_text(MUKDAHAN + '\n[drone.aoi]\ntype = "Polygon"\n', encoding="utf-8")
    with pytest.raises(PilotError):
        load_pilot(path)
    text = MUKDAHAN.replace("max_gap_s = 10.0", "max_gap_s = 10.0\naoi = 1")
    err = error_of(write(tmp_path, text))
    assert err.field == "drone.aoi" and "unknown key" in err.message
