"""The ingest service's configuration: a frozen value the shell builds from its settings.

``ingest`` never imports the shell (``kcity``); the shell reads its settings once and hands
this dataclass down, so the service can also be started from tests and benchmarks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ingest.errors import ConfigError

MAX_RECEIVE_MAXIMUM = 65535  # MQTT 5 Receive Maximum is a two-byte integer
SHARE_GROUP = "kcity-ingest"
# Mosquitto's own counters (mosquitto(8); published every `sys_interval` s, retained): what
# it dropped beyond a session's queue bounds, and what its store holds. Ingest exports them.
BROKER_STATS = (
    "$SYS/broker/publish/messages/dropped",
    "$SYS/broker/store/messages/count",
    "$SYS/broker/store/messages/bytes",
)
_WORKER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


@dataclass(frozen=True, slots=True)
class IngestConfig:
    """Where to read, where to write, and how big and how old a batch may grow.

    ``worker`` names this consumer: its MQTT client id (hence its persistent session) is
    ``kcity-ingest-{worker}`` and its rows in ``ingest_stats`` carry it. Restart a worker
    with the same name to resume its session; give shared-subscription workers
    different names.
    """

    database_url: str
    mqtt_host: str
    mqtt_port: int
    mqtt_username: str
    mqtt_password: str
    worker: str = "main"
    shared: bool = False
    # Rows (records, dead letters, one per message) per transaction: a cap, so that a message
    # can overtake another device's backlog (fair_queue). At 5,000 two workers drained a
    # backlog at 11,000-13,000 msg/s instead of 18,000-19,000 (per-commit costs).
    batch_size: int = 10000
    batch_age_s: float = 0.2  # flush a non-empty batch at least this often
    max_inflight: int = 20000  # MQTT 5 Receive Maximum: unacknowledged messages
    metrics_port: int | None = 9108  # None: no HTTP /metrics server
    metrics_host: str = "127.0.0.1"  # the page names devices: local unless asked otherwise
    session_expiry_s: int = 7 * 24 * 3600  # the broker keeps our queue this long offline
    keepalive_s: int = 30
    stats_interval_s: float = 5.0  # snapshot counters into ingest_stats this often
    registry_refresh_s: float = 1.0  # at most one registry reload per interval on demand
    registry_max_age_s: float = 60.0  # full reload anyway (revocations)
    max_backoff_s: float = 5.0  # reconnect backoff ceiling (database and broker)
    shutdown_timeout_s: float = 15.0  # how long SIGTERM waits for the last commit
    feedback_per_minute: int = 30  # verdicts per device and minute on its feedback topic; 0: off
    dead_letters_per_minute: int = 100  # kept in full per device and minute; the rest counted
    # Bytes of messages from devices whose budget is spent held for judging later; beyond
    # it they are judged before the socket is read again (the flood delays others again).
    deferred_bytes: int = 256 * 1024 * 1024

    def __post_init__(self) -> None:
        if not _WORKER_RE.match(self.worker):
            raise ConfigError(f"bad worker name {self.worker!r}: letters, digits, '-', '_', '.'")
        if not 1 <= self.max_inflight <= MAX_RECEIVE_MAXIMUM:
            raise ConfigError(
                f"max_inflight must be 1..{MAX_RECEIVE_MAXIMUM} (MQTT 5 Receive Maximum), "
                f"not {self.max_inflight}"
            )
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, not {self.batch_size}")
        if self.feedback_per_minute < 0:
            raise ConfigError(f"feedback_per_minute must be >= 0, not {self.feedback_per_minute}")
        if self.dead_letters_per_minute < 1:
            raise ConfigError(
                f"dead_letters_per_minute must be at least 1, not {self.dead_letters_per_minute}"
            )
        if self.batch_age_s <= 0:
            raise ConfigError(f"batch_age_s must be positive, not {self.batch_age_s}")

    @property
    def client_id(self) -> str:
        return f"kcity-ingest-{self.worker}"

    @property
    def topic_filters(self) -> tuple[str, ...]:
        """The uplink channels; shared workers split them through ``$share``."""
        filters = tuple(f"kcity/v1/+/+/{ch}" for ch in ("telemetry", "event", "status"))
        if self.shared:
            return tuple(f"$share/{SHARE_GROUP}/{f}" for f in filters)
        return filters
