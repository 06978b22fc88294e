"""`kcity pilots …` and `kcity devices …` as a user runs them, against the real stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kcity.settings import Settings
from kcity.stack.local import LocalStack
from tests.test_acl import Probe, ingest_probe

ROOT = Path(__file__).resolve().parents[1]


def cli_env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    """Environment for `kcity` subprocesses pointing at the test database and broker."""
    s = settings
    full = {k: v for k, v in os.environ.items() if not k.startswith("KCITY_")}
    full.update(
        {
            "KCITY_DATA_DIR": str(tmp_path / ".kcity"),
            "KCITY_DATABASE_URL": s.database_url,
            "KCITY_MQTT_URL": s.mqtt_url,
            "KCITY_MQTT_TLS_PORT": str(s.mqtt_tls_port),
            "KCITY_MQTT_PASSWORD": s.mqtt_password,
            "KCITY_MQTT_ADMIN_PASSWORD": s.mqtt_admin_password,
        }
    )
    return full


@pytest.fixture
def env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    return cli_env(settings, tmp_path)


def kcity(env: dict[str, str], *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kcity", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


def one_line_error(done: subprocess.CompletedProcess[str], *words: str) -> str:
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("kcity: error:") and "Traceback" not in done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def madiun(env: dict[str, str]) -> str:
    ok(kcity(env, "pilots", "apply", "pilots/madiun.toml"))
    return "madiun"


def test_pilots_apply_then_list(env: dict[str, str]) -> None:
    first = ok(kcity(env, "pilots", "apply", "pilots/madiun.toml"))
    assert "madiun" in first
    again = ok(kcity(env, "pilots", "apply", str(ROOT / "pilots" / "madiun.toml")))
    assert "updated" in again
    listed = ok(kcity(env, "pilots", "list"))
    assert "madiun" in listed and "streetlight" in listed
    rows = json.loads(ok(kcity(env, "pilots", "list", "--json")))
    madiun = next(r for r in rows if r["id"] == "madiun")
    assert madiun["kind"] == "streetlight" and madiun["country"] == "ID"
    ok(kcity(env, "pilots", "apply", "pilots/mukdahan.toml"))
    ids = {r["id"] for r in json.loads(ok(kcity(env, "pilots", "list", "--json")))}
    assert {"madiun", "mukdahan"} <= ids


def test_provision_publish_list_revoke(
    env: dict[str, str], madiun: str, stack: LocalStack, uid: str
) -> None:
    device = f"madiun-sl-{uid}"
    creds = json.loads(ok(kcity(env, "devices", "provision", madiun, device, "--json")))
    for key in (
        "device_id",
        "pilot",
        "kind",
        "username",
        "password",
        "mqtt_host",
        "mqtt_port",
        "topic_prefix",
    ):
        assert key in creds
    assert creds["device_id"] == device == creds["username"]
    assert creds["pilot"] == "madiun" and creds["kind"] == "streetlight"
    assert creds["topic_prefix"] == f"kcity/v1/madiun/{device}/"
    assert creds["mqtt_port"] == stack.settings.mqtt_port

    ingest = ingest_probe(stack)
    dev = Probe(creds["mqtt_host"], creds["mqtt_port"], creds["username"], creds["password"])
    try:
        assert dev.accepted
        assert dev.publish(creds["topic_prefix"] + "telemetry", b"hello") < 128
        topic = creds["topic_prefix"] + "telemetry"
        assert ingest.wait(lambda: b"hello" in ingest.received(topic))

        listed = json.loads(ok(kcity(env, "devices", "list", madiun, "--json")))
        assert [d["device_id"] for d in listed if d["active"]] == [device]
        assert device in ok(kcity(env, "devices", "list"))

        ok(kcity(env, "devices", "revoke", device))
        assert dev.wait(lambda: dev.disconnected)
    finally:
        dev.close()
        ingest.close()
    refused = Probe(creds["mqtt_host"], creds["mqtt_port"], creds["username"], creds["password"])
    try:
        assert refused.connack is not None and refused.connack >= 128
    finally:
        refused.close()
    listed = json.loads(ok(kcity(env, "devices", "list", madiun, "--json")))
    assert [d["active"] for d in listed if d["device_id"] == device] == [False]


def test_human_output_shows_the_credentials(env: dict[str, str], madiun: str, uid: str) -> None:
    out = ok(kcity(env, "devices", "provision", madiun, f"sl-h-{uid}"))
    assert f"username: sl-h-{uid}" in out
    password = next(line for line in out.splitlines() if line.startswith("password: "))
    assert len(password.split(": ", 1)[1]) >= 32
    rotated = ok(kcity(env, "devices", "provision", madiun, f"sl-h-{uid}"))
    assert "rotated" in rotated and password not in rotated


def test_provision_with_an_explicit_kind(env: dict[str, str], madiun: str, uid: str) -> None:
    creds = json.loads(
        ok(kcity(env, "devices", "provision", madiun, f"aq-{uid}", "--kind", "generic", "--json"))
    )
    assert creds["kind"] == "generic"


def test_user_mistakes_are_one_line(
    env: dict[str, str], madiun: str, tmp_path: Path, uid: str
) -> None:
    one_line_error(
        kcity(env, "devices", "provision", "atlantis", f"x-{uid}"), "unknown pilot", "atlantis"
    )
    one_line_error(kcity(env, "devices", "provision", madiun, "Bad_Id"), "device id", "Bad_Id")
    one_line_error(
        kcity(env, "devices", "provision", madiun, f"k-{uid}", "--kind", "submarine"),
        "submarine",
        "streetlight",
    )
    one_line_error(kcity(env, "devices", "revoke", f"ghost-{uid}"), "unknown device")
    one_line_error(kcity(env, "devices", "list", "atlantis"), "unknown pilot")
    one_line_error(kcity(env, "pilots", "apply", "pilots/nowhere.toml"), "nowhere.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text((ROOT / "pilots" / "madiun.toml").read_text().replace("city =", "cty ="))
    one_line_error(kcity(env, "pilots", "apply", str(bad)), "cty")
    ok(kcity(env, "devices", "provision", madiun, f"clash-{uid}"))
    ok(kcity(env, "pilots", "apply", "pilots/mukdahan.toml"))
    clash = one_line_error(
        kcity(env, "devices", "provision", "mukdahan", f"clash-{uid}"), "not available"
    )
    assert "madiun" not in clash
    # The broker refusing the admin account is one line too, and provisions nothing.
    wrong = {**env, "KCITY_MQTT_ADMIN_PASSWORD": "wrong"}
    one_line_error(kcity(wrong, "devices", "provision", madiun, f"nobroker-{uid}"), "broker")
    listed = json.loads(ok(kcity(env, "devices", "list", "--json")))
    assert f"nobroker-{uid}" not in {d["device_id"] for d in listed}
