"""A batch ingest held through a database outage commits minutes after it stamped its
`received_at`, behind the horizon the rollups look for new rows from (less their slack).
The writer notes it in `late_commits` (migration 016) and the next refresh looks back to it:
the quality rollup stays equal to a recount of the raw rows. Before, those rows were never
rolled up, and `kcity quality` and the API undercounted the outage's days for good."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg

from analytics.queries import quality_rows as raw_rows
from devices.payloads import encode_message
from devices.sim import StreetlightSimConfig
from devices.sim.streetlights import simulate_streetlights
from ingest.batch_writer import LATE_AFTER
from ingest.direct import judge, store
from ingest.registry import load_devices
from kcity import quality_days, rollups
from kcity.analyses import _registered
from tests.test_rollups import _numbered, _pilot

START = date(2026, 10, 1)


def test_the_writer_notes_late_batches_below_the_rollups_slack() -> None:
    assert timedelta(seconds=rollups.SLACK_S) / 2 > LATE_AFTER


def test_a_batch_held_through_an_outage_reaches_the_quality_rollup(db_url: str, uid: str) -> None:
    cfg = StreetlightSimConfig(
        start=START, days=2, seed=11, pilot_id=f"l{uid}", devices=3, batch_records=12
    )
    pilot = cfg.pilot_id
    batches = [
        b for b in _numbered(simulate_streetlights(cfg).batches()) if b[0].channel == "telemetry"
    ]
    half = len(batches) // 2
    with psycopg.connect(db_url) as conn:
        _pilot(conn, "madiun", pilot, cfg.device_ids())
        conn.commit()
        registry = load_devices(conn)

        def deliver(part: list[Any], received_at: datetime | None = None) -> None:
            for batch, seq in part:
                raw = encode_message(batch.boot, seq, batch.items, batch.channel)
                topic = f"kcity/v1/{pilot}/{batch.device_id}/telemetry"
                at = received_at or datetime.now(UTC)
                store(conn, topic, raw, judge(topic, raw, registry, at), at)

        deliver(batches[:half])
        rollups.refresh(conn, slack_s=60.0)
        held = datetime.now(UTC) - timedelta(minutes=10)  # received then, written now
        deliver(batches[half:], held)
        noted = conn.execute(
            "SELECT count(*) FROM late_commits WHERE oldest = %s", (held,)
        ).fetchone()
        rollups.refresh(conn, slack_s=60.0)
        args: dict[str, Any] = {
            "kind": "streetlight",
            "devices": _registered(conn, pilot),
            "timezone": "Asia/Jakarta",
            "interval_s": 300.0,
            "start": START,
            "end": START + timedelta(days=3),
        }
        rolled = quality_days.quality_rows(conn, **args).rows()
        recount = raw_rows(conn, **args).rows()
    assert noted == (len(batches) - half,)
    assert sum(r.records for r in recount) == sum(len(b.items) for b, _ in batches)
    assert rolled == recount
