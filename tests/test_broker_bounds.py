"""Beyond a session's bounded queue Mosquitto drops messages (the device still gets its
PUBACK); ingest exports the broker's own count of them — in Prometheus and in
`ingest_stats` for Grafana — so the loss is counted, not silent (issue #18)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from devices.payloads import encode_message
from kcity.settings import Settings
from kcity.stack.broker_admin import BrokerAdmin
from kcity.stack.mosquitto import MosquittoServer, new_secret
from kcity.stack.processes import free_port
from tests.fixtures.ingest import (
    add_device,
    count,
    ingest_config,
    publisher,
    running_ingest,
    wait_until,
)

BOUND = 40  # messages an away session may have queued


@pytest.fixture
def bounded_broker(services_root: Path, settings: Settings) -> Iterator[MosquittoServer]:
    """A broker of its own (the drop count is broker-wide) with a tiny queue bound and
    $SYS updates every second."""
    broker = MosquittoServer(
        services_root / f"bounded-{free_port()}" / "mqtt",
        free_port(),
        free_port(),
        settings.mqtt_admin_username,
        new_secret(),
        ingest_username=settings.mqtt_username,
        ingest_password=settings.mqtt_password,
        queue_messages=BOUND,
        queue_bytes=BOUND * 1024 * 1024,
        sys_interval_s=1,
    )
    broker.start()
    yield broker
    broker.stop()


def test_messages_beyond_the_queue_bound_are_counted(
    bounded_broker: MosquittoServer,
    settings: Settings,
    db_url: str,
    conn: psycopg.Connection,
    uid: str,
) -> None:
    b = bounded_broker
    local = settings.model_copy(update={"mqtt_url": f"mqtt://{b.host}:{b.port}"})
    pilot, dev = f"p-{uid}", f"sl-{uid}"
    admin = BrokerAdmin(b.host, b.port, b.admin_username, b.admin_password)
    try:
        add_device(conn, admin, pilot, dev)
    finally:
        admin.close()
    config = ingest_config(local, f"bounded-{uid}")
    with running_ingest(config, forget=False):
        pass  # its persistent session exists; while it is away the broker queues for it
    sent = BOUND * 3
    start = datetime(2024, 6, 1, tzinfo=UTC)
    with publisher(local, dev) as pub:
        for seq in range(sent):
            rec = {"ts": start + timedelta(minutes=seq), "power_w": 1.0, "dim_pct": 100.0}
            pub.publish(f"kcity/v1/{pilot}/{dev}/telemetry", encode_message(0, seq, [rec]))
        pub.flush()  # every message acknowledged by the broker to the device
    stored_sql = "SELECT count(*) FROM ingest_messages WHERE device_id = %s"
    with running_ingest(config) as running:
        wait_until(lambda: count(db_url, stored_sql, (dev,)) > 0, "the queued messages")
        registry = running.service.metrics.registry

        def dropped() -> float | None:
            return registry.get_sample_value("kcity_broker_messages_dropped_total")

        stored = count(db_url, stored_sql, (dev,))
        # What the device sent and the database lacks, the broker counted as dropped.
        wait_until(lambda: dropped() == sent - count(db_url, stored_sql, (dev,)), "the count")
        stored = count(db_url, stored_sql, (dev,))
        assert 0 < stored < sent, stored  # the queue held about its bound, no more
        assert stored <= BOUND + 1
        assert registry.get_sample_value("kcity_broker_store_messages") is not None
        snapshot = "SELECT max(broker_dropped) FROM ingest_stats WHERE worker = %s"
        wait_until(
            lambda: count(db_url, snapshot, (config.worker,)) == sent - stored,
            "the snapshot in ingest_stats",
        )
    # Every sequence number the broker dropped is a gap the data-quality figures show.
    seqs = [
        r[0]
        for r in conn.execute(
            "SELECT seq FROM ingest_messages WHERE device_id = %s ORDER BY seq", (dev,)
        )
    ]
    assert len(seqs) == stored and seqs == list(range(stored))  # the first ones were kept
