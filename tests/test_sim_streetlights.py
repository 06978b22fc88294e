"""The streetlight simulator: plausible curves, faults an evaluator can find, exact truth."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from typing import Any

import numpy as np
import pytest

from devices.payloads import encode_message, parse_message
from devices.sim import SimConfigError, StreetlightSimConfig, simulate_streetlights
from devices.sim.truth import records_by_device, register_increments_wh
from tests.fixtures.sim import Records, Run, epoch

START = dt.date(2023, 7, 1)
BASELINE_END = START + dt.timedelta(days=1)
CONFIG = StreetlightSimConfig(
    start=START, days=9, seed=11, baseline_start=START, baseline_end=BASELINE_END
)


@pytest.fixture(scope="module")
def run() -> Run:
    sim = simulate_streetlights(CONFIG)
    return list(sim.batches()), sim.truth()


@pytest.fixture(scope="module")
def records(run: Run) -> Records:
    """Each luminaire's records in time order (catch-up messages arrive late)."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for b in run[0]:
        if b.channel == "telemetry":
            out[b.device_id].extend(b.items)
    return {k: sorted(v, key=lambda r: r["ts"]) for k, v in out.items()}


def truth_night(truth: dict[str, Any], night: str) -> dict[str, Any]:
    return next(n for n in truth["astronomical_nights"] if n["night"] == night)


def _adaptive(truth: dict[str, Any]) -> list[str]:
    return [d for d, lum in truth["luminaires"].items() if not lum["control"]]


