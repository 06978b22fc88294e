"""How a panel switches to the rollups (migrations 007, 011) over long ranges.

A query holds two branches joined by ``UNION ALL``: the raw rows, guarded by
``NOT LONG_RANGE``, and the hourly rollup, guarded by ``LONG_RANGE``. Grafana's macros turn
the condition into constants, PostgreSQL folds it, and only one branch runs. Long means
three days or more, or an interval of an hour or more: then buckets are at least an hour
and the range is widened to whole hours (UTC), which the rollups hold. The rollups trail the
raw rows by at most one refresh (`kcity rollups run`, every 60 s). Drone panels read
minutes instead (their buckets at least a minute, the range widened to whole minutes).
"""

from __future__ import annotations

LONG_RANGE = (
    "('$__interval'::interval >= interval '1 hour'"
    " OR $__timeTo()::timestamptz - $__timeFrom()::timestamptz > interval '3 days')"
)

# The time column of a rollup branch: Grafana's interval, at least an hour.
HOUR_BUCKET = "time_bucket(greatest('$__interval'::interval, interval '1 hour'), hour)"
# Seconds in one of those buckets (for rates per second).
BUCKET_S = "extract(epoch FROM greatest('$__interval'::interval, interval '1 hour'))"


def hours(column: str = "hour") -> str:
    """The rollup rows of the range: every hour that overlaps it."""
    return (
        f"{column} >= time_bucket('1 hour', $__timeFrom()::timestamptz)"
        f" AND {column} <= $__timeTo() AND {LONG_RANGE}"
    )


# The hours `hours()` reads, cut into the whole UTC days they hold (read from a daily
# rollup) and the hours before the first and after the last of those days (read from the
# hourly one): per-device tables over 90 days read ~90 rows a device, not ~2,160.
_HOUR_LO = "time_bucket('1 hour', $__timeFrom()::timestamptz)"
_HOUR_HI = "(time_bucket('1 hour', $__timeTo()::timestamptz) + interval '1 hour')"
_DAY_LO = f"(time_bucket('1 day', {_HOUR_LO} - interval '1 microsecond') + interval '1 day')"
_DAY_HI = f"time_bucket('1 day', {_HOUR_HI})"


def edge_hours(column: str = "hour") -> str:
    """The hourly rows of the range outside its whole days (all of them if it has none)."""
    return (
        f"(({column} >= {_HOUR_LO} AND {column} < least({_DAY_LO}, {_HOUR_HI}))"
        f" OR ({column} >= greatest({_DAY_HI}, {_HOUR_LO}) AND {column} < {_HOUR_HI}))"
        f" AND {LONG_RANGE}"
    )


def whole_days(column: str = "day") -> str:
    """The daily rows of the range's whole days."""
    return f"{column} >= {_DAY_LO} AND {column} < {_DAY_HI} AND {LONG_RANGE}"


# Drones (`drone_minutely`, migration 011): buckets of at least a minute, from minute rows.
MINUTE_BUCKET = "time_bucket(greatest('$__interval'::interval, interval '1 minute'), minute)"


def minutes(column: str = "minute") -> str:
    """The drone rollup rows of the range: every minute that overlaps it."""
    return (
        f"{column} >= time_bucket('1 minute', $__timeFrom()::timestamptz)"
        f" AND {column} <= $__timeTo() AND {LONG_RANGE}"
    )
