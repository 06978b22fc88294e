"""The HTTP API on the real app, database and broker: every role against every endpoint,
401/403/404/409/422 answers, keyset paging, provisioning through the broker, metrics, and
the `kcity api run` / `kcity tokens` commands."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import psycopg
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion
from typer.testing import CliRunner, Result

from kcity import cli, registry, tokens
from kcity.analyses import Window, run_coverage, run_quality, run_savings
from kcity.api import create_app
from kcity.errors import KcityError, NotFound
from kcity.settings import Settings
from kcity.stack.processes import free_port
from kcity.tokens import TokenError
from tests.fixtures.api_world import (
    DRONE_READINGS,
    GENERIC_METRICS,
    GENERIC_TIMES,
    LAMP_READINGS,
    LAMP_START,
    World,
    build_world,
)

V1 = "/api/v1"
ROLES = ("admin", "operator", "evaluator", "viewer")
SL_WINDOW = "from=2026-10-01&to=2026-10-03"
DRONE_WINDOW = "from=2026-11-01&to=2026-11-02"


@pytest.fixture(scope="module")
def world(db_url: str) -> World:
    with psycopg.connect(db_url, autocommit=True) as c:
        built = build_world(c, uuid.uuid4().hex[:8])
        run_quality(c, built.madiun, Window(date(2026, 10, 1), date(2026, 10, 3)))
        run_quality(c, built.mukdahan, Window(date(2026, 11, 1), date(2026, 11, 2)))
    return built


@pytest.fixture(scope="module")
def client(settings: Settings, world: World) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def as_role(world: World, role: str) -> dict[str, str]:
    return bearer(world.tokens[role])


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def connack(settings: Settings, username: str, password: str) -> int:
    """The broker's CONNACK reason code for these credentials (0 = accepted)."""
    got: list[int] = []
    done = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=username, protocol=mqtt.MQTTv5)
    client.username_pw_set(username, password)

    def on_connect(c: Any, u: Any, flags: Any, rc: Any, props: Any) -> None:
        got.append(rc.value)
        done.set()

    client.on_connect = on_connect
    client.connect(settings.mqtt_host, settings.mqtt_port, keepalive=10)
    client.loop_start()
    try:
        assert done.wait(15), "no CONNACK"
    finally:
        client.disconnect()
        client.loop_stop()
    return got[0]


# --- every role × every endpoint ---------------------------------------------------------

EVERYONE = frozenset(ROLES)
READERS = frozenset({"admin", "operator", "evaluator"})
MANAGERS = frozenset({"admin", "operator"})

