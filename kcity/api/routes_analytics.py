"""Savings, coverage and data quality of a pilot's window: the CLI's `--json` bodies.

The figures come from `kcity.analyses`, the same code as `kcity savings --json`, so the API
and the CLI agree. A GET computes without storing (`persist=False`): reading must not
write, and a viewer polling the API must not fill `analytics_results`. The CLI and the
reports store their runs; `GET .../results/{analysis}` serves the latest stored one.
Each computation holds one of the app's heavy-work slots (`kcity.api.jobs`): when all are
busy the answer is 429 with `Retry-After`, at once, and `/health` keeps answering.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query

from kcity.analyses import latest_headline, latest_result, run_coverage, run_quality, run_savings
from kcity.api.auth import Action, Caller, allowed_on_pilot
from kcity.api.deps import API_PREFIX, HEAVY_SLOT, Conn
from kcity.api.errors import COMMON_ERRORS, SafeJSONResponse, error_responses
from kcity.api.params import EvalWindow
from kcity.api.routes_pilots import pilot_of
from kcity.errors import NotFound

router = APIRouter(prefix=API_PREFIX, tags=["analytics"], responses=COMMON_ERRORS)

ReadSummaries = Annotated[Caller, Depends(allowed_on_pilot(Action.READ_SUMMARIES))]
ERRORS = error_responses(401, 403, 404, 422, 429)


View = Annotated[
    Literal["full", "summary"],
    Query(
        description="`full`: the whole document; `summary`: its figures without the tables"
        " (per luminaire, night, day, device…), with `table_rows` counting each"
    ),
]


def _answer(body: dict[str, Any], view: str) -> Any:
    """The body as JSON as it is (it is plain JSON already: no second encoding pass over
    megabytes), or its figures without the tables."""
    if view == "summary":
        tables = {k: len(v) for k, v in body.items() if isinstance(v, list)}
        body = {**{k: v for k, v in body.items() if k not in tables}, "table_rows": tables}
    return SafeJSONResponse(body)


@router.get("/pilots/{pilot}/savings", responses=ERRORS, dependencies=[HEAVY_SLOT])
def savings(
    pilot: str, conn: Conn, _: ReadSummaries, window: EvalWindow, view: View = "full"
) -> dict[str, Any]:
    """Verified energy savings of a streetlight pilot (IPMVP Option B); 422 for another
    kind of pilot."""
    pilot_of(conn, pilot)
    body, _result = run_savings(conn, pilot, window, persist=False)
    return _answer(body, view)  # type: ignore[no-any-return]


@router.get("/pilots/{pilot}/coverage", responses=ERRORS, dependencies=[HEAVY_SLOT])
def coverage(
    pilot: str, conn: Conn, _: ReadSummaries, window: EvalWindow, view: View = "full"
) -> dict[str, Any]:
    """Patrol coverage and hybrid energy of a drone pilot; 422 for another kind of pilot."""
    pilot_of(conn, pilot)
    body, _result = run_coverage(conn, pilot, window, persist=False)
    return _answer(body, view)  # type: ignore[no-any-return]


@router.get("/pilots/{pilot}/quality", responses=ERRORS, dependencies=[HEAVY_SLOT])
def quality(
    pilot: str, conn: Conn, _: ReadSummaries, window: EvalWindow, view: View = "full"
) -> dict[str, Any]:
    """Data quality per device and day: completeness, gaps, duplicates, dead letters."""
    pilot_of(conn, pilot)
    return _answer(run_quality(conn, pilot, window, persist=False), view)  # type: ignore[no-any-return]


@router.get("/pilots/{pilot}/results/{analysis}", responses=ERRORS)
def latest(
    pilot: str,
    analysis: Literal["savings", "coverage", "quality"],
    conn: Conn,
    _: ReadSummaries,
    view: View = "full",
) -> dict[str, Any]:
    """The latest stored result of an analysis (as run by the CLI or a report); 404 if
    none was stored yet."""
    pilot_of(conn, pilot)
    found = (latest_result if view == "full" else latest_headline)(conn, pilot, analysis)
    if found is None:
        raise NotFound(f"no stored {analysis} result for pilot {pilot!r} yet")
    return SafeJSONResponse(found)  # type: ignore[return-value]
