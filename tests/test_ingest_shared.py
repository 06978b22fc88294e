"""Two ingest workers on one MQTT 5 shared subscription split the load, and together store
every record exactly once — also when each message arrives twice (a device resending it),
its copies landing on either worker."""

from __future__ import annotations

from contextlib import ExitStack
from datetime import UTC, datetime, timedelta

import psycopg

from devices.payloads import encode_message
from kcity.settings import Settings
from kcity.stack.broker_admin import BrokerAdmin
from tests.fixtures.ingest import (
    add_device,
    clear_retained,
    count,
    ingest_config,
    publisher,
    running_ingest,
    wait_count,
)

PER_DEVICE = 500


def test_two_shared_workers_split_the_load_exactly(
    settings: Settings,
    db_url: str,
    conn: psycopg.Connection,
    broker_admin: BrokerAdmin,
    uid: str,
) -> None:
    pilot = f"p-{uid}"
    devices = [f"sl{i}-{uid}" for i in range(4)]
    for dev in devices:
        add_device(conn, broker_admin, pilot, dev)
    clear_retained(settings, broker_admin)  # other tests' statuses would count as received
    start = datetime(2024, 6, 1, tzinfo=UTC)
    total = PER_DEVICE * len(devices)
    ids = "(" + ",".join(f"'{d}'" for d in devices) + ")"
    with ExitStack() as stack:
        workers = [
            stack.enter_context(
                running_ingest(ingest_config(settings, f"{name}-{uid}", shared=True))
            )
            for name in ("a", "b")
        ]
        for dev in devices:
            with publisher(settings, dev) as pub:
                for seq in range(PER_DEVICE):
                    rec = {
                        "ts": start + timedelta(minutes=seq),
                        "power_w": 1.0,
                        "dim_pct": 100.0,
                        "lamp_on": True,
                    }
                    raw = encode_message(0, seq, [rec])
                    pub.publish(f"kcity/v1/{pilot}/{dev}/telemetry", raw)
                    pub.publish(f"kcity/v1/{pilot}/{dev}/telemetry", raw)  # resent
        assert (
            wait_count(
                db_url,
                f"SELECT count(*) FROM streetlight_readings WHERE device_id IN {ids}",
                (),
                total,
            )
            == total
        )
        copies = f"SELECT sum(copies) FROM ingest_messages WHERE device_id IN {ids}"
        assert wait_count(db_url, copies, (), 2 * total) == 2 * total
        stored = [w.service.metrics.totals for w in workers]
    assert all(t.stored > 0 for t in stored), stored
    assert sum(t.received for t in stored) == 2 * total
    assert sum(t.stored for t in stored) == total
    assert sum(t.duplicates for t in stored) == total
    assert count(db_url, f"SELECT count(*) FROM ingest_messages WHERE device_id IN {ids}") == total
    # Each worker's last ingest_stats snapshot (written at shutdown) is its share, for Grafana.
    snapshots = conn.execute(
        "SELECT DISTINCT ON (worker) worker, received, stored FROM ingest_stats"
        " WHERE worker = ANY(%s) ORDER BY worker, ts DESC",
        ([f"a-{uid}", f"b-{uid}"],),
    ).fetchall()
    assert [(w, r, s) for w, r, s in snapshots] == [
        (f"a-{uid}", stored[0].received, stored[0].stored),
        (f"b-{uid}", stored[1].received, stored[1].stored),
    ]
