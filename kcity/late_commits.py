"""Batches ingest committed long after it stamped them (migration 016).

Every incremental job here (the rollups, the dashboards' rollups, the kept savings nights)
finds what changed through `received_at` since its last horizon, which it holds back by a
slack for the time between ingest's stamp and its commit. A batch held through a database
outage commits later than that: the writer notes its oldest stamp in `late_commits` in the
same transaction, and a job looks back to it.
"""

from __future__ import annotations

from datetime import datetime

import psycopg


def lookback(conn: psycopg.Connection, since: datetime) -> datetime:
    """The horizon to look for changed rows from: `since`, or the oldest stamp of a batch
    committed after it, if older."""
    row = conn.execute(
        "SELECT least(%(since)s::timestamptz, min(oldest)) FROM late_commits"
        " WHERE committed_at >= %(since)s",
        {"since": since},
    ).fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]
