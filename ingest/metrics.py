"""Counters of the ingest service for Prometheus, and the totals snapshotted for Grafana.

Each service instance owns its ``CollectorRegistry`` (several workers can live in one
process in tests and benchmarks). ``serve`` opens the ``/metrics`` HTTP port at start-up:
``kcity up`` waits for that port to know the service is alive.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ingest.config import BROKER_STATS

DROPPED = BROKER_STATS[0]
_BROKER_GAUGES = {
    "$SYS/broker/store/messages/count": (
        "kcity_broker_store_messages",
        "Messages in the broker's store: retained ones and those queued for away sessions",
    ),
    "$SYS/broker/store/messages/bytes": (
        "kcity_broker_store_bytes",
        "Payload bytes in the broker's store: retained messages and queued ones",
    ),
}

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(slots=True)
class Totals:
    """Running totals since start-up (what a row of ``ingest_stats`` holds)."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    suppressed: int = 0  # dead letters counted, not kept (their device's budget was spent)
    seq_gaps: int = 0
    batches: int = 0
    broker_dropped: int | None = None  # the broker's own count since it started (all sessions)
    latency_sum_s: float = 0.0  # since the last snapshot
    latency_n: int = 0

    def take_latency_ms(self) -> float | None:
        """Mean batch latency since the last call, in milliseconds."""
        if not self.latency_n:
            return None
        mean = self.latency_sum_s / self.latency_n * 1000.0
        self.latency_sum_s, self.latency_n = 0.0, 0
        return mean


class BrokerStats:
    """Mosquitto's counters as last published on ``$SYS`` (every worker sees the same
    broker-wide values: aggregate them with ``max``, never ``sum``)."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {}

    def collect(self) -> Iterator[Metric]:
        values = dict(self.values)
        if DROPPED in values:
            yield CounterMetricFamily(
                "kcity_broker_messages_dropped",
                "Messages the broker dropped since it started, beyond a session's queue bounds"
                " (max_queued_messages / max_queued_bytes): the device got its PUBACK, no"
                " subscriber its copy",
                value=values[DROPPED],
            )
        for topic, (name, text) in _BROKER_GAUGES.items():
            if topic in values:
                yield GaugeMetricFamily(name, text, value=values[topic])


class IngestMetrics:
    """The Prometheus families; updated by the service, read by scrapes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.totals = Totals()
        self._lock = threading.Lock()
        self.broker = BrokerStats()
        r.register(self.broker)
        self.received = Counter(
            "kcity_ingest_messages_received", "MQTT messages received", ["channel"], registry=r
        )
        self.stored = Counter(
            "kcity_ingest_records_stored", "Rows newly stored", ["table"], registry=r
        )
        self.duplicates = Counter(
            "kcity_ingest_duplicate_messages",
            "Messages already stored (broker redeliveries, resends)",
            registry=r,
        )
        self.dead_letters = Counter(
            "kcity_ingest_dead_letters", "Dead-lettered items", ["stage", "reason"], registry=r
        )
        self.suppressed = Counter(
            "kcity_ingest_dead_letters_suppressed",
            "Dead letters counted but not kept: their device had spent its budget of the minute",
            ["device", "stage", "reason"],
            registry=r,
        )
        self.seq_gaps = Counter(
            "kcity_ingest_sequence_gaps",
            "Messages missing from a device's sequence (seen by this worker)",
            registry=r,
        )
        self.batches = Counter("kcity_ingest_batches", "Committed batches", registry=r)
        self.batch_latency = Histogram(
            "kcity_ingest_batch_latency_seconds",
            "From receipt of a batch's first message to its commit",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.write_seconds = Histogram(
            "kcity_ingest_batch_write_seconds",
            "Time to write and commit one batch",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.last_seen = Gauge(
            "kcity_ingest_device_last_seen_timestamp_seconds",
            "When a device was last heard from (Unix time)",
            ["device"],
            registry=r,
        )
        self.feedback = Counter(
            "kcity_ingest_feedback",
            "Verdicts on rejected messages for their devices, by outcome (sent, suppressed)",
            ["outcome"],
            registry=r,
        )
        self.unacked = Gauge(
            "kcity_ingest_unacknowledged_messages",
            "Messages received but not yet acknowledged",
            registry=r,
        )
        self.database_up = Gauge(
            "kcity_ingest_database_up", "1 when the database accepts writes", registry=r
        )
        self.broker_up = Gauge(
            "kcity_ingest_broker_connected", "1 when connected to the broker", registry=r
        )
        self.subscribed = Gauge(
            "kcity_ingest_subscribed",
            "1 when the broker granted every uplink subscription of this connection",
            registry=r,
        )

    def count_batch(
        self,
        *,
        stored: dict[str, int],
        duplicates: int,
        dead: dict[tuple[str, str], int],
        suppressed: dict[tuple[str, str, str], int],
        gaps: int,
        latency_s: float,
        write_s: float,
        last_seen: dict[str, datetime],
    ) -> None:
        for table, n in stored.items():
            self.stored.labels(table).inc(n)
        for (stage, code), n in dead.items():
            self.dead_letters.labels(stage, code).inc(n)
        for (device, stage, code), n in suppressed.items():
            self.suppressed.labels(device, stage, code).inc(n)
        self.duplicates.inc(duplicates)
        self.seq_gaps.inc(gaps)
        self.batches.inc()
        self.batch_latency.observe(latency_s)
        self.write_seconds.observe(write_s)
        for device, seen in last_seen.items():
            self.last_seen.labels(device).set(seen.timestamp())
        with self._lock:
            t = self.totals
            t.stored += sum(stored.values())
            t.duplicates += duplicates
            t.dead_lettered += sum(dead.values())
            t.suppressed += sum(suppressed.values())
            t.seq_gaps += gaps
            t.batches += 1
            t.latency_sum_s += latency_s
            t.latency_n += 1

    def broker_stat(self, topic: str, value: float) -> None:
        """A ``$SYS`` counter of the broker, as it published it."""
        self.broker.values[topic] = value
        if topic == DROPPED:
            with self._lock:
                self.totals.broker_dropped = int(value)

    def snapshot(self, ts: datetime, worker: str) -> tuple[object, ...]:
        """An ``ingest_stats`` row of the totals so far."""
        with self._lock:
            t = self.totals
            return (
                ts,
                worker,
                t.received,
                t.stored,
                t.duplicates,
                t.dead_lettered,
                t.seq_gaps,
                t.batches,
                t.take_latency_ms(),
                t.broker_dropped,
            )


def serve(metrics: IngestMetrics, port: int, host: str = "127.0.0.1") -> Callable[[], None]:
    """Start the ``/metrics`` HTTP server; return a function that stops it.

    Local by default: the page names devices and when they were last heard from."""
    server, thread = start_http_server(port, addr=host, registry=metrics.registry)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop
