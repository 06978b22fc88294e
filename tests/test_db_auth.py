"""Issue #17: no local user is trusted by the local cluster, and each service role is
refused outside its grant (kcity/grants.py). Tried as an attacker would: another OS user
(`nobody`) with psql over TCP, the owner's socket without a password, each login doing
what it must not."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest

from kcity import schema
from kcity.grants import API_ROLE, INGEST_ROLE
from kcity.schema import migrate
from kcity.stack import postgres as pg
from kcity.stack.local import LocalStack
from kcity.stack.processes import free_port, is_root

PSQL = shutil.which("psql") or "/usr/bin/psql"


def as_user(user: str, argv: list[str]) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "PGCONNECT_TIMEOUT": "5",
        "HOME": "/nonexistent",
    }
    return subprocess.run(
        ["runuser", "-u", user, "--", *argv], env=env, capture_output=True, text=True, timeout=60
    )


def role_url(db_url: str, role: str) -> str:
    return db_url.replace("postgresql://kcity@", f"postgresql://{role}@", 1)


@pytest.mark.skipif(not is_root(), reason="runuser needs root (the stack's own case)")
def test_another_os_user_cannot_connect_or_read_the_passwords(stack: LocalStack) -> None:
    port, passfile = stack.settings.database_port, stack.postgres.passfile
    assert stack.postgres.passwords().keys() >= {"kcity", INGEST_ROLE, API_ROLE}
    for user in ("kcity", INGEST_ROLE, "postgres"):
        for url in (
            f"postgresql://{user}@127.0.0.1:{port}/postgres",
            f"postgresql://{user}@127.0.0.1:{port}/postgres?passfile={passfile}",
        ):
            run = as_user("nobody", [PSQL, url, "-Atc", "SELECT 1"])
            assert run.returncode != 0 and run.stdout == "", (url, run.stdout)
            assert "password" in run.stderr, run.stderr  # refused for the password, not else
    run = as_user("nobody", ["cat", str(passfile)])
    assert run.returncode != 0 and "Permission denied" in run.stderr


def test_the_socket_wants_a_password_too(stack: LocalStack) -> None:
    """Even the owner's OS user, on the Unix socket, gets nothing without the password."""
    socket_dir, port = stack.postgres.data, stack.settings.database_port
    bare = f"host={socket_dir} port={port} user=kcity dbname=postgres passfile=/nonexistent"
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(bare, connect_timeout=5)
    with psycopg.connect(
        f"{bare[: bare.index('passfile')]}passfile={stack.postgres.passfile}"
    ) as c:
        assert c.execute("SELECT current_user").fetchone() == ("kcity",)  # reachable with it
    hba = (stack.postgres.data / "pg_hba.conf").read_text()
    assert "trust" not in hba and "peer" not in hba


