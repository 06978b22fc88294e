"""The local stack under the data directory: TimescaleDB, Mosquitto, ingest service, API.

`up` starts whichever is not running (twice is harmless), `down` stops what runs, `status`
reports each service's health and address. The first `up` generates the broker's admin and
ingest-service passwords into `<data_dir>/stack.env`, which `load_settings` reads.
"""

from __future__ import annotations

import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from kcity.db import connect
from kcity.errors import KcityError
from kcity.schema import migrate
from kcity.settings import PGPASS, STACK_ENV, Settings, load_settings
from kcity.stack.bridge_state import REFRESH_S, STATE_FILE, read_state
from kcity.stack.broker_admin import create_session
from kcity.stack.dynsec_file import write_private
from kcity.stack.ingest_workers import (
    LEGACY_WORKER,
    Worker,
    forget_session,
    ingest_config,
    stale_workers,
    workers,
)
from kcity.stack.mosquitto import MosquittoServer, new_secret, queue_bounds
from kcity.stack.postgres import PostgresServer
from kcity.stack.processes import (
    port_open,
    read_pid,
    require_free,
    spawn,
    stop_pid,
    wait_for_port,
)

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def ensure_secrets(settings: Settings) -> Settings:
    """Generate the broker passwords once and return settings that include them."""
    if settings.mqtt_password and settings.mqtt_admin_password:
        return settings
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    write_private(
        settings.data_dir / STACK_ENV,
        f"KCITY_MQTT_PASSWORD={settings.mqtt_password or new_secret()}\n"
        f"KCITY_MQTT_ADMIN_PASSWORD={settings.mqtt_admin_password or new_secret()}\n",
    )
    return load_settings(data_dir=settings.data_dir)


