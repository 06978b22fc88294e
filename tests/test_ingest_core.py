"""The ingest service end to end on the real broker and database: what is stored, once,
and what is dead-lettered, with which stage and reason (DESIGN §5)."""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from devices.payloads import encode_message
from ingest.consumer import Consumer
from kcity.settings import Settings
from kcity.stack.broker_admin import BrokerAdmin
from tests.fixtures.ingest import (
    add_device,
    add_rogue_client,
    count,
    ingest_config,
    publisher,
    running_ingest,
    wait_count,
    wait_until,
)

NOW = datetime.now(UTC).replace(microsecond=0)


def light(ts: datetime, **extra: Any) -> dict[str, Any]:
    return {"ts": ts, "power_w": 60.0, "dim_pct": 50.0, "lamp_on": True, **extra}


def dumps(body: dict[str, Any]) -> bytes:
    """JSON by hand (for payloads the SDK would refuse to encode)."""
    return json.dumps(body, default=lambda t: t.isoformat().replace("+00:00", "Z")).encode()


def topic(pilot: str, device: str, channel: str = "telemetry") -> str:
    return f"kcity/v1/{pilot}/{device}/{channel}"


def readings(db_url: str, device: str) -> int:
    return count(
        db_url, "SELECT count(*) FROM streetlight_readings WHERE device_id = %s", (device,)
    )


def letters(db_url: str, device: str) -> list[tuple[str, str]]:
    with psycopg.connect(db_url) as conn:
        return [
            (r[0], r[1])
            for r in conn.execute(
                "SELECT stage, reason FROM dead_letters WHERE device_id = %s ORDER BY id", (device,)
            )
        ]


def test_messages_are_stored_with_sequence_status_and_last_seen(
    settings: Settings,
    db_url: str,
    conn: psycopg.Connection,
    broker_admin: BrokerAdmin,
    uid: str,
) -> None:
    pilot, dev = f"p-{uid}", f"sl-{uid}"
    add_device(conn, broker_admin, pilot, dev)
    config = ingest_config(settings, f"core-{uid}")
    with running_ingest(config) as running, publisher(settings, dev) as pub:
        for seq in range(50):
            records = [light(NOW - timedelta(minutes=5 * (100 - 2 * seq - k))) for k in range(2)]
            pub.publish(topic(pilot, dev), encode_message(3, seq, records, sent_at=NOW))
        pub.publish(
            topic(pilot, dev, "event"),
            encode_message(
                3, 0, [{"ts": NOW, "type": "fault", "code": "lamp_failure"}], channel="event"
            ),
        )
        pub.publish(
            topic(pilot, dev, "status"), b'{"v":1,"state":"online","fw":"1.2"}', retain=True
        )
        pub.flush()
        assert (
            wait_count(
                db_url,
                "SELECT count(*) FROM streetlight_readings WHERE device_id = %s",
                (dev,),
                100,
            )
            == 100
        )
        wait_until(
            lambda: (
                count(db_url, "SELECT count(*) FROM device_status WHERE device_id = %s", (dev,))
                == 1
            ),
            "the status row",
        )
        wait_until(lambda: running.service.metrics.totals.stored >= 101, "the event")
        with urllib.request.urlopen(f"http://127.0.0.1:{config.metrics_port}/metrics") as r:
            exposition = r.read().decode()
        pub.publish(topic(pilot, dev, "status"), b"", retain=True)  # clear the retained status
    row = conn.execute(
        "SELECT state, payload FROM device_status WHERE device_id = %s", (dev,)
    ).fetchone()
    assert row == ("online", {"v": 1, "state": "online", "fw": "1.2"})
    assert conn.execute(
        "SELECT type, data FROM events WHERE device_id = %s", (dev,)
    ).fetchall() == [("fault", {"code": "lamp_failure"})]
    seqs = conn.execute(
        "SELECT boot, seq, records, sent_at FROM ingest_messages"
        " WHERE device_id = %s AND channel = 'telemetry' ORDER BY seq",
        (dev,),
    ).fetchall()
    assert [s[1] for s in seqs] == list(range(50))
    assert {(s[0], s[2], s[3]) for s in seqs} == {(3, 2, NOW)}
    last_seen = conn.execute("SELECT last_seen FROM devices WHERE id = %s", (dev,)).fetchone()
    assert last_seen is not None and last_seen[0] is not None
    assert f'kcity_ingest_device_last_seen_timestamp_seconds{{device="{dev}"}}' in exposition
    assert 'kcity_ingest_records_stored_total{table="streetlight_readings"} 100.0' in exposition
    assert letters(db_url, dev) == []


