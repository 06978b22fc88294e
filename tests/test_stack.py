"""The local stack through the CLI, as a user runs it: up, status, down, up twice; the broker."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from kcity.stack.local import LocalStack
from kcity.stack.processes import free_port, port_open


def kcity(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kcity", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.fixture
def stack_env(tmp_path: Path) -> dict[str, str]:
    tmp_path.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KCITY_")}
    env.update(
        {
            "KCITY_DATA_DIR": str(tmp_path / ".kcity"),
            "KCITY_DATABASE_URL": f"postgresql://kcity@127.0.0.1:{free_port()}/kcity",
            "KCITY_MQTT_URL": f"mqtt://127.0.0.1:{free_port()}",
            "KCITY_MQTT_TLS_PORT": str(free_port()),
            "KCITY_API_PORT": str(free_port()),
            "KCITY_METRICS_PORT": str(free_port()),
        }
    )
    return env


def test_up_status_down(stack_env: dict[str, str], tmp_path: Path) -> None:
    first = kcity(["up", "--no-services"], stack_env, tmp_path)
    assert first.returncode == 0, first.stderr
    assert "mosquitto" in first.stdout and "timescaledb" in first.stdout
    try:
        again = kcity(["up", "--no-services"], stack_env, tmp_path)
        assert again.returncode == 0, again.stderr
        assert "already running" in again.stdout
        status = kcity(["status", "--json"], stack_env, tmp_path)
        info = json.loads(status.stdout)
        for key in ("database_url", "mqtt_host", "mqtt_port", "api_url", "services"):
            assert key in info
        assert info["services"]["timescaledb"] is True
        assert info["services"]["mosquitto"] is True
    finally:
        down = kcity(["down"], stack_env, tmp_path)
    assert down.returncode == 0, down.stderr
    port = int(stack_env["KCITY_MQTT_URL"].rsplit(":", 1)[1])
    db_port = int(stack_env["KCITY_DATABASE_URL"].rsplit(":", 1)[1].split("/")[0])
    assert not port_open("127.0.0.1", port)
    assert not port_open("127.0.0.1", db_port)
    status = kcity(["status", "--json"], stack_env, tmp_path)
    assert json.loads(status.stdout)["services"] == {
        "timescaledb": False,
        "mosquitto": False,
        "ingest": False,
        "api": False,
        "bridge": False,
    }


def _connect(stack: LocalStack, username: str | None, password: str | None) -> int:
    """Connect and return the CONNACK reason code's value (0 = accepted)."""
    result: list[int] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    if username:
        client.username_pw_set(username, password)
    client.on_connect = lambda c, u, f, rc, p: result.append(rc.value)
    client.connect(stack.settings.mqtt_host, stack.settings.mqtt_port)
    client.loop_start()
    for _ in range(50):
        if result:
            break
        import time

        time.sleep(0.05)
    client.loop_stop()
    client.disconnect()
    return result[0] if result else -1


def test_broker_refuses_anonymous_accepts_ingest_account(stack: LocalStack) -> None:
    s = stack.settings
    assert _connect(stack, None, None) != 0
    assert _connect(stack, s.mqtt_username, "wrong-password") != 0
    assert _connect(stack, s.mqtt_username, s.mqtt_password) == 0


def test_up_refuses_a_port_another_program_holds(stack_env: dict[str, str], tmp_path: Path) -> None:
    """Another program on the broker's port would answer in its place (another stack's
    broker refused our logins as "Not authorized"): `kcity up` names the port instead."""
    port = int(stack_env["KCITY_MQTT_URL"].rsplit(":", 1)[1])
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        try:
            up = kcity(["up", "--no-services"], stack_env, tmp_path)
        finally:
            kcity(["down"], stack_env, tmp_path)
    assert up.returncode == 1
    assert up.stderr.strip().splitlines() == [
        f"kcity: error: port {port} on 127.0.0.1, which mosquitto needs, is in use by another"
        " program (another K-City stack?): stop it, or set KCITY_MQTT_URL to a free port"
    ]
