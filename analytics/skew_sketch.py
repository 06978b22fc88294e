"""Clock-skew sketch: a fixed, log-spaced histogram of `received_at − ts`.

Exact percentiles cannot be added up across days; counts per fixed bin can. Each device-day
keeps its counts per bin, a window adds them and reads percentiles from the sum. Bins are
cut on integer microseconds (`EDGES_US`), so SQL (`width_bucket`) and numpy
(`searchsorted`) put every value in the same bin.

Bound: a percentile read here is the geometric middle of the bin holding the order
statistic at rank ⌊q·(n − 1)⌋, so it is within a factor `MAX_RATIO` (10^(1/40) ≈ 1.059)
of that statistic, or within 10 ms of it when it is under 10 ms (bin 0 reads as 0).
PostgreSQL's `percentile_cont` interpolates between that statistic and the next one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

BINS_PER_DECADE = 20
FLOOR_US = 10_000  # |skew| under 10 ms is bin 0
DECADES = 10  # up to 10^8 s (3 years); beyond, the last bin
EDGES_US: tuple[int, ...] = tuple(
    round(FLOOR_US * 10 ** (k / BINS_PER_DECADE)) for k in range(DECADES * BINS_PER_DECADE + 1)
)
MAX_RATIO = 10 ** (1 / (2 * BINS_PER_DECADE))  # the bound above (edge rounding < 1e-4)
FLOOR_S = FLOOR_US / 1e6


def bins_of(skew_us: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """The signed bin of each skew [µs]: SQL's `sign(v) * width_bucket(abs(v), EDGES_US)`."""
    magnitude = np.searchsorted(np.asarray(EDGES_US, np.int64), np.abs(skew_us), side="right")
    return (np.sign(skew_us) * magnitude).astype(np.int64)


def histogram(skew_us: npt.NDArray[np.int64]) -> dict[int, int]:
    """Counts per bin of the skews [µs]."""
    found, counts = np.unique(bins_of(skew_us), return_counts=True)
    return dict(zip(found.tolist(), counts.tolist(), strict=True))


def middle_s(bin_: int) -> float:
    """The value a bin reads as [s]: the geometric middle of its edges (0 for bin 0)."""
    k = abs(bin_)
    if k == 0:
        return 0.0
    if k >= len(EDGES_US):
        return math.copysign(EDGES_US[-1] / 1e6, bin_)
    return math.copysign(math.sqrt(EDGES_US[k - 1] * EDGES_US[k]) / 1e6, bin_)


def percentile_s(hist: Mapping[int, int], fraction: float) -> float | None:
    """The `fraction` percentile [s] of the values counted in `hist` (None if empty)."""
    total = sum(hist.values())
    if total <= 0:
        return None
    rank = math.floor(fraction * (total - 1))
    seen = 0
    for bin_ in sorted(hist):  # bins are ordered like their values, negative ones first
        seen += hist[bin_]
        if seen > rank:
            return round(middle_s(bin_), 6)
    return round(middle_s(max(hist)), 6)


def describe() -> dict[str, float]:
    """What a reader needs to weigh a sketched percentile."""
    return {
        "bins_per_decade": BINS_PER_DECADE,
        "max_ratio": round(MAX_RATIO, 4),
        "floor_s": FLOOR_S,
    }