# (name, method, path template, roles allowed on the operator's own pilot, success status)
ENDPOINTS = [
    ("pilot", "GET", "/pilots/{p}", EVERYONE, 200),
    ("devices", "GET", "/pilots/{p}/devices", READERS, 200),
    ("device", "GET", "/pilots/{p}/devices/{dev}", READERS, 200),
    ("telemetry", "GET", "/pilots/{p}/devices/{dev}/telemetry?limit=5", READERS, 200),
    ("events", "GET", "/pilots/{p}/devices/{dev}/events", READERS, 200),
    ("summary", "GET", "/pilots/{p}/{analysis}?{window}", EVERYONE, 200),
    ("quality", "GET", "/pilots/{p}/quality?{window}", EVERYONE, 200),
    ("stored", "GET", "/pilots/{p}/results/quality", EVERYONE, 200),
    # 422 for a bad language: past the scope check, without building (tested below)
    ("report", "POST", "/pilots/{p}/reports?{window}&lang=xx", READERS, 422),
    ("report job", "GET", "/pilots/{p}/reports/no-such-job", READERS, 404),
    ("export", "GET", "/pilots/{p}/export?{window}", frozenset({"admin", "evaluator"}), 200),
    ("provision", "POST", "/pilots/{p}/devices", MANAGERS, 201),
    ("revoke", "DELETE", "/pilots/{p}/devices/{victim}", MANAGERS, 200),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("own", [True, False], ids=["own-pilot", "other-pilot"])
@pytest.mark.parametrize(
    ("name", "method", "path", "allowed", "success"), ENDPOINTS, ids=[e[0] for e in ENDPOINTS]
)
def test_role_scope(
    client: TestClient,
    world: World,
    conn: psycopg.Connection,
    role: str,
    own: bool,
    name: str,
    method: str,
    path: str,
    allowed: frozenset[str],
    success: int,
) -> None:
    pilot = world.madiun if own else world.mukdahan  # the operator token is madiun's
    victim = new_id(f"{pilot}-victim")
    if method == "DELETE":
        registry.create_device(conn, pilot, victim)
    url = V1 + path.format(
        p=pilot,
        dev=world.lamp if own else world.drone,
        analysis="savings" if own else "coverage",
        window=SL_WINDOW if own else DRONE_WINDOW,
        victim=victim,
    )
    body = {"device_id": new_id(f"{pilot}-new")} if name == "provision" else None
    answer = client.request(method, url, headers=as_role(world, role), json=body)
    expected = success if role in allowed and (own or role != "operator") else 403
    assert answer.status_code == expected, answer.text
    if expected == 403:
        assert role in answer.json()["detail"] or pilot in answer.json()["detail"]
        if method == "DELETE":
            assert registry.get_device(conn, victim).active  # nothing was done
        if body:
            assert not registry.device_exists(conn, body["device_id"])


def test_evidence_export_streams_a_bundle_that_verifies(
    client: TestClient, world: World, conn: psycopg.Connection, tmp_path: Path
) -> None:
    from kcity.evidence.verify import verify_bundle

    # Other tests register devices after storing results: store fresh ones, so the bundle's
    # stored figures are those of today's registry (a stale one would rightly not verify).
    window = Window(date(2026, 10, 1), date(2026, 10, 3))
    run_savings(conn, world.madiun, window)
    run_quality(conn, world.madiun, window)

    url = f"{V1}/pilots/{world.madiun}/export?{SL_WINDOW}"
    answer = client.get(url, headers=as_role(world, "evaluator"))
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/zip"
    bundle = tmp_path / "bundle.zip"
    bundle.write_bytes(answer.content)
    assert answer.headers["x-bundle-sha256"] == hashlib.sha256(answer.content).hexdigest()
    verdict = verify_bundle(bundle)
    assert verdict.ok, [c for c in verdict.checks if not c.ok]
    assert any(c.kind == "figure" and c.analysis == "savings" for c in verdict.checks)
    bad = client.get(f"{url}&format=xlsx", headers=as_role(world, "admin"))
    assert bad.status_code == 422


@pytest.mark.parametrize("role", ROLES)
def test_pilot_list_by_role(
    client: TestClient, world: World, conn: psycopg.Connection, role: str
) -> None:
    answer = client.get(f"{V1}/pilots", headers=as_role(world, role))
    assert answer.status_code == 200
    ids = [p["id"] for p in answer.json()]
    assert ids == ([world.madiun] if role == "operator" else [world.madiun, world.mukdahan])
    madiun = next(p for p in answer.json() if p["id"] == world.madiun)
    active = [d for d in registry.list_devices(conn, world.madiun) if d.active]
    assert (madiun["kind"], madiun["country"], madiun["devices"]) == (
        "streetlight",
        "ID",
        len(active),
    )


def test_scope_is_checked_before_existence(client: TestClient, world: World) -> None:
    """An operator learns nothing about other pilots; a viewer nothing about devices."""
    operator, viewer, admin = (as_role(world, r) for r in ("operator", "viewer", "admin"))
    assert client.get(f"{V1}/pilots/atlantis", headers=operator).status_code == 403
    assert client.get(f"{V1}/pilots/atlantis", headers=admin).status_code == 404
    ghost = f"{V1}/pilots/{world.madiun}/devices/no-such-device/telemetry"
    assert client.get(ghost, headers=viewer).status_code == 403
    assert client.get(ghost, headers=admin).status_code == 404


# --- 401 -----------------------------------------------------------------------------------

UNAUTHORIZED = {
    "no header": None,
    "basic auth": "Basic YWRtaW46YWRtaW4=",
    "empty bearer": "Bearer ",
    "unknown token": "Bearer kct_not-a-token",
}


@pytest.mark.parametrize(
    "header", [*UNAUTHORIZED.values(), "revoked"], ids=[*UNAUTHORIZED, "revoked token"]
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/pilots"),
        ("GET", "/pilots/atlantis"),  # 401, not 404
        ("GET", "/pilots/madiun/savings?from=bad"),  # 401, not 422
        ("POST", "/pilots/madiun/devices"),
    ],
)
def test_unauthorized(
    client: TestClient, world: World, header: str | None, method: str, path: str
) -> None:
    if header == "revoked":
        header = f"Bearer {world.revoked_token}"
    headers = {"Authorization": header} if header else {}
    answer = client.request(method, V1 + path, headers=headers, json={"device_id": "x-1"})
    assert answer.status_code == 401, answer.text
    assert answer.headers["www-authenticate"] == "Bearer"
    assert "token" in answer.json()["detail"]


