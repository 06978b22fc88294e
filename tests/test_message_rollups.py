"""The message rollups of migration 010 (kcity/dashboard_rollups.py) and the long-range
ingest, overview and outage queries that read them: messages of three devices in two
pilots, stored in three parts with a refresh after each (a communication outage spans the
first refresh; later parts land in hours and days rolled up already), must give, table for
table and panel for panel with Grafana's macros expanded, what plain Python computes from
the messages that were stored."""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dashboards.events import OUTAGES_SQL
from dashboards.ingest_health import LAST_SEEN_SQL, SEQ_GAPS_SQL, THROUGHPUT_SQL, TOTALS_SQL
from dashboards.overview import INGEST_SQL, PILOTS_SQL
from devices.pilots import load_pilot
from kcity.registry import apply_pilot, create_device
from kcity.rollups import refresh
from tests.fixtures.services import as_reader
from tests.grafana_macros import Variable, expand

PILOTS = Path(__file__).resolve().parent.parent / "pilots"
HOUR = timedelta(hours=1)

Message = tuple[str, int, int, str, datetime, datetime | None, int]  # as stored


def _hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def _messages(devices: list[str], start: datetime, end: datetime, rng: random.Random,
              silent: dict[str, tuple[datetime, datetime]]) -> list[Message]:  # fmt: skip
    """About one message every 5 minutes a device, some lost (sequence gaps), a few events,
    a reboot half way for the second device, no sending time on some."""
    out: list[Message] = []
    for i, device in enumerate(devices):
        seqs: dict[tuple[int, str], int] = defaultdict(int)
        t = start + timedelta(seconds=rng.uniform(0, 300))
        while t < end:
            boot = 1 if i == 1 and t >= start + (end - start) / 2 else 0
            channel = "event" if rng.random() < 0.05 else "telemetry"
            seq = seqs[(boot, channel)]
            seqs[(boot, channel)] += 1 + (rng.random() < 0.03)  # a lost message
            gone = device in silent and silent[device][0] <= t < silent[device][1]
            if not gone:
                sent = None if rng.random() < 0.1 else t - timedelta(seconds=rng.uniform(0, 90))
                out.append((device, boot, seq, channel, t, sent, rng.randint(1, 12)))
            t += timedelta(seconds=rng.uniform(200, 400))
    return out