def test_duplicates_and_broker_redeliveries_are_stored_once(
    settings: Settings,
    db_url: str,
    conn: psycopg.Connection,
    broker_admin: BrokerAdmin,
    uid: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pilot, dev = f"p-{uid}", f"sl-{uid}"
    add_device(conn, broker_admin, pilot, dev)
    config = ingest_config(settings, f"dup-{uid}")
    messages = [
        encode_message(0, seq, [light(NOW - timedelta(hours=1, seconds=seq))]) for seq in range(40)
    ]
    # First run: the worker commits but "crashes" before acknowledging anything.
    with monkeypatch.context() as m:
        m.setattr(Consumer, "ack", lambda self, tokens: 0)
        with running_ingest(config, forget=False) as first, publisher(settings, dev) as pub:
            for payload in messages:
                pub.publish(topic(pilot, dev), payload)
            pub.flush()
            wait_count(
                db_url, "SELECT count(*) FROM ingest_messages WHERE device_id = %s", (dev,), 40
            )
            assert first.service.metrics.totals.duplicates == 0
    # Second run, same session: the broker redelivers all 40; the device also resends 10.
    with running_ingest(config) as second, publisher(settings, dev) as pub:
        for payload in messages[:10]:
            pub.publish(topic(pilot, dev), payload)
        pub.flush()
        wait_until(
            lambda: second.service.metrics.totals.duplicates >= 50,
            "50 duplicates (40 redelivered, 10 resent)",
        )
    assert second.service.metrics.totals.duplicates == 50
    assert readings(db_url, dev) == 40
    assert count(db_url, "SELECT count(*) FROM ingest_messages WHERE device_id = %s", (dev,)) == 40


def test_out_of_order_and_week_late_data_is_stored(
    settings: Settings,
    db_url: str,
    conn: psycopg.Connection,
    broker_admin: BrokerAdmin,
    uid: str,
) -> None:
    pilot, dev = f"p-{uid}", f"sl-{uid}"
    add_device(conn, broker_admin, pilot, dev)
    week_ago = NOW - timedelta(days=7)
    catch_up = [light(week_ago + timedelta(minutes=5 * i)) for i in range(1000)]
    with running_ingest(ingest_config(settings, f"late-{uid}")), publisher(settings, dev) as pub:
        pub.publish(topic(pilot, dev), encode_message(1, 9, [light(NOW)]))  # newest first
        for seq in range(8, 0, -1):  # then a week of catch-up, newest message first
            chunk = catch_up[(seq - 1) * 125 : seq * 125]
            pub.publish(topic(pilot, dev), encode_message(1, seq, chunk))
        pub.flush()
        assert (
            wait_count(
                db_url,
                "SELECT count(*) FROM streetlight_readings WHERE device_id = %s",
                (dev,),
                1001,
            )
            == 1001
        )
    oldest = conn.execute(
        "SELECT min(ts) FROM streetlight_readings WHERE device_id = %s", (dev,)
    ).fetchone()
    assert oldest == (week_ago,)


def test_each_dead_letter_reason(
    settings: Settings,
    db_url: str,
    conn: psycopg.Connection,
    broker_admin: BrokerAdmin,
    uid: str,
) -> None:
    pilot, other_pilot = f"p-{uid}", f"q-{uid}"
    dev, drone, ghost, revoked = f"sl-{uid}", f"dr-{uid}", f"gh-{uid}", f"rv-{uid}"
    add_device(conn, broker_admin, pilot, dev)
    add_device(conn, broker_admin, pilot, ghost, registered=False)
    add_device(conn, broker_admin, pilot, revoked)
    conn.execute("UPDATE devices SET revoked_at = now() WHERE id = %s", (revoked,))
    add_device(conn, broker_admin, other_pilot, drone, "hybrid_drone")
    rogue = f"rogue-{uid}"
    add_rogue_client(broker_admin, rogue)
    good = light(NOW)
    huge = dumps({"v": 1, "boot": 0, "seq": 99, "records": [good], "pad": "x" * 300_000})
    drone_rec = {"ts": NOW, "flight_id": "f1", "lat": 16.5, "lon": 104.7}
    own = [  # (payload, expected stage, expected reason prefix), all on dev's own topic
        (b"\xff\xfe not utf-8", "decode", "bad utf8"),
        (b'{"v":1,"boot":0,', "decode", "bad json"),
        (dumps({"v": 1, "boot": 0, "records": [1]}), "envelope", "wrong schema"),
        (huge, "size", "oversize"),
        (encode_message(0, 1, [drone_rec]), "registry", "kind mismatch"),
        (
            dumps({"v": 1, "boot": 0, "seq": 2, "device_id": f"sl-x{uid}", "records": [good]}),
            "topic",
            "claims other device",
        ),
        (  # "future" from the moment of publishing, not from the module's import
            encode_message(0, 3, [light(datetime.now(UTC) + timedelta(minutes=10))]),
            "time",
            "future timestamp",
        ),
        (
            encode_message(0, 4, [light(datetime(2014, 12, 31, tzinfo=UTC))]),
            "time",
            "ancient timestamp",
        ),
    ]
    with running_ingest(ingest_config(settings, f"dl-{uid}")):
        with publisher(settings, dev) as pub:
            for payload, _, _ in own:
                pub.publish(topic(pilot, dev), payload)
        with publisher(settings, ghost) as pub:
            pub.publish(topic(pilot, ghost), encode_message(0, 0, [good]))
        with publisher(settings, revoked) as pub:
            pub.publish(topic(pilot, revoked), encode_message(0, 0, [good]))
        with publisher(settings, rogue) as pub:  # drone of other_pilot, on pilot's topic
            pub.publish(topic(pilot, drone), encode_message(0, 0, [drone_rec]))
        devices = [dev, drone, ghost, revoked]
        try:
            wait_until(
                lambda: (
                    count(
                        db_url,
                        "SELECT count(*) FROM dead_letters WHERE device_id = ANY(%s)",
                        (devices,),
                    )
                    >= len(own) + 3
                ),
                "every dead letter",
            )
        except AssertionError as exc:  # say which ones arrived (a rare timeout under load)
            raise AssertionError(f"{exc}: {[letters(db_url, d) for d in devices]}") from exc
    got = letters(db_url, dev)
    assert len(got) == len(own)
    for (_, stage, reason), (got_stage, got_reason) in zip(own, got, strict=True):
        assert got_stage == stage
        assert got_reason.startswith(reason), got_reason
    assert [s for s, r in letters(db_url, ghost) if r.startswith("unknown device")] == ["registry"]
    assert [s for s, r in letters(db_url, revoked) if r.startswith("revoked device")] == [
        "registry"
    ]
    assert [s for s, r in letters(db_url, drone) if r.startswith("wrong pilot")] == ["topic"]
    raw = conn.execute(
        "SELECT topic, payload, pilot_id FROM dead_letters WHERE device_id = %s AND stage = 'size'",
        (dev,),
    ).fetchone()
    assert raw == (topic(pilot, dev), huge, pilot)
    assert readings(db_url, dev) == 0
    assert readings(db_url, ghost) == 0 and readings(db_url, revoked) == 0


def test_unknown_device_provisioned_while_running_is_stored(
    settings: Settings,
    db_url: str,
    conn: psycopg.Connection,
    broker_admin: BrokerAdmin,
    uid: str,
) -> None:
    pilot, first, late = f"p-{uid}", f"sl-{uid}", f"sl2-{uid}"
    add_device(conn, broker_admin, pilot, first)
    with running_ingest(ingest_config(settings, f"reg-{uid}")):
        add_device(conn, broker_admin, pilot, late)  # after the registry was loaded
        with publisher(settings, late) as pub:
            for seq in range(5):
                pub.publish(
                    topic(pilot, late),
                    encode_message(0, seq, [light(NOW - timedelta(minutes=seq))]),
                )
        assert (
            wait_count(
                db_url, "SELECT count(*) FROM streetlight_readings WHERE device_id = %s", (late,), 5
            )
            == 5
        )
    # Only this device's letters: retained messages of other tests' devices may arrive too.
    assert letters(db_url, late) == []


def test_a_poison_record_does_not_take_good_ones_down(
    settings: Settings,
    db_url: str,
    conn: psycopg.Connection,
    broker_admin: BrokerAdmin,
    uid: str,
) -> None:
    pilot, dev = f"p-{uid}", f"sl-{uid}"
    add_device(conn, broker_admin, pilot, dev)
    records: list[Any] = [light(NOW - timedelta(minutes=i)) for i in range(10)]
    records[3] = {**light(NOW - timedelta(minutes=3)), "power_w": "lots"}
    records[6] = light(NOW - timedelta(minutes=6), vehicles=2**40)  # fits JSON, not int4
    records[8] = "'; DROP TABLE streetlight_readings; --"
    with running_ingest(ingest_config(settings, f"poison-{uid}")), publisher(settings, dev) as pub:
        pub.publish(topic(pilot, dev), encode_message(0, 0, records))
        assert (
            wait_count(
                db_url, "SELECT count(*) FROM streetlight_readings WHERE device_id = %s", (dev,), 7
            )
            == 7
        )
        wait_until(lambda: len(letters(db_url, dev)) >= 3, "three dead records")
    got = letters(db_url, dev)
    assert [s for s, _ in got] == ["record", "record", "record"]
    assert any("records[3].power_w" in reason for _, reason in got)
    assert any(reason.startswith("unstorable: vehicles") for _, reason in got)
    stored = conn.execute(
        "SELECT payload FROM dead_letters WHERE device_id = %s ORDER BY id", (dev,)
    ).fetchall()
    assert records[8] in [json.loads(p[0]) for p in stored]
    assert count(db_url, "SELECT records FROM ingest_messages WHERE device_id = %s", (dev,)) == 7
