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
MIN_DAYS_WITH_FAULTS = 5


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
    """Draw the five faults on five distinct luminaires among ``candidates``.

    ``noons[n]`` is local noon of day n (n = 0..days), ``t0 = noons[0]``.
    """
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
