"""The msgspec fast path accepts only what the pydantic payload models accept, with the same
values: hypothesis throws odd JSON at both (numbers written every way JSON allows, huge
integers, unicode and escapes, duplicate and unknown keys, wrong types, timestamps of every
shape), and whenever the fast path takes a message the models take it whole, field for
field, type for type. Messages with any refused record must fall through (None)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices.kinds import get_kind
from devices.payloads import parse_message
from ingest.fast_path import decode_telemetry
from ingest.registry import DeviceInfo
from ingest.validate import Outcome, validate

FIELDS: dict[str, list[str]] = {
    kind: list(get_kind(kind).record_model.model_fields)
    for kind in ("streetlight", "hybrid_drone", "generic")
}
NUMBER_TEXT = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(
        [
            "0",
            "-0",
            "0.0",
            "-0.0",
            "1e2",
            "1E-3",
            "2.5e+1",
            "100",
            "100.0",
            "1e400",
            "-1e400",
            "1.7976931348623157e308",
            "5e-324",
            "0.30000000000000004",
            "1" + "0" * 30,
            "90",
            "-90.0",
            "180.00000000000001",
            "360",
            "6",
            "7",
            "2147483648",
            "-2147483649",
        ]
    ),
)
STRING = st.one_of(
    st.text(max_size=70),
    st.sampled_from(
        [
            "patrol",
            "landed",
            "PATROL",
            "",
            "a" * 64,
            "a" * 65,
            "é" * 64,
            "🚦",
            "\x00",
            "kWh",
            "x" * 1025,
        ]
    ),
)
TS_TEXT = st.one_of(
    st.sampled_from(
        [
            '"2024-01-01T00:00:00Z"',
            '"2024-01-01t00:00:00z"',
            '"2024-01-01 00:00:00+07:00"',
            '"2024-01-01T00:00:00.123456789Z"',
            '"2024-01-01T00:00:00"',
            '"2024-02-30T00:00:00Z"',
            '"2024-01-01T24:00:00Z"',
            '"2024-01-01T00:00:00+24:00"',
            '"20240101T000000Z"',
            "1704067200000",
            "-1",
            "1704067200000.0",
            "1e12",
            "99999999999999999999999",
            '"1704067200000"',
            "true",
            "null",
            "[]",
        ]
    ),
    st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
    ).map(lambda d: json.dumps(d.isoformat())),
    st.integers(-(2**66), 2**66).map(str),
)


def value_text(draw: st.DrawFn) -> str:
    return draw(
        st.one_of(
            NUMBER_TEXT,
            STRING.map(lambda s: json.dumps(s, ensure_ascii=draw(st.booleans()))),
            st.sampled_from(["true", "false", "null", "[]", "{}", '"1.5"', "[1]"]),
        )
    )


# Plausible values per field, edges included, so that most records are valid and the
# rare odd value (``value_text``) decides the verdict.
RANGES = {
    "power_w": (0, 500),
    "energy_wh": (0, 1e7),
    "dim_pct": (0, 100),
    "voltage_v": (0, 400),
    "current_a": (0, 10),
    "power_factor": (-1, 1),
    "temp_c": (-80, 200),
    "lat": (-90, 90),
    "lon": (-180, 180),
    "alt_m": (-500, 20000),
    "agl_m": (0, 20000),
    "speed_mps": (0, 500),
    "heading_deg": (0, 360),
    "hfov_deg": (0.001, 179.9),
    "battery_v": (0, 60),
    "battery_a": (-100, 100),
    "battery_pct": (0, 100),
    "gen_power_w": (0, 5000),
    "fuel_l": (0, 50),
    "rssi_dbm": (-200, 30),
    "value": (-1e9, 1e9),
}
INTS = {"vehicles": (0, 2**40), "gps_fix": (0, 6)}
BOOLS = {"lamp_on", "camera_on"}
TEXTS = {
    "flight_id": st.text(min_size=1, max_size=64),
    "metric": st.text(min_size=1, max_size=128),
    "unit": st.text(max_size=32),
    "mode": st.sampled_from(["patrol", "transit", "hover", "rtl", "landed"]),
}
GOOD_TS = st.one_of(
    st.datetimes(
        min_value=datetime(2016, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
    ).map(lambda d: json.dumps(d.isoformat().replace("+00:00", "Z"))),
    st.integers(1_450_000_000_000, 1_900_000_000_000).map(str),
)


def plausible(draw: st.DrawFn, name: str) -> str:
    if name == "ts":
        return draw(GOOD_TS)
    if name in RANGES:
        lo, hi = RANGES[name]
        return draw(
            st.one_of(
                st.floats(lo, hi).map(repr),
                st.integers(int(lo), int(hi)).map(str),
                st.sampled_from([repr(float(lo)), repr(float(hi)), str(int(hi))]),
                st.floats(lo, hi).map(lambda x: f"{x:e}"),
            )
        )
    if name in INTS:
        return str(draw(st.integers(*INTS[name])))
    if name in BOOLS:
        return draw(st.sampled_from(["true", "false"]))
    return json.dumps(draw(TEXTS[name]), ensure_ascii=draw(st.booleans()))


@st.composite
def record_text(draw: st.DrawFn, kind: str) -> str:
    """A record as JSON text: mostly plausible values, sometimes a field missing, an odd
    value, a key twice or an unknown key."""
    parts = []
    for name in FIELDS[kind]:
        roll = draw(st.integers(0, 99))
        if roll == 0:
            continue
        if roll < 3:
            text = draw(TS_TEXT) if name == "ts" else value_text(draw)
        else:
            text = plausible(draw, name)
        parts.append(f"{json.dumps(name)}: {text}")
        if draw(st.integers(0, 40)) == 0:
            parts.append(f"{json.dumps(name)}:{value_text(draw)}")
    if draw(st.integers(0, 30)) == 0:
        parts.append(f"{json.dumps(draw(st.sampled_from(['extra', 'device_id', 'Ts'])))}: 1")
    order = draw(st.permutations(parts))
    return "{" + ", ".join(order) + "}"


@st.composite
def message(draw: st.DrawFn) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(list(FIELDS)))
    records = draw(st.lists(record_text(kind), min_size=1, max_size=3))
    version = draw(st.sampled_from(["1"] * 12 + ["1.0", "true", "2", '"1"']))
    head = [
        f'"v": {version}',
        f'"boot": {draw(st.one_of(*[st.just("0")] * 6, NUMBER_TEXT))}',
        f'"seq": {draw(st.one_of(*[st.integers(0, 2**63 - 1).map(str)] * 6, NUMBER_TEXT))}',
        f'"records": [{", ".join(records)}]',
    ]
    if draw(st.booleans()):
        head.append(f'"sent_at": {draw(st.one_of(GOOD_TS, GOOD_TS, TS_TEXT))}')
    if draw(st.integers(0, 30)) == 0:
        head.append('"extra": 1')
    text = "{" + ", ".join(draw(st.permutations(head))) + "}"
    return kind, text.encode("utf-8", "surrogatepass")


def good_record(kind: str) -> str:
    return {
        "streetlight": '{"ts":"2024-01-01T00:00:00Z","power_w":1,"dim_pct":50,"lamp_on":true}',
        "hybrid_drone": '{"ts":1704067200000,"flight_id":"f","lat":1.5,"lon":2}',
        "generic": '{"ts":"2024-01-01T00:00:00+07:00","metric":"m","value":-1e-3}',
    }[kind]


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message())
def test_whatever_the_fast_path_takes_the_models_take_with_the_same_values(
    case: tuple[str, bytes],
) -> None:
    kind, raw = case
    fast = decode_telemetry(kind, raw)
    if fast is None:
        return
    parsed = parse_message(kind, "telemetry", raw)  # raises if the models refuse it whole
    assert parsed.rejected == ()
    assert (fast.boot, fast.seq, fast.sent_at) == (parsed.boot, parsed.seq, parsed.sent_at)
    names = FIELDS[kind]
    assert fast.names == tuple(names)
    expected = [tuple(getattr(item, n) for n in names) for item in parsed.items]
    assert fast.values == expected
    for mine, theirs in zip(fast.values, expected, strict=True):
        assert [type(v) for v in mine] == [type(v) for v in theirs]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(list(FIELDS)), st.integers(1, 5))
def test_good_messages_are_taken_and_one_bad_record_sends_the_message_the_slow_way(
    kind: str, n: int
) -> None:
    raw = '{"v":1,"boot":0,"seq":1,"records":[' + ",".join([good_record(kind)] * n) + "]}"
    assert decode_telemetry(kind, raw.encode()) is not None
    spoiled = raw.replace('"ts":', '"ts_":', 1)
    assert decode_telemetry(kind, spoiled.encode()) is None


def test_validate_gives_the_same_outcome_either_way() -> None:
    """The service's verdict on a good message is the same rows whichever path judged it."""
    now = datetime(2024, 1, 1, 0, 10, tzinfo=UTC)
    registry = {"d-1": DeviceInfo("p-1", "streetlight")}
    raw = (
        '{"v":1,"boot":3,"seq":9,"sent_at":"2024-01-01T00:00:01Z","records":['
        + ",".join([good_record("streetlight")] * 3)
        + "]}"
    ).encode()
    fast = validate("kcity/v1/p-1/d-1/telemetry", raw, registry, now, unknown_is_final=True)
    parsed = parse_message("streetlight", "telemetry", raw)
    names = FIELDS["streetlight"]
    slow_rows = tuple(("d-1", now, *[getattr(i, n) for n in names]) for i in parsed.items)
    assert isinstance(fast, Outcome)
    assert fast.rows == slow_rows and fast.dead_letters == ()
    assert fast.message is not None and fast.message.records == 3