def test_every_luminaire_reports_every_five_minutes(records: Records) -> None:
    assert len(records) == CONFIG.devices
    lost = 0
    for recs in records.values():
        t = np.array([epoch(r["ts"]) for r in recs])
        steps = np.diff(t)
        assert steps.min() == 300.0
        lost += int((steps // 300 - 1).sum())
    assert lost > 0  # the one data gap


def test_nights_last_eleven_to_thirteen_hours(run: Run, records: Records) -> None:
    truth = run[1]
    routine = [n for n in truth["nights"] if not n["non_routine"]]
    hours = np.array([n["burning_hours"] for n in routine])
    assert hours.min() > 11.0 and hours.max() < 13.0
    astro = {a["night"]: a["hours"] for a in truth["astronomical_nights"]}
    assert all(abs(n["burning_hours"] - astro[n["night"]]) < 0.75 for n in routine)
    # what the records show: lamp-on records x 5 min per night, for one luminaire
    recs = records["madiun-sl-010"]
    per_day = Counter(epoch(r["ts"]) // 86400 for r in recs if r["lamp_on"])
    counted = np.array(list(per_day.values())[1:-1]) * 5 / 60  # whole UTC days only
    assert np.all((counted > 11.0) & (counted < 13.0))


def test_lamps_burn_at_night_only(run: Run, records: Records) -> None:
    by_day = {e["device_id"] for e in run[1]["non_routine"] if e["code"] == "day_burning"}
    for device_id, recs in records.items():
        lit_by_day = [
            r for r in recs if r["lamp_on"] and 8 <= (epoch(r["ts"]) / 3600 + 7) % 24 < 16
        ]
        assert bool(lit_by_day) == (device_id in by_day)
        assert max(r["power_w"] for r in recs if not r["lamp_on"]) < 1.0
        assert min(r["power_w"] for r in recs if r["lamp_on"]) > 30.0


def test_dim_level_is_30_to_100_when_on_and_0_when_off(records: Records) -> None:
    dims_on = [r["dim_pct"] for recs in records.values() for r in recs if r["lamp_on"]]
    dims_off = {r["dim_pct"] for recs in records.values() for r in recs if not r["lamp_on"]}
    assert min(dims_on) >= 30.0 and max(dims_on) <= 100.0
    assert dims_off == {0.0}
    assert np.mean(np.array(dims_on) < 100.0) > 0.3  # it really dims


def test_power_tracks_dim_level(run: Run, records: Records) -> None:
    for device_id in _adaptive(run[1]):
        on = [r for r in records[device_id] if r["lamp_on"]]
        power = np.array([r["power_w"] for r in on])
        dim = np.array([r["dim_pct"] for r in on])
        assert np.corrcoef(power, dim)[0, 1] > 0.95, device_id
    standby = [r["power_w"] for recs in records.values() for r in recs if not r["lamp_on"]]
    assert np.median(standby) < 1.0


def test_full_power_is_near_rated_and_idle_near_a_third(run: Run, records: Records) -> None:
    truth = run[1]
    for device_id, lum in truth["luminaires"].items():
        full = [r["power_w"] for r in records[device_id] if r["dim_pct"] == 100.0]
        measured = float(np.median(full))
        assert abs(measured - lum["p_full_w"]) < 0.01 * lum["p_full_w"]
        assert 114.0 <= lum["p_full_w"] <= 126.0
        assert 0.28 < lum["p_idle_w"] / lum["p_full_w"] < 0.4


def test_control_group_and_baseline_never_dim(run: Run, records: Records) -> None:
    truth = run[1]
    controls = set(truth["policy"]["control_group"])
    assert controls == {f"madiun-sl-{i:03d}" for i in range(1, 7)}
    for device_id in controls:
        assert {r["dim_pct"] for r in records[device_id] if r["lamp_on"]} == {100.0}
    for night in truth["nights"]:
        if night["night"] <= BASELINE_END.isoformat() or night["dimming"] == "control":
            assert night["savings_kwh"] == pytest.approx(0.0, abs=1e-12)
        elif not night["non_routine"]:
            assert night["savings_kwh"] > 0
    adaptive = truth["totals_routine_adaptive"]
    assert 15.0 < adaptive["savings_pct"] < 50.0


def test_energy_register_rises_except_at_the_reboot(run: Run, records: Records) -> None:
    truth = run[1]
    resets = []
    for device_id, recs in records.items():
        register = np.array([r["energy_wh"] for r in recs])
        drops = np.flatnonzero(np.diff(register) < 0)
        resets += [(device_id, int(i)) for i in drops]
    reboot = [e for e in truth["non_routine"] if e["code"] == "register_reset"]
    assert len(resets) == len(reboot) == 1
    device_id, i = resets[0]
    assert device_id == reboot[0]["device_id"]
    assert records[device_id][i + 1]["energy_wh"] < 50.0  # restarted from 0
    boots = {b.boot for b in run[0] if b.device_id == device_id}
    assert boots == {reboot[0]["boot_after"] - 1, reboot[0]["boot_after"]}


def test_truth_totals_equal_what_was_streamed(run: Run, records: Records) -> None:
    batches, truth = run
    totals = truth["totals"]
    assert totals["records_streamed"] == sum(len(r) for r in records.values())
    assert totals["records_streamed"] + totals["records_lost"] == totals["records_expected"]
    assert totals["events"] == sum(len(b.items) for b in batches if b.channel == "event")
    assert totals["vehicles_streamed"] == sum(r["vehicles"] for v in records.values() for r in v)
    register_kwh = 0.0
    for device_id, recs in records.items():
        lum = truth["luminaires"][device_id]
        streamed = register_increments_wh([r["energy_wh"] for r in recs], lum["register_start_wh"])
        assert streamed / 1000 == pytest.approx(lum["register_kwh"], abs=1e-9)
        assert abs(streamed - 1000 * lum["energy_kwh"]) <= 2.0  # 1 Wh quantum per boot
        # readings describe the state at ts, so switching intervals are only nearly right
        integral = sum(r["power_w"] for r in recs) * 300 / 3.6e6
        if lum["records_lost"] == 0:
            assert integral == pytest.approx(lum["energy_kwh"], rel=0.01)
        register_kwh += streamed / 1000
        nights = [n for n in truth["nights"] if n["device_id"] == device_id]
        in_nights = sum(n["actual_kwh"] for n in nights) + lum["day_burning_kwh"]
        assert in_nights == pytest.approx(lum["lamp_kwh"])
        assert lum["lamp_kwh"] + lum["standby_kwh"] == pytest.approx(lum["energy_kwh"])
        # the register over a night's records gives the night's energy (1 Wh resolution)
        for night in nights:
            if not night["complete"]:
                continue
            a = epoch(truth_night(truth, night["night"])["sunset"])
            b = epoch(truth_night(truth, night["night"])["sunrise"])
            inside = [i for i, r in enumerate(recs) if a < epoch(r["ts"]) <= b]
            first, last = inside[0], inside[-1]
            wh = recs[last]["energy_wh"] - recs[first - 1]["energy_wh"]
            if wh >= 0:  # no register reset inside
                assert abs(wh - 1000 * night["window_kwh"]) <= 1.0
                # differ by standby and the part of the dawn interval ending after sunrise
                assert abs(night["window_kwh"] - night["actual_kwh"]) < 0.012
    assert register_kwh == pytest.approx(totals["register_kwh"])
    assert totals["actual_kwh"] == pytest.approx(sum(n["actual_kwh"] for n in truth["nights"]))
    cf = sum(n["counterfactual_kwh"] for n in truth["nights"])
    assert totals["counterfactual_kwh"] == pytest.approx(cf)


def test_counterfactual_is_full_power_times_burning_hours(run: Run) -> None:
    truth = run[1]
    for night in truth["nights"]:
        p_full = truth["luminaires"][night["device_id"]]["p_full_w"]
        expected = p_full * night["burning_hours"] / 1000
        assert night["counterfactual_kwh"] == pytest.approx(expected, rel=1e-9)
        assert night["actual_kwh"] <= night["counterfactual_kwh"] + 1e-9


def test_each_fault_appears_once_and_is_visible_in_the_data(run: Run, records: Records) -> None:
    batches, truth = run
    codes = Counter(e["code"] for e in truth["non_routine"])
    assert codes == dict.fromkeys(
        ["lamp_failure", "day_burning", "comm_failure", "register_reset", "data_gap"], 1
    )
    by_code = {e["code"]: e for e in truth["non_routine"]}
    assert not set(e["device_id"] for e in truth["non_routine"]) & set(
        truth["policy"]["control_group"]
    )
    # lamp failure: nights with no burning, a fault and its clearing
    failed = [
        n
        for n in truth["nights"]
        if n["device_id"] == by_code["lamp_failure"]["device_id"] and n["burning_hours"] == 0
    ]
    assert len(failed) >= 2
    # day burning: lamp on at full output around local noon
    burner = records[by_code["day_burning"]["device_id"]]
    lit_at_noon = [
        r for r in burner if r["lamp_on"] and 11 <= (epoch(r["ts"]) / 3600 + 7) % 24 < 13
    ]
    assert lit_at_noon and {r["dim_pct"] for r in lit_at_noon} == {100.0}
    day_hours = truth["luminaires"][by_code["day_burning"]["device_id"]]["day_burning_hours"]
    assert 6.0 < day_hours < 11.0  # from dawn to the repair in the afternoon
    assert sum(lum["day_burning_hours"] for lum in truth["luminaires"].values()) == day_hours
    # data gap: the only incomplete night
    incomplete = [n for n in truth["nights"] if not n["complete"]]
    assert len(incomplete) == 1
    assert incomplete[0]["device_id"] == by_code["data_gap"]["device_id"]
    assert incomplete[0]["completeness"] < 0.9
    # outage: records held back and delivered in catch-up messages at link restoration
    outage = by_code["comm_failure"]
    late = [
        b
        for b in batches
        if b.channel == "telemetry" and b.deliver_at > epoch(b.items[-1]["ts"]) + 1e-6
    ]
    assert {b.device_id for b in late} == {outage["device_id"]}
    assert sum(len(b.items) for b in late) == outage["records_late"] > 500
    assert all(b.deliver_at == pytest.approx(epoch(outage["end"])) for b in late)
    events = Counter(
        (b.items[0]["type"], b.items[0].get("code")) for b in batches if b.channel == "event"
    )
    for code in ("lamp_failure", "day_burning", "comm_failure"):
        assert events[("fault", code)] == events[("fault_cleared", code)] == 1


def test_batches_are_ordered_bounded_and_timed(run: Run, records: Records) -> None:
    batches = run[0]
    assert records_by_device(batches) == records  # catch-up comes before anything newer
    deliver = np.array([b.deliver_at for b in batches])
    assert np.all(np.diff(deliver) >= 0)
    for b in batches:
        assert 1 <= len(b.items) <= 1000
        ts = [epoch(i["ts"]) for i in b.items]
        assert ts == sorted(ts) and b.deliver_at >= ts[-1] - 1e-6
        if b.channel == "telemetry" and b.deliver_at == ts[-1]:
            assert len(b.items) <= CONFIG.batch_records
        assert b.items[0]["ts"].endswith("Z") and len(b.items[0]["ts"]) == 24


def test_every_message_passes_the_payload_contract(run: Run) -> None:
    for b in run[0][::7]:
        raw = encode_message(b.boot, 0, b.items, channel=b.channel)
        parsed = parse_message("streetlight", b.channel, raw)
        assert not parsed.rejected and len(parsed.items) == len(b.items)


def test_same_seed_same_stream_other_seed_other_stream() -> None:
    small = StreetlightSimConfig(start=START, days=5, seed=3, devices=12)
    first = list(simulate_streetlights(small).batches())
    again = list(simulate_streetlights(small).batches())
    assert first == again
    other = list(
        simulate_streetlights(
            StreetlightSimConfig(start=START, days=5, seed=4, devices=12)
        ).batches()
    )
    assert other != first
    assert simulate_streetlights(small).truth() == simulate_streetlights(small).truth()


def test_without_faults_everything_is_complete_and_on_time() -> None:
    sim = simulate_streetlights(
        StreetlightSimConfig(start=START, days=3, seed=5, devices=8, faults=False)
    )
    truth = sim.truth()
    assert truth["non_routine"] == [] and all(n["complete"] for n in truth["nights"])
    assert truth["totals"]["records_late"] == truth["totals"]["records_lost"] == 0
    assert all(b.deliver_at == epoch(b.items[-1]["ts"]) for b in sim.batches())


@pytest.mark.parametrize(
    "bad",
    [
        {"days": 0},
        {"record_interval_s": 7},
        {"batch_records": 1001},
        {"baseline_start": START},
        {"baseline_start": START, "baseline_end": START - dt.timedelta(days=1)},
    ],
)
def test_impossible_configs_are_refused(bad: dict[str, Any]) -> None:
    args: dict[str, Any] = {"start": START, "days": 9, "seed": 1} | bad
    with pytest.raises(SimConfigError):
        StreetlightSimConfig(**args)


@pytest.mark.parametrize(
    ("days", "present", "left_out"),
    [
        (2, {"day_burning", "register_reset"}, ["lamp_failure", "outage", "gap"]),
        (3, {"day_burning", "register_reset", "data_gap"}, ["lamp_failure", "outage"]),
        (4, {"lamp_failure", "day_burning", "comm_failure", "register_reset", "data_gap"}, []),
    ],
)
def test_a_short_run_leaves_out_the_faults_it_has_no_room_for(
    days: int, present: set[str], left_out: list[str]
) -> None:
    truth = simulate_streetlights(StreetlightSimConfig(start=START, days=days, seed=2)).truth()
    assert {e["code"] for e in truth["non_routine"]} == present
    assert [f.split(" ")[0] for f in truth["faults_omitted"]] == left_out
    assert all("needs" in f for f in truth["faults_omitted"])


def test_too_few_luminaires_for_every_fault_names_the_ones_left_out() -> None:
    cfg = StreetlightSimConfig(start=START, days=5, seed=2, devices=12)
    treated = len(cfg.device_ids()) - len(cfg.controls())
    few = StreetlightSimConfig(start=START, days=5, seed=2, devices=12 - (treated - 2))
    truth = simulate_streetlights(few).truth()
    assert len({e["device_id"] for e in truth["non_routine"]}) == 2
    assert len(truth["faults_omitted"]) == 3
    assert all("luminaire" in f for f in truth["faults_omitted"])
