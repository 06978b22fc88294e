"""Ids and topic names of the MQTT v1 contract."""

from __future__ import annotations

import re

import pytest

from devices.errors import DevicesError, InvalidId, PayloadError
from devices.ids import (
    CHANNELS,
    ID_PATTERN,
    TopicParts,
    cmd_topic,
    device_prefix,
    parse_topic,
    topic,
    validate_id,
)


@pytest.mark.parametrize("value", ["madiun", "madiun-sl-001", "a1", "0-x", "a" * 63])
def test_valid_ids_are_returned_unchanged(value: str) -> None:
    assert validate_id(value) == value
    assert re.match(ID_PATTERN, value)


@pytest.mark.parametrize(
    "value",
    ["", "a", "-abc", "Madiun", "madiun_sl", "madiun sl", "a" * 64, "madiun\n", "é-light", "a/b"],
)
def test_invalid_ids_are_refused_naming_what(value: str) -> None:
    with pytest.raises(InvalidId, match="device id") as info:
        validate_id(value, "device id")
    assert isinstance(info.value, DevicesError)
    assert isinstance(info.value, ValueError)


def test_topics_follow_the_contract() -> None:
    assert (
        topic("madiun", "madiun-sl-001", "telemetry") == "kcity/v1/madiun/madiun-sl-001/telemetry"
    )
    assert cmd_topic("mukdahan", "drone-01") == "kcity/v1/mukdahan/drone-01/cmd"
    assert device_prefix("mukdahan", "drone-01") == "kcity/v1/mukdahan/drone-01/"
    assert CHANNELS == ("telemetry", "event", "status")


def test_topic_refuses_bad_parts() -> None:
    with pytest.raises(PayloadError, match="channel"):
        topic("madiun", "madiun-sl-001", "cmd")
    with pytest.raises(InvalidId, match="pilot id"):
        topic("Madiun", "madiun-sl-001", "event")
    with pytest.raises(InvalidId, match="device id"):
        cmd_topic("madiun", "x")


@pytest.mark.parametrize("channel", CHANNELS)
def test_parse_topic_inverts_topic(channel: str) -> None:
    parts = parse_topic(topic("madiun", "madiun-sl-042", channel))
    assert parts == TopicParts(pilot="madiun", device="madiun-sl-042", channel=channel)


@pytest.mark.parametrize(
    ("value", "error", "reason"),
    [
        ("kcity/v2/madiun/sl-1/telemetry", PayloadError, "does not start with"),
        ("madiun/sl-1/telemetry", PayloadError, "does not start with"),
        ("kcity/v1/madiun/sl-1", PayloadError, "not of the form"),
        ("kcity/v1/madiun/sl-1/telemetry/extra", PayloadError, "not of the form"),
        ("kcity/v1/madiun/sl-1/cmd", PayloadError, "downlink"),
        ("kcity/v1/madiun/sl-1/metrics", PayloadError, "unknown channel 'metrics'"),
        ("kcity/v1/Madiun/sl-1/telemetry", InvalidId, "pilot id"),
        ("kcity/v1/madiun/+/telemetry", InvalidId, "device id"),
    ],
)
def test_parse_topic_says_what_is_wrong(value: str, error: type[Exception], reason: str) -> None:
    with pytest.raises(error, match=re.escape(reason)):
        parse_topic(value)