@dataclass(frozen=True)
class LocalStack:
    settings: Settings

    @property
    def root(self) -> Path:
        return self.settings.data_dir.resolve()

    @property
    def postgres(self) -> PostgresServer:
        return PostgresServer(self.root / "pg", self.settings.database_port, self.root / PGPASS)

    @property
    def mosquitto(self) -> MosquittoServer:
        s = self.settings
        queue = queue_bounds(s.broker_outage_hours, s.broker_messages_per_s, s.broker_message_bytes)
        return MosquittoServer(
            self.root / "mqtt",
            s.mqtt_port,
            s.mqtt_tls_port,
            s.mqtt_admin_username,
            s.mqtt_admin_password,
            ingest_username=s.mqtt_username,
            ingest_password=s.mqtt_password,
            queue_messages=queue[0],
            queue_bytes=queue[1],
        )

    def _service_files(self, name: str) -> tuple[Path, Path]:
        run = self.root / "run"
        run.mkdir(parents=True, exist_ok=True)
        return run / f"{name}.pid", self.root / "logs" / f"{name}.log"

    def up(self, *, services: bool = True) -> list[str]:
        """Start what is not running; return the names of what was started."""
        s = self.settings
        started = []
        if s.mqtt_host in LOCAL_HOSTS and not self.mosquitto.running():
            self.mosquitto.start()  # the ingest account is in its security file already
            started.append("mosquitto")
        if services:
            self.ensure_ingest_sessions()
        if urlhost(s.database_url) in LOCAL_HOSTS:
            if not self.postgres.running():
                started.append("timescaledb")
            self.postgres.start()  # also when running: a trust cluster of old is secured
            self.postgres.create_database(s.database_name)
        with connect(s.database_url) as conn:
            migrate(conn)
        if services:
            for worker in self.workers:
                if not self._worker_healthy(worker):
                    self._start_worker(worker)
                    started.append(f"ingest-{worker.name}")
            if not self._service_healthy("api"):
                self._start_service("api")
                started.append("api")
            rollups_pid, rollups_log = self._service_files("rollups")
            if read_pid(rollups_pid) is None:
                # Keeps the quality and dashboard rollups (migration 007) current.
                spawn(
                    [sys.executable, "-m", "kcity", "rollups", "run"],
                    log=rollups_log,
                    pid_file=rollups_pid,
                )
                started.append("rollups")
            bridge_pid, bridge_log = self._service_files("bridge")
            if read_pid(bridge_pid) is None:
                # Bridges the pilots that declare a LoRaWAN network server, as they come.
                state = s.data_dir / STATE_FILE
                state.unlink(missing_ok=True)
                spawn(
                    [sys.executable, "-m", "kcity", "bridge", "run"],
                    log=bridge_log,
                    pid_file=bridge_pid,
                )
                deadline = time.monotonic() + 30
                while not state.exists():
                    if time.monotonic() > deadline or read_pid(bridge_pid) is None:
                        raise KcityError(f"the LoRaWAN bridges did not start (see {bridge_log})")
                    time.sleep(0.1)
                started.append("bridge")
        return started

    @property
    def workers(self) -> list[Worker]:
        return workers(self.settings, self.root)

    def ensure_ingest_sessions(self) -> None:
        """Each ingest worker's persistent session, before any device can publish: until a
        worker connects, the broker queues its share of the device messages for it. Sessions
        of workers no longer configured (and of the old single worker) are deleted."""
        s = self.settings
        run = self.root / "run"
        gone = [(n, run / f"ingest-{n}.pid") for n in stale_workers(s, self.root)]
        if (run / "ingest.pid").exists():  # the single unshared worker of earlier versions
            gone.append((LEGACY_WORKER, run / "ingest.pid"))
        for name, pid_file in gone:
            if read_pid(pid_file) is None:
                forget_session(s, name)
                pid_file.unlink(missing_ok=True)
        for worker in self.workers:
            if read_pid(worker.pid_file) is not None:
                continue
            config = ingest_config(s, worker.name, shared=True)
            create_session(
                s.mqtt_host,
                s.mqtt_port,
                s.mqtt_username,
                s.mqtt_password,
                client_id=config.client_id,
                topic_filters=config.topic_filters,
                expiry_s=config.session_expiry_s,
            )

    def _start_worker(self, worker: Worker) -> None:
        worker.pid_file.parent.mkdir(parents=True, exist_ok=True)
        stop_pid(worker.pid_file)
        require_free(
            "127.0.0.1", worker.metrics_port, f"ingest worker {worker.name}", "KCITY_METRICS_PORT"
        )
        spawn(
            [sys.executable, "-m", "kcity", "ingest", "run"],
            log=worker.log,
            pid_file=worker.pid_file,
            env=worker.env(),
        )
        try:
            wait_for_port("127.0.0.1", worker.metrics_port, 30, f"ingest worker {worker.name}")
        except KcityError as exc:
            raise KcityError(f"{exc} (see {worker.log})") from exc

    def _worker_healthy(self, worker: Worker) -> bool:
        return read_pid(worker.pid_file) is not None and ingest_healthy(worker.metrics_url)

    def _start_service(self, name: str) -> None:
        pid_file, log = self._service_files(name)
        stop_pid(pid_file)
        port = self.settings.api_port
        require_free("127.0.0.1", port, f"the {name} service", "KCITY_API_PORT")
        spawn([sys.executable, "-m", "kcity", name, "run"], log=log, pid_file=pid_file)
        try:
            wait_for_port("127.0.0.1", port, 30, f"the {name} service")
        except KcityError as exc:
            raise KcityError(f"{exc} (see {log})") from exc

    def _service_healthy(self, name: str) -> bool:
        pid_file, _ = self._service_files(name)
        if read_pid(pid_file) is None:
            return False
        try:
            with urllib.request.urlopen(f"{self.settings.api_url}/health", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def down(self) -> list[str]:
        """Stop everything that runs; return the names of what was stopped."""
        stopped = []
        for name in ("bridge", "rollups", "api"):
            if stop_pid(self._service_files(name)[0]):
                stopped.append(name)
        run = self.root / "run"
        for pid_file in sorted(run.glob("ingest*.pid")) if run.is_dir() else []:
            if stop_pid(pid_file):
                stopped.append(pid_file.stem)
        if self.mosquitto.running():
            self.mosquitto.stop()
            stopped.append("mosquitto")
        if self.postgres.running():
            self.postgres.stop()
            stopped.append("timescaledb")
        return stopped

    def status(self) -> dict[str, object]:
        s = self.settings
        ingest = {w.name: self._worker_healthy(w) for w in self.workers}
        bridges = self._bridges()
        db_ok = True
        try:
            with connect(s.database_url) as conn:
                conn.execute("SELECT 1")
        except KcityError:
            db_ok = False
        return {
            "database_url": s.database_url,
            "mqtt_host": s.mqtt_host,
            "mqtt_port": s.mqtt_port,
            "mqtt_tls_port": s.mqtt_tls_port,
            "api_url": s.api_url,
            "metrics_url": f"http://127.0.0.1:{s.metrics_port}/metrics",
            "data_dir": str(self.root),
            "services": {
                "timescaledb": db_ok,
                "mosquitto": port_open(s.mqtt_host, s.mqtt_port),
                "ingest": all(ingest.values()),
                "api": self._service_healthy("api"),
                "bridge": bridges is not None and all(_bridge_ok(b) for b in bridges.values()),
            },
            "ingest_workers": {
                w.name: {"healthy": ingest[w.name], "metrics_url": w.metrics_url}
                for w in self.workers
            },
            "bridges": bridges or {},
        }

    def _bridges(self) -> dict[str, dict[str, object]] | None:
        """The supervisor's state per LoRaWAN pilot; None unless it runs and is current."""
        state = read_state(self.settings)
        if read_pid(self._service_files("bridge")[0]) is None or state is None:
            return None
        updated = datetime.fromisoformat(str(state["updated"]))
        if (datetime.now(UTC) - updated).total_seconds() > 6 * REFRESH_S:
            return None
        pilots: dict[str, dict[str, object]] = state["pilots"]  # type: ignore[assignment]
        return pilots


def _bridge_ok(pilot: Mapping[str, object]) -> bool:
    return bool(pilot["bridged"] and pilot["connected"])


def ingest_healthy(metrics_url: str) -> bool:
    """Healthy ingest is connected to the broker *and* holds its subscriptions: a live
    process whose session was taken over, or whose subscriptions were refused, is not."""
    try:
        with urllib.request.urlopen(metrics_url, timeout=2) as r:
            page = r.read().decode()
    except OSError:
        return False
    values = dict(line.split(" ", 1) for line in page.splitlines() if line[:1].isalpha())
    wanted = ("kcity_ingest_broker_connected", "kcity_ingest_subscribed")
    return all(float(values.get(name, "0")) == 1.0 for name in wanted)


def urlhost(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).hostname or ""
