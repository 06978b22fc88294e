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
MIN_DAYS_WITH_FAULTS = 5  # every fault fits from here (with five treated luminaires)
# The days each fault needs to sit inside the run with a clean night either side.
DAYS_NEEDED = {"lamp_failure": 4, "day_burning": 2, "outage": 4, "reboot": 2, "gap": 3}


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
    omitted: tuple[str, ...] = ()  # faults a short run has no room for, with why


def plan_faults(
    seed: int,
    candidates: list[str],
    days: int,
    t0: float,
    noons: list[float],
    interval_s: float,
) -> FaultPlan:
    """Draw the faults on distinct luminaires among ``candidates``.

    ``noons[n]`` is local noon of day n (n = 0..days), ``t0 = noons[0]``. A fault that needs
    more days than the run has, or a luminaire when all are taken, is left out and named in
    ``omitted``; from `MIN_DAYS_WITH_FAULTS` days and five candidates all five fit, drawn
    exactly as before (same seed, same plan).
    """
    fit = [name for name, need in DAYS_NEEDED.items() if days >= need]
    omitted = [f"{n} (needs {DAYS_NEEDED[n]} days)" for n in DAYS_NEEDED if n not in fit]
    omitted += [f"{n} (needs one more luminaire)" for n in fit[len(candidates) :]]
    fit = fit[: len(candidates)]
    if not fit:
        return FaultPlan(omitted=tuple(omitted))
    rng = np.random.default_rng([seed, 3])
    chosen = rng.choice(len(candidates), len(fit), replace=False)
    pick = dict(zip(fit, (candidates[int(i)] for i in chosen), strict=True))
    plan: dict[str, object] = {}
    if "lamp_failure" in pick:
        nights = 3 if days >= 8 else 2
        first = int(rng.integers(1, days - nights))
        repaired_at = round(noons[first + nights] - float(rng.uniform(1.5, 3.0)) * H, 3)
        plan["lamp_failure"] = LampFailure(pick["lamp_failure"], first, nights, repaired_at)
    if "day_burning" in pick:
        burn_day = int(rng.integers(1, days))
        repaired = round(noons[burn_day] + float(rng.uniform(2.0, 3.5)) * H, 3)
        plan["day_burning"] = DayBurning(pick["day_burning"], burn_day, repaired)
    if "outage" in pick:
        lost = t0 + float(rng.uniform(1.0, days - 3.0)) * 86400.0 + float(rng.uniform(0, H))
        restored = lost + float(rng.uniform(44.0, 52.0)) * H
        plan["outage"] = LinkOutage(pick["outage"], round(lost, 3), round(restored, 3))
    if "reboot" in pick:
        reboot_day = int(rng.integers(1, days))
        reboot_at = noons[reboot_day] - float(rng.uniform(0.5, 2.0)) * H
        plan["reboot"] = Reboot(pick["reboot"], round((reboot_at - t0) / interval_s))
    if "gap" in pick:
        plan["gap"] = DataGap(
            pick["gap"],
            int(rng.integers(1, days - 1)),
            float(rng.uniform(1.5, 4.0)) * H,
            float(rng.uniform(4.0, 5.0)) * H,
        )
    return FaultPlan(**plan, omitted=tuple(omitted))  # type: ignore[arg-type]
