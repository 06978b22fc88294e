"""`analytics.quality_count` maps each row to its device·day by binary search over the
pilot's sorted ids; held here to a plain dictionary lookup on arbitrary ids (non-ASCII,
prefixes of each other, ids absent from the pilot)."""

from __future__ import annotations

import datetime as dt

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from analytics.quality_count import DeadLetters, Messages, Readings, _keys, count_device_days

names = st.text(alphabet="ab-é시1", min_size=1, max_size=4)


@given(
    pilot=st.lists(names, unique=True, max_size=6),
    rows=st.lists(st.tuples(names, st.integers(-5, 40)), max_size=60),
)
def test_keys_match_a_dictionary_lookup(pilot: list[str], rows: list[tuple[str, int]]) -> None:
    ids = sorted(pilot)
    edges = np.array([0, 10, 20, 30], dtype=np.int64)  # three days
    device = np.array([d for d, _ in rows], dtype=str)
    t = np.array([t for _, t in rows], dtype=np.int64)
    key, inside = _keys(device, t, ids, edges)
    index = {d: i for i, d in enumerate(ids)}
    for k, (d, when) in enumerate(rows):
        day = sum(1 for e in edges if e <= when) - 1
        expected = d in index and 0 <= day < 3
        assert bool(inside[k]) == expected
        if expected:
            assert int(key[k]) == index[d] * 3 + day


@given(
    messages=st.lists(
        st.tuples(
            st.sampled_from(["a", "b"]),  # device
            st.integers(0, 2),  # boot
            st.integers(0, 30),  # seq
            st.integers(1, 3),  # copies
            st.integers(0, 1),  # day
        ),
        unique_by=lambda m: (m[0], m[1], m[2]),  # ingest keeps one row per (device, boot, seq)
        max_size=40,
    )
)
def test_gaps_and_duplicates_per_device_day(
    messages: list[tuple[str, int, int, int, int]],
) -> None:
    """Gaps: per device·day and boot, the seq numbers missing between the lowest and the
    highest seen; duplicates: the extra copies. Counted here by brute force over sets."""
    day_us = 86_400_000_000
    none_i = np.array([], dtype=np.int64)
    got = count_device_days(
        kind="streetlight",
        device_ids=["a", "b"],
        timezone="UTC",
        interval_s=None,
        start=dt.date(1970, 1, 1),
        end=dt.date(1970, 1, 3),
        readings=Readings(np.array([], dtype=str), none_i, none_i),
        messages=Messages(
            device_id=np.array([m[0] for m in messages], dtype=str),
            boot=np.array([m[1] for m in messages], dtype=np.int64),
            seq=np.array([m[2] for m in messages], dtype=np.int64),
            copies=np.array([m[3] for m in messages], dtype=np.int64),
            day_us=np.array([m[4] * day_us + 1 for m in messages], dtype=np.int64),
        ),
        dead_letters=DeadLetters(np.array([], dtype=str), none_i),
    )
    truth = {}
    for device, day in {(m[0], m[4]) for m in messages}:
        mine = [m for m in messages if (m[0], m[4]) == (device, day)]
        missing = 0
        for boot in {m[1] for m in mine}:
            seen = {m[2] for m in mine if m[1] == boot}
            missing += len(set(range(min(seen), max(seen) + 1)) - seen)
        truth[(device, day)] = [missing, sum(m[3] - 1 for m in mine)]
    assert {(r.device_id, r.day.day - 1): [r.seq_gaps, r.duplicates] for r in got} == truth
