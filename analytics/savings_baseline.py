"""What the baseline window says about each luminaire, summarised once and reused.

Why: every savings window reads the same baseline (commissioning) window — for each
luminaire its own full power and the accounting of its baseline nights (the
difference-in-differences and regression baselines read those). Neither changes unless the
baseline window's rows do, so the shell may keep a `BaselineSummary` and hand it back to
`analytics.savings.compute_savings` instead of the rows: a one-night window then reads one
night. A summary is exact: the same numbers the rows would give (`summarise_baseline`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from analytics.errors import InputError
from analytics.luminaire_nights import (
    FloatArray,
    FullPower,
    LuminaireSeries,
    SavingsParams,
    night_table,
    own_full_power,
)
from analytics.nights import NightCalendar, night_calendar


@dataclass(frozen=True)
class BaselineLuminaire:
    """One luminaire's baseline nights (`BaselineSummary.nights` order) and full power.

    `valid`, `burning` [records], `actual_wh` [Wh] per night; `sources` nights × 4 record
    counts (`luminaire_nights.SOURCES`); `full_power` its own baseline median, None with too
    few 100 % samples; `sha256` of its baseline rows.
    """

    device_id: str
    valid: FloatArray
    burning: FloatArray
    actual_wh: FloatArray
    sources: FloatArray
    full_power: FullPower | None
    sha256: str


@dataclass(frozen=True)
class BaselineSummary:
    """Per luminaire with rows in the baseline nights, sorted by device id."""

    nights: tuple[dt.date, ...]
    luminaires: tuple[BaselineLuminaire, ...]

    @property
    def sha256(self) -> str:
        """Hash of every luminaire's baseline rows, so a result names what it was made from."""
        digest = hashlib.sha256()
        for lum in self.luminaires:
            digest.update(f"{lum.device_id}\x1f{lum.sha256}\x1e".encode())
        return digest.hexdigest()

    def get(self, device_id: str) -> BaselineLuminaire | None:
        return next((b for b in self.luminaires if b.device_id == device_id), None)


def baseline_calendar(params: SavingsParams) -> NightCalendar:
    """The baseline nights (both ends inclusive); InputError without a baseline window."""
    if params.baseline_start is None or params.baseline_end is None:
        raise InputError("the pilot has no baseline window")
    if params.baseline_end < params.baseline_start:
        raise InputError("baseline_end is before baseline_start")
    return night_calendar(
        params.baseline_start,
        params.baseline_end,
        timezone=params.timezone,
        latitude=params.latitude,
        longitude=params.longitude,
    )


def series_sha256(s: LuminaireSeries) -> str:
    """Hash of one luminaire's rows (same bytes as `analytics.savings.input_sha256`)."""
    digest = hashlib.sha256(s.device_id.encode())
    for values in (s.ts, s.power_w, s.energy_wh, s.dim_pct):
        digest.update(np.ascontiguousarray(values, dtype=np.float64).tobytes())
    digest.update(np.ascontiguousarray(s.lamp_on, dtype=np.bool_).tobytes())
    return digest.hexdigest()


def summarise_baseline(series: Sequence[LuminaireSeries], params: SavingsParams) -> BaselineSummary:
    """The summary of the baseline nights from rows covering them (others are ignored)."""
    calendar = baseline_calendar(params)
    table = night_table(series, calendar, params.record_interval_s)
    every = np.ones(len(calendar), dtype=bool)
    luminaires = [
        BaselineLuminaire(
            device_id=s.device_id,
            valid=table.valid[k],
            burning=table.burning[k],
            actual_wh=table.actual_wh[k],
            sources=table.sources[k],
            full_power=own_full_power(s, table.record_nights[k], every, "baseline"),
            sha256=series_sha256(s),
        )
        for k, s in enumerate(series)
    ]
    return BaselineSummary(calendar.dates, tuple(sorted(luminaires, key=lambda b: b.device_id)))


def with_baseline_luminaires(
    series: Sequence[LuminaireSeries], summary: BaselineSummary
) -> list[LuminaireSeries]:
    """`series` and an empty series for each luminaire only the baseline has rows of, in
    device order when `series` is (as loaded), so every luminaire gets its row."""
    have = {s.device_id for s in series}
    empty = np.empty(0)
    extra = [
        LuminaireSeries(b.device_id, empty, empty, empty, empty, np.empty(0, dtype=bool))
        for b in summary.luminaires
        if b.device_id not in have
    ]
    ids = [s.device_id for s in series]
    out = [*series, *extra]
    return sorted(out, key=lambda s: s.device_id) if ids == sorted(ids) else out


__all__ = [
    "BaselineLuminaire",
    "BaselineSummary",
    "baseline_calendar",
    "series_sha256",
    "summarise_baseline",
    "with_baseline_luminaires",
]
