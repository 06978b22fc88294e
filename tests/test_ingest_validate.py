"""The pure validation step and the registry reload policy, without services."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from devices.payloads import encode_message
from ingest.config import IngestConfig
from ingest.errors import ConfigError
from ingest.registry import DeviceInfo, Registry
from ingest.tables import STREETLIGHT
from ingest.validate import Outcome, UnknownDevice, validate

NOW = datetime(2024, 8, 1, 12, tzinfo=UTC)
REGISTRY = {
    "sl-1": DeviceInfo("madiun", "streetlight"),
    "dr-1": DeviceInfo("mukdahan", "hybrid_drone"),
}
TOPIC = "kcity/v1/madiun/sl-1/telemetry"


def light(ts: datetime, **extra: object) -> dict[str, object]:
    return {"ts": ts, "power_w": 60.0, "dim_pct": 50.0, "lamp_on": True, **extra}


def judge(raw: bytes, topic: str = TOPIC, *, final: bool = True) -> Outcome | UnknownDevice:
    return validate(topic, raw, REGISTRY, NOW, unknown_is_final=final)


def test_good_message_becomes_rows_in_column_order() -> None:
    out = judge(encode_message(1, 2, [light(NOW - timedelta(minutes=1), vehicles=3)]))
    assert isinstance(out, Outcome)
    assert out.table is STREETLIGHT and not out.dead_letters
    row = dict(zip(STREETLIGHT.columns, out.rows[0], strict=True))
    assert row["device_id"] == "sl-1" and row["received_at"] == NOW and row["vehicles"] == 3
    assert out.message is not None and (out.message.boot, out.message.seq) == (1, 2)


def test_unknown_device_waits_for_a_fresh_registry_before_a_verdict() -> None:
    raw = encode_message(0, 0, [light(NOW)])
    topic = "kcity/v1/madiun/sl-new/telemetry"
    assert judge(raw, topic, final=False) == UnknownDevice("sl-new")
    final = judge(raw, topic, final=True)
    assert isinstance(final, Outcome)
    assert [(d.stage, d.code) for d in final.dead_letters] == [("registry", "unknown_device")]


def test_time_window_and_column_ranges_reject_single_records() -> None:
    records = [
        light(NOW),
        light(NOW + timedelta(minutes=6)),
        light(datetime(2014, 1, 1, tzinfo=UTC)),
        light(NOW - timedelta(days=1), vehicles=2**31),
    ]
    out = judge(encode_message(0, 0, records))
    assert isinstance(out, Outcome)
    assert len(out.rows) == 1
    assert [d.code for d in out.dead_letters] == [
        "future_timestamp",
        "ancient_timestamp",
        "unstorable",
    ]
    assert out.message is not None and out.message.records == 1


def test_text_that_postgres_cannot_hold_is_refused_before_the_copy() -> None:
    rec = {"ts": NOW, "flight_id": "f\x00", "lat": 1.0, "lon": 2.0}
    out = validate(
        "kcity/v1/mukdahan/dr-1/telemetry",
        encode_message(0, 0, [rec]),
        REGISTRY,
        NOW,
        unknown_is_final=True,
    )
    assert isinstance(out, Outcome)
    assert not out.rows and [d.code for d in out.dead_letters] == ["unstorable"]


def test_deeply_nested_json_is_a_dead_letter_not_a_crash() -> None:
    raw = b'{"v":1,"boot":0,"seq":1,"records":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    out = judge(raw[:250_000])
    assert isinstance(out, Outcome)
    assert [d.stage for d in out.dead_letters] == ["decode"]


def test_claims_of_another_device_and_wrong_pilot() -> None:
    raw = json.dumps(
        {"v": 1, "boot": 0, "seq": 0, "records": [{"device_id": "sl-2", "ts": 1}]}
    ).encode()
    out = judge(raw)
    assert isinstance(out, Outcome) and out.dead_letters[0].code == "claims_other_device"
    out = judge(encode_message(0, 0, [light(NOW)]), "kcity/v1/mukdahan/sl-1/telemetry")
    assert isinstance(out, Outcome) and out.dead_letters[0].code == "wrong_pilot"


def test_registry_reload_is_rate_limited_and_ages() -> None:
    reg = Registry(min_interval_s=1.0, max_age_s=60.0)
    assert reg.may_reload(0.0) and reg.stale(0.0) and not reg.fresh_since(0.0)
    reg._last_attempt, reg.loaded_at = 10.0, 10.0  # as after a reload at t = 10 s
    assert not reg.may_reload(10.5) and reg.may_reload(11.0)
    assert reg.fresh_since(9.0) and not reg.fresh_since(10.1)
    assert not reg.stale(69.0) and reg.stale(70.0)


def test_config_refuses_a_receive_maximum_mqtt_cannot_carry() -> None:
    base = {
        "database_url": "postgresql://x@h/db",
        "mqtt_host": "h",
        "mqtt_port": 1,
        "mqtt_username": "u",
        "mqtt_password": "p",
    }
    with pytest.raises(ConfigError, match="65535"):
        IngestConfig(**base, max_inflight=70000)  # type: ignore[arg-type]
    shared = IngestConfig(**base, shared=True, worker="w2")  # type: ignore[arg-type]
    assert shared.client_id == "kcity-ingest-w2"
    assert shared.topic_filters[0] == "$share/kcity-ingest/kcity/v1/+/+/telemetry"
