"""Real flight logs against an independent computation (issue #16's "Done when").

For each log given (default: the shared field logs), the platform's figures — the log read
by `devices.log_formats` and computed by `analytics.coverage` with a pilot-like setting
(hfov 70°, max gap 10 s, 40 m/s, sensor "auto") — beside figures computed here another way:

- distance: pymavlink's own parser (`mavutil`), GLOBAL_POSITION_INT ordered by
  ``time_boot_ms`` within each boot of the vehicle (a reboot mid-log starts another, never
  joined to the one before), haversine between consecutive points above 2 m, never across
  more than 10 s; the same on the ground station's receive times shows what bursts do to a
  speed filter;
- swath: each patrol-mode segment (mode names from `mavutil.mode_string_v10`) buffered by
  its own half width in an azimuthal equidistant projection centred on the flight (not UTM),
  unioned by shapely;
- the AOI is the flight's hull grown by 500 m; the border the line between the two track
  points farthest apart.

Logs the platform refuses print their one-line reason. Run:
`.venv/bin/python bench/field_logs.py [LOG …]` (logs are not in the repository).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from pymavlink import mavutil
from pyproj import Transformer

sys.path[0] = str(Path(__file__).resolve().parent.parent)

from analytics.coverage import CoverageParams, compute_coverage  # noqa: E402
from analytics.tracks import DroneSeries  # noqa: E402
from devices.flight_log import FlightLog, LogError, LogOptions  # noqa: E402
from devices.log_formats import read_log  # noqa: E402
from devices.vehicle_clock import haversine_m  # noqa: E402

FIELD = Path(__file__).resolve().parent.parent.parent / "shared" / "field-data"
HFOV, MAX_GAP, MAX_SPEED, MIN_AGL = 70.0, 10.0, 40.0, 2.0
PATROL = {"AUTO", "GUIDED", "CIRCLE", "LOITER"}  # the platform's default Plane patrol modes


def series(log: FlightLog) -> DroneSeries:
    from datetime import datetime

    r = log.records
    col = {k: np.array([x.get(k, np.nan) for x in r], dtype=float) for k in ("lat", "lon", "agl_m")}
    return DroneSeries.from_columns(
        "log",
        [datetime.fromisoformat(x["ts"]).timestamp() for x in r],
        col["lat"],
        col["lon"],
        agl_m=col["agl_m"],
        mode=np.array([x.get("mode", "") for x in r]),
        camera_on=np.array([bool(x.get("camera_on", False)) for x in r]),
        camera_sent=np.array(["camera_on" in x for x in r]),
        gps_fix=np.array([x.get("gps_fix", -1) for x in r]),
        flight_id=np.array([x["flight_id"] for x in r]),
    )


def independent(path: Path) -> dict[str, Any]:
    """Points of the vehicle (not the GCS) read by pymavlink, on both clocks."""
    m = mavutil.mavlink_connection(str(path), dialect="ardupilotmega")
    mode, rows, boots, last = "", [], 0, 0.0
    while (msg := m.recv_match()) is not None:
        kind = msg.get_type()
        if kind == "HEARTBEAT" and msg.type != 6 and msg.autopilot != 8:
            armed = bool(msg.base_mode & 128)
            mode = mavutil.mode_string_v10(msg) if armed else "DISARMED"
        elif kind == "GLOBAL_POSITION_INT" and (msg.lat or msg.lon):
            if msg.time_boot_ms / 1e3 < last - MAX_GAP:  # rebooted: later, never joined to before
                boots += 1
            last = msg.time_boot_ms / 1e3
            rows.append((boots * 1e7 + last, msg._timestamp, msg.lat / 1e7, msg.lon / 1e7,
                         msg.relative_alt / 1e3, mode))  # fmt: skip
    rows.sort(key=lambda r: r[0])
    boot = np.array([r[0] for r in rows])
    keep = np.append(True, np.diff(boot) > 0)
    rows = [r for r, k in zip(rows, keep, strict=True) if k]
    return {
        "boot": np.array([r[0] for r in rows]),
        "gcs": np.array([r[1] for r in rows]),
        "lat": np.array([r[2] for r in rows]),
        "lon": np.array([r[3] for r in rows]),
        "agl": np.array([r[4] for r in rows]),
        "mode": [r[5] for r in rows],
    }


def distance_m(t: np.ndarray, lat: np.ndarray, lon: np.ndarray, air: np.ndarray,
               speed_filter: bool) -> float:  # fmt: skip
    """Sum of steps between airborne points ≤ MAX_GAP apart (optionally ≤ MAX_SPEED)."""
    total, last = 0.0, None
    for i in np.flatnonzero(air).tolist():
        if last is not None and 0 < t[i] - t[last] <= MAX_GAP:
            step = float(haversine_m(lat[last : last + 1], lon[last : last + 1],
                                     lat[i : i + 1], lon[i : i + 1])[0])  # fmt: skip
            if speed_filter and step > MAX_SPEED * (t[i] - t[last]):
                continue
            total += step
        last = i
    return total


def lonlat(geom: Any, back: Transformer) -> dict[str, Any]:
    """A metric geometry as lon/lat GeoJSON."""
    moved = shapely.transform(geom, lambda c: np.column_stack(back.transform(c[:, 0], c[:, 1])))
    return dict(shapely.geometry.mapping(moved))


def main(paths: list[Path]) -> None:
    print("figure | platform | independent | difference")
    for path in paths:
        print(f"\n{path.name}")
        try:
            log = read_log(path, LogOptions("bench", max_gap_s=MAX_GAP, max_speed_mps=MAX_SPEED))
        except LogError as exc:
            print(f"  refused: {exc}")
            continue
        ind = independent(path)
        lat0, lon0 = float(np.mean(ind["lat"])), float(np.mean(ind["lon"]))
        aeqd = Transformer.from_crs(
            "EPSG:4326", f"+proj=aeqd +lat_0={lat0} +lon_0={lon0} +datum=WGS84", always_xy=True
        )
        back = Transformer.from_crs(aeqd.target_crs, "EPSG:4326", always_xy=True)
        x, y = aeqd.transform(ind["lon"], ind["lat"])
        pts = shapely.points(x, y)
        hull = shapely.buffer(shapely.convex_hull(shapely.multipoints(pts)), 500.0)
        far = np.argmax(np.hypot(x - x[0], y - y[0]))
        border = shapely.LineString([(x[0], y[0]), (x[far], y[far])])

        params = CoverageParams(
            aoi=lonlat(hull, back),
            border=lonlat(border, back),
            record_interval_s=1.0,
            hfov_deg=HFOV,
            max_gap_s=MAX_GAP,
            max_speed_mps=MAX_SPEED,
        )
        s = series(log)
        res = compute_coverage([s], params, float(s.ts[0]), float(s.ts[-1]) + 1.0)
        air = ind["agl"] > MIN_AGL
        d_vehicle = distance_m(ind["boot"], ind["lat"], ind["lon"], air, False)
        d_gcs = distance_m(ind["gcs"], ind["lat"], ind["lon"], air, True)
        width = 2 * ind["agl"] * math.tan(math.radians(HFOV / 2))
        patrol = air & np.array([m in PATROL for m in ind["mode"]])
        joined = patrol[1:] & patrol[:-1] & (np.diff(ind["boot"]) <= MAX_GAP)
        segs = [shapely.buffer(shapely.LineString([(x[i], y[i]), (x[i + 1], y[i + 1])]),
                               (width[i] + width[i + 1]) / 4, quad_segs=32)
                for i in np.flatnonzero(joined).tolist()]  # fmt: skip
        swath = shapely.union_all(segs) if segs else shapely.Polygon()
        area = shapely.intersection(swath, hull).area / 1e6
        line = shapely.intersection(swath, border).length / 1e3
        print(f"  modes {dict(log.modes)}; sensor {res.sensor_source}; clock {log.clock.anchor}")
        for name, ours, theirs in (
            ("distance km (vehicle clock)", res.distance_km, d_vehicle / 1e3),
            ("covered km²", res.covered_km2, area),
            ("border covered km", res.border_covered_km, line),
        ):
            diff = 100 * (ours - theirs) / theirs if theirs else float("nan")
            print(f"  {name} | {ours:.4f} | {theirs:.4f} | {diff:+.2f} %")
        print(
            f"  distance km on ground-station receive times, speed-filtered | "
            f"{d_gcs / 1e3:.4f} ({100 * (d_gcs - d_vehicle) / d_vehicle:+.1f} % vs vehicle)"
        )
        print(
            f"  flight h {res.flight_hours:.4f}, patrol h {res.patrol_hours:.4f}, "
            f"glitches {res.points['log'].flight_glitches}, dropouts {log.clock.dropouts}"
        )


if __name__ == "__main__":
    args = [Path(a) for a in sys.argv[1:]]
    main(args or sorted(FIELD.glob("*.tlog")))
