"""When a drone's sensor counts as recording (the pilot's ``[drone] sensor`` setting).

Why: most patrol payloads (EO/IR gimbals, video downlinks) record continuously and never
send a camera message, so reading a missing ``camera_on`` as "off" gives 0 % coverage for
ordinary flights; reading it as "on" when a drone does report its camera would overstate.
The choice is explicit and reported per device (``sensor_source``) with a warning
whenever it changed the result.

- ``log``: the records' ``camera_on`` only (absent = off);
- ``always``: recording whenever airborne in a patrol mode;
- ``auto``: ``log`` for a drone that sent ``camera_on`` in the window, else ``always``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from analytics.errors import InputError
from analytics.tracks import DroneSeries

BoolArray = npt.NDArray[np.bool_]
SENSOR_CHOICES = ("auto", "log", "always")


@dataclass(frozen=True)
class SensorChoice:
    """The camera state used for one drone and window, and what the choice changed."""

    camera_on: BoolArray
    source: str  # "log" or "always"
    warning: str | None


def sensor_state(series: DroneSeries, sensor: str, patrolling: BoolArray) -> SensorChoice:
    """Camera state of `series` under `sensor`; `patrolling` = airborne in patrol mode."""
    if sensor not in SENSOR_CHOICES:
        raise InputError(f"sensor must be one of {SENSOR_CHOICES}, got {sensor!r}")
    reported = bool(series.camera_sent is not None and series.camera_sent.any())
    logged = series.camera_on & (series.camera_sent if series.camera_sent is not None else True)
    source = "log" if sensor == "log" or (sensor == "auto" and reported) else "always"
    camera = logged if source == "log" else np.ones(len(series), dtype=np.bool_)
    changed = int(np.count_nonzero(patrolling & (camera != logged)))
    warning = None
    d = series.device_id
    if source == "always" and changed:
        why = "sends no camera_on" if not reported else "reports its camera off at times"
        warning = (
            f"{d} {why}: sensor = {sensor} counts it recording whenever airborne in patrol "
            f"({changed} points that the log alone would not count)"
        )
    elif sensor == "log" and not reported and np.count_nonzero(patrolling):
        warning = (
            f"{d} sends no camera_on: sensor = log counts none of its "
            f"{int(np.count_nonzero(patrolling))} airborne patrol points ('auto' would)"
        )
    return SensorChoice(np.asarray(camera, dtype=np.bool_), source, warning)
