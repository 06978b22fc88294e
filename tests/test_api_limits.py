"""Issue #17's junk traffic against the API: junk methods and paths do not grow `/metrics`,
floods of input are not echoed, over-long windows are refused, GETs write nothing, and a
storm of heavy requests gets 429 with `Retry-After` while `/health` keeps answering."""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import httpx
import psycopg
import pytest
import uvicorn
from fastapi.testclient import TestClient

from kcity.analyses import Window, run_quality
from kcity.api import create_app
from kcity.settings import Settings
from kcity.stack.processes import free_port
from tests.fixtures.api_world import World, build_world

V1 = "/api/v1"
SL_WINDOW = "from=2026-10-01&to=2026-10-03"
FLOOD = "x" * 60_000


@pytest.fixture(scope="module")
def world(db_url: str) -> World:
    with psycopg.connect(db_url, autocommit=True) as c:
        built = build_world(c, uuid.uuid4().hex[:8])
        run_quality(c, built.madiun, Window(date(2026, 10, 1), date(2026, 10, 3)))
    return built


@pytest.fixture(scope="module")
def client(settings: Settings, world: World) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def auth(world: World, role: str = "admin") -> dict[str, str]:
    return {"Authorization": f"Bearer {world.tokens[role]}"}


def test_junk_methods_and_paths_do_not_grow_metrics(client: TestClient, world: World) -> None:
    client.get("/health")
    before = len(client.get("/metrics").text)
    for i in range(300):
        junk = f"J{uuid.uuid4().hex[:10].upper()}"
        client.request(junk, f"{V1}/pilots/madiun?i={i}", headers=auth(world))
        client.get(f"/junk/{uuid.uuid4().hex}")
    text = client.get("/metrics").text
    assert not re.search(r'method="J[0-9A-F]{10}"', text) and "/junk/" not in text
    assert 'method="other",route="/api/v1/pilots/{pilot}"' in text
    assert 'method="GET",route="other",status="404"' in text
    # 600 junk requests added a handful of series (other×route×status), not 600.
    assert len(text) - before < 20_000


@pytest.mark.parametrize(
    "where",
    ["path", "query", "json key", "json value", "cursor"],
)
def test_error_bodies_echo_at_most_200_characters(
    client: TestClient, world: World, where: str
) -> None:
    if where == "path":
        answer = client.get(f"{V1}/pilots/{FLOOD}", headers=auth(world))
    elif where == "query":
        answer = client.get(f"{V1}/pilots/madiun/savings?from={FLOOD}&to=x", headers=auth(world))
    elif where == "json key":
        answer = client.post(
            f"{V1}/pilots/madiun/devices", headers=auth(world), json={FLOOD: 1, "device_id": "x"}
        )
    elif where == "json value":
        answer = client.post(
            f"{V1}/pilots/madiun/devices", headers=auth(world), json={"device_id": FLOOD}
        )
    else:
        url = f"{V1}/pilots/madiun/devices/{world.lamp}/telemetry?cursor={FLOOD}"
        answer = client.get(url, headers=auth(world))
    assert 400 <= answer.status_code < 500, answer.text[:300]
    longest = max((len(m) for m in re.findall("x+", answer.text)), default=0)
    assert longest <= 200, (where, longest)
    assert len(answer.content) < 4_000


def test_window_limit_is_a_setting(settings: Settings, world: World) -> None:
    short = settings.model_copy(update={"api_max_window_days": 10})
    with TestClient(create_app(short)) as c:
        over = c.get(
            f"{V1}/pilots/madiun/quality?from=2026-10-01&to=2026-10-12", headers=auth(world)
        )
        at = c.get(f"{V1}/pilots/madiun/quality?from=2026-10-01&to=2026-10-11", headers=auth(world))
    assert over.status_code == 422 and "longer than 10 days" in over.json()["detail"]
    assert at.status_code == 200, at.text


def results(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM analytics_results").fetchone()
    assert row is not None
    return int(row[0])


def test_no_get_writes(client: TestClient, world: World, conn: psycopg.Connection) -> None:
    before = results(conn)
    for path in (
        f"/pilots/madiun/savings?{SL_WINDOW}",
        f"/pilots/madiun/quality?{SL_WINDOW}",
        "/pilots/madiun/results/quality",
        f"/pilots/madiun/devices/{world.lamp}/telemetry",
        "/pilots/madiun/reports/no-such-job",
    ):
        client.get(V1 + path, headers=auth(world))
    assert results(conn) == before
    # The report job (a POST) is the request that stores its runs, as `kcity report` does.
    queued = client.post(f"{V1}/pilots/madiun/reports?{SL_WINDOW}", headers=auth(world))
    assert queued.status_code == 202
    deadline = time.monotonic() + 300
    while client.get(queued.json()["url"], headers=auth(world)).status_code == 202:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert results(conn) > before


@pytest.fixture
def server(settings: Settings, world: World) -> Iterator[str]:
    """The app behind a real uvicorn server (thread pool, event loop and all)."""
    port = free_port()
    limited = settings.model_copy(update={"api_heavy_slots": 1, "api_max_jobs": 2})
    srv = uvicorn.Server(
        uvicorn.Config(create_app(limited), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield url
    srv.should_exit = True
    thread.join(timeout=30)


def test_a_storm_of_heavy_requests_gets_429_and_health_keeps_answering(
    server: str, world: World
) -> None:
    heavy = [
        ("POST", f"{V1}/pilots/madiun/reports?{SL_WINDOW}"),
        ("GET", f"{V1}/pilots/madiun/savings?{SL_WINDOW}"),
        ("GET", f"{V1}/pilots/madiun/quality?{SL_WINDOW}"),
    ] * 4  # 12 at once, against one heavy slot and two job places
    health: list[int] = []
    storming = threading.Event()
    storming.set()

    def poll_health() -> None:
        with httpx.Client(base_url=server, timeout=30) as h:
            while storming.is_set():
                health.append(h.get("/health").status_code)
                time.sleep(0.02)

    def call(method: str, path: str) -> httpx.Response:
        with httpx.Client(base_url=server, timeout=300) as c:
            return c.request(method, path, headers=auth(world, "evaluator"))

    poller = threading.Thread(target=poll_health)
    poller.start()
    try:
        with ThreadPoolExecutor(len(heavy)) as pool:
            answers = list(pool.map(lambda mp: call(*mp), heavy))
    finally:
        storming.clear()
        poller.join()
    codes = [a.status_code for a in answers]
    assert set(codes) <= {200, 202, 429}, codes
    busy = [a for a in answers if a.status_code == 429]
    assert busy, codes  # 12 at once cannot all fit in one slot and two job places
    assert all(int(a.headers["retry-after"]) > 0 and "busy" in a.json()["detail"] for a in busy)
    assert sum(1 for a in answers if a.status_code == 202) <= 2
    assert health and set(health) == {200}, health


def test_a_report_renders_in_a_child_process_that_ends_with_the_server(
    settings: Settings, world: World
) -> None:
    """Reports are rendered outside the API's process (their CPU would hold its GIL and make
    `/health` wait), and no such child outlives the app."""
    from tests.test_api import report_of

    app = create_app(settings)
    with TestClient(app) as c:
        answer = report_of(c, auth(world, "evaluator"), f"/pilots/madiun/reports?{SL_WINDOW}")
        assert answer.status_code == 200 and answer.content.startswith(b"%PDF")
        children = list(app.state.heavy._processes._processes.values())
        assert children and all(p.pid != os.getpid() and p.is_alive() for p in children)
    for p in children:
        p.join(timeout=10)
        assert not p.is_alive(), f"report process {p.pid} outlived the app"