# --- 404 and 409 ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/pilots/atlantis",
        "/pilots/Not%20An%20Id",
        "/pilots/atlantis/devices",
        "/pilots/atlantis/quality?from=2026-10-01&to=2026-10-02",
        "/pilots/madiun/devices/no-such-device",
        "/pilots/madiun/devices/no-such-device/telemetry",
        "/pilots/madiun/devices/{drone}",  # a device of another pilot
        "/pilots/madiun/devices/{drone}/telemetry",
        "/pilots/madiun/devices/{drone}/events",
        "/pilots/mukdahan/results/savings",  # nothing stored
    ],
)
def test_not_found(client: TestClient, world: World, path: str) -> None:
    answer = client.get(V1 + path.format(drone=world.drone), headers=as_role(world, "admin"))
    assert answer.status_code == 404, answer.text
    assert answer.json()["detail"]


def test_revoking_a_device_of_another_pilot_is_not_found(
    client: TestClient, world: World, conn: psycopg.Connection
) -> None:
    url = f"{V1}/pilots/{world.madiun}/devices/{world.drone}"
    assert client.delete(url, headers=as_role(world, "admin")).status_code == 404
    assert registry.get_device(conn, world.drone).active


def test_device_id_of_another_pilot_is_refused_unnamed(client: TestClient, world: World) -> None:
    answer = client.post(
        f"{V1}/pilots/{world.madiun}/devices",
        headers=as_role(world, "admin"),
        json={"device_id": world.drone},
    )
    assert answer.status_code == 422
    assert "not available" in answer.json()["detail"]
    assert world.mukdahan not in answer.json()["detail"].replace(world.drone, "")


# --- 422 -----------------------------------------------------------------------------------

BAD_PARAMETERS = [
    ("/pilots/madiun/savings?from=2026-13-01&to=2026-10-03", "from"),
    ("/pilots/madiun/savings?to=2026-10-03", "from"),
    ("/pilots/madiun/savings?from=2026-10-03&to=2026-10-01", "must be after"),
    ("/pilots/madiun/savings?from=2026-10-01&to=2026-10-01", "must be after"),
    ("/pilots/madiun/quality?from=2014-12-30&to=2015-01-02", "between"),
    ("/pilots/madiun/quality?from=2020-01-01&to=2026-01-01", "longer than"),
    ("/pilots/madiun/coverage?from=2026-10-01&to=2026-10-03", "needs a hybrid_drone pilot"),
    ("/pilots/mukdahan/savings?from=2026-11-01&to=2026-11-02", "needs a streetlight pilot"),
    ("/pilots/madiun/results/energy", "analysis"),
    ("/pilots/madiun/devices/{lamp}/telemetry?limit=0", "limit"),
    ("/pilots/madiun/devices/{lamp}/telemetry?limit=10001", "limit"),
    ("/pilots/madiun/devices/{lamp}/telemetry?from=yesterday", "from"),
    (
        "/pilots/madiun/devices/{lamp}/telemetry?from=2026-10-02T00:00Z&to=2026-10-01T00:00Z",
        "must be after",
    ),
    ("/pilots/madiun/devices/{lamp}/telemetry?cursor=garbage", "cursor"),
    ("/pilots/madiun/devices/{lamp}/events?cursor={lamp_cursor}", "cursor"),
    ("/pilots/madiun/savings?from=2026-01-01&to=2027-02-06", "longer than 400 days"),
]
BAD_REPORTS = [
    ("/pilots/madiun/reports?from=2026-10-01&to=2026-10-03&lang=english", "lang"),
    ("/pilots/madiun/reports?from=2026-10-01&to=2026-10-03&format=docx", "format"),
    ("/pilots/madiun/reports?from=2025-01-01&to=2026-10-03", "longer than"),
]


