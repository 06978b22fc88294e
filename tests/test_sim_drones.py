"""The hybrid-drone simulator: flyable tracks, honest glitches, energy that adds up."""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections import Counter, defaultdict
from typing import Any

import numpy as np
import pytest

from devices.payloads import encode_message, parse_message
from devices.sim import (
    MUKDAHAN_AOI,
    MUKDAHAN_BASE,
    MUKDAHAN_BORDER,
    DroneSimConfig,
    SimConfigError,
    simulate_drones,
)
from devices.sim.truth import drone_energy
from tests.fixtures.sim import Records, Run, epoch

CONFIG = DroneSimConfig(start=dt.date(2023, 8, 1), days=3, seed=5)
M_PER_DEG_LAT = 110_600.0
M_PER_DEG_LON = 106_700.0


@pytest.fixture(scope="module")
def run() -> Run:
    sim = simulate_drones(CONFIG)
    return list(sim.batches()), sim.truth()


@pytest.fixture(scope="module")
def flights(run: Run) -> Records:
    """Each flight's records in time order, as received (catch-up included)."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for b in run[0]:
        if b.channel == "telemetry":
            for rec in b.items:
                out[rec["flight_id"]].append(rec)
    return {k: sorted(v, key=lambda r: r["ts"]) for k, v in out.items()}


def _steps(recs: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Implied ground speed between consecutive records, and whether both had a good fix."""
    t = np.array([epoch(r["ts"]) for r in recs])
    lat = np.array([r["lat"] for r in recs])
    lon = np.array([r["lon"] for r in recs])
    dist = np.hypot(np.diff(lat) * M_PER_DEG_LAT, np.diff(lon) * M_PER_DEG_LON)
    fix = np.array([r["gps_fix"] for r in recs])
    good = (fix[1:] >= 3) & (fix[:-1] >= 3)
    return dist / np.diff(t), good, dist


def test_schedule_two_staggered_four_hour_flights_per_drone_and_day(run: Run) -> None:
    truth = run[1]
    # flight ids carry the local date: {device}-{YYYYMMDD}-{n}
    per = Counter(f["flight_id"].rsplit("-", 1)[0] for f in truth["flights"])
    assert len(truth["flights"]) == CONFIG.days * CONFIG.devices * CONFIG.flights_per_day
    assert set(per.values()) == {CONFIG.flights_per_day}
    for f in truth["flights"]:
        assert 3.5 < f["airborne_hours"] < 4.1
        for key in ("takeoff", "landing"):
            local_h = (epoch(f[key]) / 3600 + 7) % 24
            assert 6.0 <= local_h <= 23.0, (f["flight_id"], key)
    ordered = sorted(truth["flights"], key=lambda f: f["takeoff"])
    handovers = 0
    for a, b in itertools.pairwise(ordered):
        gap = epoch(b["takeoff"]) - epoch(a["takeoff"])
        if gap < 10 * 3600:  # same operating day: the other drone takes over
            handovers += 1
            assert a["device_id"] != b["device_id"]
            assert 3.5 * 3600 < gap < 4.5 * 3600
            assert abs(epoch(b["takeoff"]) - epoch(a["landing"])) < 1800
    assert handovers == CONFIG.days * (CONFIG.devices * CONFIG.flights_per_day - 1)


def test_a_flight_goes_through_its_phases_in_order(flights: Records) -> None:
    for recs in flights.values():
        modes = [r["mode"] for r in recs]
        phases = [m for i, m in enumerate(modes) if i == 0 or m != modes[i - 1]]
        assert phases == ["landed", "hover", "transit", "patrol", "rtl", "landed"]
        assert recs[0]["agl_m"] == recs[-1]["agl_m"] == 0.0
        assert all(r["camera_on"] == (r["mode"] == "patrol") for r in recs)


def test_speeds_stay_flyable_except_at_gps_glitches(flights: Records) -> None:
    glitches = 0
    for recs in flights.values():
        speed, good, dist = _steps(recs)
        assert speed[good].max() < 40.0
        assert max(r["speed_mps"] for r in recs) < 20.0
        bad = ~good
        glitches += int(bad.sum())
        if bad.any():
            assert dist[bad].max() > 100.0  # a glitch is a jump of hundreds of metres
    assert glitches > 0


def test_patrol_is_flown_at_patrol_height_and_speed(flights: Records) -> None:
    for recs in flights.values():
        patrol = [r for r in recs if r["mode"] == "patrol"]
        agl = np.array([r["agl_m"] for r in patrol])
        speed = np.array([r["speed_mps"] for r in patrol])
        assert np.percentile(agl, 1) >= 100.0 and np.percentile(agl, 99) <= 135.0
        assert 12.0 <= np.median(speed) <= 16.0
        assert {r["hfov_deg"] for r in recs} == {CONFIG.hfov_deg}
        alt = np.array([r["alt_m"] for r in patrol])
        assert np.all(np.abs(alt - agl - 140.0) < 10.0)


