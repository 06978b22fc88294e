"""The evaluation report of a pilot's window, as a PDF or HTML download.

`kcity.report.build` writes both formats into a scratch directory (as `kcity report` does
into `--out`); the requested one is read back and the directory removed before answering.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Depends, Query, Response

from kcity import report
from kcity.api.auth import Action, Caller, allowed_on_pilot
from kcity.api.deps import API_PREFIX, Conn
from kcity.api.errors import error_responses
from kcity.api.params import EvalWindow, unprocessable
from kcity.api.routes_pilots import pilot_of
from kcity.report_i18n import LANGS

router = APIRouter(prefix=API_PREFIX, tags=["reports"])

MEDIA_TYPES: Final = {"pdf": "application/pdf", "html": "text/html; charset=utf-8"}


def pick(paths: Any, suffix: str) -> Path:
    """The file with `suffix` among what `report.build` returned (a mapping or a list)."""
    found: Iterable[Any] = paths.values() if isinstance(paths, Mapping) else paths
    for path in found:
        if Path(path).suffix == suffix:
            return Path(path)
    raise RuntimeError(f"the report builder wrote no {suffix} file")


@router.get(
    "/pilots/{pilot}/report",
    response_class=Response,
    responses={
        200: {
            "content": {"application/pdf": {}, "text/html": {}},
            "description": "The report, as an attachment.",
        },
        **error_responses(401, 403, 404, 422),
    },
)
def download_report(
    pilot: str,
    conn: Conn,
    _: Annotated[Caller, Depends(allowed_on_pilot(Action.DOWNLOAD_REPORTS))],
    window: EvalWindow,
    lang: Annotated[
        str, Query(description="Report language.", json_schema_extra={"enum": list(LANGS)})
    ] = "en",
    fmt: Annotated[Literal["pdf", "html"], Query(alias="format")] = "pdf",
) -> Response:
    """Build the evaluation report (savings or coverage, data quality) and download it."""
    if lang not in LANGS:
        raise unprocessable(f"lang: {lang!r} is not a report language; one of {', '.join(LANGS)}")
    pilot_of(conn, pilot)
    with tempfile.TemporaryDirectory(prefix="kcity-report-") as out:
        paths = report.build(conn, pilot, window, Path(out), lang)
        content = pick(paths, f".{fmt}").read_bytes()
    conn.commit()  # the report stores its analytics runs, as `kcity report` does
    name = f"kcity-{pilot}-{window.start}-{window.end}.{fmt}"
    return Response(
        content,
        media_type=MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
