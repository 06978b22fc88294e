"""Seeded simulators of the two seed pilots, for demos, load tests and acceptance checks.

They are pure generators: `simulate_streetlights` and `simulate_drones` return objects whose
`batches()` yield the messages the field devices would send (records and events, timed by
when the device could send them) and whose `truth()` says what really happened, so an
analysis of the streamed data can be checked against it. Streaming them over MQTT is the
driver's job, not theirs.
"""

from devices.errors import SimConfigError
from devices.sim.batching import Batch
from devices.sim.drones import (
    MUKDAHAN_AOI,
    MUKDAHAN_BASE,
    MUKDAHAN_BORDER,
    DroneSim,
    DroneSimConfig,
    simulate_drones,
)
from devices.sim.streetlights import StreetlightSim, StreetlightSimConfig, simulate_streetlights

__all__ = [
    "MUKDAHAN_AOI",
    "MUKDAHAN_BASE",
    "MUKDAHAN_BORDER",
    "Batch",
    "DroneSim",
    "DroneSimConfig",
    "SimConfigError",
    "StreetlightSim",
    "StreetlightSimConfig",
    "simulate_drones",
    "simulate_streetlights",
]