def test_good_positions_stay_in_the_patrol_zone(flights: Records) -> None:
    lons = [p[0] for p in MUKDAHAN_AOI]
    lats = [p[1] for p in MUKDAHAN_AOI]
    for recs in flights.values():
        good = [r for r in recs if r["gps_fix"] >= 3]
        assert all(min(lons) <= r["lon"] <= max(lons) for r in good)
        assert all(min(lats) <= r["lat"] <= max(lats) for r in good)
        home = [r for r in good if r["mode"] == "landed"]
        assert all(abs(r["lat"] - MUKDAHAN_BASE[0]) < 1e-3 for r in home)
        assert all(abs(r["lon"] - MUKDAHAN_BASE[1]) < 1e-3 for r in home)


def test_patrol_track_runs_just_west_of_the_border(run: Run) -> None:
    """Each counted point is 50 m (outbound) or 140 m (return) inside Thailand."""
    from pyproj import Transformer
    from shapely import LineString, Polygon, distance, points

    to_utm = Transformer.from_crs(4326, 32648, always_xy=True)

    def utm(ring: tuple[tuple[float, float], ...]) -> np.ndarray[Any, Any]:
        lon, lat = np.array(ring).T
        return np.column_stack(to_utm.transform(lon, lat))

    border = LineString(utm(MUKDAHAN_BORDER))
    aoi = Polygon(utm(MUKDAHAN_AOI))
    track = run[1]["flights"][0]["track"]
    xy = np.column_stack(to_utm.transform(track["lon"], track["lat"]))
    d = distance(border, points(xy))
    straight = d[(d > 40) & (d < 150)]
    assert len(straight) > 0.95 * len(d)
    assert np.all(aoi.contains(points(xy)))
    assert np.mean(np.abs(straight - 50.0) < 3.0) + np.mean(np.abs(straight - 140.0) < 3.0) > 0.9


def test_generator_carries_cruise_and_battery_the_climb(flights: Records) -> None:
    for recs in flights.values():
        climb = [r for r in recs if r["mode"] == "hover"]
        cruise = [r for r in recs if r["mode"] == "patrol"]
        assert max(r["battery_a"] for r in climb) > 20.0
        assert np.median([abs(r["battery_a"]) for r in cruise]) < 2.0
        gen = np.median([r["gen_power_w"] for r in cruise])
        assert 1500.0 < gen < 2600.0
        assert all(r["gen_power_w"] == 0.0 for r in recs[:60] + recs[-30:])
        fuel = np.array([r["fuel_l"] for r in recs])
        assert np.all(np.diff(fuel) <= 0) and fuel[0] - fuel[-1] > 2.0
        pct = np.array([r["battery_pct"] for r in recs])
        assert pct.min() > 50.0


def test_truth_energy_and_counts_equal_what_was_streamed(run: Run, flights: Records) -> None:
    batches, truth = run
    for f in truth["flights"]:
        recs = flights[f["flight_id"]]
        assert len(recs) == f["records"]
        streamed = drone_energy(recs, CONFIG.record_interval_s)
        for key, value in streamed.items():
            assert value == pytest.approx(f["energy"][key], rel=1e-9, abs=1e-12), key
        gen_kwh = f["energy"]["generator_kwh"]
        assert f["energy"]["fuel_l"] == pytest.approx(0.6 * gen_kwh, abs=0.002)
        counted = [
            r for r in recs if r["mode"] == "patrol" and r["camera_on"] and r["gps_fix"] >= 3
        ]
        assert [r["ts"] for r in counted] == f["track"]["ts"]
        assert [r["agl_m"] for r in counted] == f["track"]["agl_m"]
        off = np.hypot(
            (np.array([r["lat"] for r in counted]) - f["track"]["lat"]) * M_PER_DEG_LAT,
            (np.array([r["lon"] for r in counted]) - f["track"]["lon"]) * M_PER_DEG_LON,
        )
        assert np.percentile(off, 99) < 6.0  # streamed = true position + GPS noise
        assert f["gps_glitch_records"] == sum(r["gps_fix"] < 3 for r in recs)
        events = Counter(
            b.items[0]["type"]
            for b in batches
            if b.channel == "event" and b.items[0]["flight_id"] == f["flight_id"]
        )
        assert events["takeoff"] == events["landing"] == 1
        assert events["detection"] == f["detections"] and events["alarm"] == f["alarms"]
    totals = truth["totals"]
    assert totals["records"] == sum(len(r) for r in flights.values())
    assert totals["generator_kwh"] == pytest.approx(
        sum(f["energy"]["generator_kwh"] for f in truth["flights"])
    )
    assert 90.0 < totals["generator_share_pct"] < 100.0
    assert totals["battery_kwh"] > 0.0 and totals["battery_charged_kwh"] > 0.0
    assert totals["alarms"] <= 1


