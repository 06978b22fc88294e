"""The MAVLink bridge: units and sentinels, on .tlog files written with pymavlink here."""

from __future__ import annotations

import json
import math
import struct
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from pymavlink.dialects.v20 import ardupilotmega as mavlink

from devices.flight_log import LogError, LogOptions
from devices.mavlink import TlogError, iter_tlog, read_tlog
from devices.payloads import DroneRecord
from kcity.settings import Settings
from tests.fixtures.ingest import count
from tests.test_provisioning import cli_env, kcity, ok, one_line_error

T0 = 1_790_000_000.0  # UNIX seconds of the first frame
U16 = 65535
NO_CELLS = [U16] * 10


class Tlog:
    """Writes a .tlog: 8-byte big-endian UNIX microseconds, then one MAVLink frame."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.drone = mavlink.MAVLink(None, srcSystem=1, srcComponent=1)
        self.gcs = mavlink.MAVLink(None, srcSystem=255, srcComponent=190)
        self.other = mavlink.MAVLink(None, srcSystem=2, srcComponent=1)
        self.frames: list[bytes] = []

    def add(self, t: float, msg: Any, link: Any = None, *, v1: bool = False) -> None:
        frame = msg.pack(link or self.drone, force_mavlink1=v1)
        self.frames.append(struct.pack(">Q", round((T0 + t) * 1e6)) + frame)

    def raw(self, data: bytes) -> None:
        self.frames.append(data)

    def write(self) -> Path:
        self.path.write_bytes(b"".join(self.frames))
        return self.path


def position(
    lat: float = 16.54,
    lon: float = 104.72,
    alt_mm: int = 152_300,
    rel_mm: int = 80_000,
    vx: int = 300,
    vy: int = 400,
    hdg: int = 9000,
) -> Any:
    return mavlink.MAVLink_global_position_int_message(
        0, round(lat * 1e7), round(lon * 1e7), alt_mm, rel_mm, vx, vy, 0, hdg
    )


def heartbeat(armed: bool, custom_mode: int, mav_type: int = 2, autopilot: int = 3) -> Any:
    base = 128 | 1 if armed else 1
    return mavlink.MAVLink_heartbeat_message(mav_type, autopilot, base, custom_mode, 4, 3)


def battery(cells: list[int], current_ca: int, remaining: int, battery_id: int = 0) -> Any:
    return mavlink.MAVLink_battery_status_message(
        battery_id, 0, 0, 2500, cells, current_ca, -1, -1, remaining
    )


def generator(power_w: float) -> Any:
    nan = float("nan")
    return mavlink.MAVLink_generator_status_message(
        0, 5000, nan, nan, power_w, 48.0, 40, nan, 70, 3600, 0
    )


def efi(consumed_cm3: float, flow: float = 12.0) -> Any:
    return mavlink.MAVLink_efi_status_message(
        1,
        0.0,
        5200.0,
        consumed_cm3,
        flow,
        50.0,
        40.0,
        0,
        101.0,
        95.0,
        30.0,
        180.0,
        10.0,
        2.0,
        600.0,
        40.0,
        1.0,
    )


def gps(fix: int) -> Any:
    return mavlink.MAVLink_gps_raw_int_message(0, fix, 0, 0, 0, U16, U16, U16, U16, 12)


def rangefinder(cm: int, orientation: int = 25) -> Any:
    return mavlink.MAVLink_distance_sensor_message(0, 20, 4000, cm, 0, 0, orientation, 0)


def run(path: Path, **kw: Any) -> list[dict[str, Any]]:
    return read_tlog(path, LogOptions("f-001", **kw)).records


def test_units_are_converted(tmp_path: Path) -> None:
    log = Tlog(tmp_path / "units.tlog")
    log.add(0.0, heartbeat(True, 3))
    log.add(0.1, gps(3))
    log.add(0.2, battery([4100] * 6 + [U16] * 4, 1550, 76))
    log.add(0.3, generator(850.0))
    log.add(0.4, efi(1500.0))
    log.add(0.5, mavlink.MAVLink_camera_capture_status_message(0, 0, 1, 0.0, 1000, 100.0))
    log.add(1.25, position())
    [rec] = run(log.write(), hfov_deg=70.0, fuel_capacity_l=10.0)
    assert datetime.fromisoformat(rec["ts"]).timestamp() == pytest.approx(T0 + 1.25, abs=1e-6)
    assert rec["ts"].endswith("Z")
    assert rec["flight_id"] == "f-001"
    assert rec["lat"] == pytest.approx(16.54) and rec["lon"] == pytest.approx(104.72)
    assert rec["alt_m"] == pytest.approx(152.3)
    assert rec["agl_m"] == pytest.approx(80.0)  # height above home: the only source here
    assert rec["speed_mps"] == pytest.approx(5.0)  # hypot(3, 4) m/s
    assert rec["heading_deg"] == pytest.approx(90.0)
    assert rec["mode"] == "patrol"  # ArduCopter AUTO
    assert rec["gps_fix"] == 3
    assert rec["battery_v"] == pytest.approx(24.6)
    assert rec["battery_a"] == pytest.approx(15.5)
    assert rec["battery_pct"] == 76
    assert rec["gen_power_w"] == pytest.approx(850.0)
    assert rec["fuel_l"] == pytest.approx(8.5)  # 10 L tank − 1500 cm³
    assert rec["camera_on"] is True
    assert rec["hfov_deg"] == 70.0
    DroneRecord.model_validate(rec)


def test_not_provided_sentinels_become_absent(tmp_path: Path) -> None:
    log = Tlog(tmp_path / "sentinels.tlog")
    log.add(0.0, battery(NO_CELLS, -1, -1))
    log.add(0.1, generator(float("nan")))
    log.add(0.2, efi(1500.0))
    log.add(1.0, position(hdg=U16))
    log.add(1.5, battery([24_600] + [U16] * 9, 0, 50))  # pack voltage in cell 0 only
    log.add(2.0, position(hdg=0))
    first, second = run(log.write())  # no tank size: remaining fuel is unknown
    for key in (
        "heading_deg",
        "battery_v",
        "battery_a",
        "battery_pct",
        "gen_power_w",
        "fuel_l",
        "mode",
        "gps_fix",
        "camera_on",
        "hfov_deg",
    ):
        assert key not in first, key
    assert second["battery_v"] == pytest.approx(24.6)
    assert second["battery_a"] == 0.0 and second["battery_pct"] == 50
    assert second["heading_deg"] == 0.0  # 0 is north, not unknown
    for rec in (first, second):
        DroneRecord.model_validate(rec)


def test_modes_from_the_autopilot_heartbeat(tmp_path: Path) -> None:
    log = Tlog(tmp_path / "modes.tlog")
    log.add(0.0, heartbeat(False, 3))
    log.add(0.5, position())
    log.add(1.0, heartbeat(True, 6))
    log.add(1.2, heartbeat(True, 0, mav_type=6, autopilot=8), log.gcs)  # ground station
    log.add(1.5, position())
    log.add(2.0, heartbeat(True, 99))  # a mode the mapping does not know
    log.add(2.5, position())
    log.add(3.0, heartbeat(True, 5))
    log.add(3.5, position())
    flight = read_tlog(log.write(), LogOptions("f-001"))
    assert [r.get("mode") for r in flight.records] == ["landed", "rtl", None, "hover"]
    assert flight.unknown_modes == {"MODE(99)": 1}  # counted and named, never silent
    # the pilot's own patrol modes, by the autopilot's names, replace the defaults
    custom = run(log.path, patrol_modes=("LOITER",))
    assert [r.get("mode") for r in custom] == ["landed", "rtl", None, "patrol"]


def test_gps_fix_and_agl_sources(tmp_path: Path) -> None:
    log = Tlog(tmp_path / "agl.tlog")
    log.add(0.0, gps(8))  # PPP: better than 3D, reported as the contract's best
    log.add(0.1, rangefinder(2500))
    log.add(0.2, rangefinder(1200, orientation=0))  # forward-looking: not a height
    log.add(1.0, position(rel_mm=80_000))
    log.add(10.0, position(rel_mm=80_000))  # the rangefinder reading is stale by now
    log.add(11.0, mavlink.MAVLink_terrain_report_message(0, 0, 100, 30.0, 61.5, 0, 10))
    log.add(12.0, position(rel_mm=80_000))
    log.add(20.0, position(rel_mm=-300))  # on the ground, a little below home
    log.add(21.0, position(rel_mm=-50_000))  # far below home: height above ground unknown
    recs = run(log.write())
    assert recs[0]["gps_fix"] == 6
    assert [r.get("agl_m") for r in recs] == [25.0, 80.0, 61.5, 0.0, None]


def test_skips_no_fix_other_vehicles_corruption_and_unknown_messages(tmp_path: Path) -> None:
    log = Tlog(tmp_path / "mixed.tlog")
    log.add(0.0, position(lat=0.0, lon=0.0))  # before the first fix
    log.add(0.5, position(lat=16.5))
    log.add(0.6, position(lat=10.0), log.other)  # a second drone in the same log
    log.raw(b"\x00\x01garbage\xfd\x09")  # corruption between frames
    log.add(1.0, position(lat=16.6), v1=True)  # MAVLink 1 frames are read too
    good = bytearray(struct.pack(">Q", int((T0 + 2) * 1e6)) + position(lat=16.7).pack(log.drone))
    good[-1] ^= 0xFF  # a bad checksum: dropped
    log.raw(bytes(good))
    log.add(3.0, position(lat=16.8))
    lats = [round(r["lat"], 1) for r in run(log.write())]
    assert lats == [16.5, 16.6, 16.8]
    kinds = [m.get_type() for _, m in iter_tlog(log.path)]
    assert kinds.count("GLOBAL_POSITION_INT") == 5


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(TlogError, match=r"nowhere\.tlog"):
        run(tmp_path / "nowhere.tlog")
    empty = tmp_path / "empty.tlog"
    empty.write_bytes(b"")
    with pytest.raises(LogError, match="no position messages; nothing imported"):
        run(empty)


def test_a_long_log_streams_in_order(tmp_path: Path) -> None:
    log = Tlog(tmp_path / "long.tlog")
    for i in range(5000):
        log.add(i * 0.2, position(lat=16.0 + i * 1e-5))
        if i % 5 == 0:
            log.add(i * 0.2 + 0.1, battery([22_000] + [U16] * 9, 2000 + i, 100 - i // 50))
    recs = run(log.write())
    assert len(recs) == 5000
    times = [datetime.fromisoformat(r["ts"]).timestamp() for r in recs]
    assert times == sorted(times) and len(set(times)) == 5000
    assert recs[-1]["battery_a"] == pytest.approx((2000 + 4995) / 100)
    assert not any(math.isnan(v) for r in recs for v in r.values() if isinstance(v, float))
    json.dumps(recs, allow_nan=False)


def flight_log(path: Path, positions: int) -> Path:
    """A patrol flight: armed in AUTO, battery and generator, one impossible altitude."""
    log = Tlog(path)
    log.add(0.0, heartbeat(True, 3))
    log.add(0.0, gps(3))
    for i in range(positions):
        t = 1.0 + i * 0.5
        if i % 4 == 0:
            log.add(t - 0.1, battery([4000] * 10, 1200, 90))
            log.add(t - 0.05, generator(900.0))
        alt = 25_000_000 if i == 7 else 150_000  # 25 km AMSL breaks the contract
        log.add(t, position(lat=16.54 + i * 1e-5, alt_mm=alt))
    return log.write()


def no_fix_log(path: Path) -> Path:
    """A fixed wing whose GPS never gets a fix: positions (0, 0) and fix_type 1."""
    log = Tlog(path)
    log.add(0.0, heartbeat(True, 10, mav_type=1))
    for i in range(20):
        log.add(0.1 + i, gps(1))
        log.add(0.2 + i, position(lat=0.0, lon=0.0))
    return log.write()


def submarine_log(path: Path) -> Path:
    """A stationary ArduSub vehicle (MAV_TYPE 12) with a perfectly good fix."""
    log = Tlog(path)
    log.add(0.0, heartbeat(True, 19, mav_type=12))
    log.add(0.1, gps(3))
    for i in range(20):
        log.add(1.0 + i, position())
    return log.write()


def test_kcity_import_log_stores_for_a_provisioned_drone(
    settings: Settings, tmp_path: Path, uid: str
) -> None:
    env = cli_env(settings, tmp_path)
    ok(kcity(env, "pilots", "apply", "pilots/mukdahan.toml"))
    ok(kcity(env, "pilots", "apply", "pilots/madiun.toml"))
    device = f"drone-{uid}"
    tlog = flight_log(tmp_path / "patrol-0815.tlog", 1500)
    args = ("--pilot", "mukdahan", "--device", device)
    # only a provisioned drone: the import never creates devices nor asks for a password
    one_line_error(kcity(env, "import", "log", str(tlog), *args), "not provisioned")
    ok(kcity(env, "devices", "provision", "mukdahan", device, "--json"))
    report = json.loads(ok(kcity(env, "import", "log", str(tlog), *args, "--hfov", "70", "--json")))
    assert report["format"] == "tlog" and report["flight_id"] == "patrol-0815"
    assert report["records"] == 1500 and report["stored_records"] == 1499
    assert report["dead_letters"] == {"record_schema": 1}  # the 25 km altitude
    url = settings.database_url
    where = "WHERE device_id = %s"
    assert count(url, f"SELECT count(*) FROM drone_readings {where}", (device,)) == 1499
    assert count(url, f"SELECT count(*) FROM dead_letters {where} AND reason LIKE '%%alt_m%%'",
                 (device,)) == 1  # fmt: skip
    row = count(url, f"SELECT count(*) FROM drone_readings {where} AND mode = 'patrol'"
                     " AND hfov_deg = 70 AND gen_power_w = 900", (device,))  # fmt: skip
    assert row == 1499
    # again, through the old verb: nothing is stored twice
    out = ok(kcity(env, "import", "tlog", str(tlog), *args))
    assert "stored 0 records" in out and "already stored" in out
    assert count(url, f"SELECT count(*) FROM drone_readings {where}", (device,)) == 1499

    for name, make, words in (
        ("nofix.tlog", no_fix_log, ("no GPS fix", "nothing imported")),
        ("sub.tlog", submarine_log, ("submarine", "not a drone")),
    ):
        one_line_error(kcity(env, "import", "log", str(make(tmp_path / name)), *args), *words)
    assert count(url, f"SELECT count(*) FROM drone_readings {where}", (device,)) == 1499
    one_line_error(kcity(env, "import", "log", str(tmp_path / "none.tlog"), *args), "none.tlog")
    one_line_error(
        kcity(env, "import", "log", str(tlog), "--pilot", "atlantis", "--device", device),
        "unknown pilot",
    )
    one_line_error(
        kcity(env, "import", "log", str(tlog), "--pilot", "madiun", "--device", device),
        "not a hybrid_drone pilot",
    )
