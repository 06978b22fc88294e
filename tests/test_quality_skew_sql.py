"""The clock-skew expression quality counts with (`analytics.queries.SKEW_US`: float
`date_part`, rounded) against PostgreSQL's exact numeric `extract(epoch …)`, which the
per-device-day percentiles and the skew sketch were defined with: every microsecond the
same, and the seconds the percentiles sort on the same float8, from sub-millisecond skews to
decades, either sign, with and without whole days in the interval."""

from __future__ import annotations

import numpy as np
import psycopg

from analytics.queries import SKEW_US

EXACT_US = "(extract(epoch FROM received_at - ts) * 1000000)::int8"
EXACT_S = "extract(epoch FROM received_at - ts)::float8"


def test_skew_microseconds_and_seconds_match_numeric_extract(db_url: str) -> None:
    rng = np.random.default_rng(23)
    # Log-uniform magnitudes from 1 µs to 30 years, random sign, plus the edges of days.
    magnitude = np.round(10 ** rng.uniform(0, np.log10(30 * 365.25 * 86400e6), 200_000))
    skew = (magnitude * rng.choice([-1, 1], magnitude.size)).astype(np.int64)
    day = 86_400_000_000
    edges = np.array([0, 1, -1, day - 1, day, day + 1, -day, -day - 1, 7 * day + 999_999])
    skew = np.concatenate([skew, edges])
    ts = 1_790_000_000_000_000 + rng.integers(0, 10**14, skew.size)  # µs since 1970
    fast = SKEW_US.format(row="")
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            f"""SELECT count(*),
                   count(*) FILTER (WHERE {fast} <> {EXACT_US}),
                   count(*) FILTER (WHERE {fast} / 1e6::float8 <> {EXACT_S}),
                   count(*) FILTER (WHERE {fast} <> us)
            FROM (SELECT to_timestamp(0) + t * interval '1 microsecond' AS ts,
                         to_timestamp(0) + (t + s) * interval '1 microsecond' AS received_at,
                         s AS us
                  FROM unnest(%s::int8[], %s::int8[]) AS v(t, s)) r""",
            (ts.tolist(), skew.tolist()),
        ).fetchone()
    assert row == (skew.size, 0, 0, 0)
