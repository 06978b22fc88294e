"""Schemathesis over the API's own OpenAPI schema, against the real app, database and broker:
no generated request, valid or not, may get a server error.

Two runs: the schema as published (random pilot and device ids: the id checks and 404s),
and the schema with `{pilot}` and `{device}` pinned to this module's registered world plus
one unknown id, so that dates, limits, cursors and bodies are fuzzed on real data. The
schemas are loaded at import (schemathesis parametrizes at collection); the requests go to
the app of the `api` fixture, which serves the test database.

Requests are sent with Starlette's test client rather than schemathesis' own transport:
that one is built on `requests`, whose urllib3 is replaced in this environment by
urllib3-future (pulled in by grafana-client through niquests), which its connection
bookkeeping does not understand. Unhandled exceptions surface with their traceback; 5xx
answers are caught by schemathesis' `not_a_server_error` check.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import schemathesis
from fastapi.testclient import TestClient
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig

from kcity.api import create_app
from kcity.settings import Settings
from tests.fixtures.api_world import World, build_world, device_ids

MAX_EXAMPLES = 12
UID = uuid.uuid4().hex[:8]
LAMP, METER, DRONE = device_ids(UID)
# Only its OpenAPI document is used: building an app touches no database.
DOCUMENT = create_app(Settings(database_url="postgresql://unused@127.0.0.1/unused")).openapi()
CONFIG = SchemathesisConfig.from_dict({"generation": {"max-examples": MAX_EXAMPLES, "mode": "all"}})


# One valid request per operation (schemathesis' examples phase), fuzzed around by the rest.
EXAMPLE: dict[str, str] = {"pilot": "madiun", "device": LAMP, "from": "2026-10-01",
                           "to": "2026-10-03"}  # fmt: skip
DRONE_EXAMPLE: dict[str, str] = {"pilot": "mukdahan", "device": DRONE, "from": "2026-11-01",
                                 "to": "2026-11-02"}  # fmt: skip


def pinned(document: dict[str, Any], **values: list[str]) -> dict[str, Any]:
    """`document` with the named path parameters, and the `from`/`to` dates of evaluation
    windows, restricted to `values` (keys `pilot`, `device`, `day`), each with an example."""
    out = copy.deepcopy(document)
    for path, operations in out["paths"].items():
        example = DRONE_EXAMPLE if path.endswith("/coverage") else EXAMPLE
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                name, schema = parameter["name"], parameter["schema"]
                if parameter["in"] == "path" and name in values:
                    parameter["schema"] = {"type": "string", "enum": values[name]}
                    parameter["example"] = example[name]
                elif parameter["in"] == "query" and schema.get("format") == "date":
                    parameter["schema"] = {
                        "type": "string",
                        "format": "date",
                        "enum": values["day"],
                    }
                    parameter["example"] = example[name]
    return out


published = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)
on_world = schemathesis.openapi.from_dict(
    pinned(
        DOCUMENT,
        pilot=["madiun", "mukdahan", "atlantis"],
        device=[LAMP, METER, DRONE, "no-such-device"],
        day=["2014-12-31", "2026-10-01", "2026-10-03", "2026-11-01", "2026-11-02"],
    ),
    config=CONFIG,
)


@pytest.fixture(scope="module")
def world(db_url: str) -> World:
    with psycopg.connect(db_url, autocommit=True) as c:
        return build_world(c, UID)


@pytest.fixture(scope="module")
def api(settings: Settings, world: World) -> Iterator[TestClient]:
    """A client of the app with its lifespan started (the pool open)."""
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {world.tokens['admin']}"
        yield client


def call(case: schemathesis.Case[Any], api: TestClient) -> None:
    sent = case.as_transport_kwargs(base_url=str(api.base_url), headers=dict(api.headers))
    sent.pop("cookies", None)  # the API reads none
    if isinstance(sent.get("data"), bytes | str):
        sent["content"] = sent.pop("data")
    response = api.request(**sent)
    case.validate_response(response, checks=[not_a_server_error])


@published.parametrize()
def test_published_schema_has_no_server_error(
    case: schemathesis.Case[Any], api: TestClient
) -> None:
    call(case, api)


@on_world.parametrize()
def test_world_has_no_server_error(case: schemathesis.Case[Any], api: TestClient) -> None:
    call(case, api)
