"""Streetlight nights at a pilot site: when the lamps should burn, and which night a record is in.

Savings are counted per luminaire and *night*, and burning hours are reconciled with the
astronomical night, so every analytics step needs the same calendar of nights.

A night runs from **sunset to the next sunrise** (sun's upper limb on the horizon with
standard refraction, astral's `sunset`/`sunrise`): photocell-switched streetlights burn
roughly over that span (they switch on between sunset and civil dusk). A night is named
by the LOCAL date (pilot timezone) of its sunset, so a record at 00:30 local belongs to
the night of the previous date.

Records are interval records: a record stamped `ts` covers the interval ending at `ts`
(the device reports what happened since its previous record), so a night holds the
records with ``dusk < ts <= dawn``.

The sun is computed once per date (astral is slow per call); records are placed with one
`np.searchsorted` over the interleaved dusk/dawn boundaries.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt
from astral import Observer
from astral.sun import sunrise, sunset

from analytics.errors import AstronomyError, InputError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class NightCalendar:
    """Consecutive nights, named by the local date of their sunset.

    `dusk[j]` and `dawn[j]` are epoch seconds [s] of night `dates[j]`'s sunset and of the
    following sunrise.
    """

    timezone: str
    dates: tuple[dt.date, ...]
    dusk: FloatArray
    dawn: FloatArray

    def __len__(self) -> int:
        return len(self.dates)

    @property
    def hours(self) -> FloatArray:
        """Night length [h] per night."""
        return (self.dawn - self.dusk) / 3600.0

    def index(self, day: dt.date) -> int:
        """Position of the night whose sunset falls on local date `day`."""
        offset = (day - self.dates[0]).days
        if not 0 <= offset < len(self.dates):
            raise InputError(f"night {day.isoformat()} is outside the calendar")
        return offset

    def boundaries(self) -> FloatArray:
        """Interleaved [dusk0, dawn0, dusk1, dawn1, ...] epoch seconds, strictly increasing."""
        bounds = np.empty(2 * len(self.dates), dtype=np.float64)
        bounds[0::2] = self.dusk
        bounds[1::2] = self.dawn
        return bounds


NO_NIGHTS = NightCalendar("UTC", (), np.empty(0), np.empty(0))
"""A calendar without nights: a selection by night spans that selects nothing."""


def _zone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InputError(f"unknown timezone {timezone!r}") from exc


@functools.lru_cache(maxsize=8192)
def _dusk_dawn(
    day: dt.date, timezone: str, latitude: float, longitude: float
) -> tuple[float, float]:
    """Epoch seconds of the sunset on local date `day` and of the next sunrise; kept, since
    every savings call asks for the same nights again (a year of them for D_E)."""
    zone = _zone(timezone)
    observer = Observer(latitude=latitude, longitude=longitude)
    try:
        return (
            sunset(observer, day, tzinfo=zone).timestamp(),
            sunrise(observer, day + dt.timedelta(days=1), tzinfo=zone).timestamp(),
        )
    except ValueError as exc:
        raise AstronomyError(
            f"no sunset/sunrise at ({latitude}, {longitude}) around {day}: {exc}"
        ) from exc


def night_calendar(
    first: dt.date, last: dt.date, *, timezone: str, latitude: float, longitude: float
) -> NightCalendar:
    """Nights whose sunset falls on local dates `first` … `last` (both inclusive)."""
    if last < first:
        raise InputError(f"calendar end {last} is before its start {first}")
    count = (last - first).days + 1
    dates = tuple(first + dt.timedelta(days=k) for k in range(count))
    dusk = np.empty(count, dtype=np.float64)
    dawn = np.empty(count, dtype=np.float64)
    for k, day in enumerate(dates):
        dusk[k], dawn[k] = _dusk_dawn(day, timezone, latitude, longitude)
    if np.any(np.diff(np.stack([dusk, dawn], axis=1).ravel()) <= 0):
        raise AstronomyError("sunset/sunrise times are not increasing; location unsupported")
    return NightCalendar(timezone=timezone, dates=dates, dusk=dusk, dawn=dawn)


def _position(ts: FloatArray, calendar: NightCalendar) -> IntArray:
    """k such that bounds[k] < ts <= bounds[k+1]; -1 before the first dusk."""
    bounds = calendar.boundaries()
    return np.searchsorted(bounds, ts, side="left").astype(np.int64) - 1


def assign_nights(ts: FloatArray, calendar: NightCalendar) -> IntArray:
    """Night index per timestamp [epoch s]; -1 in daylight or outside the calendar."""
    pos = _position(np.asarray(ts, dtype=np.float64), calendar)
    inside = (pos >= 0) & (pos % 2 == 0) & (pos < 2 * len(calendar))
    return np.where(inside, pos // 2, -1)


def assign_days(ts: FloatArray, calendar: NightCalendar) -> tuple[IntArray, FloatArray]:
    """Daylight index and depth into daylight per timestamp.

    Day `j` is the daylight ending at night `j`'s sunset (local date `dates[j]`), from the
    sunrise ending night `j-1`. Returns (`j` or -1 when not in a covered daylight, seconds
    to the nearer of that sunrise and sunset [s], NaN where `j` is -1).
    """
    stamps = np.asarray(ts, dtype=np.float64)
    pos = _position(stamps, calendar)
    inside = (pos >= 1) & (pos % 2 == 1) & (pos < 2 * len(calendar) - 1)
    day = np.where(inside, (pos + 1) // 2, -1)
    safe = np.where(inside, day, 1)
    depth = np.minimum(stamps - calendar.dawn[safe - 1], calendar.dusk[safe] - stamps)
    return day, np.where(inside, depth, np.nan)


def night_hours(
    first: dt.date, last: dt.date, *, timezone: str, latitude: float, longitude: float
) -> FloatArray:
    """Night length [h] for each local date `first` … `last` (inclusive)."""
    return night_calendar(
        first, last, timezone=timezone, latitude=latitude, longitude=longitude
    ).hours


def local_date(ts: float, timezone: str) -> dt.date:
    """Local calendar date of an epoch timestamp [s] in `timezone`."""
    return dt.datetime.fromtimestamp(ts, tz=_zone(timezone)).date()
