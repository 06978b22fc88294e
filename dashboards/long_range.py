"""How a panel switches to the rollups (migration 007) over long ranges.

A query holds two branches joined by ``UNION ALL``: the raw rows, guarded by
``NOT LONG_RANGE``, and the hourly rollup, guarded by ``LONG_RANGE``. Grafana's macros turn
the condition into constants, PostgreSQL folds it, and only one branch runs. Long means
three days or more, or an interval of an hour or more: then buckets are at least an hour
and the range is widened to whole hours (UTC), which the rollups hold. The rollups trail the
raw rows by at most one refresh (`kcity rollups run`, every 60 s).
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