@pytest.mark.parametrize(("path", "fragment"), BAD_PARAMETERS)
def test_bad_parameters(client: TestClient, world: World, path: str, fragment: str) -> None:
    admin = as_role(world, "admin")
    first = client.get(
        f"{V1}/pilots/madiun/devices/{world.lamp}/telemetry?limit=1", headers=admin
    ).json()["next_cursor"]
    answer = client.get(V1 + path.format(lamp=world.lamp, lamp_cursor=first), headers=admin)
    assert answer.status_code == 422, answer.text
    assert fragment in answer.json()["detail"]


@pytest.mark.parametrize(("path", "fragment"), BAD_REPORTS)
def test_bad_report_parameters_queue_nothing(
    client: TestClient, world: World, path: str, fragment: str
) -> None:
    answer = client.post(V1 + path, headers=as_role(world, "admin"))
    assert answer.status_code == 422, answer.text
    assert fragment in answer.json()["detail"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"device_id": "Bad Id"}, "device_id"),
        ({"device_id": "x"}, "device_id"),
        ({}, "device_id"),
        ({"device_id": "madiun-ok-1", "kind": "toaster"}, "unknown device kind"),
        ({"device_id": "madiun-ok-2", "colour": "red"}, "colour"),
        ([1, 2], "body"),
    ],
)
def test_bad_device_bodies(
    client: TestClient, world: World, conn: psycopg.Connection, body: Any, fragment: str
) -> None:
    answer = client.post(f"{V1}/pilots/madiun/devices", headers=as_role(world, "admin"), json=body)
    assert answer.status_code == 422, answer.text
    assert fragment in answer.json()["detail"]
    if isinstance(body, dict) and "device_id" in body:
        assert not registry.device_exists(conn, body["device_id"])


def test_validation_errors_name_each_parameter(client: TestClient, world: World) -> None:
    answer = client.get(f"{V1}/pilots/madiun/savings?from=x&to=y", headers=as_role(world, "admin"))
    assert answer.status_code == 422
    locations = [e["loc"] for e in answer.json()["errors"]]
    assert ["query", "from"] in locations and ["query", "to"] in locations


# --- telemetry paging ----------------------------------------------------------------------


