"""A private PostgreSQL + TimescaleDB cluster under the data directory (`kcity up`, tests).

No local user is trusted (issue #17): every connection, over the socket or TCP, is
authenticated with scram-sha-256. The passwords of the owner and of the service roles
(kcity.grants) are generated once into a libpq password file (`passfile`, 0600 from its
creation); URLs name that file, never a password. A cluster made by an older version
(trust authentication) is switched over at its next start.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from kcity.errors import StackError
from kcity.grants import ROLES
from kcity.settings import passfile_password
from kcity.stack.dynsec_file import write_private
from kcity.stack.processes import give_to, make_traversable, port_open, require_free, run_as

SERVER_USER = "postgres"
SUPERUSER = "kcity"
HBA = (
    "# K-City local stack: every connection needs a password (scram-sha-256).\n"
    "local all all scram-sha-256\n"
    "host all all 127.0.0.1/32 scram-sha-256\n"
    "host all all ::1/128 scram-sha-256\n"
)


def scram_verifier(password: str, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores (RFC 5802/7677), computed here so that
    the password itself never reaches the server's logs or statistics."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    stored = hashlib.sha256(hmac.new(salted, b"Client Key", "sha256").digest()).digest()
    server = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = [base64.b64encode(x).decode() for x in (salt, stored, server)]
    return f"SCRAM-SHA-256${iterations}:{b64[0]}${b64[1]}:{b64[2]}"


@dataclass(frozen=True)
class PostgresServer:
    root: Path  # <data_dir>/pg
    port: int
    passfile: Path  # <data_dir>/pgpass: libpq's password file, 0600
    bindir: Path = Path("/usr/lib/postgresql/15/bin")
    host: str = "127.0.0.1"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def url(self, dbname: str = "postgres", user: str = SUPERUSER) -> str:
        return f"postgresql://{user}@{self.host}:{self.port}/{dbname}?passfile={self.passfile}"

    def passwords(self) -> dict[str, str]:
        """user → password, from the password file."""
        found = {user: passfile_password(self.passfile, user) for user in (SUPERUSER, *ROLES)}
        return {user: pw for user, pw in found.items() if pw}

    def _ensure_passfile(self) -> dict[str, str]:
        """Generate the missing passwords (owner and service roles) into the password file."""
        known = self.passwords()
        wanted = {
            user: known.get(user) or secrets.token_urlsafe(24) for user in (SUPERUSER, *ROLES)
        }
        if wanted != known:
            self.passfile.parent.mkdir(parents=True, exist_ok=True)
            write_private(
                self.passfile, "".join(f"*:*:*:{user}:{pw}\n" for user, pw in wanted.items())
            )
        return wanted

    def _pg(self, tool: str) -> str:
        path = self.bindir / tool
        if not path.exists():
            raise StackError(f"{path} is missing: run scripts/bootstrap")
        return str(path)

    def init(self) -> None:
        """Create the cluster once; later calls do nothing."""
        if (self.data / "PG_VERSION").exists():
            return
        password = self._ensure_passfile()[SUPERUSER]
        self.root.mkdir(parents=True, exist_ok=True)
        make_traversable(self.root)
        give_to(SERVER_USER, self.root)
        pwfile = self.root / f".pw-{secrets.token_hex(4)}"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(password + "\n")
        try:
            give_to(SERVER_USER, pwfile)
            run_as(
                SERVER_USER,
                [
                    self._pg("initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    SUPERUSER,
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ],
            )
        finally:
            pwfile.unlink(missing_ok=True)
        (self.data / "pg_hba.conf").write_text(HBA)
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
        """Start the server if it is not running; in any case make its authentication and
        the service roles' logins match the password file."""
        self.init()
        if not self.running():
            require_free(self.host, self.port, "TimescaleDB", "KCITY_DATABASE_URL")
            self._pg_ctl_start()
        self._secure()

    def _secure(self) -> None:
        passwords = self._ensure_passfile()
        hba = self.data / "pg_hba.conf"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            if hba.read_text() != HBA:  # a cluster of an older version: trust → scram
                conn.execute(
                    sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                        sql.Identifier(SUPERUSER), sql.Literal(scram_verifier(passwords[SUPERUSER]))
                    )
                )
                hba.write_text(HBA)
                conn.execute("SELECT pg_reload_conf()")
            for role in ROLES:
                exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
                verb = "ALTER" if exists.fetchone() else "CREATE"
                conn.execute(
                    sql.SQL("{} ROLE {} LOGIN PASSWORD {}").format(
                        sql.SQL(verb),
                        sql.Identifier(role),
                        sql.Literal(scram_verifier(passwords[role])),
                    )
                )

    def _pg_ctl_start(self) -> None:
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
