"""One of two shared `kcity ingest run` workers killed with SIGKILL mid-stream and restarted:
its persistent session keeps and redelivers what it had not acknowledged, the other worker
goes on, and every record ends stored exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from devices.payloads import encode_message
from kcity.settings import Settings
from kcity.stack.broker_admin import BrokerAdmin
from kcity.stack.processes import free_port, wait_for_port
from tests.fixtures.ingest import (
    add_device,
    count,
    forget_session,
    ingest_config,
    publisher,
    wait_count,
)

MESSAGES = 3000


@contextmanager
def ingest_process(settings: Settings, worker: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    port = free_port()
    env = {
        **os.environ,
        "KCITY_DATA_DIR": str(log.parent / "kcity"),
        "KCITY_DATABASE_URL": settings.database_url,
        "KCITY_MQTT_URL": settings.mqtt_url,
        "KCITY_MQTT_PASSWORD": settings.mqtt_password,
        "KCITY_METRICS_PORT": str(port),
        "KCITY_INGEST_WORKER": worker,
        "KCITY_INGEST_SHARED": "true",
        "KCITY_INGEST_BATCH_SIZE": "200",
        "KCITY_INGEST_BATCH_AGE_S": "0.05",
    }
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kcity", "ingest", "run"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=log.parent,
        )
    try:
        wait_for_port("127.0.0.1", port, 30, "the ingest process")
        time.sleep(0.5)  # subscribed shortly after the port opens
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def test_sigkill_mid_stream_then_restart_stores_every_record_once(
    settings: Settings,
    db_url: str,
    conn: psycopg.Connection,
    broker_admin: BrokerAdmin,
    uid: str,
    tmp_path: Path,
) -> None:
    pilot, dev = f"p-{uid}", f"sl-{uid}"
    add_device(conn, broker_admin, pilot, dev)
    mine = settings.model_copy(update={"database_url": db_url})
    worker = f"kill-{uid}"
    log = tmp_path / "ingest.log"
    start = datetime(2024, 5, 1, tzinfo=UTC)
    sql = "SELECT count(*) FROM streetlight_readings WHERE device_id = %s"

    def stream() -> None:
        with publisher(settings, dev) as pub:
            for seq in range(MESSAGES):
                rec = {
                    "ts": start + timedelta(seconds=seq),
                    "power_w": 5.0,
                    "dim_pct": 10.0,
                    "lamp_on": True,
                }
                pub.publish(f"kcity/v1/{pilot}/{dev}/telemetry", encode_message(2, seq, [rec]))
                if seq % 50 == 49:
                    pub.flush()
                    time.sleep(0.02)

    other = f"kill-b-{uid}"
    try:
        with ingest_process(mine, other, tmp_path / "other.log") as survivor:
            with ingest_process(mine, worker, log) as first:
                sender = threading.Thread(target=stream)
                sender.start()
                wait_count(db_url, sql, (dev,), 300)
                first.send_signal(signal.SIGKILL)
                first.wait(timeout=10)
                killed_at = count(db_url, sql, (dev,))
            assert first.returncode == -signal.SIGKILL
            assert killed_at < MESSAGES  # killed mid-stream
            sender.join(timeout=120)
            # The survivor stores its share meanwhile; the killed worker's share waits in its
            # session on the broker.
            wait_count(db_url, sql, (dev,), killed_at + 100, timeout=60)
            assert count(db_url, sql, (dev,)) < MESSAGES
            with ingest_process(mine, worker, log) as second:
                assert wait_count(db_url, sql, (dev,), MESSAGES, timeout=120) == MESSAGES
                second.send_signal(signal.SIGTERM)
                assert second.wait(timeout=30) == 0
            survivor.send_signal(signal.SIGTERM)
            assert survivor.wait(timeout=30) == 0
    finally:
        forget_session(ingest_config(mine, worker))
        forget_session(ingest_config(mine, other))
    assert count(db_url, sql, (dev,)) == MESSAGES
    assert (
        count(db_url, "SELECT count(*) FROM ingest_messages WHERE device_id = %s", (dev,))
        == MESSAGES
    )
    assert count(db_url, "SELECT count(*) FROM dead_letters WHERE device_id = %s", (dev,)) == 0
    assert "ingest stopped: received" in log.read_text()
    assert "ingest stopped: received" in (tmp_path / "other.log").read_text()
