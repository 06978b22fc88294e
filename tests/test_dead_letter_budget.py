"""Dead letters bounded per device (DESIGN §5, issue #18): the first N of a device in a
minute are kept in full, the rest counted per device and reason — in the table and in
Prometheus — and another device's data is untouched."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import psycopg

from ingest.dead_letter_budget import DeadLetterBudget
from ingest.registry import DeviceInfo
from ingest.validate import Outcome, dead, validate
from kcity.settings import Settings
from kcity.stack.broker_admin import BrokerAdmin
from tests.fixtures.ingest import (
    add_device,
    count,
    ingest_config,
    publisher,
    running_ingest,
    wait_count,
)

T0 = datetime(2026, 12, 2, 7, 0, 10, tzinfo=UTC)


def letters(device: str, n: int, code: str = "record_schema") -> Outcome:
    return Outcome(
        device_id=device,
        dead_letters=tuple(
            dead(f"kcity/v1/p/{device}/telemetry", b"{}", "record", code, "x", "p", device, i)
            for i in range(n)
        ),
    )


def test_budget_keeps_the_first_n_a_minute_and_counts_the_rest() -> None:
    budget = DeadLetterBudget(per_minute=5)
    first = budget.apply(letters("a", 3), T0)
    assert (len(first.dead_letters), first.suppressed) == (3, ())
    second = budget.apply(letters("a", 4), T0 + timedelta(seconds=20))
    assert len(second.dead_letters) == 2
    assert [(s.device_id, s.stage, s.code, s.count) for s in second.suppressed] == [
        ("a", "record", "record_schema", 2)
    ]
    assert budget.spent("a", T0) and not budget.spent("b", T0)
    other = budget.apply(letters("b", 5), T0)  # another device has its own budget
    assert (len(other.dead_letters), other.suppressed) == (5, ())
    later = budget.apply(letters("a", 2), T0 + timedelta(seconds=50))  # next minute: fresh
    assert (len(later.dead_letters), later.suppressed) == (2, ())
    clean = Outcome(device_id="a")
    assert budget.apply(clean, T0) is clean


def test_a_flooding_device_costs_counters_and_leaves_others_alone(
    settings: Settings,
    db_url: str,
    conn: psycopg.Connection,
    broker_admin: BrokerAdmin,
    uid: str,
) -> None:
    pilot, bad, good = f"p-{uid}", f"flood-{uid}", f"good-{uid}"
    add_device(conn, broker_admin, pilot, bad)
    add_device(conn, broker_admin, pilot, good)
    now = datetime.now(UTC).replace(microsecond=0)
    messages, per_message, budget = 120, 200, 40
    config = ingest_config(settings, f"budget-{uid}", dead_letters_per_minute=budget)
    invalid = [
        {
            "ts": (now - timedelta(seconds=i)).isoformat(),
            "power_w": -1.0,
            "dim_pct": 5.0,
            "lamp_on": True,
        }
        for i in range(per_message)
    ]
    with running_ingest(config) as running:
        with publisher(settings, bad) as pub:
            for seq in range(messages):
                body = {"v": 1, "boot": 0, "seq": seq, "records": invalid}
                pub.publish(f"kcity/v1/{pilot}/{bad}/telemetry", json.dumps(body).encode())
        with publisher(settings, good) as pub:
            rec = {"ts": now.isoformat(), "power_w": 3.0, "dim_pct": 5.0, "lamp_on": True}
            body = {"v": 1, "boot": 0, "seq": 0, "records": [rec]}
            pub.publish(f"kcity/v1/{pilot}/{good}/telemetry", json.dumps(body).encode())
        sql = "SELECT count(*) FROM ingest_messages WHERE device_id = %s"
        wait_count(db_url, sql, (bad,), messages)
        wait_count(db_url, sql, (good,), 1)
        metric = running.service.metrics.registry.get_sample_value(
            "kcity_ingest_dead_letters_suppressed_total",
            {"device": bad, "stage": "record", "reason": "record_schema"},
        )
    total = messages * per_message
    kept = count(db_url, "SELECT count(*) FROM dead_letters WHERE device_id = %s", (bad,))
    rows = conn.execute(
        "SELECT pilot_id, stage, reason, sum(suppressed), count(DISTINCT minute)"
        " FROM dead_letters_suppressed WHERE device_id = %s GROUP BY 1, 2, 3",
        (bad,),
    ).fetchall()
    minutes = rows[0][4] if rows else 0
    # Every invalid record is either kept in full or counted; at most `budget` a minute kept.
    assert kept + sum(r[3] for r in rows) == total
    assert budget <= kept <= budget * (minutes + 1)
    assert [(r[0], r[1], r[2]) for r in rows] == [(pilot, "record", "record_schema")]
    assert metric == total - kept
    assert count(db_url, "SELECT count(*) FROM dead_letters WHERE device_id = %s", (good,)) == 0
    stored = "SELECT count(*) FROM streetlight_readings WHERE device_id = %s"
    assert (count(db_url, stored, (good,)), count(db_url, stored, (bad,))) == (1, 0)


def test_quiet_judging_gives_the_same_verdict_per_record() -> None:
    """Once a device's budget is spent its letters are only counted: the quiet path must
    store the same rows and count the same reasons as the full path."""
    now = datetime(2026, 12, 2, 7, 0, tzinfo=UTC)
    records: list[dict[str, object]] = [
        {
            "ts": (now - timedelta(seconds=i)).isoformat(),
            "power_w": 5.0 if i % 7 else -1.0,
            "dim_pct": 50.0,
            "lamp_on": True,
        }
        for i in range(60)
    ]
    records[3]["ts"] = "2010-01-01T00:00:00Z"  # time: ancient
    records[4]["ts"] = (now + timedelta(hours=1)).isoformat()  # time: future
    records[5]["vehicles"] = 2**40  # record: unstorable (int4)
    records[6]["extra"] = 1  # record: schema
    raw = json.dumps({"v": 1, "boot": 2, "seq": 9, "records": records}).encode()
    registry = {"d-1": DeviceInfo("p-1", "streetlight")}
    topic = "kcity/v1/p-1/d-1/telemetry"
    full = validate(topic, raw, registry, now, unknown_is_final=True)
    quiet = validate(topic, raw, registry, now, unknown_is_final=True, quiet=True)
    assert isinstance(full, Outcome) and isinstance(quiet, Outcome)
    assert quiet.rows == full.rows and quiet.message == full.message
    reasons = Counter((d.stage, d.code) for d in full.dead_letters)
    assert Counter((d.stage, d.code) for d in quiet.dead_letters) == reasons
    assert reasons == {
        ("record", "record_schema"): 1 + 60 // 7 + 1,
        ("time", "ancient_timestamp"): 1,
        ("time", "future_timestamp"): 1,
        ("record", "unstorable"): 1,
    }


def test_quiet_judging_of_json_nested_too_deep_is_the_full_verdict() -> None:
    """msgspec gives up on deep nesting with RecursionError: the quiet path must hand such a
    message to the full path (bad_json, the device's letter), not fail as an internal error
    whose letter names no device (the fuzz test lost two messages that way)."""
    now = datetime(2026, 12, 2, 7, 0, tzinfo=UTC)
    registry = {"d-1": DeviceInfo("p-1", "streetlight")}
    topic = "kcity/v1/p-1/d-1/telemetry"
    raw = b'{"v":1,"boot":0,"seq":1,"records":' + b"[" * 20000 + b"]" * 20000 + b"}"
    verdicts = [
        validate(topic, raw, registry, now, unknown_is_final=True, quiet=quiet)
        for quiet in (False, True)
    ]
    letters = [
        [(d.stage, d.code, d.pilot_id, d.device_id) for d in v.dead_letters]
        for v in verdicts
        if isinstance(v, Outcome)
    ]
    assert letters == [[("decode", "bad_json", "p-1", "d-1")]] * 2
