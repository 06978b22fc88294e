"""The streetlight simulator obeys a commanded dimming profile: its base level follows the
profile's local-time steps, detections raise it to the on-detect level, and the energy
register still adds up to the truth."""

from __future__ import annotations

import datetime as dt
import itertools
from collections import defaultdict
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from devices.commands import DimmingProfile
from devices.sim import SimConfigError, StreetlightSimConfig, simulate_streetlights
from devices.sim.lighting import Road
from devices.sim.truth import register_increments_wh
from tests.fixtures.sim import epoch

PROFILE = DimmingProfile.model_validate(
    {
        "steps": [
            {"from": "18:00", "level_pct": 80},
            {"from": "22:00", "level_pct": 40},
            {"from": "04:30", "level_pct": 70},
        ],
        "adaptive": {"on_detect_pct": 90, "hold_s": 60},
    }
)
ZONE = ZoneInfo("Asia/Jakarta")


def commanded(start_epoch: float) -> float:
    """The profile's level for an interval starting then, from the wall clock (zoneinfo)."""
    local = dt.datetime.fromtimestamp(start_epoch, ZONE).time()
    if local >= dt.time(22) or local < dt.time(4, 30):
        return 40.0
    if local >= dt.time(18):
        return 80.0
    return 70.0


def by_device(dimming: DimmingProfile | None) -> tuple[dict[str, list[dict[str, Any]]], Any]:
    cfg = StreetlightSimConfig(
        start=dt.date(2026, 10, 1),
        days=2,
        seed=5,
        devices=4,
        control_group=(),
        faults=False,
        dimming=dimming,
        roads=(Road("Jl. Sepi", 0.01),),  # a quiet lane: many intervals without traffic
    )
    sim = simulate_streetlights(cfg)
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for b in sim.batches():
        if b.channel == "telemetry":
            out[b.device_id].extend(b.items)
    return {k: sorted(v, key=lambda r: r["ts"]) for k, v in out.items()}, sim.truth()


def quiet_levels(records: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """(interval start, dim_pct) of lit intervals with no detection in them or just before."""
    out = []
    for prev, rec in itertools.pairwise(records):
        if rec["lamp_on"] and prev["lamp_on"] and rec["vehicles"] == 0 and prev["vehicles"] == 0:
            out.append((epoch(rec["ts"]) - 300.0, rec["dim_pct"]))
    return out


def test_base_level_follows_the_profile_steps() -> None:
    records, truth = by_device(PROFILE)
    assert truth["policy"]["dimming_profile"]["steps"][1] == {"from": "22:00", "level_pct": 40.0}
    seen = set()
    for recs in records.values():
        quiet = quiet_levels(recs)
        assert len(quiet) > 20
        for start, dim in quiet:
            assert dim == commanded(start), dt.datetime.fromtimestamp(start, ZONE)
            seen.add(dim)
        busy = [r["dim_pct"] for r in recs if r["lamp_on"] and r["vehicles"] > 0]
        assert busy and max(busy) <= 90.0  # the on-detect level caps a detection
    assert seen == {40.0, 70.0, 80.0}
    # without a profile the default policy idles at 30 %
    default, _ = by_device(None)
    assert {dim for recs in default.values() for _, dim in quiet_levels(recs)} == {30.0}


def test_register_still_adds_up_to_the_truth() -> None:
    records, truth = by_device(PROFILE)
    for device_id, recs in records.items():
        lum = truth["luminaires"][device_id]
        streamed = register_increments_wh([r["energy_wh"] for r in recs], lum["register_start_wh"])
        assert abs(streamed - 1000 * lum["energy_kwh"]) <= 2.0
        integral = sum(r["power_w"] for r in recs) * 300 / 3.6e6
        assert integral == pytest.approx(lum["energy_kwh"], rel=0.01)
        nights = [n for n in truth["nights"] if n["device_id"] == device_id]
        assert sum(n["actual_kwh"] for n in nights) == pytest.approx(lum["lamp_kwh"])


def test_profile_steps_off_the_record_grid_are_refused() -> None:
    odd = DimmingProfile.model_validate({"steps": [{"from": "22:07", "level_pct": 40}]})
    with pytest.raises(SimConfigError, match="22:07"):
        StreetlightSimConfig(start=dt.date(2026, 10, 1), days=2, seed=1, faults=False, dimming=odd)
