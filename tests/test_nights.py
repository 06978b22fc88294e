"""Night calendar: sunset → sunrise at the pilot, named by the local date of the sunset."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from astral import Observer
from astral.sun import sunrise, sunset

from analytics.errors import AnalyticsError, AstronomyError, InputError
from analytics.nights import (
    NightCalendar,
    assign_days,
    assign_nights,
    local_date,
    night_calendar,
    night_hours,
)

JAKARTA = ZoneInfo("Asia/Jakarta")
TZ, LAT, LON = "Asia/Jakarta", -7.63, 111.52


def _local(year: int, month: int, day: int, hour: int, minute: int) -> float:
    return dt.datetime(year, month, day, hour, minute, tzinfo=JAKARTA).timestamp()


def _calendar(first: dt.date, last: dt.date, timezone: str = TZ) -> NightCalendar:
    return night_calendar(first, last, timezone=timezone, latitude=LAT, longitude=LON)


def test_dusk_and_dawn_are_astral_sunset_and_next_sunrise() -> None:
    cal = _calendar(dt.date(2023, 8, 1), dt.date(2023, 8, 3))
    observer = Observer(latitude=-7.63, longitude=111.52)
    for k, day in enumerate(cal.dates):
        assert cal.dusk[k] == sunset(observer, day, tzinfo=JAKARTA).timestamp()
        after = day + dt.timedelta(days=1)
        assert cal.dawn[k] == sunrise(observer, after, tzinfo=JAKARTA).timestamp()
    assert cal.dates == (dt.date(2023, 8, 1), dt.date(2023, 8, 2), dt.date(2023, 8, 3))


def test_record_after_local_midnight_belongs_to_previous_dates_night() -> None:
    cal = _calendar(dt.date(2023, 8, 1), dt.date(2023, 8, 2))
    ts = np.array(
        [
            _local(2023, 8, 1, 21, 0),  # evening of 1 Aug
            _local(2023, 8, 2, 0, 30),  # 00:30 local on 2 Aug: still the night of 1 Aug
            _local(2023, 8, 2, 12, 0),  # noon: daylight
            _local(2023, 8, 2, 23, 59),  # night of 2 Aug
            _local(2023, 8, 3, 0, 30),
        ]
    )
    assert assign_nights(ts, cal).tolist() == [0, 0, -1, 1, 1]
    assert cal.dates[assign_nights(ts[1:2], cal)[0]] == dt.date(2023, 8, 1)
    assert local_date(float(ts[1]), "Asia/Jakarta") == dt.date(2023, 8, 2)


def test_night_holds_records_ending_after_dusk_up_to_dawn() -> None:
    cal = _calendar(dt.date(2023, 8, 1), dt.date(2023, 8, 1))
    dusk, dawn = cal.dusk[0], cal.dawn[0]
    ts = np.array([dusk - 1.0, dusk, dusk + 1.0, dawn, dawn + 1.0])
    assert assign_nights(ts, cal).tolist() == [-1, -1, 0, 0, -1]


def test_days_and_depth_into_daylight() -> None:
    cal = _calendar(dt.date(2023, 8, 1), dt.date(2023, 8, 2))
    ts = np.array([cal.dawn[0] + 600.0, _local(2023, 8, 2, 12, 0), cal.dusk[1] - 60.0])
    day, depth = assign_days(ts, cal)
    assert day.tolist() == [1, 1, 1]  # the daylight of 2 Aug ends at night 1's sunset
    assert depth[0] == pytest.approx(600.0)
    assert depth[2] == pytest.approx(60.0)
    assert depth[1] > 5 * 3600
    outside, nan_depth = assign_days(np.array([cal.dusk[0] + 60.0, cal.dawn[0] - 1e6]), cal)
    assert outside.tolist() == [-1, -1]
    assert np.isnan(nan_depth).all()


def test_madiun_night_lengths_match_the_published_range() -> None:
    hours = night_hours(
        dt.date(2023, 1, 1), dt.date(2023, 12, 31), timezone=TZ, latitude=LAT, longitude=LON
    )
    assert hours.size == 365
    assert 11.3 < hours.min() < 11.6
    assert 12.1 < hours.max() < 12.4
    assert 4250 < hours.sum() < 4450  # about 4,340 burning hours a year (METHODS)


def test_bad_inputs_raise_package_errors() -> None:
    with pytest.raises(InputError):
        _calendar(dt.date(2023, 8, 2), dt.date(2023, 8, 1))
    with pytest.raises(InputError):
        _calendar(dt.date(2023, 8, 1), dt.date(2023, 8, 1), timezone="X/Y")
    with pytest.raises(AstronomyError):  # polar day at Longyearbyen in June
        night_calendar(
            dt.date(2023, 6, 21),
            dt.date(2023, 6, 21),
            timezone="Arctic/Longyearbyen",
            latitude=78.2,
            longitude=15.6,
        )
    cal = _calendar(dt.date(2023, 8, 1), dt.date(2023, 8, 1))
    with pytest.raises(AnalyticsError):
        cal.index(dt.date(2023, 8, 5))
