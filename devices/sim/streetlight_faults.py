"""Which non-routine events a streetlight pilot run contains, drawn once from the seed.

An evaluator must see each way real field data goes wrong exactly once, on luminaires
outside the control group: a failed lamp, a day-burning luminaire, a two-day link outage
with late catch-up, a controller reboot that resets the energy register, and a data gap
that makes one night incomplete. Placing them here, before any luminaire is simulated,
keeps every fault independent of the others and of the number of devices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

H = 3600.0
MIN_DAYS_WITH_FAULTS = 5  # every fault fits; shorter runs (or fewer luminaires) get fewer
# Days each fault needs to fit in a run, in the order faults are given to luminaires.
FAULT_MIN_DAYS = {"lamp_failure": 4, "day_burning": 2, "outage": 4, "reboot": 2, "gap": 3}


def faults_that_fit(days: int, luminaires: int) -> tuple[list[str], list[str]]:
    """(faults a run of `days` with `luminaires` candidates holds, faults left out)."""
    fit = [f for f, need in FAULT_MIN_DAYS.items() if days >= need][:luminaires]
    return fit, [f for f in FAULT_MIN_DAYS if f not in fit]


@dataclass(frozen=True)
class LampFailure:
    """The lamp does not light for ``nights`` nights from night index ``first``."""

    device_id: str
    first: int
    nights: int
    repaired_at: float


@dataclass(frozen=True)
class DayBurning:
    """The lamp fails to switch off at the dawn of day ``day`` until ``repaired_at``."""

    device_id: str
    day: int
    repaired_at: float


@dataclass(frozen=True)
class LinkOutage:
    """The uplink is down from ``lost`` to ``restored``; records queue on the device."""

    device_id: str
    lost: float
    restored: float


@dataclass(frozen=True)
class Reboot:
    """The controller restarts just after the record before interval ``interval``."""

    device_id: str
    interval: int


@dataclass(frozen=True)
class DataGap:
    """Records are lost for good, starting ``after_sunset_s`` after sunset of ``night``."""

    device_id: str
    night: int
    after_sunset_s: float
    duration_s: float


@dataclass(frozen=True)
class FaultPlan:
    """All non-routine events of one run (empty when faults are off)."""

    lamp_failure: LampFailure | None = None
    day_burning: DayBurning | None = None
    outage: LinkOutage | None = None
    reboot: Reboot | None = None
    gap: DataGap | None = None


def plan_faults(
    seed: int,
    candidates: list[str],
    days: int,
    t0: float,
    noons: list[float],
    interval_s: float,
) -> FaultPlan:
    """Draw the five faults on five distinct luminaires among ``candidates``; a run too
    short or too small for all of them gets those that fit (`faults_that_fit`).

    ``noons[n]`` is local noon of day n (n = 0..days), ``t0 = noons[0]``.
    """
    fit, _ = faults_that_fit(days, len(candidates))
    if len(fit) < len(FAULT_MIN_DAYS):
        return _partial_plan(seed, candidates, days, t0, noons, interval_s, fit)
    rng = np.random.default_rng([seed, 3])
    pick = [candidates[int(i)] for i in rng.choice(len(candidates), 5, replace=False)]
    nights = 3 if days >= 8 else 2
    first = int(rng.integers(1, days - nights))
    lamp = LampFailure(
        pick[0], first, nights, round(noons[first + nights] - float(rng.uniform(1.5, 3.0)) * H, 3)
    )
    burn_day = int(rng.integers(1, days))
    repaired = round(noons[burn_day] + float(rng.uniform(2.0, 3.5)) * H, 3)
    burning = DayBurning(pick[1], burn_day, repaired)
    lost = t0 + float(rng.uniform(1.0, days - 3.0)) * 86400.0 + float(rng.uniform(0, H))
    restored = lost + float(rng.uniform(44.0, 52.0)) * H
    outage = LinkOutage(pick[2], round(lost, 3), round(restored, 3))
    reboot_day = int(rng.integers(1, days))
    reboot_at = noons[reboot_day] - float(rng.uniform(0.5, 2.0)) * H
    reboot = Reboot(pick[3], round((reboot_at - t0) / interval_s))
    gap = DataGap(
        pick[4],
        int(rng.integers(1, days - 1)),
        float(rng.uniform(1.5, 4.0)) * H,
        float(rng.uniform(4.0, 5.0)) * H,
    )
    return FaultPlan(lamp, burning, outage, reboot, gap)


def _partial_plan(
    seed: int,
    candidates: list[str],
    days: int,
    t0: float,
    noons: list[float],
    interval_s: float,
    fit: list[str],
) -> FaultPlan:
    """The faults in `fit`, drawn as `plan_faults` draws them (full runs keep their draws)."""
    rng = np.random.default_rng([seed, 3])
    pick = dict(
        zip(
            fit,
            (candidates[int(i)] for i in rng.choice(len(candidates), len(fit), False)),
            strict=True,
        )
    )
    plan: dict[str, object] = {}
    if "lamp_failure" in pick:
        first = int(rng.integers(1, days - 2))
        repaired = round(noons[first + 2] - float(rng.uniform(1.5, 3.0)) * H, 3)
        plan["lamp_failure"] = LampFailure(pick["lamp_failure"], first, 2, repaired)
    if "day_burning" in pick:
        day = int(rng.integers(1, days))
        repaired = round(noons[day] + float(rng.uniform(2.0, 3.5)) * H, 3)
        plan["day_burning"] = DayBurning(pick["day_burning"], day, repaired)
    if "outage" in pick:
        lost = t0 + float(rng.uniform(1.0, days - 3.0)) * 86400.0 + float(rng.uniform(0, H))
        restored = lost + float(rng.uniform(44.0, 52.0)) * H
        plan["outage"] = LinkOutage(pick["outage"], round(lost, 3), round(restored, 3))
    if "reboot" in pick:
        at = noons[int(rng.integers(1, days))] - float(rng.uniform(0.5, 2.0)) * H
        plan["reboot"] = Reboot(pick["reboot"], round((at - t0) / interval_s))
    if "gap" in pick:
        night = int(rng.integers(1, days - 1))
        after = float(rng.uniform(1.5, 4.0)) * H
        plan["gap"] = DataGap(pick["gap"], night, after, float(rng.uniform(4.0, 5.0)) * H)
    return FaultPlan(**plan)  # type: ignore[arg-type]
