"""Issue #17: the deployment's `grafana_reader` (created by deploy/timescaledb/initdb before
the first migration, reading through default privileges) sees the data but no secret: no
token hashes, no device password hashes. Tried by connecting as that role."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from kcity.schema import migrate
from kcity.stack.local import LocalStack

ROOT = Path(__file__).resolve().parents[1]


def deploy_grants() -> list[str]:
    """The SQL the compose init script runs, with its psql variables filled in."""
    script = (ROOT / "deploy/timescaledb/initdb/10-grafana-reader.sh").read_text()
    body = script.split("<<'SQL'\n", 1)[1].split("\nSQL", 1)[0]
    body = body.replace(":'reader_password'", "'reader-pw'").replace(':"owner"', "kcity")
    return [
        s.strip().removesuffix("\\gexec").strip()
        for s in re.split(r";\s*\n|\\gexec\n", body)
        if s.strip() and "ROLE grafana_reader LOGIN" not in s
    ]


@pytest.fixture
def reader_db(stack: LocalStack) -> Iterator[str]:
    name = f"t_reader_{uuid.uuid4().hex[:6]}"
    stack.postgres.create_database(name)
    url = stack.postgres.url(name)
    with psycopg.connect(url, autocommit=True) as c:
        if c.execute("SELECT 1 FROM pg_roles WHERE rolname = 'grafana_reader'").fetchone() is None:
            c.execute("CREATE ROLE grafana_reader LOGIN")
        for statement in deploy_grants():
            c.execute(statement)
        migrate(c)
        c.execute(
            "INSERT INTO pilots (id, name, kind, country, city, timezone, latitude, longitude,"
            " definition) VALUES ('p1', 'P', 'streetlight', 'ID', 'C', 'UTC', 0, 0, '{}')"
        )
        c.execute(
            "INSERT INTO devices (id, pilot_id, kind, password_hash) VALUES"
            " ('d1', 'p1', 'streetlight', 'scrypt$secret')"
        )
    yield url.replace("postgresql://kcity@", "postgresql://grafana_reader@")
    stack.postgres.drop_database(name)


def test_grafana_reader_reads_data_but_no_secret(reader_db: str) -> None:
    with psycopg.connect(reader_db, autocommit=True) as c:
        assert c.execute("SELECT id, pilot_id, kind FROM devices").fetchall() == [
            ("d1", "p1", "streetlight")
        ]
        assert c.execute("SELECT count(*) FROM streetlight_readings").fetchone() == (0,)
        for sql in (
            "SELECT password_hash FROM devices",
            "SELECT * FROM devices",
            "SELECT token_hash FROM api_tokens",
            "SELECT count(*) FROM api_tokens",
            "INSERT INTO api_tokens (token_hash, role) VALUES ('x', 'admin')",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                c.execute(sql)
