"""The console's pages: overview, devices (with rotation), dead letters and the checker.

Each page reads through the same functions as the API routes (registry, device status,
dead letters, payload check, provisioning), so the console shows what the API answers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Annotated, Any, Final
from urllib.parse import parse_qs, urlencode

import jinja2
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from analytics.errors import AnalyticsError
from devices.errors import DevicesError
from devices.pilots import Pilot
from ingest.check import CheckReport
from kcity import dead_letters
from kcity.analyses import latest_headline
from kcity.api import errors
from kcity.api.auth import Action, Caller, current_caller
from kcity.api.console.session import (
    CONSOLE_ROLES,
    LANG_COOKIE,
    PREFIX,
    TOKEN_COOKIE,
    ConsoleCaller,
    ConsoleForbidden,
    SignInRequired,
    lang_of,
    require,
    words,
)
from kcity.api.deps import AppSettings, Conn, Heavy
from kcity.api.params import window
from kcity.api.routes_device_ops import rotate_credentials
from kcity.api.routes_pilots import device_of, pilot_of
from kcity.api.routes_reports import download_now
from kcity.device_commands import list_commands
from kcity.device_status import DeviceStatus, device_statuses
from kcity.errors import KcityError
from kcity.payload_check import check_payload
from kcity.registry import list_pilots
from kcity.reports.i18n import LANGS

router = APIRouter(prefix=PREFIX, include_in_schema=False)
PAGE_SIZE: Final = 50
MAX_FORM_BYTES: Final = 1_100_000

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("kcity.api.console", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def _when(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} %"


_env.filters["when"] = _when
_env.filters["pct"] = _pct


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page in the request's language; a `?lang=` choice is remembered in a cookie."""
    lang = lang_of(request)
    t = words(lang)
    switch = {
        other: str(request.url.include_query_params(lang=other)) for other in LANGS if other != lang
    }
    html = _env.get_template(template).render(
        t=t, lang=lang, switch=switch, prefix=PREFIX, request=request, **context
    )
    response = HTMLResponse(html, status_code=status_code)
    if request.query_params.get("lang") in LANGS:
        response.set_cookie(LANG_COOKIE, lang, path=PREFIX, samesite="lax", max_age=365 * 86400)
    return response


async def form(request: Request) -> dict[str, str]:
    """A url-encoded form (no multipart: the console posts only short fields)."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise KcityError("the form is too large")
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in parsed.items()}


Form = Annotated[dict[str, str], Depends(form)]


# --- signing in -----------------------------------------------------------------------------


@router.get("/signin")
def signin_page(request: Request) -> HTMLResponse:
    return render(request, "signin.html", error=None)


@router.post("/signin")
def signin(request: Request, conn: Conn, data: Form) -> Response:
    secret = data.get("token", "").strip()
    try:
        caller = current_caller(secret, conn) if secret else None
    except Exception:  # HTTPException 401: unknown, revoked or expired
        caller = None
    if caller is None or caller.role not in CONSOLE_ROLES:
        t = words(lang_of(request))
        error = t["bad_token"] if caller is None else t["viewer_refused"]
        return render(request, "signin.html", status_code=401, error=error)
    response = RedirectResponse(f"{PREFIX}/", status_code=303)
    response.set_cookie(
        TOKEN_COOKIE, secret, path=PREFIX, httponly=True, samesite="strict", max_age=12 * 3600
    )
    return response


@router.post("/signout")
def signout() -> Response:
    response = RedirectResponse(f"{PREFIX}/signin", status_code=303)
    response.delete_cookie(TOKEN_COOKIE, path=PREFIX)
    return response


@router.get("/")
def home(request: Request, conn: Conn, caller: ConsoleCaller) -> Response:
    if caller.role == "operator" and caller.pilot_id:
        return RedirectResponse(f"{PREFIX}/pilots/{caller.pilot_id}", status_code=303)
    pilots = [p for p in list_pilots(conn) if caller.sees(p.id)]
    return render(request, "pilots.html", caller=caller, pilots=pilots)


# --- a pilot --------------------------------------------------------------------------------


def headline(
    kind: str, savings: Mapping[str, Any] | None, coverage: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """The pilot's headline figure from its latest stored analysis (None before any)."""
    if kind == "hybrid_drone" and coverage:
        return {
            "label": "coverage",
            "value": f"{coverage.get('area_coverage_pct', 0):.1f} % / "
            f"{coverage.get('linear_coverage_pct', 0):.1f} %",
            "from": coverage.get("from"),
            "to": coverage.get("to"),
        }
    if savings and savings.get("savings_kwh") is not None:
        return {
            "label": "savings",
            "value": f"{savings['savings_kwh']:,.1f} kWh ({savings.get('savings_pct') or 0:.1f} %)",
            "from": savings.get("from"),
            "to": savings.get("to"),
        }
    return None


