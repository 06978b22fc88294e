"""Payload models and parse_message: every contract rule, the fast path and the fallback."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from devices.errors import DevicesError, PayloadError, UnknownKind
from devices.kinds import KINDS, get_kind
from devices.payloads import (
    MAX_PAYLOAD_BYTES,
    DroneEvent,
    DroneRecord,
    GenericEvent,
    GenericRecord,
    StreetlightEvent,
    StreetlightRecord,
    encode_message,
    encode_status,
    parse_message,
)

T0 = datetime(2023, 8, 1, 12, 0, tzinfo=UTC)
T0_MS = 1690891200000


def light(i: int = 0, /, **change: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "ts": T0 + timedelta(minutes=5 * i),
        "power_w": 80.5,
        "energy_wh": 1000.0 + i,
        "dim_pct": 60.0,
        "lamp_on": True,
        "vehicles": 3,
    }
    rec.update(change)
    return rec


def drone(i: int = 0, /, **change: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "ts": T0_MS + 1000 * i,
        "flight_id": "f-2023-08-01-a",
        "lat": 16.54,
        "lon": 104.72,
        "agl_m": 120.0,
        "mode": "patrol",
        "camera_on": True,
        "gps_fix": 3,
        "battery_pct": 80.0,
        "battery_a": -2.0,
    }
    rec.update(change)
    return rec


def raw_message(records: list[Any], key: str = "records", **envelope: Any) -> bytes:
    body: dict[str, Any] = {"v": 1, "boot": 7, "seq": 1042, key: records}
    body.update(envelope)
    return json.dumps(body, default=datetime.isoformat).encode()


def one(kind: str, record: dict[str, Any], channel: str = "telemetry") -> str | None:
    """The rejection reason of a single item, or None when it was accepted."""
    parsed = parse_message(kind, channel, encode_message(0, 0, [record], channel=channel))
    assert len(parsed.items) + len(parsed.rejected) == 1
    return parsed.rejected[0].reason if parsed.rejected else None


# --- round trips ---------------------------------------------------------------------------


def test_streetlight_round_trip_keeps_every_value() -> None:
    records = [light(i) for i in range(5)]
    sent = T0 + timedelta(seconds=5.12)
    parsed = parse_message(
        "streetlight", "telemetry", encode_message(7, 1042, records, sent_at=sent)
    )
    assert (parsed.boot, parsed.seq, parsed.sent_at) == (7, 1042, sent)
    assert parsed.rejected == ()
    assert [type(r) for r in parsed.items] == [StreetlightRecord] * 5
    dumped = [r.model_dump(exclude_none=True) for r in parsed.items]
    assert dumped == records


def test_drone_and_generic_round_trips() -> None:
    parsed = parse_message("hybrid_drone", "telemetry", encode_message(1, 2, [drone(0), drone(1)]))
    assert [type(r) for r in parsed.items] == [DroneRecord, DroneRecord]
    first = parsed.items[0]
    assert isinstance(first, DroneRecord)
    assert first.ts == T0 and first.mode == "patrol" and first.battery_a == -2.0
    generic = {"ts": T0, "metric": "flow_lpm", "value": 12.5, "unit": "L/min"}
    parsed = parse_message("generic", "telemetry", encode_message(0, 0, [generic]))
    assert parsed.items == (GenericRecord.model_validate(generic),)


def test_models_can_be_encoded_directly() -> None:
    model = StreetlightRecord.model_validate_json(json.dumps({**light(), "ts": T0_MS}))
    raw = encode_message(0, 3, [model])
    assert b" " not in raw  # compact
    assert parse_message("streetlight", "telemetry", raw).items == (model,)


def test_event_round_trip_per_kind() -> None:
    events = [
        {"ts": T0, "type": "fault", "code": "day_burning"},
        {"ts": T0, "type": "fault_cleared"},
        {"ts": T0, "type": "config_changed", "detail": "dim profile B"},
    ]
    parsed = parse_message("streetlight", "event", encode_message(0, 1, events, channel="event"))
    assert [e.type for e in parsed.items if isinstance(e, StreetlightEvent)] == [
        "fault",
        "fault_cleared",
        "config_changed",
    ]
    detection = {"ts": T0, "type": "detection", "lat": 16.5, "lon": 104.7, "label": "boat"}
    detection["confidence"] = 0.87
    parsed = parse_message("hybrid_drone", "event", encode_message(0, 1, [detection], "event"))
    assert parsed.items == (DroneEvent.model_validate(detection),)
    free = {"ts": T0, "type": "leak_suspected", "zone": "dma-4", "litres": 12.5}
    parsed = parse_message("generic", "event", encode_message(0, 1, [free], "event"))
    assert isinstance(parsed.items[0], GenericEvent)
    assert parsed.items[0].model_dump() == free


# --- one bad record never takes good ones down ---------------------------------------------


def test_poison_record_is_rejected_alone_in_order() -> None:
    records: list[Any] = [light(i) for i in range(6)]
    records[1] = light(1, powr_w=3.0)  # typo
    records[3] = light(3, power_w=-1.0)
    records[4] = "not a record"
    parsed = parse_message("streetlight", "telemetry", encode_message(7, 9, records))
    assert [r.index for r in parsed.rejected] == [1, 3, 4]
    assert parsed.rejected[0].reason == "records[1].powr_w: Extra inputs are not permitted"
    assert parsed.rejected[1].reason == (
        "records[3].power_w: Input should be greater than or equal to 0"
    )
    assert parsed.rejected[2].reason.startswith("records[4]: ")
    assert parsed.rejected[2].item == "not a record"
    assert isinstance(parsed.rejected[1].item, dict) and parsed.rejected[1].item["power_w"] == -1
    kept = [r.ts for r in parsed.items if isinstance(r, StreetlightRecord)]
    assert kept == [light(i)["ts"] for i in (0, 2, 5)]
    assert (parsed.boot, parsed.seq) == (7, 9)


def test_every_problem_of_a_record_is_named() -> None:
    reason = one("streetlight", light(dim_pct=101.0, lamp_on="yes"))
    assert reason is not None
    assert "records[0].dim_pct: Input should be less than or equal to 100" in reason
    assert "records[0].lamp_on: Input should be a valid boolean" in reason


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_non_finite_numbers_are_refused(token: bytes) -> None:
    good = json.dumps({**light(), "ts": T0_MS})
    raw = (
        b'{"v":1,"boot":0,"seq":0,"records":['
        + good.encode()
        + b',{"ts":1690891200000,"power_w":'
        + token
        + b',"dim_pct":1,"lamp_on":true}]}'
    )
    parsed = parse_message("streetlight", "telemetry", raw)
    assert len(parsed.items) == 1
    assert parsed.rejected[0].reason == "records[1].power_w: Input should be a finite number"


def test_non_finite_in_free_form_extras_is_refused() -> None:
    raw = b'{"v":1,"boot":0,"seq":0,"events":[{"ts":1,"type":"x","a":{"b":[NaN]}}]}'
    parsed = parse_message("generic", "event", raw)
    assert parsed.items == ()
    assert parsed.rejected[0].reason == "events[0].a: Input should be a finite number"


# --- timestamps ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (T0_MS, T0),
        (T0_MS + 120, T0 + timedelta(milliseconds=120)),
        ("2023-08-01T12:00:00Z", T0),
        ("2023-08-01T19:00:00+07:00", T0),
        ("2023-08-01t12:00:00.250z", T0 + timedelta(milliseconds=250)),
        ("2023-08-01 12:00:00.1234567-00:00", T0 + timedelta(microseconds=123456)),
    ],
)
def test_timestamps_become_utc(ts: object, expected: datetime) -> None:
    rec = StreetlightRecord.model_validate_json(json.dumps({**light(), "ts": ts}))
    assert rec.ts == expected
    assert rec.ts.tzinfo is UTC


@pytest.mark.parametrize(
    ("ts", "rule"),
    [
        ("2023-08-01T12:00:00", "timezone info"),
        ("2023-08-01T12:00", "timezone info"),
        ("2023-08-01", "RFC 3339"),
        ("1690891200000", "RFC 3339"),
        ("2023-13-01T12:00:00Z", "RFC 3339"),
        (1690891200000.5, "RFC 3339"),
        (True, "RFC 3339"),
        (None, "RFC 3339"),
        (10**30, "out of range"),
    ],
)
def test_bad_timestamps_are_refused(ts: object, rule: str) -> None:
    parsed = parse_message("streetlight", "telemetry", raw_message([{**light(1), "ts": ts}]))
    assert parsed.items == ()
    assert parsed.rejected[0].reason.startswith("records[0].ts: ")
    assert rule in parsed.rejected[0].reason


def test_naive_sent_at_makes_the_envelope_unusable() -> None:
    body = raw_message([{**light(), "ts": T0_MS}], sent_at="2023-08-01T12:00:05")
    with pytest.raises(PayloadError) as info:
        parse_message("streetlight", "telemetry", body)
    assert info.value.field == "sent_at"
    assert "timezone" in info.value.rule


# --- field rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("power_w", -0.1, "greater than or equal to 0"),
        ("energy_wh", -1.0, "greater than or equal to 0"),
        ("dim_pct", -1.0, "greater than or equal to 0"),
        ("dim_pct", 100.5, "less than or equal to 100"),
        ("lamp_on", 1, "valid boolean"),
        ("vehicles", -1, "greater than or equal to 0"),
        ("vehicles", 2.5, "valid integer"),
        ("power_factor", 1.2, "less than or equal to 1"),
        ("voltage_v", "230", "valid number"),
        ("power_w", None, "valid number"),
    ],
)
def test_streetlight_field_rules(field: str, value: object, rule: str) -> None:
    reason = one("streetlight", light(**{field: value}))
    assert reason is not None
    assert reason.startswith(f"records[0].{field}: ")
    assert rule in reason


@pytest.mark.parametrize("missing", ["ts", "power_w", "dim_pct", "lamp_on"])
def test_streetlight_required_fields(missing: str) -> None:
    rec = light()
    del rec[missing]
    assert one("streetlight", rec) == f"records[0].{missing}: Field required"


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("lat", 90.5, "less than or equal to 90"),
        ("lat", -91.0, "greater than or equal to -90"),
        ("lon", 180.5, "less than or equal to 180"),
        ("lon", -181.0, "greater than or equal to -180"),
        ("battery_pct", 101.0, "less than or equal to 100"),
        ("gps_fix", 7, "less than or equal to 6"),
        ("gps_fix", -1, "greater than or equal to 0"),
        ("mode", "cruise", "'patrol', 'transit', 'hover', 'rtl' or 'landed'"),
        ("agl_m", -5.0, "greater than or equal to 0"),
        ("hfov_deg", 0.0, "greater than 0"),
        ("heading_deg", 361.0, "less than or equal to 360"),
        ("fuel_l", -0.5, "greater than or equal to 0"),
        ("gen_power_w", -1.0, "greater than or equal to 0"),
        ("camera_on", "true", "valid boolean"),
        ("flight_id", "", "at least 1 character"),
    ],
)
def test_drone_field_rules(field: str, value: object, rule: str) -> None:
    reason = one("hybrid_drone", drone(**{field: value}))
    assert reason is not None
    assert reason.startswith(f"records[0].{field}: ")
    assert rule in reason


@pytest.mark.parametrize("missing", ["ts", "flight_id", "lat", "lon"])
def test_drone_required_fields(missing: str) -> None:
    rec = drone()
    del rec[missing]
    assert one("hybrid_drone", rec) == f"records[0].{missing}: Field required"


def test_generic_record_rules() -> None:
    assert one("generic", {"ts": T0, "metric": "pm25", "value": 3}) is None
    assert one("generic", {"ts": T0, "metric": "", "value": 3}) is not None
    assert one("generic", {"ts": T0, "metric": "pm25", "value": True}) == (
        "records[0].value: Input should be a valid number"
    )
    assert one("generic", {"ts": T0, "metric": "pm25"}) == "records[0].value: Field required"
    assert one("generic", {"ts": T0, "metric": "pm25", "value": 1, "unit": "ug/m3", "x": 1}) == (
        "records[0].x: Extra inputs are not permitted"
    )


# --- event rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "event", "reason"),
    [
        ("streetlight", {"type": "fault"}, "events[0].code: Field required when type is 'fault'"),
        ("streetlight", {"type": "fault", "code": "bird_strike"}, "events[0].code: Input should"),
        ("streetlight", {"type": "reboot"}, "events[0].type: Input should be 'fault'"),
        ("streetlight", {"type": "fault_cleared", "cod": "x"}, "events[0].cod: Extra inputs"),
        (
            "hybrid_drone",
            {"type": "detection", "lat": 16.5, "lon": 104.7, "label": "boat"},
            "events[0].confidence: Field required when type is 'detection'",
        ),
        (
            "hybrid_drone",
            {"type": "detection", "lat": 16.5, "lon": 104.7, "label": "boat", "confidence": 1.5},
            "events[0].confidence: Input should be less than or equal to 1",
        ),
        ("hybrid_drone", {"type": "alarm"}, "events[0].code: Field required when type is 'alarm'"),
        ("hybrid_drone", {"type": "crash"}, "events[0].type: Input should be 'takeoff'"),
        ("generic", {"type": ""}, "events[0].type: String should have at least 1 character"),
    ],
)
def test_event_rules(kind: str, event: dict[str, Any], reason: str) -> None:
    got = one(kind, {"ts": T0, **event}, channel="event")
    assert got is not None and got.startswith(reason)


@pytest.mark.parametrize(
    ("kind", "event"),
    [
        ("streetlight", {"type": "fault", "code": "lamp_failure"}),
        ("streetlight", {"type": "fault", "code": "supply_loss"}),
        ("streetlight", {"type": "fault", "code": "dimming_failure"}),
        ("streetlight", {"type": "fault", "code": "comm_failure"}),
        ("hybrid_drone", {"type": "takeoff", "flight_id": "f1"}),
        ("hybrid_drone", {"type": "landing"}),
        ("hybrid_drone", {"type": "alarm", "code": "low_fuel"}),
    ],
)
def test_valid_events_are_accepted(kind: str, event: dict[str, Any]) -> None:
    assert one(kind, {"ts": T0, **event}, channel="event") is None


# --- whole-message problems ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "field", "rule"),
    [
        (b"\xff\xfe{}", "payload", "UTF-8"),
        (b'{"v":1,', "payload", "not valid JSON"),
        (b"[1, 2]", "payload", "JSON object"),
        (b'"hello"', "payload", "JSON object"),
        (raw_message([light(0)], v=2), "v", "Input should be 1"),
        (raw_message([light(0)], boot=-1), "boot", "greater than or equal to 0"),
        (raw_message([light(0)], boot=True), "boot", "valid integer"),
        (raw_message([light(0)], seq=1.5), "seq", "valid integer"),
        (raw_message([light(0)], seq=2**63), "seq", "less than or equal to"),
        (b'{"v":1,"boot":0,"seq":NaN,"records":[{}]}', "seq", "valid integer"),
        (raw_message([]), "records", "at least 1 item"),
        (raw_message([light(0)] * 1001), "records", "at most 1000 items"),
        (b'{"v":1,"boot":0,"seq":0}', "records", "Field required"),
        (raw_message([light(0)], key="events"), "records", "Field required"),
        (raw_message([light(0)], extra=1), "extra", "Extra inputs are not permitted"),
    ],
)
def test_unusable_messages_raise_payload_error(raw: bytes, field: str, rule: str) -> None:
    with pytest.raises(PayloadError) as info:
        parse_message("streetlight", "telemetry", raw)
    assert info.value.field == field
    assert rule in info.value.rule
    assert str(info.value) == f"{info.value.field}: {info.value.rule}"


def test_oversize_unknown_kind_and_channel() -> None:
    with pytest.raises(PayloadError, match="limit") as info:
        parse_message("streetlight", "telemetry", b" " * (MAX_PAYLOAD_BYTES + 1))
    assert info.value.field == "payload"
    ok = encode_message(0, 0, [light()])
    with pytest.raises(PayloadError, match="known kinds: streetlight, hybrid_drone, generic"):
        parse_message("water", "telemetry", ok)
    with pytest.raises(PayloadError) as info:
        parse_message("streetlight", "cmd", ok)
    assert info.value.field == "channel"


def test_status_messages() -> None:
    parsed = parse_message("hybrid_drone", "status", encode_status("online", fw="1.4.2"))
    assert parsed.status is not None
    assert parsed.status.state == "online"
    assert parsed.status.model_extra == {"fw": "1.4.2"}
    assert (parsed.boot, parsed.seq, parsed.items) == (-1, -1, ())
    lwt = parse_message("streetlight", "status", b'{"v":1,"state":"offline"}')
    assert lwt.status is not None and lwt.status.state == "offline"
    with pytest.raises(PayloadError) as info:
        parse_message("streetlight", "status", b'{"v":1,"state":"sleeping"}')
    assert info.value.field == "state"
    with pytest.raises(PayloadError, match="not valid JSON"):
        parse_message("streetlight", "status", b"offline")


# --- encoding ------------------------------------------------------------------------------


def test_encode_message_refuses_what_parse_would_refuse() -> None:
    with pytest.raises(PayloadError, match="naive"):
        encode_message(0, 0, [light(ts=datetime(2023, 8, 1, 12))])
    with pytest.raises(PayloadError):
        encode_message(0, 0, [light(power_w=float("nan"))])
    with pytest.raises(PayloadError, match="1 to 1000"):
        encode_message(0, 0, [])
    with pytest.raises(PayloadError, match="1 to 1000"):
        encode_message(0, 0, [light()] * 1001)
    with pytest.raises(PayloadError, match="channel"):
        encode_message(0, 0, [light()], channel="status")
    with pytest.raises(PayloadError, match="limit"):
        encode_message(0, 0, [light(detail="x" * 300)] * 1000)


def test_encode_writes_utc_rfc3339() -> None:
    local = T0.astimezone(timezone(timedelta(hours=7)))
    body = json.loads(encode_message(3, 4, [light(ts=local)], sent_at=local))
    assert body["records"][0]["ts"] == "2023-08-01T12:00:00Z"
    assert body["sent_at"] == "2023-08-01T12:00:00Z"
    assert (body["v"], body["boot"], body["seq"]) == (1, 3, 4)


# --- kinds ---------------------------------------------------------------------------------


def test_kinds_registry() -> None:
    assert set(KINDS) == {"streetlight", "hybrid_drone", "generic"}
    assert get_kind("streetlight").record_model is StreetlightRecord
    drone_events = ("takeoff", "landing", "detection", "alarm", "command_ack")
    assert get_kind("hybrid_drone").event_types == drone_events
    lamp_events = ("fault", "fault_cleared", "config_changed", "command_ack")
    assert get_kind("streetlight").event_types == lamp_events
    assert get_kind("generic").event_types == ()
    with pytest.raises(UnknownKind, match="known kinds: streetlight, hybrid_drone, generic"):
        get_kind("parking")
    assert issubclass(UnknownKind, DevicesError)