def test_link_dropouts_arrive_late_in_catch_up_messages(run: Run, flights: Records) -> None:
    batches, truth = run
    late = [
        b
        for b in batches
        if b.channel == "telemetry" and b.deliver_at > epoch(b.items[-1]["ts"]) + 1e-6
    ]
    assert late and sum(len(b.items) for b in late) == truth["totals"]["records_late"]
    dropouts = [d for f in truth["flights"] for d in f["dropouts"]]
    assert len(late) == len(dropouts)
    for b in late:
        assert 1 <= len(b.items) <= 500
        # the link was down for (nearly) all of these records, and the modem saw it
        down = [r for r in b.items if r["rssi_dbm"] < -95.0]
        assert len(down) >= len(b.items) - CONFIG.batch_records
        assert any(epoch(d["end"]) == pytest.approx(b.deliver_at) for d in dropouts)
    for d in dropouts:
        assert 30.0 <= epoch(d["end"]) - epoch(d["start"]) <= 120.0


def test_detections_lie_under_the_drone(run: Run, flights: Records) -> None:
    for b in run[0]:
        if b.channel != "event" or b.items[0]["type"] != "detection":
            continue
        event = b.items[0]
        assert event["label"] in {"person", "boat", "vehicle"}
        assert 0.5 <= event["confidence"] <= 1.0
        recs = flights[event["flight_id"]]
        t = epoch(event["ts"])
        near = min(recs, key=lambda r: abs(epoch(r["ts"]) - t))
        gap = math.hypot(
            (near["lat"] - event["lat"]) * M_PER_DEG_LAT,
            (near["lon"] - event["lon"]) * M_PER_DEG_LON,
        )
        assert gap < 150.0


def test_batches_are_ordered_bounded_and_valid(run: Run) -> None:
    batches = run[0]
    assert np.all(np.diff([b.deliver_at for b in batches]) >= 0)
    boots: dict[str, set[int]] = defaultdict(set)
    for b in batches:
        assert 1 <= len(b.items) <= 1000
        ts = [epoch(i["ts"]) for i in b.items]
        assert ts == sorted(ts) and b.deliver_at >= ts[-1]
        if b.channel == "telemetry":
            boots[b.device_id].add(b.boot)
            assert len({r["flight_id"] for r in b.items}) == 1
    assert all(len(v) == CONFIG.days * CONFIG.flights_per_day for v in boots.values())
    for b in batches[::25]:
        raw = encode_message(b.boot, 0, b.items, channel=b.channel)
        assert len(raw) < 256 * 1024
        parsed = parse_message("hybrid_drone", b.channel, raw)
        assert not parsed.rejected and len(parsed.items) == len(b.items)


def test_same_seed_same_stream_other_seed_other_stream() -> None:
    one_day = DroneSimConfig(start=dt.date(2023, 8, 1), days=1, seed=9, devices=1)
    first = list(simulate_drones(one_day).batches())
    assert first == list(simulate_drones(one_day).batches())
    other = DroneSimConfig(start=dt.date(2023, 8, 1), days=1, seed=10, devices=1)
    assert list(simulate_drones(other).batches()) != first


def test_without_glitches_every_fix_is_good_and_nothing_is_late() -> None:
    cfg = DroneSimConfig(start=dt.date(2023, 8, 1), days=1, seed=2, devices=1, glitches=False)
    sim = simulate_drones(cfg)
    batches = list(sim.batches())
    assert all(r["gps_fix"] >= 3 for b in batches if b.channel == "telemetry" for r in b.items)
    assert all(b.deliver_at == epoch(b.items[-1]["ts"]) for b in batches)
    assert sim.truth()["totals"]["records_late"] == 0


@pytest.mark.parametrize(
    "bad",
    [{"days": 0}, {"flights_per_day": 20}, {"batch_records": 0}, {"hfov_deg": 200.0}],
)
def test_impossible_configs_are_refused(bad: dict[str, Any]) -> None:
    args: dict[str, Any] = {"start": dt.date(2023, 8, 1), "days": 1, "seed": 1} | bad
    with pytest.raises(SimConfigError):
        DroneSimConfig(**args)
