"""The luminaire × night grid one savings computation works on, and its per-row tables.

Why: every step of `analytics.savings.compute_savings` reads the same accounting — which
luminaires are treated, which nights report or form the baseline, which luminaire-nights
meet the sufficiency rule. `SavingsFrame` holds it once; the per-luminaire, per-night,
excluded-night and burning-anomaly tables are plain reads of it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from analytics.errors import InputError
from analytics.luminaire_nights import (
    BURN_TOLERANCE_H,
    BoolArray,
    FloatArray,
    FullPower,
    NightTable,
    SavingsParams,
    iso_seconds,
)
from analytics.nights import NightCalendar, night_calendar
from analytics.savings_baseline import BaselineSummary
from analytics.savings_result import pct

DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class SavingsFrame:
    """What every step of one computation shares: who, which nights, which count."""

    ids: tuple[str, ...]
    table: NightTable
    expected: FloatArray  # ⌊night length / interval⌋ per night
    completeness: FloatArray
    counted: BoolArray  # luminaire-night meets the sufficiency rule
    rep: BoolArray
    base: BoolArray | None
    treated: BoolArray
    interval: float

    @property
    def cal(self) -> NightCalendar:
        return self.table.calendar

    @property
    def groups(self) -> list[str]:
        return ["treated" if t else "control" for t in self.treated]

    def completenesspct(self, rows: BoolArray, *, absent: int = 0) -> float | None:
        """Overall completeness [%] of the given luminaires over the reporting nights; `absent`
        more luminaires were expected and sent nothing (their nights count as missing)."""
        if not rows.any() and not absent:
            return None
        got = np.minimum(self.table.valid[rows][:, self.rep], self.expected[self.rep]).sum()
        luminaires = int(rows.sum()) + absent
        return 100.0 * float(got) / (float(self.expected[self.rep].sum()) * luminaires)


def savings_calendar(params: SavingsParams, start: dt.date, end: dt.date) -> NightCalendar:
    """The nights one computation covers: the reporting nights [start, end) and the baseline.

    Night `start − 1` is included so that its dawn bounds the reporting window's events.
    """
    first, last = start - DAY, end - DAY
    if params.baseline_start is not None and params.baseline_end is not None:
        first, last = min(first, params.baseline_start), max(last, params.baseline_end)
    return night_calendar(
        first, last, timezone=params.timezone, latitude=params.latitude, longitude=params.longitude
    )


def _take_baseline(table: NightTable, summary: BaselineSummary, nights: BoolArray) -> None:
    """Fill the columns of `nights` (baseline nights) from the summary, in place."""
    cols = np.array([table.calendar.index(d) for d in summary.nights], dtype=np.int64)
    take = nights[cols]
    cols = cols[take]
    for k, device_id in enumerate(table.device_ids):
        b = summary.get(device_id)
        for name in ("valid", "burning", "actual_wh", "sources"):
            target = getattr(table, name)
            target[k, cols] = 0.0 if b is None else getattr(b, name)[take]


def build_frame(
    table: NightTable,
    params: SavingsParams,
    start: dt.date,
    end: dt.date,
    baseline: BaselineSummary | None = None,
) -> tuple[SavingsFrame, list[str]]:
    """The frame of reporting nights [start, end) plus the baseline window, and warnings.

    `table` covers `savings_calendar(params, start, end)`; with a `baseline` summary, the
    baseline nights outside [start, end) are its numbers, whatever `table` holds of them
    (the table is filled in place)."""
    ids = table.device_ids
    if len(set(ids)) != len(ids):
        raise InputError("each luminaire may appear in only one series")
    control = set(params.control_group)
    warnings = [f"control luminaire {c} has no data" for c in sorted(control - set(ids))]
    bs, be = params.baseline_start, params.baseline_end
    cal = table.calendar
    dates = np.array(cal.dates, dtype="datetime64[D]")
    rep = (dates >= np.datetime64(start)) & (dates < np.datetime64(end))
    base = None
    if bs is not None and be is not None:
        base = (dates >= np.datetime64(bs)) & (dates <= np.datetime64(be))
        if np.any(base & rep):
            warnings.append("baseline window overlaps the reporting period")
    if baseline is not None and base is not None:
        _take_baseline(table, baseline, base & ~rep)
    # a complete night has at least ⌊length / interval⌋ records ending inside it
    expected = np.maximum(np.floor(cal.hours * 3600.0 / params.record_interval_s), 1.0)
    completeness = np.minimum(table.valid / expected, 1.0)
    frame = SavingsFrame(
        ids=ids,
        table=table,
        expected=expected,
        completeness=completeness,
        counted=completeness >= params.sufficiency - 1e-12,
        rep=rep,
        base=base,
        treated=np.array([i not in control for i in ids], dtype=bool).reshape(-1),
        interval=params.record_interval_s,
    )
    return frame, warnings


def per_luminaire_rows(
    f: SavingsFrame, fp: Sequence[FullPower], use: BoolArray, actual: FloatArray, cf: FloatArray
) -> list[dict[str, object]]:
    """One row per treated luminaire: energies, counted nights, full power."""
    rows: list[dict[str, object]] = []
    for k in (int(i) for i in np.flatnonzero(f.treated)):
        a, b = actual[k].sum() / 1000.0, cf[k].sum() / 1000.0
        rows.append(
            {
                "device_id": f.ids[k],
                "actual_kwh": a,
                "baseline_kwh": b,
                "savings_kwh": b - a,
                "savings_pct": pct(b - a, b),
                "nights": int(use[k].sum()),
                "nights_excluded": int((f.rep & ~f.counted[k]).sum()),
                "completeness_pct": f.completenesspct(np.arange(len(f.ids)) == k),
                "burning_hours": float((f.table.burning[k] * use[k]).sum()) * f.interval / 3600,
                "night_hours": float(f.cal.hours[use[k]].sum()),
                "full_power_w": fp[k].watts,
                "full_power_source": fp[k].source,
                "full_power_samples": fp[k].samples,
                "register_resets": int(f.table.sources[k, use[k], 1].sum()),
            }
        )
    return rows


def per_night_rows(
    f: SavingsFrame, use: BoolArray, actual: FloatArray, cf: FloatArray, half: FloatArray
) -> list[dict[str, object]]:
    """One row per reporting night, with its savings interval (± `half` kWh)."""
    rows: list[dict[str, object]] = []
    for n in np.flatnonzero(f.rep):
        a, b = actual[:, n].sum() / 1000.0, cf[:, n].sum() / 1000.0
        rows.append(
            {
                "night": f.cal.dates[n].isoformat(),
                "actual_kwh": a,
                "baseline_kwh": b,
                "savings_kwh": b - a,
                "savings_lo_kwh": b - a - half[n],
                "savings_hi_kwh": b - a + half[n],
                "luminaires": int(use[:, n].sum()),
                "night_hours": float(f.cal.hours[n]),
            }
        )
    return rows


def burning_anomalies(f: SavingsFrame) -> list[dict[str, object]]:
    """Counted reporting luminaire-nights whose lamp was metered off for over an hour."""
    off_h = (f.table.valid - f.table.burning) * f.interval / 3600.0
    return [
        {
            "device_id": f.ids[k],
            "night": f.cal.dates[n].isoformat(),
            "burning_hours": float(f.table.burning[k, n]) * f.interval / 3600.0,
            "metered_hours": float(f.table.valid[k, n]) * f.interval / 3600.0,
            "night_hours": float(f.cal.hours[n]),
            "group": f.groups[k],
        }
        for k, n in np.argwhere(f.counted & f.rep[None, :] & (off_h > BURN_TOLERANCE_H))
    ]


def excluded_nights(
    f: SavingsFrame, windows: dict[str, BoolArray], sufficiency: float
) -> list[dict[str, object]]:
    """Luminaire-nights of each window that miss the sufficiency rule, and why."""
    rows: list[dict[str, object]] = []
    for name, window in windows.items():
        for k, n in np.argwhere(~f.counted & window[None, :]):
            share = 100.0 * float(f.completeness[k, n])
            reason = (
                "no usable records"
                if f.table.valid[k, n] == 0
                else f"{share:.1f} % of expected intervals, below {100 * sufficiency:.0f} %"
            )
            rows.append(
                {
                    "device_id": f.ids[k],
                    "night": f.cal.dates[n].isoformat(),
                    "reason": reason,
                    "completeness_pct": share,
                    "window": name,
                    "group": f.groups[k],
                }
            )
    return rows


def day_burning_rows(
    f: SavingsFrame, burns: FloatArray, days: BoolArray
) -> list[dict[str, object]]:
    """One finding per luminaire and day of `days` with lamp-on records deep in daylight
    (`burns`: luminaires × nights × `night_accounts.BURN_FIELDS`).

    Their energy is estimated from active power × interval: a daylight record's register
    increment may span the hours the lamp was off. The rows hold plain JSON values only
    (`savings_result` passes them through as they are: tens of thousands in 90 days).
    """
    interval_h = f.interval / 3600.0
    at = np.argwhere((burns[:, :, 0] > 0) & days[None, :])  # luminaire, then day order
    picked = burns[at[:, 0], at[:, 1]]
    stamps = iso_seconds(picked[:, 2:4].ravel())
    kwh_values = picked[:, 1] * interval_h / 1000.0
    energy = np.where(np.isfinite(kwh_values), kwh_values, np.nan).tolist()
    energy = [e if e == e else None for e in energy]  # NaN → null: the rows are plain JSON
    records = picked[:, 0].astype(np.int64).tolist()
    dates = [d.isoformat() for d in f.cal.dates]
    return [
        {
            "device_id": f.ids[k],
            "date": dates[j],
            "records": n,
            "hours": float(n) * interval_h,
            "energy_kwh": kwh,
            "first": stamps[2 * i],
            "last": stamps[2 * i + 1],
        }
        for i, ((k, j), n, kwh) in enumerate(zip(at.tolist(), records, energy, strict=True))
    ]