def mean_completeness(statuses: list[DeviceStatus]) -> float | None:
    """Every active registered device counts, a silent one at 0 % (DESIGN §6)."""
    values = [
        s.completeness_yesterday_pct
        for s in statuses
        if s.active and s.completeness_yesterday_pct is not None
    ]
    return sum(values) / len(values) if values else None


@router.get("/pilots/{pilot}")
def overview(request: Request, pilot: str, conn: Conn, caller: ConsoleCaller) -> HTMLResponse:
    require(caller, Action.READ_DEVICES, pilot)
    p = pilot_of(conn, pilot)
    statuses = device_statuses(conn, pilot, datetime.now(UTC))
    active = [s for s in statuses if s.active]
    figure = headline(
        p.kind, latest_headline(conn, pilot, "savings"), latest_headline(conn, pilot, "coverage")
    )
    reports = []
    if figure and figure["from"] and figure["to"] and caller.may(Action.DOWNLOAD_REPORTS, pilot):
        for lang in LANGS:
            q = urlencode({"from": figure["from"], "to": figure["to"], "lang": lang})
            reports.append(
                {"lang": lang, "window": f"{figure['from']} → {figure['to']}", "query": q}
            )
    return render(
        request,
        "overview.html",
        caller=caller,
        pilot=p,
        section="overview",
        online=sum(1 for s in active if s.state == "online" and not s.silent),
        registered=len(active),
        silent=sum(1 for s in active if s.silent),
        completeness=mean_completeness(statuses),
        figure=figure,
        reports=reports,
    )


@router.get("/pilots/{pilot}/report")
def report(
    pilot: str,
    conn: Conn,
    caller: ConsoleCaller,
    settings: AppSettings,
    heavy: Heavy,
    start: Annotated[date, Query(alias="from")],
    end: Annotated[date, Query(alias="to")],
    lang: str = "en",
) -> Response:
    require(caller, Action.DOWNLOAD_REPORTS, pilot)
    return download_now(pilot, conn, heavy, window(start, end, settings), lang, "pdf")


@router.get("/pilots/{pilot}/devices")
def devices(request: Request, pilot: str, conn: Conn, caller: ConsoleCaller) -> HTMLResponse:
    require(caller, Action.READ_DEVICES, pilot)
    p = pilot_of(conn, pilot)
    return render(
        request,
        "devices.html",
        caller=caller,
        pilot=p,
        section="devices",
        statuses=device_statuses(conn, pilot, datetime.now(UTC)),
        may_rotate=caller.may(Action.MANAGE_DEVICES, pilot),
    )


