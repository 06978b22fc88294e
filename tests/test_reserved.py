"""The attack of issue #17: a firm provisions a device named like one of the platform's own
broker accounts (`kcity-ingest`, `kcity-admin`, ...). Every reserved name is refused by the
CLI (one line, non-zero exit) and the API (422), the broker's platform clients survive, and
ingest and provisioning keep working afterwards. A device id of another pilot is refused the
same way, without naming that pilot."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from devices.pilots import load_pilot
from kcity import registry, tokens
from kcity.api import create_app
from kcity.errors import BrokerError
from kcity.settings import Settings
from kcity.stack.broker_admin import BrokerAdmin
from kcity.stack.local import LocalStack
from tests.test_acl import Probe, ingest_probe
from tests.test_provisioning import cli_env, kcity, ok, one_line_error

PILOTS = Path(__file__).resolve().parents[1] / "pilots"


def reserved_names(settings: Settings) -> list[str]:
    """The platform's accounts as configured, the ones DESIGN §4 names, and a new one."""
    named = ("kcity-ingest", "kcity-admin", "kcity-bridge", "kcity-importer", "kcity-x1")
    return sorted({settings.mqtt_username, settings.mqtt_admin_username, *named})


@pytest.fixture(scope="module")
def world(db_url: str) -> dict[str, str]:
    with psycopg.connect(db_url, autocommit=True) as c:
        for name in ("madiun.toml", "mukdahan.toml"):
            registry.apply_pilot(c, load_pilot(PILOTS / name))
        return {
            "admin": tokens.create_token(c, "admin")[0],
            "operator": tokens.create_token(c, "operator", "madiun")[0],
        }


@pytest.fixture
def env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    return cli_env(settings, tmp_path)


@pytest.fixture(scope="module")
def client(settings: Settings, world: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def provision_publish(stack: LocalStack, creds: dict[str, str]) -> None:
    """A freshly provisioned device publishes and the ingest account receives it."""
    ingest = ingest_probe(stack)
    dev = Probe(creds["mqtt_host"], int(creds["mqtt_port"]), creds["username"], creds["password"])
    try:
        assert dev.accepted
        topic = creds["topic_prefix"] + "telemetry"
        payload = uuid.uuid4().hex.encode()
        assert dev.publish(topic, payload) == 0  # 0 = delivered to a subscriber (not 0x10)
        assert ingest.wait(lambda: payload in ingest.received(topic))
    finally:
        dev.close()
        ingest.close()


def test_reserved_names_refused_by_cli_and_api_then_all_still_works(
    env: dict[str, str],
    stack: LocalStack,
    settings: Settings,
    client: TestClient,
    world: dict[str, str],
    conn: psycopg.Connection,
    uid: str,
) -> None:
    for name in reserved_names(settings):
        line = one_line_error(kcity(env, "devices", "provision", "madiun", name), name, "reserved")
        assert "Traceback" not in line
        one_line_error(kcity(env, "devices", "revoke", name))
        for role in ("operator", "admin"):
            answer = client.post(
                "/api/v1/pilots/madiun/devices",
                headers={"Authorization": f"Bearer {world[role]}"},
                json={"device_id": name},
            )
            assert answer.status_code == 422, answer.text
            assert "reserved" in answer.json()["detail"]
            assert "password" not in answer.json()
    assert not [d for d in registry.list_devices(conn) if d.id.startswith("kcity-")]

    # The platform's clients are intact: ingest connects and subscribes with its password,
    # the admin account still provisions (CLI and API), and a device's data reaches ingest.
    creds = json.loads(ok(kcity(env, "devices", "provision", "madiun", f"sl-r-{uid}", "--json")))
    provision_publish(stack, creds)
    answer = client.post(
        "/api/v1/pilots/madiun/devices",
        headers={"Authorization": f"Bearer {world['operator']}"},
        json={"device_id": f"sl-a-{uid}"},
    )
    assert answer.status_code == 201, answer.text
    provision_publish(stack, answer.json())


def test_broker_admin_never_touches_platform_clients(
    broker_admin: BrokerAdmin, stack: LocalStack
) -> None:
    for name in reserved_names(stack.settings):
        with pytest.raises(BrokerError, match="platform"):
            broker_admin.add_device("madiun", name, "not-the-ingest-password")
        with pytest.raises(BrokerError, match="platform"):
            broker_admin.remove_device(name)
    ingest_probe(stack).close()  # still accepted with its own password


def test_another_pilots_device_id_is_refused_without_naming_the_owner(
    env: dict[str, str], client: TestClient, world: dict[str, str], uid: str
) -> None:
    drone = f"uav-{uid}"
    ok(kcity(env, "devices", "provision", "mukdahan", drone))
    line = one_line_error(kcity(env, "devices", "provision", "madiun", drone), drone)
    assert "mukdahan" not in line
    answer = client.post(
        "/api/v1/pilots/madiun/devices",
        headers={"Authorization": f"Bearer {world['operator']}"},
        json={"device_id": drone},
    )
    assert answer.status_code == 422, answer.text
    assert "mukdahan" not in answer.text and "not available" in answer.json()["detail"]
