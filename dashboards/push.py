"""Push the dashboards (and, if asked, their data source) to an existing Grafana.

For sites that already run Grafana and cannot use file provisioning. Every step is
idempotent, so ``kcity dashboards push`` can run after each release: the folder is looked
up by uid and created only when missing, dashboards are saved with ``overwrite``, and the
data source is updated in place when its uid already exists.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException

from dashboards.errors import PushError
from dashboards.sql import DATASOURCE_NAME, DATASOURCE_TYPE, DATASOURCE_UID

DEFAULT_FOLDER = "K-City"
PUSH_MESSAGE = "kcity dashboards push"


@dataclass(frozen=True)
class PushResult:
    """What a push did: the folder used, the dashboards saved, the data source action."""

    folder_uid: str
    folder_created: bool
    dashboards: tuple[str, ...]
    datasource: str | None  # "created", "updated" or None when not asked


def folder_uid(name: str) -> str:
    """A stable folder uid from its title (Grafana uids: ≤ 40 chars of [a-zA-Z0-9_-])."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-")
    return (slug or "kcity")[:40]


def datasource_definition(database_url: str, *, sslmode: str = "disable") -> dict[str, Any]:
    """Grafana's PostgreSQL data source for a ``postgresql://user:pass@host:port/db`` URL."""
    parts = urlsplit(database_url)
    if parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
        raise PushError("datasource", "the database URL must look like postgresql://host/db")
    database = parts.path.lstrip("/") or "kcity"
    host = f"{parts.hostname}:{parts.port or 5432}"
    definition: dict[str, Any] = {
        "uid": DATASOURCE_UID,
        "name": DATASOURCE_NAME,
        "type": DATASOURCE_TYPE,
        "access": "proxy",
        "url": host,
        "user": unquote(parts.username or ""),
        "database": database,
        "isDefault": False,
        "jsonData": {
            "database": database,
            "sslmode": sslmode,
            "postgresVersion": 1500,
            "timescaledb": True,
            "maxOpenConns": 10,
        },
    }
    if parts.password:
        definition["secureJsonData"] = {"password": unquote(parts.password)}
    return definition


def connect(url: str, token: str, *, timeout: float = 10.0) -> GrafanaApi:
    """A Grafana API client with a bearer token (service-account token or API key)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PushError("connect", f"not a Grafana URL: {url!r}")
    base = url.rstrip("/") + "/" if parts.path.strip("/") else url.rstrip("/")
    api: GrafanaApi = GrafanaApi.from_url(base, credential=token, timeout=timeout)
    return api


def push(
    api: GrafanaApi,
    dashboards: Mapping[str, dict[str, Any]],
    *,
    folder: str = DEFAULT_FOLDER,
    datasource: dict[str, Any] | None = None,
) -> PushResult:
    """Create or update the data source (if given), the folder and every dashboard."""
    ds_action = _ensure_datasource(api, datasource) if datasource is not None else None
    uid, created = _ensure_folder(api, folder)
    saved = []
    for dash_uid, dashboard in dashboards.items():
        body = {
            "dashboard": {**dashboard, "id": None},
            "folderUid": uid,
            "overwrite": True,
            "message": PUSH_MESSAGE,
        }
        _call(f"save dashboard {dash_uid}", api.dashboard.update_dashboard, body)
        saved.append(dash_uid)
    return PushResult(uid, created, tuple(saved), ds_action)


def _ensure_folder(api: GrafanaApi, title: str) -> tuple[str, bool]:
    uid = folder_uid(title)
    if _exists(f"look up folder {uid}", api.folder.get_folder, uid):
        return uid, False
    create: Any = api.folder.create_folder
    try:
        create(title, uid=uid)
    except GrafanaClientError as exc:
        if exc.status_code not in (409, 412):
            raise PushError(f"create folder {title!r}", exc.message, exc.status_code) from exc
        # A folder with this title but another uid exists: use it rather than fail.
        for existing in _call("list folders", api.folder.get_all_folders):
            if existing.get("title") == title:
                return str(existing["uid"]), False
        raise PushError(f"create folder {title!r}", exc.message, exc.status_code) from exc
    except (GrafanaException, OSError) as exc:
        raise _push_error(f"create folder {title!r}", exc) from exc
    return uid, True


def _ensure_datasource(api: GrafanaApi, definition: dict[str, Any]) -> str:
    uid = str(definition["uid"])
    if _exists(f"look up data source {uid}", api.datasource.get_datasource_by_uid, uid):
        _call(f"update data source {uid}", api.datasource.update_datasource_by_uid, uid, definition)
        return "updated"
    _call(f"create data source {uid}", api.datasource.create_datasource, definition)
    return "created"


def _exists(action: str, getter: Any, uid: str) -> bool:
    try:
        getter(uid)
    except GrafanaClientError as exc:
        if exc.status_code == 404:
            return False
        raise _push_error(action, exc) from exc
    except (GrafanaException, OSError) as exc:
        raise _push_error(action, exc) from exc
    return True


def _call(action: str, fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except (GrafanaException, OSError) as exc:
        raise _push_error(action, exc) from exc


def _push_error(action: str, exc: Exception) -> PushError:
    """One line for the user; OSError covers the HTTP client's connection errors."""
    if isinstance(exc, GrafanaException):
        status = exc.status_code or None
        return PushError(action, str(exc.message), status)
    return PushError(action, f"cannot reach Grafana: {exc}")