@router.post("/pilots/{pilot}/devices/{device}/rotate")
def rotate(
    request: Request,
    pilot: str,
    device: str,
    conn: Conn,
    settings: AppSettings,
    caller: ConsoleCaller,
) -> HTMLResponse:
    require(caller, Action.MANAGE_DEVICES, pilot)
    p = pilot_of(conn, pilot)
    creds = rotate_credentials(conn, settings, device_of(conn, pilot, device))
    response = render(
        request, "credentials.html", caller=caller, pilot=p, section="devices", creds=creds
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/pilots/{pilot}/dead-letters")
def letters(
    request: Request,
    pilot: str,
    conn: Conn,
    caller: ConsoleCaller,
    device: str | None = None,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> HTMLResponse:
    require(caller, Action.READ_TELEMETRY, pilot)
    p = pilot_of(conn, pilot)
    rows = dead_letters.list_dead_letters(
        conn, pilot, device=device or None, before_id=before, limit=PAGE_SIZE
    )
    older = None
    if len(rows) == PAGE_SIZE:
        older = urlencode({k: v for k, v in (("device", device), ("before", rows[-1].id)) if v})
    return render(
        request,
        "dead_letters.html",
        caller=caller,
        pilot=p,
        section="dead_letters",
        rows=rows,
        device=device or "",
        older=older,
    )


def draft_of(stage: str, payload: str, channel: str) -> str:
    """What to put in the checker: a refused record is kept alone, so wrap it in a message
    (the checker judges whole messages, as ingest does); anything else as it was sent."""
    if stage not in ("record", "time"):
        return payload
    try:
        item = json.loads(payload)
    except ValueError:
        return payload
    key = "events" if channel == "event" else "records"
    return json.dumps({"v": 1, "boot": 0, "seq": 0, key: [item]}, ensure_ascii=False)


@router.get("/pilots/{pilot}/dead-letters/{letter_id}")
def letter(
    request: Request, pilot: str, letter_id: int, conn: Conn, caller: ConsoleCaller
) -> HTMLResponse:
    require(caller, Action.READ_TELEMETRY, pilot)
    p = pilot_of(conn, pilot)
    row = dead_letters.get_dead_letter(conn, pilot, letter_id)
    channel = row.topic.rsplit("/", 1)[-1]
    if channel not in ("telemetry", "event", "status"):
        channel = "telemetry"
    draft = draft_of(row.stage, row.payload, channel)
    may_check = caller.may(Action.READ_DEVICES, pilot)
    return _letter_page(request, caller, p, row, draft, row.device_id or "", channel, may_check)


@router.post("/pilots/{pilot}/check")
def check(
    request: Request, pilot: str, conn: Conn, caller: ConsoleCaller, data: Form
) -> HTMLResponse:
    require(caller, Action.READ_DEVICES, pilot)
    p = pilot_of(conn, pilot)
    device, channel = data.get("device", ""), data.get("channel", "telemetry")
    draft = data.get("payload", "")
    device_of(conn, pilot, device)
    report = check_payload(
        conn, pilot, device, draft.encode("utf-8", "surrogateescape"), datetime.now(UTC), channel
    )
    row = None
    if data.get("letter", "").isdigit():
        row = dead_letters.get_dead_letter(conn, pilot, int(data["letter"]))
    return _letter_page(request, caller, p, row, draft, device, channel, True, report)


def _letter_page(
    request: Request,
    caller: Caller,
    pilot: Pilot,
    row: dead_letters.DeadLetterRow | None,
    draft: str,
    device: str,
    channel: str,
    may_check: bool,
    report: CheckReport | None = None,
) -> HTMLResponse:
    """A dead letter (if any) with the checker's form, and its verdict once checked."""
    summary = ""
    if report is not None:
        summary = words(lang_of(request))["records_summary"].format(
            ok=report.records_accepted, bad=len(report.records) - report.records_accepted
        )
    return render(
        request,
        "dead_letter.html",
        caller=caller,
        pilot=pilot,
        section="dead_letters",
        row=row,
        draft=draft,
        device=device,
        channel=channel,
        report=report,
        summary=summary,
        may_check=may_check,
    )


@router.get("/pilots/{pilot}/commands")
def commands(request: Request, pilot: str, conn: Conn, caller: ConsoleCaller) -> HTMLResponse:
    """Downlink commands and their state (queued → sent → acked | rejected | expired)."""
    require(caller, Action.READ_DEVICES, pilot)
    p = pilot_of(conn, pilot)
    rows = list_commands(conn, pilot, limit=PAGE_SIZE)
    return render(
        request,
        "commands.html",
        caller=caller,
        pilot=p,
        section="commands",
        rows=rows,
    )


# --- errors as pages ------------------------------------------------------------------------


def install(app: FastAPI) -> None:
    """Console errors as HTML pages; the API's JSON answers stay as they are elsewhere."""

    async def signin_required(request: Request, exc: Exception) -> Response:
        lang = request.query_params.get("lang")
        query = f"?lang={lang}" if lang in LANGS else ""
        return RedirectResponse(f"{PREFIX}/signin{query}", status_code=303)

    async def forbidden(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ConsoleForbidden)
        return _error_page(request, 403, "forbidden", exc.detail)

    async def domain(request: Request, exc: Exception) -> Response:
        if not request.url.path.startswith(PREFIX + "/"):
            return await errors._domain_error(request, exc)
        status = errors.status_of(exc)
        key = "not_found" if status == 404 else "forbidden" if status == 403 else "rejected"
        return _error_page(request, status, key, errors._one_line(exc))

    app.add_exception_handler(SignInRequired, signin_required)
    app.add_exception_handler(ConsoleForbidden, forbidden)
    for exc_type in (KcityError, DevicesError, AnalyticsError):
        app.add_exception_handler(exc_type, domain)


def _error_page(request: Request, status: int, key: str, detail: str) -> HTMLResponse:
    return render(request, "error.html", status_code=status, title_key=key, detail=detail)


__all__ = ["install", "router"]
