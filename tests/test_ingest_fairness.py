"""Fair batches (DESIGN §5, issue #18): a backlog of *valid* data from one device does not
hold back another device's data. Judged messages wait per device and a batch takes them
round robin, so a message that arrives behind a flood overtakes the flood's backlog."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import psycopg

from devices.payloads import encode_message
from ingest.batch import AckToken
from ingest.consumer import READ_BURST
from ingest.fair_queue import FairQueue
from ingest.validate import Outcome, Received
from kcity.settings import Settings
from kcity.stack.broker_admin import BrokerAdmin
from tests.fixtures.ingest import (
    add_device,
    count,
    ingest_config,
    publisher,
    running_ingest,
    wait_count,
)

NOW = datetime(2026, 12, 2, 7, 0, tzinfo=UTC)


def _item(device: str, n: int, rows: int = 0) -> Received:
    outcome = Outcome(device_id=device, rows=tuple((device, n) for _ in range(rows)))
    return Received(f"kcity/v1/p/{device}/telemetry", str(n).encode(), NOW, outcome)


def _drain(q: FairQueue, max_rows: int) -> list[list[tuple[str, int]]]:
    batches = []
    while (b := q.take(max_rows)) is not None:
        batches.append([(i.outcome.device_id or "", int(i.payload)) for i in b.items])
    return batches


def test_a_backlog_gets_one_share_and_the_others_go_first() -> None:
    q = FairQueue()
    clock = itertools.count()
    for n in range(1000):
        q.add("flood", _item("flood", n), AckToken(n, 1, 0), next(clock))
    for dev in ("b", "c"):
        for n in range(3):
            q.add(dev, _item(dev, n), AckToken(1000 + n, 1, 0), next(clock))
    first = q.take(100)
    assert first is not None
    got = Counter(i.outcome.device_id for i in first.items)
    assert (got["b"], got["c"]) == (3, 3)  # behind 1,000 messages, in the very next batch
    assert 100 <= first.size < 100 + 1  # one-row messages: exactly full
    assert first.started == 0  # the flood's oldest message was in it
    assert len(first.tokens) == len(first.items)
    rest = _drain(q, 100)
    assert all(dev == "flood" for b in rest for dev, _ in b)
    order = [int(i.payload) for i in first.items if i.outcome.device_id == "flood"]
    order += [n for b in rest for _, n in b]
    assert order == list(range(1000))  # each device's own order kept, nothing twice
    assert (len(q), q.rows, q.oldest) == (0, 0, None)


def test_random_arrivals_every_message_once_in_device_order_and_fair_shares() -> None:
    rng = random.Random(18)
    for _ in range(50):
        q = FairQueue()
        sent: dict[str, list[int]] = {}
        for t in range(rng.randint(1, 400)):
            dev = rng.choice(["a"] * 8 + ["b", "c", "d"])  # "a" floods
            n = len(sent.setdefault(dev, []))
            sent[dev].append(n)
            q.add(dev, _item(dev, n, rows=rng.randint(0, 3)), None, float(t))
        waiting = {dev: len(ns) for dev, ns in sent.items()}
        max_rows = rng.randint(1, 60)
        batches = _drain(q, max_rows)
        share = Counter(dev for dev, _ in batches[0])
        if len(batches) > 1:
            # Round robin: no device got more than one message beyond the share of a device
            # that still had messages waiting after the first batch.
            for n in share.values():
                for other, m in share.items():
                    if waiting[other] > m:
                        assert n <= m + 1, (share, waiting)
        got: dict[str, list[int]] = {}
        for b in batches:
            for dev, n in b:
                got.setdefault(dev, []).append(n)
        assert got == sent


def test_a_device_alone_fills_whole_batches() -> None:
    q = FairQueue()
    for n in range(250):
        q.add("gw", _item("gw", n, rows=1), None, float(n))  # 2 rows a message
    sizes = [len(b) for b in _drain(q, 100)]
    assert sizes == [50, 50, 50, 50, 50]


def test_a_probe_behind_a_backlog_of_valid_data_overtakes_it(
    settings: Settings,
    db_url: str,
    conn: psycopg.Connection,
    broker_admin: BrokerAdmin,
    uid: str,
) -> None:
    """A device's backlog of valid telemetry waits in the broker (a gateway catching up, a
    flood); another device's record published after all of it is committed while much of
    that backlog is still to come. Commit order is read from the rows' transaction ids
    (one worker writes one transaction after another), not from clocks."""
    pilot, flood, probe = f"p-{uid}", f"flood-{uid}", f"probe-{uid}"
    add_device(conn, broker_admin, pilot, flood)
    add_device(conn, broker_admin, pilot, probe)
    n, window, batch_rows = 6000, 2000, 200  # one-record messages are two rows each
    config = ingest_config(
        settings, f"fair-{uid}", max_inflight=window, batch_size=batch_rows, batch_age_s=0.2
    )
    start = datetime(2024, 6, 1, tzinfo=UTC)
    with running_ingest(config, forget=False):
        pass  # the worker's persistent session exists; the broker queues for it from now
    with publisher(settings, flood) as pub:
        for seq in range(n):
            rec = {
                "ts": start + timedelta(seconds=seq),
                "power_w": 1.0,
                "dim_pct": 100.0,
                "lamp_on": True,
            }
            pub.publish(f"kcity/v1/{pilot}/{flood}/telemetry", encode_message(0, seq, [rec]))
        pub.flush()
    with publisher(settings, probe) as pub:  # after every flood message reached the queue
        rec = {"ts": start, "power_w": 2.0, "dim_pct": 50.0, "lamp_on": True}
        pub.publish(f"kcity/v1/{pilot}/{probe}/telemetry", encode_message(0, 0, [rec]))
    with running_ingest(config) as running:
        sql = "SELECT count(*) FROM streetlight_readings WHERE device_id = %s"
        wait_count(db_url, sql, (flood,), n, timeout=120)
        wait_count(db_url, sql, (probe,), 1)
    # Mosquitto 2.0 sends a reconnecting session its whole offline queue at once (all 6,001
    # here); the worker reads no further than its window (plus the read burst under way).
    assert running.service.unacked_peak <= window + READ_BURST, running.service.unacked_peak
    xid = "xmin::text::bigint"
    later = count(
        db_url,
        f"SELECT count(*) FROM streetlight_readings WHERE device_id = %s AND {xid} >"
        f" (SELECT {xid} FROM streetlight_readings WHERE device_id = %s)",
        (flood, probe),
    )
    # In arrival order the probe would be committed with the flood's last message or after
    # it (later == 0). Fair batches commit it within a batch or two of its receipt, while
    # the worker still holds flood messages it has read but not stored (about its window).
    assert later >= window // 2, later
    assert count(db_url, "SELECT count(*) FROM dead_letters WHERE device_id = %s", (flood,)) == 0
