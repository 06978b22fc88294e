"""A private Mosquitto broker under the data directory (`kcity up`, tests).

Authentication and access control use Mosquitto's dynamic-security plugin, so devices are
provisioned and revoked while the broker runs (see `broker_admin`). Persistence is on; each
persistent session's queue is bounded to hold a configured outage (`queue_bounds`), far
above Mosquitto's default of 1000 messages.
"""

from __future__ import annotations

import math
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kcity.errors import StackError
from kcity.stack.broker_admin import INGEST_ROLE, ingest_acls
from kcity.stack.dynsec_file import ADMIN_ACLS, platform_accounts
from kcity.stack.processes import (
    give_to,
    make_traversable,
    port_open,
    read_pid,
    require,
    require_free,
    run_as,
    stop_pid,
    wait_for_port,
)

SERVER_USER = "mosquitto"
DYNSEC_PLUGIN_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib")
# The broker's hard limit; payloads between the contract's 256 KiB and this reach the ingest
# service, which dead-letters them with their bytes, instead of vanishing at the broker.
BROKER_MESSAGE_LIMIT = 1024 * 1024
# A client sending a bigger packet (payload, topic and headers) is disconnected at once.
BROKER_PACKET_LIMIT = BROKER_MESSAGE_LIMIT + 64 * 1024
# QoS 1/2 messages a client may have unacknowledged towards the broker (announced to MQTT 5
# clients as the broker's Receive Maximum), and the broker's sending window to clients that
# announce none; an MQTT 5 client's own Receive Maximum (ingest: 20,000) governs what the
# broker sends it.
BROKER_INFLIGHT = 1000
QUEUE_HEADROOM = 2.0
# Seconds between the broker's $SYS updates (its default): how stale ingest's export of the
# broker's dropped-message count may be.
SYS_INTERVAL_S = 10


def queue_bounds(outage_hours: float, messages_per_s: float, message_bytes: int) -> tuple[int, int]:
    """(messages, bytes) one session may queue: an outage of ``outage_hours`` at
    ``messages_per_s``, twice over. Beyond it Mosquitto drops further messages for that
    session (the device still gets its PUBACK); the broker counts them in
    ``$SYS/broker/publish/messages/dropped`` and ingest sees them as sequence gaps."""
    messages = math.ceil(outage_hours * 3600 * messages_per_s * QUEUE_HEADROOM)
    return messages, messages * message_bytes


def dynsec_plugin() -> str:
    for d in DYNSEC_PLUGIN_DIRS:
        path = Path(d) / "mosquitto_dynamic_security.so"
        if path.exists():
            return str(path)
    raise StackError("mosquitto's dynamic-security plugin is missing: run scripts/bootstrap")


@dataclass(frozen=True)
class MosquittoServer:
    root: Path  # <data_dir>/mqtt
    port: int
    tls_port: int
    admin_username: str
    admin_password: str
    host: str = "127.0.0.1"
    ingest_username: str = ""  # written into the security file with the admin, if given
    ingest_password: str = ""
    queue_messages: int = 0  # per-session queue bounds (`queue_bounds`); 0: unbounded
    queue_bytes: int = 0
    sys_interval_s: int = SYS_INTERVAL_S

    @property
    def conf(self) -> Path:
        return self.root / "mosquitto.conf"

    @property
    def pid_file(self) -> Path:
        return self.root / "mosquitto.pid"

    @property
    def ca_file(self) -> Path:
        return self.root / "certs" / "ca.crt"

    @property
    def log(self) -> Path:
        return self.root / "mosquitto.log"

    @property
    def dynsec(self) -> Path:
        return self.root / "dynamic-security.json"

    def init(self) -> None:
        """Write certificates and the config once; bring the platform's accounts in the
        dynamic-security file up to date (0600, strong hashes, no password in any argv)."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        make_traversable(self.root)
        (self.root / "data").mkdir(mode=0o700, exist_ok=True)
        self._make_certs()
        if not self.running():  # the running plugin owns the file
            accounts = {self.admin_username: (self.admin_password, "admin", ADMIN_ACLS)}
            if self.ingest_username:
                accounts[self.ingest_username] = (
                    self.ingest_password,
                    INGEST_ROLE,
                    ingest_acls(),
                )
            platform_accounts(self.dynsec, accounts)
        self.conf.write_text(self._config())
        give_to(SERVER_USER, self.root)

    def _config(self) -> str:
        certs = self.root / "certs"
        user = f"user {SERVER_USER}\n"
        return (
            "per_listener_settings false\n"
            "allow_anonymous false\n"
            f"plugin {dynsec_plugin()}\n"
            f"plugin_opt_config_file {self.dynsec}\n"
            "persistence true\n"
            f"persistence_location {self.root / 'data'}/\n"
            "autosave_interval 2\n"
            f"max_queued_messages {self.queue_messages}\n"
            f"max_queued_bytes {self.queue_bytes}\n"
            f"max_inflight_messages {BROKER_INFLIGHT}\n"
            f"message_size_limit {BROKER_MESSAGE_LIMIT}\n"
            f"max_packet_size {BROKER_PACKET_LIMIT}\n"
            "set_tcp_nodelay true\n"
            f"sys_interval {self.sys_interval_s}\n"
            "persistent_client_expiration 14d\n"
            f"pid_file {self.pid_file}\n"
            f"log_dest file {self.log}\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
            f"{user}"
            f"listener {self.port} {self.host}\n"
            f"listener {self.tls_port} {self.host}\n"
            f"cafile {certs / 'ca.crt'}\n"
            f"certfile {certs / 'server.crt'}\n"
            f"keyfile {certs / 'server.key'}\n"
        )

    def _make_certs(self) -> None:
        """A throw-away CA and a server certificate for localhost (the TLS listener)."""
        certs = self.root / "certs"
        if (certs / "server.crt").exists():
            return
        certs.mkdir(exist_ok=True)
        openssl = require("openssl")

        def ssl(*args: str) -> None:
            subprocess.run([openssl, *args], cwd=certs, check=True, capture_output=True)

        ssl(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "3650",
            "-subj",
            "/CN=K-City local CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        )
        ssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        )
        (certs / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        ssl(
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "3650",
            "-extfile",
            "san.ext",
            "-out",
            "server.crt",
        )

    def running(self) -> bool:
        return read_pid(self.pid_file) is not None and port_open(self.host, self.port)

    def start(self) -> None:
        self.init()
        if self.running():
            return
        self.pid_file.unlink(missing_ok=True)
        require_free(self.host, self.port, "mosquitto", "KCITY_MQTT_URL")
        require_free(self.host, self.tls_port, "mosquitto (TLS)", "KCITY_MQTT_TLS_PORT")
        # Started as root it opens its files, then drops to the mosquitto user itself.
        run_as(None, [require("mosquitto"), "-c", str(self.conf), "-d"])
        try:
            wait_for_port(self.host, self.port, 10, "mosquitto")
        except StackError as exc:
            tail = self.log.read_text().strip().splitlines()[-1:] if self.log.exists() else []
            raise StackError(
                f"mosquitto did not start: {' '.join(tail) or 'see ' + str(self.log)}"
            ) from exc

    def stop(self) -> None:
        stop_pid(self.pid_file)


def new_secret() -> str:
    return secrets.token_urlsafe(24)