def _store(conn: psycopg.Connection, messages: list[Message]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO ingest_messages (device_id, boot, seq, channel, received_at, sent_at,"
            " records) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            messages,
        )
    conn.commit()
    refresh(conn, slack_s=0.0)


def _daily_truth(messages: list[Message]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    groups: dict[tuple[Any, ...], list[Message]] = defaultdict(list)
    for m in messages:
        groups[(m[0], m[3], m[1], m[4].replace(hour=0, minute=0, second=0, microsecond=0))].append(
            m
        )
    out = {}
    for key, ms in groups.items():
        sent = [m[5] or m[4] for m in ms]
        skews = [(m[4] - m[5]).total_seconds() for m in ms if m[5] is not None]
        out[key] = (
            len(ms), sum(m[6] for m in ms), min(m[2] for m in ms), max(m[2] for m in ms),
            min(m[4] for m in ms), max(m[4] for m in ms), min(sent), max(sent),
            max(skews) if skews else None,
        )  # fmt: skip
    return out


def _outages(messages: list[Message]) -> set[tuple[str, datetime, datetime]]:
    by_device: dict[str, list[datetime]] = defaultdict(list)
    for m in messages:
        by_device[m[0]].append(m[4])
    out = set()
    for device, times in by_device.items():
        times.sort()
        out |= {(device, a, b) for a, b in itertools.pairwise(times) if b - a > HOUR}
    return out


def _run(conn: psycopg.Connection, sql: str, start: datetime, end: datetime, interval: timedelta,
         pilot: Variable) -> list[dict[str, Any]]:  # fmt: skip
    text = expand(sql, start=start, end=end, interval=interval, variables={"pilot": pilot})
    with as_reader(conn):
        cur = conn.execute(text)
        names = [c.name for c in cur.description or []]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def test_message_rollups_and_their_panels_equal_the_messages(db_url: str, uid: str) -> None:
    rng = random.Random(19)
    now = datetime.now(UTC).replace(microsecond=0)
    t0 = _hour(now) - timedelta(days=4)
    pilot, other = f"p{uid}", f"q{uid}"
    devices = [f"{pilot}-a", f"{pilot}-b", f"{other}-c"]
    with psycopg.connect(db_url) as conn:
        for p, ds in ((pilot, devices[:2]), (other, devices[2:])):
            apply_pilot(conn, load_pilot(PILOTS / "madiun.toml").model_copy(update={"id": p}))
            for d in ds:
                create_device(conn, p, d)
        conn.commit()

        # a: silent across the first refresh; b: 90 min silent later; c: 50 min (no outage).
        silent = {
            devices[0]: (now - 2 * HOUR, now + 3 * HOUR),
            devices[1]: (now + timedelta(hours=20), now + timedelta(hours=21, minutes=30)),
            devices[2]: (now + 5 * HOUR, now + timedelta(hours=5, minutes=50)),
        }
        stored = _messages(devices, t0, now + timedelta(days=2), rng, silent)
        first = [m for m in stored if m[4] < now]
        second = [m for m in stored if now <= m[4] < now + timedelta(days=1)]
        third = [m for m in stored if m[4] >= now + timedelta(days=1)]
        for part in (first, second, third):
            assert part
            _store(conn, part)

        daily = {
            tuple(r[:4]): tuple(r[4:])
            for r in conn.execute(
                "SELECT * FROM ingest_messages_daily WHERE device_id = ANY(%s)", (devices,)
            ).fetchall()
        }
        assert daily == _daily_truth(stored)
        per_pilot: dict[tuple[str, datetime], list[int]] = defaultdict(lambda: [0, 0])
        for m in stored:
            acc = per_pilot[(m[0].rsplit("-", 1)[0], _hour(m[4]))]
            acc[0] += 1
            acc[1] += m[6]
        hourly = {
            (p, h): [n, r]
            for p, h, n, r in conn.execute(
                "SELECT pilot_id, hour, messages, records FROM ingest_pilot_hourly"
                " WHERE pilot_id IN (%s, %s)",
                (pilot, other),
            ).fetchall()
        }
        assert hourly == per_pilot
        outages = set(
            conn.execute(
                "SELECT device_id, start_at, end_at FROM ingest_outages WHERE device_id = ANY(%s)",
                (devices,),
            ).fetchall()
        )
        truth = _outages(stored)
        assert outages == truth and len(truth) == 2

        # A long range not aligned to hours holding whole UTC days: the panels read whole
        # days and the hours at the edges; the truth is every message of the hours it
        # touches. Pilot `pilot` only (b has a reboot and gaps).
        start = t0 + timedelta(hours=5, minutes=13)
        end = now - timedelta(hours=7, minutes=11)
        assert end - start > timedelta(days=3)
        lo, hi = _hour(start), _hour(end) + HOUR
        seen = [m for m in stored if lo <= m[4] < hi]
        mine = [m for m in seen if m[0] in devices[:2]]
        one = Variable([pilot], multi=True, include_all=True)
        for interval in (timedelta(minutes=10), HOUR, timedelta(hours=2)):
            last = _run(conn, LAST_SEEN_SQL, start, end, interval, one)
            assert {r["device_id"]: (r["messages"], r["max_skew_s"]) for r in last} == {
                d: (
                    sum(1 for m in mine if m[0] == d),
                    max((m[4] - m[5]).total_seconds() for m in mine if m[0] == d and m[5]),
                )
                for d in devices[:2]
            }
            lost: dict[str, list[int]] = defaultdict(lambda: [0, 0])
            for key in {(m[0], m[1], m[3]) for m in mine}:
                seqs = [m[2] for m in mine if (m[0], m[1], m[3]) == key]
                lost[key[0]][0] += max(seqs) - min(seqs) + 1 - len(seqs)
                lost[key[0]][1] += len(seqs)
            gaps = _run(conn, SEQ_GAPS_SQL, start, end, interval, one)
            assert {r["device_id"]: [r["lost_messages"], r["received"]] for r in gaps} == lost
            assert all(n > 0 for n, _ in lost.values())
            totals = _run(conn, TOTALS_SQL, start, end, interval, one)[0]
            assert (totals["messages"], totals["records"]) == (len(mine), sum(m[6] for m in mine))
            everyone = _run(conn, INGEST_SQL, start, end, interval, one)[0]
            assert everyone["messages"] == len(seen)
            telemetry = sum(m[6] for m in mine if m[3] == "telemetry")
            expected = 2 * (end - start).total_seconds() / 300
            row = next(r for r in _run(conn, PILOTS_SQL, start, end, interval, one)
                       if r["pilot"] == pilot)  # fmt: skip
            assert float(row["completeness_pct"]) == pytest.approx(
                min(100.0, round(100 * telemetry / expected, 1)), abs=1e-9
            )
        rates = _run(conn, THROUGHPUT_SQL, start, end, HOUR, one)
        per_hour: dict[datetime, list[int]] = defaultdict(lambda: [0, 0])
        for m in mine:
            per_hour[_hour(m[4])][0] += 1
            per_hour[_hour(m[4])][1] += m[6]
        assert [
            (r["time"], float(r["messages_per_s"]), float(r["records_per_s"])) for r in rates
        ] == [
            (h, pytest.approx(n / 3600), pytest.approx(k / 3600))
            for h, (n, k) in sorted(per_hour.items())
        ]

        # Outages drawn over a long range ending later (they end in it and began at most a
        # day before it), from the kept intervals.
        start, end = now - timedelta(hours=30), now + timedelta(days=2)
        drawn = _run(conn, OUTAGES_SQL, start, end, HOUR, Variable(pilot))
        assert {(r["text"].split(":")[0], r["time"], r["timeend"]) for r in drawn} == {
            o for o in truth if o[0] in devices[:2] and start <= o[2] <= end
            and o[1] >= start - timedelta(days=1)
        }  # fmt: skip
