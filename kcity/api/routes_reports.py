"""The evaluation report of a pilot's window, as a PDF or HTML download.

`kcity.reports.render.build` writes the report into a scratch directory (as `kcity report` does
into `--out`); the requested format is read back and the directory removed before
answering. The HTML links its figures as files beside it, so the downloaded HTML gets them
inlined as data URIs: one self-contained file, like the PDF.
"""

from __future__ import annotations

import base64
import tempfile
from pathlib import Path
from typing import Annotated, Final, Literal

from fastapi import APIRouter, Depends, Query, Response

from kcity.api.auth import Action, Caller, allowed_on_pilot
from kcity.api.deps import API_PREFIX, Conn
from kcity.api.errors import COMMON_ERRORS, error_responses
from kcity.api.params import EvalWindow, unprocessable
from kcity.api.routes_pilots import pilot_of
from kcity.reports import render as report
from kcity.reports.i18n import LANGS

router = APIRouter(prefix=API_PREFIX, tags=["reports"], responses=COMMON_ERRORS)

MEDIA_TYPES: Final = {"pdf": "application/pdf", "html": "text/html; charset=utf-8"}


def self_contained(files: report.ReportFiles) -> bytes:
    """The report's HTML with its figures inlined, so that it can travel alone."""
    html = files.html.read_text(encoding="utf-8")
    for figure in files.figures:
        data = base64.b64encode(figure.read_bytes()).decode("ascii")
        html = html.replace(f'src="{figure.name}"', f'src="data:image/png;base64,{data}"')
    return html.encode("utf-8")


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
    pilot_of(conn, pilot)
    if lang not in LANGS:
        raise unprocessable(f"lang: {lang!r} is not a report language; one of {', '.join(LANGS)}")
    with tempfile.TemporaryDirectory(prefix="kcity-report-") as out:
        files = report.build(conn, pilot, window, Path(out), lang)
        content = files.pdf.read_bytes() if fmt == "pdf" else self_contained(files)
    conn.commit()  # the report stores its analytics runs, as `kcity report` does
    name = f"kcity-{pilot}-{window.start}-{window.end}-{lang}.{fmt}"
    return Response(
        content,
        media_type=MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
