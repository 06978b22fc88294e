"""A database outage mid-stream, under two shared workers: each stops acknowledging, keeps
its batch, waits the database out with backoff, and afterwards every published record is
stored exactly once, and the batches held through it are noted as late."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from devices.payloads import encode_message
from kcity.stack.broker_admin import BrokerAdmin
from kcity.stack.local import LocalStack
from tests.fixtures.ingest import (
    Publisher,
    add_device,
    count,
    ingest_config,
    publisher,
    running_ingest,
    wait_count,
    wait_until,
)

OUTAGE_S = 30


def test_database_down_for_30_s_loses_and_duplicates_nothing(
    private_stack: Callable[[], LocalStack], uid: str, caplog: pytest.LogCaptureFixture
) -> None:
    stack = private_stack()
    s = stack.settings
    url = s.database_url
    devices = [f"sl{i}-{uid}" for i in range(3)]
    admin = BrokerAdmin(s.mqtt_host, s.mqtt_port, s.mqtt_admin_username, s.mqtt_admin_password)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            for dev in devices:
                add_device(conn, admin, f"p-{uid}", dev)
    finally:
        admin.close()
    start = datetime(2024, 3, 1, tzinfo=UTC)
    seqs = dict.fromkeys(devices, 0)
    sql = "SELECT count(*) FROM streetlight_readings"

    def publish(pub_by_device: dict[str, Publisher], n: int) -> None:
        for _ in range(n):
            for dev, pub in pub_by_device.items():
                seq = seqs[dev]
                seqs[dev] += 1
                rec = {
                    "ts": start + timedelta(minutes=seq),
                    "power_w": 10.0 + seq % 7,
                    "dim_pct": 30.0,
                    "lamp_on": True,
                }
                pub.publish(
                    f"kcity/v1/p-{uid}/{dev}/telemetry",
                    encode_message(0, seq, [rec]),
                )

    configs = [ingest_config(s, f"outage-{w}-{uid}", max_backoff_s=2.0, shared=True) for w in "ab"]
    with (
        caplog.at_level(logging.WARNING, logger="ingest"),
        running_ingest(configs[0]) as running,
        running_ingest(configs[1]) as other,
        publisher(s, devices[0]) as p0,
        publisher(s, devices[1]) as p1,
        publisher(s, devices[2]) as p2,
    ):
        pubs: dict[str, Publisher] = {devices[0]: p0, devices[1]: p1, devices[2]: p2}
        publish(pubs, 100)
        wait_count(url, sql, (), 30)  # mid-stream: some stored, more on the way
        stack.postgres.stop()
        down_since = time.monotonic()
        while time.monotonic() - down_since < OUTAGE_S:  # keep streaming into the outage
            publish(pubs, 5)
            time.sleep(1.0)
        for p in (p0, p1, p2):
            p.flush()
        registries = [w.service.metrics.registry for w in (running, other)]
        assert [g.get_sample_value("kcity_ingest_database_up") for g in registries] == [0, 0]
        unacked = [
            g.get_sample_value("kcity_ingest_unacknowledged_messages") or 0 for g in registries
        ]
        stack.postgres.start()
        publish(pubs, 100)
        total = sum(seqs.values())
        assert wait_count(url, sql, (), total, timeout=90) == total
        wait_until(
            lambda: all(
                g.get_sample_value("kcity_ingest_unacknowledged_messages") == 0 for g in registries
            ),
            "every message acknowledged",
        )
    assert all(n > 0 for n in unacked), unacked  # held, not acknowledged, while it was down
    assert any("database unavailable" in r.getMessage() for r in caplog.records)
    assert count(url, "SELECT count(*) FROM ingest_messages") == total
    assert count(url, "SELECT count(DISTINCT (device_id, ts)) FROM streetlight_readings") == total
    assert count(url, "SELECT count(*) FROM dead_letters") == 0
    # What was held through the outage committed 30 s or more after it arrived: noted (in
    # this stack's own database), so that the rollups look back to it (test_late_commits.py).
    assert count(url, "SELECT count(*) FROM late_commits") >= 1