def pages(client: TestClient, world: World, url: str) -> list[dict[str, Any]]:
    """Every page of a listing, following next_cursor; checks page sizes on the way."""
    pages: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        sep = "&" if "?" in url else "?"
        full = url + (f"{sep}cursor={cursor}" if cursor else "")
        answer = client.get(full, headers=as_role(world, "evaluator"))
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert page["count"] == len(page["records"])
        pages.append(page)
        cursor = page["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 100, "paging does not end"


def test_telemetry_pages_cover_every_reading_once(client: TestClient, world: World) -> None:
    got = pages(client, world, f"{V1}/pilots/madiun/devices/{world.lamp}/telemetry?limit=10")
    assert [p["count"] for p in got] == [10, 10, LAMP_READINGS - 20]
    records = [r for p in got for r in p["records"]]
    stamps = [r["ts"] for r in records]
    assert len(set(stamps)) == LAMP_READINGS
    assert [r["energy_wh"] for r in records] == [10.0 * i for i in range(LAMP_READINGS)]
    assert got[0]["kind"] == "streetlight" and records[0]["power_w"] == 120.0


def test_a_full_last_page_has_no_next_cursor(client: TestClient, world: World) -> None:
    got = pages(
        client, world, f"{V1}/pilots/madiun/devices/{world.lamp}/telemetry?limit={LAMP_READINGS}"
    )
    assert [p["count"] for p in got] == [LAMP_READINGS]


def test_telemetry_time_range(client: TestClient, world: World) -> None:
    start = LAMP_START + timedelta(minutes=25)
    end = LAMP_START + timedelta(minutes=75)
    naive = start.replace(tzinfo=None).isoformat()  # no offset: UTC
    url = (
        f"{V1}/pilots/madiun/devices/{world.lamp}/telemetry?limit=4"
        f"&from={naive}&to={end.isoformat().replace('+', '%2B')}"
    )
    got = pages(client, world, url)
    records = [r for p in got for r in p["records"]]
    assert [r["energy_wh"] for r in records] == [10.0 * i for i in range(5, 15)]
    assert got[0]["from"].startswith(start.isoformat().replace("+00:00", ""))


def test_generic_readings_page_on_time_and_metric(client: TestClient, world: World) -> None:
    got = pages(client, world, f"{V1}/pilots/madiun/devices/{world.meter}/telemetry?limit=3")
    keys = [(r["ts"], r["metric"]) for p in got for r in p["records"]]
    assert len(keys) == len(set(keys)) == GENERIC_TIMES * len(GENERIC_METRICS)
    assert keys == sorted(keys)


def test_events_page_on_time_and_type(client: TestClient, world: World) -> None:
    got = pages(client, world, f"{V1}/pilots/madiun/devices/{world.lamp}/events?limit=1")
    events = [(r["ts"], r["type"]) for p in got for r in p["records"]]
    assert [t for _, t in events] == ["config_changed", "fault", "fault_cleared"]
    assert got[1]["records"][0]["data"] == {"code": "lamp_failure"}


def test_drone_telemetry(client: TestClient, world: World) -> None:
    got = pages(client, world, f"{V1}/pilots/mukdahan/devices/{world.drone}/telemetry")
    records = got[0]["records"]
    assert len(records) == DRONE_READINGS
    assert records[0]["flight_id"] == "f1" and records[0]["agl_m"] == 120.0


# --- provisioning through the broker -------------------------------------------------------


def test_operator_provisions_rotates_and_revokes_in_its_pilot(
    client: TestClient, world: World, settings: Settings, conn: psycopg.Connection
) -> None:
    operator = as_role(world, "operator")
    device = new_id("madiun-api")
    created = client.post(
        f"{V1}/pilots/madiun/devices", headers=operator, json={"device_id": device}
    )
    assert created.status_code == 201, created.text
    creds = created.json()
    assert (creds["username"], creds["pilot"], creds["kind"], creds["rotated"]) == (
        device,
        "madiun",
        "streetlight",
        False,
    )
    assert creds["topic_prefix"] == f"kcity/v1/madiun/{device}/"
    assert registry.check_password(conn, device, creds["password"])
    assert connack(settings, device, creds["password"]) == 0

    again = client.post(
        f"{V1}/pilots/madiun/devices", headers=operator, json={"device_id": device}
    ).json()
    assert again["rotated"] is True and again["password"] != creds["password"]
    assert connack(settings, device, creds["password"]) != 0
    assert connack(settings, device, again["password"]) == 0

    listed = client.get(f"{V1}/pilots/madiun/devices", headers=operator).json()
    assert device in [d["device_id"] for d in listed]
    assert all("password" not in d for d in listed)

    revoked = client.delete(f"{V1}/pilots/madiun/devices/{device}", headers=operator)
    assert revoked.status_code == 200
    assert revoked.json()["active"] is False and revoked.json()["revoked_at"]
    assert connack(settings, device, again["password"]) != 0


def test_operator_cannot_provision_in_another_pilot(
    client: TestClient, world: World, conn: psycopg.Connection
) -> None:
    device = new_id("mukdahan-api")
    answer = client.post(
        f"{V1}/pilots/mukdahan/devices",
        headers=as_role(world, "operator"),
        json={"device_id": device},
    )
    assert answer.status_code == 403
    assert "'madiun'" in answer.json()["detail"]
    assert not registry.device_exists(conn, device)


# --- analytics are the CLI's bodies --------------------------------------------------------

SAVINGS_KEYS = (
    "pilot",
    "from",
    "to",
    "method",
    "luminaires",
    "actual_kwh",
    "baseline_kwh",
    "savings_kwh",
    "savings_pct",
    "ci90_kwh",
    "co2_kg",
    "cost_saved",
    "currency",
    "completeness_pct",
    "excluded_nights",
    "per_luminaire",
)
COVERAGE_KEYS = (
    "pilot",
    "from",
    "to",
    "aoi_km2",
    "covered_km2",
    "area_coverage_pct",
    "border_km",
    "border_covered_km",
    "linear_coverage_pct",
    "revisit_s",
    "flight_hours",
    "distance_km",
    "detections",
    "battery_kwh",
    "generator_kwh",
    "fuel_l",
    "generator_share_pct",
)


def stored_results(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM analytics_results").fetchone()
    assert row is not None
    return int(row[0])


def test_savings_is_the_cli_body_and_is_not_stored(
    client: TestClient, world: World, conn: psycopg.Connection
) -> None:
    before = stored_results(conn)
    answer = client.get(f"{V1}/pilots/madiun/savings?{SL_WINDOW}", headers=as_role(world, "viewer"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert all(k in body for k in SAVINGS_KEYS)
    cli, _ = run_savings(
        conn, "madiun", Window(date(2026, 10, 1), date(2026, 10, 3)), persist=False
    )
    assert body == json.loads(json.dumps(cli, default=str).replace("NaN", "null"))
    assert stored_results(conn) == before
    # `?view=summary`: the same figures without the tables, each counted.
    short = client.get(
        f"{V1}/pilots/madiun/savings?{SL_WINDOW}&view=summary", headers=as_role(world, "viewer")
    ).json()
    assert short.pop("table_rows") == {k: len(v) for k, v in body.items() if isinstance(v, list)}
    assert short == {k: v for k, v in body.items() if not isinstance(v, list)}
    assert "per_luminaire" in body and "per_luminaire" not in short


def test_coverage_is_the_cli_body(
    client: TestClient, world: World, conn: psycopg.Connection
) -> None:
    answer = client.get(
        f"{V1}/pilots/mukdahan/coverage?{DRONE_WINDOW}", headers=as_role(world, "viewer")
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert all(k in body for k in COVERAGE_KEYS)
    cli, _ = run_coverage(
        conn, "mukdahan", Window(date(2026, 11, 1), date(2026, 11, 2)), persist=False
    )
    assert body == json.loads(json.dumps(cli, default=str).replace("NaN", "null"))
    assert body["pilot"] == "mukdahan" and body["flight_hours"] > 0


def test_stored_result_is_the_latest_run(client: TestClient, world: World) -> None:
    answer = client.get(f"{V1}/pilots/madiun/results/quality", headers=as_role(world, "viewer"))
    assert answer.status_code == 200
    body = answer.json()
    assert (body["pilot"], body["from"], body["method"]) == ("madiun", "2026-10-01", "data-quality")


def test_stored_result_summary_leaves_the_tables_out(client: TestClient, world: World) -> None:
    """`?view=summary` is the document's figures (from `analytics_summary`, filled by a
    trigger) without its tables, each counted in `table_rows`; an unknown view is a 422."""
    url, headers = f"{V1}/pilots/madiun/results/quality", as_role(world, "viewer")
    full = client.get(url, headers=headers).json()
    summary = client.get(f"{url}?view=summary", headers=headers)
    assert summary.status_code == 200, summary.text
    short = summary.json()
    tables = {k: len(v) for k, v in full.items() if isinstance(v, list)}
    assert tables and short.pop("table_rows") == tables
    assert isinstance(short.pop("result_id"), int)
    assert short == {k: v for k, v in full.items() if k not in tables}
    bad = client.get(f"{url}?view=everything", headers=headers)
    assert bad.status_code == 422 and "view" in bad.text


# --- reports -------------------------------------------------------------------------------


def report_of(client: TestClient, headers: dict[str, str], query: str) -> httpx.Response:
    """Queue a report job, then poll its URL until it is no longer 202."""
    queued = client.post(f"{V1}{query}", headers=headers)
    assert queued.status_code == 202, queued.text
    url = queued.json()["url"]
    assert queued.headers["location"] == url and queued.json()["state"] in ("queued", "running")
    deadline = time.monotonic() + 300
    answer = client.get(url, headers=headers)
    while answer.status_code == 202 and time.monotonic() < deadline:
        assert int(answer.headers["retry-after"]) > 0
        time.sleep(0.2)
        answer = client.get(url, headers=headers)
    return answer


def test_report_download_is_a_pdf(client: TestClient, world: World) -> None:
    answer = report_of(
        client, as_role(world, "evaluator"), f"/pilots/madiun/reports?{SL_WINDOW}&format=pdf"
    )
    assert answer.status_code == 200, answer.text
    assert answer.content.startswith(b"%PDF")
    assert answer.headers["content-type"] == "application/pdf"
    disposition = answer.headers["content-disposition"]
    assert disposition == 'attachment; filename="kcity-madiun-2026-10-01-2026-10-03-en.pdf"'


def test_report_html_is_self_contained(client: TestClient, world: World) -> None:
    answer = report_of(
        client,
        as_role(world, "admin"),
        f"/pilots/mukdahan/reports?{DRONE_WINDOW}&format=html&lang=ko",
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    html = answer.text
    assert "<html" in html and 'lang="ko"' in html
    images = re.findall(r'<img src="([^"]*)"', html)
    assert images and all(src.startswith("data:image/png;base64,") for src in images)


# --- service endpoints ---------------------------------------------------------------------


def test_health_needs_no_token(client: TestClient) -> None:
    answer = client.get("/health")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "database": True}


def test_health_without_database(settings: Settings) -> None:
    nowhere = settings.model_copy(
        update={"database_url": f"postgresql://kcity@127.0.0.1:{free_port()}/kcity"}
    )
    with TestClient(create_app(nowhere)) as c:
        answer = c.get("/health")
    assert answer.status_code == 503
    assert answer.json()["database"] is False


def test_metrics_count_requests_by_route_template(client: TestClient, world: World) -> None:
    client.get(f"{V1}/pilots/madiun/devices/{world.lamp}", headers=as_role(world, "admin"))
    client.get("/no/such/route")
    text = client.get("/metrics").text
    assert (
        'kcity_api_requests_total{method="GET",route="/api/v1/pilots/{pilot}/devices/'
        '{device}",status="200"}'
    ) in text
    assert 'route="other",status="404"' in text
    assert "kcity_api_request_duration_seconds_bucket" in text
    assert world.lamp not in text


def test_openapi_documents_every_endpoint_and_bearer_auth(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    paths = set(schema["paths"])
    for path in (
        "/pilots",
        "/pilots/{pilot}",
        "/pilots/{pilot}/devices",
        "/pilots/{pilot}/devices/{device}",
        "/pilots/{pilot}/devices/{device}/telemetry",
        "/pilots/{pilot}/savings",
        "/pilots/{pilot}/coverage",
        "/pilots/{pilot}/quality",
        "/pilots/{pilot}/reports",
        "/pilots/{pilot}/reports/{job}",
    ):
        assert V1 + path in paths
    assert {"/health", "/metrics"} <= paths
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


# --- tokens and the commands ---------------------------------------------------------------


def test_tokens_are_stored_hashed(conn: psycopg.Connection, world: World) -> None:
    secret, token = tokens.create_token(conn, "evaluator", label="hash check")
    row = conn.execute("SELECT token_hash FROM api_tokens WHERE id = %s", (token.id,)).fetchone()
    assert row is not None
    assert row[0] == hashlib.sha256(secret.encode()).hexdigest() != secret
    assert tokens.resolve_token(conn, secret) == token
    tokens.revoke_token(conn, token.id)
    assert tokens.resolve_token(conn, secret) is None


@pytest.mark.parametrize(
    ("role", "pilot", "fragment"),
    [
        ("operator", None, "--pilot"),
        ("viewer", "madiun", "only operator tokens"),
        ("root", None, "unknown role"),
        ("operator", "atlantis", "unknown pilot"),
    ],
)
def test_token_rules(
    conn: psycopg.Connection, world: World, role: str, pilot: str | None, fragment: str
) -> None:
    with pytest.raises(KcityError, match=fragment):
        tokens.create_token(conn, role, pilot)


def kcity(args: list[str], tmp_path: Path, db_url: str) -> Result:
    """The `kcity` command in-process (a subprocess would spend seconds on imports)."""
    env = {"KCITY_DATA_DIR": str(tmp_path / ".kcity"), "KCITY_DATABASE_URL": db_url}
    return CliRunner().invoke(cli.app, args, env=env)


def test_tokens_commands(tmp_path: Path, db_url: str, world: World, client: TestClient) -> None:
    made = kcity(
        ["tokens", "create", "--role", "operator", "--pilot", "madiun", "--label", "cli", "--json"],
        tmp_path,
        db_url,
    )
    assert made.exit_code == 0, made.output
    token = json.loads(made.stdout)
    assert (token["role"], token["pilot"], token["label"]) == ("operator", "madiun", "cli")
    assert client.get(f"{V1}/pilots", headers=bearer(token["token"])).status_code == 200

    listed = kcity(["tokens", "list", "--json"], tmp_path, db_url)
    assert listed.exit_code == 0 and token["token"] not in listed.stdout
    assert token["id"] in [t["id"] for t in json.loads(listed.stdout)]

    revoked = kcity(["tokens", "revoke", str(token["id"])], tmp_path, db_url)
    assert revoked.exit_code == 0, revoked.output
    assert client.get(f"{V1}/pilots", headers=bearer(token["token"])).status_code == 401

    refused = kcity(["tokens", "create", "--role", "operator"], tmp_path, db_url)
    assert isinstance(refused.exception, TokenError)
    assert str(refused.exception) == "an operator token is bound to one pilot: give --pilot PILOT"
    missing = kcity(["tokens", "revoke", "99999"], tmp_path, db_url)
    assert isinstance(missing.exception, NotFound)
    week = kcity(
        ["tokens", "create", "--role", "viewer", "--expires", "7", "--json"], tmp_path, db_url
    )
    made_week = json.loads(week.stdout)
    lifetime = date.fromisoformat(made_week["expires_at"][:10]) - date.today()
    assert timedelta(days=6) <= lifetime <= timedelta(days=8)
    never = kcity(["tokens", "create", "--role", "viewer", "--expires", "0"], tmp_path, db_url)
    assert isinstance(never.exception, TokenError) and "expires" in str(never.exception)


def test_api_run_serves_until_stopped(tmp_path: Path, db_url: str, world: World) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KCITY_")}
    env.update(
        KCITY_DATA_DIR=str(tmp_path / ".kcity"), KCITY_DATABASE_URL=db_url, KCITY_API_PORT=str(port)
    )
    log = (tmp_path / "api.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "kcity", "api", "run"],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (tmp_path / "api.log").read_text()
            try:
                if httpx.get(f"{base}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the API did not come up"
            time.sleep(0.2)
        answer = httpx.get(f"{base}{V1}/pilots", headers=as_role(world, "viewer"))
        assert answer.status_code == 200
        assert [p["id"] for p in answer.json()] == ["madiun", "mukdahan"]
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()


def test_tokens_expire(client: TestClient, conn: psycopg.Connection) -> None:
    secret, token = tokens.create_token(conn, "viewer", label="short-lived", days=1)
    left = token.expires_at - token.created_at
    assert timedelta(hours=23) < left <= timedelta(days=1)
    default = tokens.create_token(conn, "viewer")[1]
    assert default.expires_at - default.created_at == timedelta(days=90)
    assert client.get(f"{V1}/pilots", headers=bearer(secret)).status_code == 200
    conn.execute(
        "UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = %s",
        (token.id,),
    )
    answer = client.get(f"{V1}/pilots", headers=bearer(secret))
    assert answer.status_code == 401 and "expired" in answer.json()["detail"]
    assert tokens.resolve_token(conn, secret) is None
    listed = {t.id: t for t in tokens.list_tokens(conn)}
    assert not listed[token.id].active and listed[default.id].active
    with pytest.raises(TokenError, match="expires"):
        tokens.create_token(conn, "viewer", days=0)


def test_json_bodies_are_strict_whatever_path_renders_them() -> None:
    """Analytics bodies are sent as they are (one encoding pass); NaN still becomes null and
    a date its ISO form, as through FastAPI's own encoder."""
    from kcity.api.errors import SafeJSONResponse

    weird = {"nan": math.nan, "inf": [math.inf], "day": date(2026, 1, 2), "ok": {"x": 1.5}}
    assert json.loads(SafeJSONResponse(weird).body) == {
        "nan": None, "inf": [None], "day": "2026-01-02", "ok": {"x": 1.5}
    }  # fmt: skip
    plain = {"kwh": 1.25, "rows": [{"device_id": "a", "n": 3}], "note": "é"}
    assert json.loads(SafeJSONResponse(plain).body) == plain
