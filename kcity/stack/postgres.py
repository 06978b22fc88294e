"""A private PostgreSQL + TimescaleDB cluster under the data directory (`kcity up`, tests)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psycopg

from kcity.errors import StackError
from kcity.stack.processes import give_to, make_traversable, port_open, run_as

SERVER_USER = "postgres"
SUPERUSER = "kcity"


@dataclass(frozen=True)
class PostgresServer:
    root: Path  # <data_dir>/pg
    port: int
    bindir: Path = Path("/usr/lib/postgresql/15/bin")
    host: str = "127.0.0.1"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{dbname}"

    def _pg(self, tool: str) -> str:
        path = self.bindir / tool
        if not path.exists():
            raise StackError(f"{path} is missing: run scripts/bootstrap")
        return str(path)

    def init(self) -> None:
        """Create the cluster once; later calls do nothing."""
        if (self.data / "PG_VERSION").exists():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        make_traversable(self.root)
        give_to(SERVER_USER, self.root)
        run_as(
            SERVER_USER,
            [
                self._pg("initdb"),
                "-D",
                str(self.data),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# K-City local stack\n"
                f"port = {self.port}\n"
                f"listen_addresses = '{self.host}'\n"
                f"unix_socket_directories = '{self.data}'\n"
                "shared_preload_libraries = 'timescaledb'\n"
                "timescaledb.telemetry_level = off\n"
                "max_connections = 200\n"
                "shared_buffers = 256MB\n"
                "max_wal_size = 2GB\n"
                "log_min_messages = warning\n"
            )

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists() and port_open(self.host, self.port)

    def start(self) -> None:
        self.init()
        if self.running():
            return
        run_as(
            SERVER_USER,
            [
                self._pg("pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-w",
                "-t",
                "60",
                "-o",
                f"-p {self.port}",
                "start",
            ],
        )

    def stop(self) -> None:
        if not (self.data / "postmaster.pid").exists():
            return
        run_as(
            SERVER_USER,
            [self._pg("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
            check=False,
        )

    def create_database(self, name: str) -> None:
        """Create database `name` with the timescaledb extension, if it does not exist."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{name}"')
        with psycopg.connect(self.url(name), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
