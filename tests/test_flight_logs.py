"""Real-log traits, end to end: modes per autopilot, the vehicle clock, sensor choice,
dropouts, arm cycles and missing battery data, against hand-computed figures
(tests/fixtures/flight_scenario.py)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from devices.flight_log import LogError, LogOptions
from devices.flight_modes import Vehicle, mode_class, mode_name, px4_mode_name
from devices.log_formats import read_log
from devices.mavlink import read_tlog
from devices.vehicle_clock import haversine_m, in_order, vehicle_utc
from kcity.settings import Settings
from tests.fixtures import flight_scenario as sc
from tests.fixtures.ingest import count
from tests.test_provisioning import cli_env, kcity, ok, one_line_error

QUADPLANE = Vehicle(1, 3)
COPTER = Vehicle(2, 3)
PX4_QUAD = Vehicle(2, 12)


def px4(main: int, sub: int = 0) -> int:
    return (main << 16) | (sub << 24)


@pytest.mark.parametrize(
    ("vehicle", "custom", "name", "cls"),
    [
        (QUADPLANE, 19, "QLOITER", "hover"),
        (QUADPLANE, 1, "CIRCLE", "patrol"),
        (QUADPLANE, 15, "GUIDED", "patrol"),
        (QUADPLANE, 20, "QLAND", "rtl"),
        (QUADPLANE, 10, "AUTO", "patrol"),
        (QUADPLANE, 3, "TRAINING", "transit"),  # Plane 3 is not Copter's AUTO
        (COPTER, 3, "AUTO", "patrol"),
        (COPTER, 5, "LOITER", "hover"),
        (COPTER, 6, "RTL", "rtl"),
        (PX4_QUAD, px4(4, 4), "AUTO.MISSION", "patrol"),
        (PX4_QUAD, px4(4, 3), "AUTO.LOITER", "hover"),
        (PX4_QUAD, px4(4, 5), "AUTO.RTL", "rtl"),
        (PX4_QUAD, px4(3), "POSCTL", "hover"),
        (PX4_QUAD, px4(3, 1), "POSCTL.ORBIT", "patrol"),
        (PX4_QUAD, px4(1), "MANUAL", "transit"),
    ],
)
def test_modes_are_named_per_vehicle_and_autopilot(
    vehicle: Vehicle, custom: int, name: str, cls: str
) -> None:
    assert mode_name(vehicle, custom) == name
    assert mode_class(vehicle.family, name) == cls


def test_unknown_modes_are_named_and_the_pilot_list_replaces_the_defaults() -> None:
    assert mode_name(COPTER, 99) == "MODE(99)" and mode_class("copter", "MODE(99)") is None
    assert px4_mode_name(px4(42)) == "PX4(42.0)"
    own = ("GUIDED", "loiter")
    assert mode_class("copter", "LOITER", own) == "patrol"  # names, any case
    assert mode_class("copter", "AUTO", own) == "transit"  # no longer patrol
    assert mode_class("copter", "RTL", own) == "rtl"


def test_vehicle_clock_anchors_orders_and_splits_boots() -> None:
    # positions every 0.25 s on the vehicle clock, received in bursts 16 s late
    boot = [10.0, 10.25, 10.5, 10.75, 11.0, 2.0, 2.25]  # a reboot before the 6th
    gcs = [1016.9, 1016.901, 1016.902, 1016.903, 1018.0, 1030.0, 1030.3]
    nan = float("nan")
    unix = [1000.0 + 10.0, nan, nan, nan, nan, nan, nan]  # SYSTEM_TIME with the first
    utc, anchor, reboots = vehicle_utc(boot, gcs, unix)
    assert anchor == "SYSTEM_TIME" and reboots == 1
    assert utc[:5].tolist() == pytest.approx([1010.0, 1010.25, 1010.5, 1010.75, 1011.0])
    # the second boot has no SYSTEM_TIME: the least-delayed receive time anchors it
    assert utc[5:].tolist() == pytest.approx([1030.0, 1030.25])
    keep, late, dups = in_order(np.array([1.0, 2.0, 2.0, 1.5, 3.0]))
    assert keep.tolist() == [True, True, False, False, True] and (late, dups) == (1, 1)


def test_scenario_tlog_reads_on_the_vehicle_clock(tmp_path: Path) -> None:
    log = read_tlog(sc.write_tlog(tmp_path / "s.tlog"), LogOptions("f1", max_gap_s=10.0))
    times = np.array([datetime.fromisoformat(r["ts"]).timestamp() for r in log.records])
    # the first position is at UTC0 exactly: SYSTEM_TIME, not the 16 s late receive time
    assert times[0] == pytest.approx(sc.UTC0, abs=1e-3) and log.clock.anchor == "SYSTEM_TIME"
    assert np.diff(times).min() == pytest.approx(0.25, abs=1e-3)  # steady, not bursty
    assert log.clock.dropouts == 2 and log.clock.glitches == 0  # the 15 s gap, the landing
    assert log.modes == {"GUIDED": 805, "QLOITER": 201}
    assert log.unknown_modes == {}
    assert [r.get("battery_v") for r in log.records[:1]] == [None]  # 0 V: no power module
    kinds = [(e["type"], e.get("code")) for e in log.events]
    assert kinds == [("takeoff", None), ("alarm", "failsafe"), ("alarm", "gps_glitch"),
                     ("landing", None), ("takeoff", None), ("landing", None)]  # fmt: skip
    assert "failsafe" in log.events[1]["detail"].lower()
    assert log.records[-1]["rssi_dbm"] == pytest.approx(-27.0)
    assert not log.camera_messages and not log.generator_messages


WRITERS = {"tlog": sc.write_tlog, "bin": sc.write_bin, "ulg": sc.write_ulog}


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_import_and_coverage_match_the_hand_computed_figures(
    settings: Settings, tmp_path: Path, uid: str, fmt: str
) -> None:
    env = cli_env(settings, tmp_path)
    pid = f"cbr-{uid}"
    ok(kcity(env, "pilots", "apply", str(sc.write_pilot(tmp_path / "pilot", pid))))
    device = f"vtol-{uid}"
    ok(kcity(env, "devices", "provision", pid, device, "--json"))
    # a neutral name: the format is read from the content
    flight = WRITERS[fmt](tmp_path / "flight-0809.log")
    out = ok(kcity(env, "import", "log", str(flight), "--pilot", pid, "--device", device))
    assert f"({fmt}, " in out and "stored 1006 records, 6 events" in out
    n = count(settings.database_url, "SELECT count(*) FROM events WHERE device_id = %s", (device,))
    assert n == 6

    # the flight is on 2018-08-08 in UTC but on 2018-08-09 in Canberra
    done = kcity(env, "coverage", pid, "--from", "2018-08-08", "--to", "2018-08-09", "--json")
    empty = json.loads(ok(done))
    assert "no drone records" in done.stderr and "warning:" in done.stderr
    assert any("no drone records" in w for w in empty["warnings"])
    done = kcity(env, "coverage", pid, "--from", "2018-08-09", "--to", "2018-08-10", "--json")
    body = json.loads(ok(done))
    assert body["distance_km"] == pytest.approx(sc.DISTANCE_M / 1e3, rel=3e-3)
    assert body["flight_hours"] == pytest.approx(sc.FLIGHT_S / 3600, rel=1e-3)
    assert body["patrol_hours"] == pytest.approx(sc.PATROL_S / 3600, rel=1e-3)
    assert body["covered_km2"] == pytest.approx(sc.COVERED_M2 / 1e6, rel=5e-3)
    assert body["border_covered_km"] == pytest.approx(sc.BORDER_COVERED_M / 1e3, rel=5e-3)
    assert body["sensor_source"] == {device: "always"}  # no camera messages: auto → always
    assert any(device in w and "camera_on" in w for w in body["warnings"])
    assert "camera_on" in done.stderr
    assert body["energy_split"] == "unknown" and body["generator_kwh"] is None
    assert body["battery_kwh"] is None  # SYS_STATUS 0 V: no battery data, not 0 kWh
    points = body["points"][device]
    assert points["dropouts"] == 2 and points["glitches"] == 0
    assert body["method_version"] == "patrol-coverage/1.1"
    assert body["epsg"] == 32755  # the pilot's own UTM zone (55S), not Mukdahan's

    # the pilot's "log" choice: the same flight draws no footprint, and says why
    ok(kcity(env, "pilots", "apply", str(sc.write_pilot(tmp_path / "p2", pid, 'sensor = "log"'))))
    done = kcity(env, "coverage", pid, "--from", "2018-08-09", "--to", "2018-08-10", "--json")
    strict = json.loads(ok(done))
    assert strict["covered_km2"] == 0 and strict["sensor_source"] == {device: "log"}
    assert strict["distance_km"] == pytest.approx(body["distance_km"])
    assert any("sensor = log" in w for w in strict["warnings"])


def test_refusals_are_one_line_and_store_nothing(
    settings: Settings, tmp_path: Path, uid: str
) -> None:
    env = cli_env(settings, tmp_path)
    pid = f"cbr-{uid}"
    ok(kcity(env, "pilots", "apply", str(sc.write_pilot(tmp_path / "pilot", pid))))
    device = f"vtol-{uid}"
    ok(kcity(env, "devices", "provision", pid, device, "--json"))
    text = tmp_path / "notes.tlog"
    text.write_text("this is not a flight log\n", encoding="utf-8")
    args = ("--pilot", pid, "--device", device)
    one_line_error(kcity(env, "import", "log", str(text), *args), "not a MAVLink")
    assert count(settings.database_url, "SELECT count(*) FROM drone_readings "
                 "WHERE device_id = %s", (device,)) == 0  # fmt: skip


def test_haversine_matches_a_known_distance() -> None:
    # one degree of latitude on the mean sphere: 2πR/360
    d = haversine_m(np.array([0.0]), np.array([0.0]), np.array([1.0]), np.array([0.0]))
    assert d[0] == pytest.approx(2 * np.pi * 6_371_008.8 / 360)


def test_bin_and_ulog_read_the_same_flight_and_refuse_other_vehicles(tmp_path: Path) -> None:
    opts = LogOptions("f1")
    for log, modes in (
        (read_log(sc.write_bin(tmp_path / "a.bin"), opts), {"GUIDED": 805, "QLOITER": 201}),
        (read_log(sc.write_ulog(tmp_path / "a.ulg"), opts),
         {"AUTO.MISSION": 805, "AUTO.LOITER": 201}),
    ):  # fmt: skip
        times = [datetime.fromisoformat(r["ts"]).timestamp() for r in log.records]
        assert times[0] == pytest.approx(sc.UTC0, abs=1e-3)  # GPS week time, leap seconds out
        assert times[-1] == pytest.approx(sc.UTC0 + 280.0, abs=1e-3)
        assert log.modes == modes and log.clock.dropouts == 2
        assert [e["type"] for e in log.events].count("takeoff") == 2
        assert all(r.get("battery_v") is None for r in log.records)  # 0 V: no power module
    with pytest.raises(LogError, match="submarine, not a drone"):
        read_log(sc.write_bin(tmp_path / "sub.bin", banner="ArduSub V4.1.1"), opts)
    with pytest.raises(LogError, match="ground_rover, not a drone"):
        read_log(sc.write_ulog(tmp_path / "rover.ulg", vehicle_type=3), opts)


def test_sensor_choice_per_drone() -> None:
    from analytics.sensor import sensor_state
    from analytics.tracks import DroneSeries

    n = 6
    patrolling = np.array([True] * 4 + [False] * 2)
    base = {"mode": np.array(["patrol"] * n), "agl_m": np.full(n, 50.0)}
    silent = DroneSeries.from_columns("a", np.arange(n), np.zeros(n), np.zeros(n),
                                      camera_sent=np.zeros(n, bool), **base)  # fmt: skip
    off = np.array([True, False, True, False, True, True])
    talking = DroneSeries.from_columns("b", np.arange(n), np.zeros(n), np.zeros(n),
                                       camera_on=off, **base)  # fmt: skip
    auto_silent = sensor_state(silent, "auto", patrolling)
    assert auto_silent.source == "always" and auto_silent.camera_on.all()
    assert auto_silent.warning is not None and "4 points" in auto_silent.warning
    auto_talking = sensor_state(talking, "auto", patrolling)
    assert auto_talking.source == "log" and auto_talking.warning is None
    assert auto_talking.camera_on.tolist() == off.tolist()
    always = sensor_state(talking, "always", patrolling)
    # the log says off at 2 patrolling points (1 and 3): counted, and said
    assert always.camera_on.all() and always.warning is not None and "2 points" in always.warning
    strict = sensor_state(silent, "log", patrolling)
    assert not strict.camera_on.any() and strict.warning is not None


def test_an_operator_uploads_a_log_for_its_own_drone_only(
    settings: Settings, tmp_path: Path, uid: str
) -> None:
    import psycopg
    from fastapi.testclient import TestClient

    from kcity import tokens
    from kcity.api import create_app

    env = cli_env(settings, tmp_path)
    mine, other = f"cbr-{uid}", f"cbx-{uid}"
    for pid in (mine, other):
        ok(kcity(env, "pilots", "apply", str(sc.write_pilot(tmp_path / pid, pid))))
    device = f"vtol-{uid}"
    ok(kcity(env, "devices", "provision", mine, device, "--json"))
    with psycopg.connect(settings.database_url, autocommit=True) as c:
        secret = tokens.create_token(c, "operator", mine, "firm")[0]
        stranger = tokens.create_token(c, "operator", other, "other firm")[0]
    body = sc.write_bin(tmp_path / "00000042.BIN").read_bytes()
    path = f"/api/v1/pilots/{mine}/devices/{device}/logs?flight_id=f42&hfov_deg=90"
    with TestClient(create_app(settings)) as client:
        refused = client.post(path, content=body, headers={"Authorization": f"Bearer {stranger}"})
        assert refused.status_code == 403
        auth = {"Authorization": f"Bearer {secret}"}
        done = client.post(path, content=body, headers=auth)
        assert done.status_code == 200, done.text
        answer = done.json()
        assert answer["format"] == "bin" and answer["stored_records"] == 1006
        assert answer["stored_events"] == 6
        again = client.post(path, content=body, headers=auth).json()
        assert again["stored_records"] == 0 and again["duplicate_messages"] == again["messages"]
        bad = client.post(path, content=b"hello", headers=auth)
        assert bad.status_code == 422 and "not a MAVLink" in bad.json()["detail"]
        missing = client.post(path.replace(device, f"nope-{uid}"), content=body, headers=auth)
        assert missing.status_code == 404
    n = count(settings.database_url, "SELECT count(*) FROM drone_readings WHERE device_id = %s",
              (device,))  # fmt: skip
    assert n == 1006
