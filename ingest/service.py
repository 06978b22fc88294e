"""The ingest service: MQTT in, validated batches out, acknowledgements after commit.

Two threads. The main thread drives the MQTT client, judges each message as it arrives
(``validate``) and queues it per device (``FairQueue``); it cuts a batch by size or age, or
as soon as the writer is idle — round robin across devices when more waits than a batch
holds, so one device's backlog of valid data does not hold the others back. The writer
thread owns the database connection: it commits each sealed batch, retrying on a new
connection with backoff while the database is down, and hands committed batches back so
the main thread can acknowledge them. Nothing is acknowledged before its commit; the broker
sends a connected worker at most ``max_inflight`` unacknowledged messages, which bounds
memory during a database outage (Mosquitto 2.0 sends a reconnecting session its whole
offline queue at once, though). Messages of a device whose dead-letter budget of the minute
is spent (a flood) are deferred, unacknowledged, and judged in slices between reads of the
socket, so other devices' messages behind them in the broker's queue are not kept waiting;
beyond ``deferred_bytes`` they are judged before reading on.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

from ingest.batch import AckToken, Batch
from ingest.batch_writer import OUTAGE_ERRORS, BatchWriter, WriteResult
from ingest.config import IngestConfig
from ingest.consumer import Consumer
from ingest.dead_letter_budget import DeadLetterBudget
from ingest.fair_queue import FairQueue
from ingest.feedback import FeedbackLimiter, verdict
from ingest.metrics import IngestMetrics, Totals, serve
from ingest.registry import Registry
from ingest.validate import Outcome, Received, UnknownDevice, dead, validate

log = logging.getLogger(__name__)
_DEFERRED_SLICE_S = 0.01  # judging deferred messages between two reads of the socket
_CHANNELS = frozenset({"telemetry", "event", "status"})


@dataclass(frozen=True, slots=True)
class _Parked:
    """A message from a device missing in the registry snapshot, awaiting a reload."""

    topic: str
    payload: bytes
    received_at: datetime
    arrived: float
    token: AckToken | None


@dataclass(frozen=True, slots=True)
class _Committed:
    batch: Batch
    result: WriteResult
    write_s: float
    committed: float


def _device_of(topic: str) -> str:
    parts = topic.split("/", 4)
    return parts[3] if len(parts) > 3 else ""


def _connect(url: str) -> psycopg.Connection:
    return psycopg.connect(url, connect_timeout=3, application_name="kcity-ingest")


class IngestService:
    """One ingest worker. ``run`` blocks until ``stop`` is set, then flushes and returns."""

    def __init__(self, config: IngestConfig, metrics: IngestMetrics | None = None) -> None:
        self.config = config
        self.metrics = metrics or IngestMetrics()
        self.registry = Registry(config.registry_refresh_s, config.registry_max_age_s)
        self.consumer = Consumer(config, self._on_message, self.metrics.broker_stat)
        self._waiting = FairQueue()  # judged, not yet in a batch
        self._parked: list[_Parked] = []
        # Messages of devices whose dead-letter budget is spent wait here (unacknowledged),
        # judged in slices between reads, so a flooding device does not delay the others.
        self._deferred: deque[_Parked] = deque()
        self._deferred_devices: Counter[str] = Counter()
        self._deferred_bytes = 0
        self._handoff: queue.Queue[Batch] = queue.Queue(maxsize=1)
        self._committed: queue.SimpleQueue[_Committed] = queue.SimpleQueue()
        self._writer_stop = threading.Event()
        self._writer_abort = threading.Event()
        self._writer_idle = threading.Event()
        self._registry_conn: psycopg.Connection | None = None
        self._last_seq: dict[tuple[str, int, str], int] = {}
        self._unacked = 0
        self.unacked_peak = 0  # the most messages held unacknowledged at once
        self._writer_ok = True  # the last write committed (reading may pause for it)
        self._feedback = FeedbackLimiter(config.feedback_per_minute)
        self._dead_budget = DeadLetterBudget(config.dead_letters_per_minute)
        self._received_by_channel = {
            ch: self.metrics.received.labels(ch) for ch in (*_CHANNELS, "other")
        }

    # -- main thread -----------------------------------------------------------------

    def run(self, stop: threading.Event) -> Totals:
        cfg = self.config
        stop_metrics: Callable[[], None] | None = None
        if cfg.metrics_port is not None:
            stop_metrics = serve(self.metrics, cfg.metrics_port, cfg.metrics_host)
        writer = threading.Thread(target=self._writer_main, name="kcity-ingest-writer", daemon=True)
        try:
            self._load_registry_until(stop)
            writer.start()
            self.consumer.wait_connected(3600 * 24 * 365, stop.is_set)
            self.metrics.broker_up.set(1)
            while not stop.is_set():
                self._step()
            self._shutdown(writer)
        finally:
            self._writer_abort.set()
            self._writer_stop.set()
            if writer.is_alive():
                writer.join(timeout=5)
            self.consumer.close()
            if self._registry_conn is not None:
                self._registry_conn.close()
            if stop_metrics is not None:
                stop_metrics()
        return self.metrics.totals

    def _step(self, timeout: float | None = None) -> None:
        now = time.monotonic()
        if timeout is None:
            timeout = 0.02
            oldest = self._waiting.oldest
            if oldest is not None and not self._handoff.full():  # full: nothing to seal yet
                age_left = oldest + self.config.batch_age_s - now
                timeout = max(0.0, min(timeout, age_left))
        if self._deferred_bytes >= self.config.deferred_bytes:
            self._judge_deferred(down_to_bytes=self.config.deferred_bytes // 2)  # backpressure
        # Mosquitto 2.0 sends a reconnecting session its whole offline queue at once, beyond
        # our Receive Maximum: while the writer is committing, stop reading past the window
        # (the broker keeps the rest). Not while the database is down: a pause longer than
        # the keep-alive would lose the connection (the window bounds live traffic anyway).
        read = self._unacked <= self.config.max_inflight or not self._writer_ok
        self.consumer.loop(0.0 if self._deferred else timeout, read)
        if self._deferred:
            self._judge_deferred(seconds=_DEFERRED_SLICE_S)
        self.metrics.broker_up.set(1 if self.consumer.connected else 0)
        self.metrics.subscribed.set(1 if self.consumer.subscribed else 0)
        self._acknowledge()
        now = time.monotonic()
        if self._parked or self.registry.stale(now):
            self._reload_registry(now)
        self._seal(now)

    def _on_message(self, topic: str, payload: bytes, token: AckToken | None) -> None:
        received_at = datetime.now(UTC)
        arrived = time.monotonic()
        channel = topic.rsplit("/", 1)[-1]
        self._received_by_channel[channel if channel in _CHANNELS else "other"].inc()
        self.metrics.totals.received += 1
        if token is not None:
            self._unacked += 1
            if self._unacked > self.unacked_peak:
                self.unacked_peak = self._unacked
        msg = _Parked(topic, payload, received_at, arrived, token)
        device = _device_of(topic)
        if self._deferred_devices[device] or self._dead_budget.spent(device, received_at):
            self._deferred.append(msg)  # after its device's earlier ones: order kept
            self._deferred_devices[device] += 1
            self._deferred_bytes += len(payload)
            return
        self._judge(msg, final=False)

    def _judge_deferred(self, *, seconds: float = 0.0, down_to_bytes: int | None = None) -> None:
        """Judge deferred messages for ``seconds``, or (``down_to_bytes``) until no more
        than that many bytes wait; -1 judges them all."""
        until = time.monotonic() + seconds
        while self._deferred:
            if down_to_bytes is None:
                if time.monotonic() >= until:
                    break
            elif self._deferred_bytes <= down_to_bytes:
                break
            msg = self._deferred.popleft()
            device = _device_of(msg.topic)
            self._deferred_devices[device] -= 1
            if not self._deferred_devices[device]:
                del self._deferred_devices[device]
            self._deferred_bytes -= len(msg.payload)
            self._judge(msg, final=False)

    def _judge(self, msg: _Parked, final: bool) -> None:
        device = _device_of(msg.topic)
        try:
            verdict = validate(
                msg.topic,
                msg.payload,
                self.registry.devices,
                msg.received_at,
                unknown_is_final=final,
                quiet=self._dead_budget.spent(device, msg.received_at),
            )
        except Exception as exc:  # a bug must not lose the message or stop the service
            log.exception("validation failed on %s", msg.topic)
            info = self.registry.devices.get(device)
            known = device if info is not None else None  # the letter is its device's
            verdict = Outcome(
                device_id=known,
                dead_letters=(
                    dead(
                        msg.topic,
                        msg.payload,
                        "decode",
                        "internal_error",
                        f"{type(exc).__name__}",
                        info.pilot_id if info is not None else None,
                        known,
                    ),
                ),
            )
        if isinstance(verdict, UnknownDevice):
            self._parked.append(msg)
            return
        verdict = self._dead_budget.apply(verdict, msg.received_at)
        item = Received(msg.topic, msg.payload, msg.received_at, verdict)
        self._waiting.add(device, item, msg.token, msg.arrived)
        if self._waiting.rows >= self.config.batch_size:
            self._seal(time.monotonic())

    def _seal(self, now: float, force: bool = False) -> None:
        """Cut a batch when enough waits or the oldest is old enough — or at once if the
        writer is idle — provided the writer can take it.

        The idle rule is natural batching: under light load a batch is a few messages and
        commits at once; under heavy load messages pile up while the writer is busy, so
        batches grow by themselves up to ``batch_size`` rows. A batch is cut only when the
        hand-over slot is free (this thread alone fills it), so a message that arrives while
        the writer is busy can still overtake a backlog waiting in ``_waiting``.
        """
        w = self._waiting
        oldest = w.oldest
        if oldest is None or self._handoff.full():
            return  # nothing waits, or the writer is busy (or the database down)
        if not (
            force
            or self._writer_idle.is_set()
            or w.rows >= self.config.batch_size
            or now - oldest >= self.config.batch_age_s
        ):
            return
        batch = w.take(self.config.batch_size)
        if batch is not None:
            self._handoff.put_nowait(batch)

    def _acknowledge(self) -> None:
        while True:
            try:
                done = self._committed.get_nowait()
            except queue.Empty:
                break
            self.consumer.ack(done.batch.tokens)
            self._unacked -= len(done.batch.tokens)
            self._send_feedback(done.batch)
            r = done.result
            self.metrics.count_batch(
                stored=dict(r.stored),
                duplicates=r.duplicates,
                dead=dict(r.dead_letters),
                suppressed=dict(r.suppressed),
                gaps=self._count_gaps(r.new_messages),
                latency_s=done.committed - done.batch.started,
                write_s=done.write_s,
                last_seen=r.last_seen,
            )
        self.metrics.unacked.set(self._unacked)

    def _send_feedback(self, batch: Batch) -> None:
        """Verdicts on the batch's rejected messages, now that their dead letters are stored."""
        now = time.monotonic()
        for item in batch.items:
            letters = item.outcome.dead_letters
            if not letters or letters[0].device_id is None:
                continue
            suppressed = self._feedback.allow(letters[0].device_id, now)
            if suppressed is None:
                self.metrics.feedback.labels("suppressed").inc()
                continue
            v = verdict(item, suppressed)
            if v is not None and self.consumer.publish(v.topic, v.payload):
                self.metrics.feedback.labels("sent").inc()

    def _count_gaps(self, new: list[tuple[str, int, str, int]]) -> int:
        """Messages skipped in a device's (boot, channel) sequence, as seen by this worker."""
        gaps = 0
        for device, boot, channel, seq in sorted(new):
            key = (device, boot, channel)
            last = self._last_seq.get(key)
            if last is not None and seq > last + 1:
                gaps += seq - last - 1
            if last is None or seq > last:
                self._last_seq[key] = seq
        return gaps

    def _reload_registry(self, now: float) -> None:
        if not self.registry.may_reload(now):
            return
        try:
            if self._registry_conn is None or self._registry_conn.closed:
                self._registry_conn = _connect(self.config.database_url)
            self.registry.reload(self._registry_conn, now)
        except psycopg.Error as exc:
            log.warning("cannot reload the device registry: %s", exc)
            if self._registry_conn is not None:
                self._registry_conn.close()
                self._registry_conn = None
            return
        parked, self._parked = self._parked, []
        for msg in parked:
            self._judge(msg, final=self.registry.fresh_since(msg.arrived))

    def _load_registry_until(self, stop: threading.Event) -> None:
        delay = 0.1
        while not stop.is_set():
            self._reload_registry(time.monotonic())
            if self.registry.loaded_at is not None:
                return
            stop.wait(delay)
            delay = min(delay * 2, self.config.max_backoff_s)

    def _shutdown(self, writer: threading.Thread) -> None:
        """Flush what was judged, wait for its commit, acknowledge it."""
        deadline = time.monotonic() + self.config.shutdown_timeout_s
        self._judge_deferred(down_to_bytes=-1)
        if self._parked:
            self.registry.expire()  # one last chance for the devices they came from
            self._reload_registry(time.monotonic())
        while time.monotonic() < deadline:
            self._seal(time.monotonic(), force=True)
            if not self._waiting and self._handoff.empty():
                break
            self._step(0.02)
        self._writer_stop.set()
        while writer.is_alive() and time.monotonic() < deadline:
            self.consumer.loop(0.02)
            self._acknowledge()
        if writer.is_alive():
            log.warning(
                "the database did not commit the last batch in time; leaving it "
                "unacknowledged (the broker will redeliver it)"
            )
        self._writer_abort.set()
        writer.join(timeout=5)
        self._acknowledge()

    # -- writer thread ---------------------------------------------------------------

    def _writer_main(self) -> None:
        writer: BatchWriter | None = None
        last_stats = time.monotonic()
        delay = 0.1
        while True:
            self._writer_idle.set()
            try:
                batch: Batch | None = self._handoff.get(timeout=0.05)
            except queue.Empty:
                batch = None
            self._writer_idle.clear()
            if batch is None and self._writer_stop.is_set():
                break
            while batch is not None and not self._writer_abort.is_set():
                try:
                    if writer is None:
                        writer = BatchWriter(_connect(self.config.database_url))
                    start = time.monotonic()
                    result = writer.write(batch.items)
                    end = time.monotonic()
                    self._committed.put(_Committed(batch, result, end - start, end))
                    self.metrics.database_up.set(1)
                    self._writer_ok = True
                    delay = 0.1
                    batch = None
                except Exception as exc:
                    if not isinstance(exc, OUTAGE_ERRORS):
                        log.exception("writing a batch failed")
                    else:
                        log.warning(
                            "database unavailable (%s); retrying in %.1f s",
                            str(exc).strip().splitlines()[-1:] or exc,
                            delay,
                        )
                    self.metrics.database_up.set(0)
                    self._writer_ok = False
                    if writer is not None:
                        writer.conn.close()
                        writer = None
                    self._writer_abort.wait(delay)
                    delay = min(delay * 2, self.config.max_backoff_s)
            if self._writer_abort.is_set():
                break
            if time.monotonic() - last_stats >= self.config.stats_interval_s:
                writer = self._write_stats(writer)
                last_stats = time.monotonic()
        if not self._writer_abort.is_set() or writer is not None:
            writer = self._write_stats(writer)
        if writer is not None:
            writer.conn.close()

    def _write_stats(self, writer: BatchWriter | None) -> BatchWriter | None:
        try:
            if writer is None:
                writer = BatchWriter(_connect(self.config.database_url))
            writer.write_stats(self.metrics.snapshot(datetime.now(UTC), self.config.worker))
        except psycopg.Error as exc:
            log.warning("cannot write ingest_stats: %s", exc)
            if writer is not None:
                writer.conn.close()
            return None
        return writer


def run(config: IngestConfig, stop_event: threading.Event) -> Totals:
    """Run one ingest worker until ``stop_event`` is set; return its totals."""
    return IngestService(config).run(stop_event)
