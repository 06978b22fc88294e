"""The local stack's ingest workers: one per core, sharing the load through the MQTT 5 shared
subscription ``$share/kcity-ingest/…`` (DESIGN §3, §5).

Each worker is its own process (``kcity ingest run`` with ``KCITY_INGEST_WORKER=wN``) with
its own persistent session ``kcity-ingest-wN``, pid file, log and ``/metrics`` port
(``metrics_port + N - 1``). The broker hands each message of the group to one session;
a worker that dies keeps its session and its queue until it is back, so a SIGKILL loses
nothing. Sessions of workers that are no longer configured are deleted at ``up``, or the
broker would keep queueing a share of the traffic for them.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from ingest.config import IngestConfig
from kcity.settings import Settings

LEGACY_WORKER = "main"  # the single unshared worker of earlier versions


def worker_count(settings: Settings) -> int:
    """``KCITY_INGEST_WORKERS``, or one worker per core when it is 0."""
    return settings.ingest_workers or os.cpu_count() or 1


def ingest_config(
    settings: Settings, worker: str, *, shared: bool | None = None, metrics_port: int | None = None
) -> IngestConfig:
    """The ingest package's configuration for one worker, from the shell's settings."""
    return IngestConfig(
        database_url=settings.ingest_db_url,  # its least-privilege login (kcity.grants)
        mqtt_host=settings.mqtt_host,
        mqtt_port=settings.mqtt_port,
        mqtt_username=settings.mqtt_username,
        mqtt_password=settings.mqtt_password,
        worker=worker,
        shared=settings.ingest_shared if shared is None else shared,
        batch_size=settings.ingest_batch_size,
        batch_age_s=settings.ingest_batch_age_s,
        max_inflight=settings.ingest_max_inflight,
        feedback_per_minute=settings.ingest_feedback_per_minute,
        dead_letters_per_minute=settings.ingest_dead_letters_per_minute,
        metrics_port=settings.metrics_port if metrics_port is None else metrics_port,
        metrics_host=settings.metrics_host,
    )


@dataclass(frozen=True)
class Worker:
    """One ingest worker of the local stack."""

    name: str
    metrics_port: int
    pid_file: Path
    log: Path

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def env(self) -> dict[str, str]:
        """The environment of its process: the stack's, plus who it is."""
        return {
            **os.environ,
            "KCITY_INGEST_WORKER": self.name,
            "KCITY_INGEST_SHARED": "true",
            "KCITY_METRICS_PORT": str(self.metrics_port),
        }


def workers(settings: Settings, root: Path) -> list[Worker]:
    """The configured workers, ``w1`` … ``wN``."""
    return [
        Worker(
            f"w{i}",
            settings.metrics_port + i - 1,
            root / "run" / f"ingest-w{i}.pid",
            root / "logs" / f"ingest-w{i}.log",
        )
        for i in range(1, worker_count(settings) + 1)
    ]


def stale_workers(settings: Settings, root: Path) -> list[str]:
    """Names of workers that ran here before (a pid file is left) but are not configured."""
    wanted = {w.pid_file.name for w in workers(settings, root)}
    found = sorted((root / "run").glob("ingest-w*.pid")) if (root / "run").is_dir() else []
    return [p.stem.removeprefix("ingest-") for p in found if p.name not in wanted]


def forget_session(settings: Settings, worker: str, timeout: float = 5.0) -> None:
    """Delete a worker's persistent session (and its queue) on the broker."""
    # paho loads here, not with the module: `kcity status` reads the workers without it.
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    config = ingest_config(settings, worker)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=config.client_id, protocol=mqtt.MQTTv5
    )
    client.username_pw_set(config.mqtt_username, config.mqtt_password)
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 0
    try:
        client.connect(config.mqtt_host, config.mqtt_port, clean_start=True, properties=props)
    except OSError:
        return
    client.loop_start()
    try:
        deadline = time.monotonic() + timeout
        while not client.is_connected() and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        client.disconnect()
        client.loop_stop()