def test_the_password_file_is_private_from_its_first_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Created 0600 even under umask 0, without any chmod after the write."""

    def no_chmod(*args: object, **kwargs: object) -> None:
        raise AssertionError("the password file was chmod'ed after its creation")

    monkeypatch.setattr(os, "chmod", no_chmod)
    monkeypatch.setattr(os, "fchmod", no_chmod)
    server = pg.PostgresServer(tmp_path / "pg", free_port(), tmp_path / "pgpass")
    old = os.umask(0)
    try:
        passwords = server._ensure_passfile()
    finally:
        os.umask(old)
    assert stat.S_IMODE(server.passfile.stat().st_mode) == 0o600
    assert len(set(passwords.values())) == len(passwords) == 4  # one password per login
    assert server._ensure_passfile() == passwords  # kept, not regenerated


def test_the_stacks_password_file_is_0600(stack: LocalStack) -> None:
    assert stat.S_IMODE(stack.postgres.passfile.stat().st_mode) == 0o600


REFUSED = {
    INGEST_ROLE: [
        "SELECT count(*) FROM api_tokens",
        "SELECT password_hash FROM devices",
        "INSERT INTO analytics_results (pilot_id, analysis, method, method_version,"
        " window_from, window_to, parameters, input_hash, result) VALUES"
        " ('p', 'savings', 'm', '1', '2026-01-01', '2026-01-02', '{}', 'h', '{}')",
        "DELETE FROM dead_letters",
        "TRUNCATE streetlight_readings",
        "INSERT INTO devices (id, pilot_id, kind, password_hash) VALUES ('x', 'p', 'k', 'h')",
        "UPDATE pilots SET name = 'x'",
        "CREATE TABLE mine (x int)",
    ],
    API_ROLE: [
        "INSERT INTO api_tokens (token_hash, role, label) VALUES ('h', 'admin', 'mint')",
        "UPDATE api_tokens SET role = 'admin'",
        "DELETE FROM api_tokens",
        "SELECT count(*) FROM schema_migrations",
        "CREATE TABLE mine (x int)",
        "DROP TABLE streetlight_readings",
        "TRUNCATE devices",
        "COPY devices TO PROGRAM 'cat'",
        "ALTER ROLE kcity_api SUPERUSER",
    ],
}


@pytest.mark.parametrize(
    ("role", "statement"),
    [(r, s) for r, statements in REFUSED.items() for s in statements],
    ids=[f"{r}:{s[:40]}" for r, statements in REFUSED.items() for s in statements],
)
def test_each_role_is_refused_outside_its_grant(db_url: str, role: str, statement: str) -> None:
    with psycopg.connect(role_url(db_url, role)) as c:
        assert c.execute("SELECT current_user").fetchone() == (role,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute(statement)


def test_each_role_can_do_its_job(db_url: str, conn: psycopg.Connection) -> None:
    """The other side of the refusals: the grants are not simply empty."""
    conn.execute(
        "INSERT INTO pilots (id, name, kind, country, city, timezone, latitude, longitude,"
        " definition) VALUES ('rp', 'P', 'streetlight', 'ID', 'C', 'UTC', 0, 0, '{}')"
    )
    with psycopg.connect(role_url(db_url, API_ROLE)) as c:
        c.execute(
            "INSERT INTO devices (id, pilot_id, kind, password_hash) VALUES"
            " ('rd', 'rp', 'streetlight', 'scrypt$x')"
        )
        assert c.execute("SELECT count(*) FROM api_tokens").fetchone() is not None
    with psycopg.connect(role_url(db_url, INGEST_ROLE)) as c:
        assert c.execute("SELECT kind FROM devices WHERE id = 'rd'").fetchone() == ("streetlight",)
        c.execute(
            "INSERT INTO dead_letters (topic, payload, stage, reason) VALUES"
            " ('t', 'x', 'json', 'r')"
        )
    assert conn.execute("SELECT count(*) FROM dead_letters").fetchone() == (1,)


@pytest.fixture
def old_cluster() -> Iterator[pg.PostgresServer]:
    root = Path(tempfile.mkdtemp(prefix="kcity-oldpg-"))
    root.chmod(0o755)
    server = pg.PostgresServer(root / "pg", free_port(), root / "pgpass")
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_a_trust_cluster_of_an_older_version_is_secured_at_its_next_start(
    old_cluster: pg.PostgresServer,
) -> None:
    """Yesterday's `.kcity`: trust authentication, no password file. `kcity up` today keeps
    its data and leaves it refusing connections without the password."""
    server = old_cluster
    server.start()
    with psycopg.connect(server.url(), autocommit=True) as c:  # make it as it was
        c.execute("ALTER ROLE kcity PASSWORD NULL")
        c.execute("CREATE TABLE yesterday (x int)")
        c.execute("INSERT INTO yesterday VALUES (42)")
    (server.data / "pg_hba.conf").write_text(
        "local all all trust\nhost all all 127.0.0.1/32 trust\n"
    )
    server.stop()
    server.passfile.unlink()
    server._pg_ctl_start()
    no_password = f"postgresql://kcity@127.0.0.1:{server.port}/postgres?passfile=/nonexistent"
    with psycopg.connect(no_password) as c:  # the old state: anyone gets in
        assert c.execute("SELECT x FROM yesterday").fetchone() == (42,)

    server.start()  # what `kcity up` does to a running cluster

    assert stat.S_IMODE(server.passfile.stat().st_mode) == 0o600
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(no_password, connect_timeout=5)
    with psycopg.connect(server.url()) as c:
        assert c.execute("SELECT x FROM yesterday").fetchone() == (42,)
    passfile = parse_qs(urlsplit(server.url()).query)["passfile"][0]
    assert passfile == str(server.passfile)


def test_a_later_migration_may_drop_a_table_grafana_reads(
    stack: LocalStack, uid: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader's views are dropped before pending migrations and made again after: a
    view never keeps a migration from dropping a table (it would fail on the dependency)."""
    name = f"t_views_{uid}"
    stack.postgres.create_database(name)
    try:
        with psycopg.connect(stack.postgres.url(name), autocommit=True) as c:
            migrate(c)
            c.execute("CREATE TABLE public.doomed (x int)")
            migrate(c)  # nothing pending: the grants alone make grafana.doomed
            assert c.execute("SELECT to_regclass('grafana.doomed')").fetchone() != (None,)
            shipped = schema.migration_files()
            later = (10_000, "10000_drop.sql", "DROP TABLE public.doomed")
            monkeypatch.setattr(schema, "migration_files", lambda: [*shipped, later])
            assert migrate(c) == ["10000_drop.sql"]
            assert c.execute("SELECT to_regclass('grafana.doomed')").fetchone() == (None,)
            assert c.execute("SELECT to_regclass('grafana.pilots')").fetchone() != (None,)
    finally:
        stack.postgres.drop_database(name)


def test_grafanas_data_source_logs_in_as_the_reader(stack: LocalStack, db_url: str) -> None:
    """`kcity dashboards push --create-datasource` hands Grafana the reader's login with its
    password (Grafana stores a password, not a file name); it works and sees no secret."""
    settings = stack.settings.model_copy(update={"database_url": db_url})
    url = urlsplit(settings.grafana_db_url)
    assert url.username == "grafana_reader" and "passfile" not in url.query
    assert url.password == stack.postgres.passwords()["grafana_reader"]
    with psycopg.connect(settings.grafana_db_url) as c:
        assert c.execute("SELECT current_user").fetchone() == ("grafana_reader",)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("SELECT count(*) FROM api_tokens")
