"""Issue #17: Grafana's `grafana_reader` (created by the local stack with a password in
the password file, granted by kcity/grants.py after every migration) sees the data through
views of the same names, and no secret: no token hashes, no device password hashes, no
write. Tried by logging in as that role."""

from __future__ import annotations

import psycopg
import pytest

from kcity.grants import READER_ROLE


@pytest.fixture
def reader(db_url: str, conn: psycopg.Connection, uid: str) -> psycopg.Connection:
    conn.execute(
        "INSERT INTO pilots (id, name, kind, country, city, timezone, latitude, longitude,"
        " definition) VALUES (%s, 'P', 'streetlight', 'ID', 'C', 'UTC', 0, 0, '{}')",
        (f"p{uid}",),
    )
    conn.execute(
        "INSERT INTO devices (id, pilot_id, kind, password_hash) VALUES"
        " (%s, %s, 'streetlight', 'scrypt$secret')",
        (f"d{uid}", f"p{uid}"),
    )
    conn.execute(
        "INSERT INTO api_tokens (token_hash, role, label) VALUES (%s, 'admin', 'x')",
        (f"hash{uid}",),
    )
    url = db_url.replace("postgresql://kcity@", f"postgresql://{READER_ROLE}@", 1)
    return psycopg.connect(url, autocommit=True)


def test_grafana_reader_reads_data_but_no_secret(reader: psycopg.Connection, uid: str) -> None:
    with reader as c:
        row = c.execute("SELECT pilot_id, kind FROM devices WHERE id = %s", (f"d{uid}",))
        assert row.fetchone() == (f"p{uid}", "streetlight")
        rows = c.execute("SELECT * FROM devices WHERE id = %s", (f"d{uid}",))
        names = [col.name for col in rows.description or []]
        assert rows.fetchall() and "pilot_id" in names and "password_hash" not in names
        assert c.execute("SELECT count(*) FROM streetlight_readings").fetchone() == (0,)
        refused = {
            "SELECT password_hash FROM devices": psycopg.errors.UndefinedColumn,
            "SELECT token_hash FROM api_tokens": psycopg.errors.InsufficientPrivilege,
            "SELECT count(*) FROM api_tokens": psycopg.errors.InsufficientPrivilege,
            "SELECT password_hash FROM public.devices": psycopg.errors.InsufficientPrivilege,
            "SELECT count(*) FROM public.pilots": psycopg.errors.InsufficientPrivilege,
            "INSERT INTO api_tokens (token_hash, role) VALUES ('x', 'admin')": (
                psycopg.errors.InsufficientPrivilege
            ),
            "UPDATE pilots SET name = 'x'": psycopg.errors.InsufficientPrivilege,
            "UPDATE public.pilots SET name = 'x'": psycopg.errors.InsufficientPrivilege,
            "CREATE TABLE grafana.mine (x int)": psycopg.errors.InsufficientPrivilege,
            "CREATE VIEW grafana.tokens AS SELECT * FROM public.api_tokens": (
                psycopg.errors.InsufficientPrivilege
            ),
        }
        for statement, error in refused.items():
            with pytest.raises(error):
                c.execute(statement)
