"""The evaluation report of a pilot's window, as a PDF or HTML file, built as a job.

A report takes seconds of CPU, so it is never built inside a request: `POST .../reports`
queues a job (202, or 429 with `Retry-After` when the queue is full) and `GET
.../reports/{job}` answers 202 while it runs, then the file. The job runs
`kcity.reports.render.build` into a scratch directory (as `kcity report` does into
`--out`), reads back the requested format and stores its analytics runs, like the CLI: the
POST is the request that writes, a GET never does. The HTML links its figures as files
beside it, so the downloaded HTML gets them inlined as data URIs: one self-contained file,
like the PDF.
"""

from __future__ import annotations

import base64
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Annotated, Final, Literal

import psycopg
from fastapi import APIRouter, Depends, Query, Response, status
from pydantic import BaseModel

from kcity.api.auth import Action, Caller, allowed_on_pilot
from kcity.api.deps import API_PREFIX, Conn, Heavy, Pool
from kcity.api.errors import COMMON_ERRORS, SafeJSONResponse, error_response, error_responses
from kcity.api.jobs import HeavyWork, Job, Output
from kcity.api.params import EvalWindow, unprocessable
from kcity.api.routes_pilots import pilot_of
from kcity.errors import NotFound
from kcity.reports import render as report
from kcity.reports.i18n import LANGS
from kcity.window import Window

router = APIRouter(prefix=API_PREFIX, tags=["reports"], responses=COMMON_ERRORS)

MEDIA_TYPES: Final = {"pdf": "application/pdf", "html": "text/html; charset=utf-8"}
POLL_AFTER_S: Final = 2
Reader = Annotated[Caller, Depends(allowed_on_pilot(Action.DOWNLOAD_REPORTS))]


class JobOut(BaseModel):
    id: str
    pilot: str
    state: Literal["queued", "running", "done", "failed"]
    created_at: datetime
    url: str

    @classmethod
    def of(cls, job: Job) -> JobOut:
        url = f"{API_PREFIX}/pilots/{job.pilot}/reports/{job.id}"
        return cls(id=job.id, pilot=job.pilot, state=job.state, created_at=job.created_at, url=url)


def self_contained(files: report.ReportFiles) -> bytes:
    """The report's HTML with its figures inlined, so that it can travel alone."""
    html = files.html.read_text(encoding="utf-8")
    for figure in files.figures:
        data = base64.b64encode(figure.read_bytes()).decode("ascii")
        html = html.replace(f'src="{figure.name}"', f'src="data:image/png;base64,{data}"')
    return html.encode("utf-8")


@router.post(
    "/pilots/{pilot}/reports",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    responses=error_responses(401, 403, 404, 422, 429),
)
def create_report(
    pilot: str,
    conn: Conn,
    _: Reader,
    window: EvalWindow,
    pool: Pool,
    heavy: Heavy,
    response: Response,
    lang: Annotated[
        str, Query(description="Report language.", json_schema_extra={"enum": list(LANGS)})
    ] = "en",
    fmt: Annotated[Literal["pdf", "html"], Query(alias="format")] = "pdf",
) -> JobOut:
    """Queue the evaluation report (savings or coverage, data quality) of a window; fetch
    it from the `url` (also the `Location` header) when its state is `done`."""
    pilot_of(conn, pilot)
    if lang not in LANGS:
        raise unprocessable(f"lang: {lang!r} is not a report language; one of {', '.join(LANGS)}")

    def build() -> Output:
        return heavy.in_process(report_job, pool.conninfo, pilot, window, lang, fmt)

    job = JobOut.of(heavy.submit(pilot, build))
    response.headers["Location"] = job.url
    return job


def report_job(conninfo: str, pilot: str, window: Window, lang: str, fmt: str) -> Output:
    """A report job's work, in a child process with a connection of its own."""
    with psycopg.connect(conninfo) as conn:
        out = render_report(conn, pilot, window, lang, fmt, persist=True)
        conn.commit()  # the report stores its analytics runs, as `kcity report` does
    return out


def render_report(
    conn: psycopg.Connection, pilot: str, window: Window, lang: str, fmt: str, *, persist: bool
) -> Output:
    """Build the report in a scratch directory and read back the requested format."""
    name = f"kcity-{pilot}-{window.start}-{window.end}-{lang}.{fmt}"
    with tempfile.TemporaryDirectory(prefix="kcity-report-") as out:
        files = report.build(conn, pilot, window, Path(out), lang, persist=persist)
        content = files.pdf.read_bytes() if fmt == "pdf" else self_contained(files)
    return Output(content, MEDIA_TYPES[fmt], name)


def download_now(
    pilot: str, conn: psycopg.Connection, heavy: HeavyWork, window: Window, lang: str, fmt: str
) -> Response:
    """A report built inside the request (the console's download link): it holds a heavy
    slot (429 when none is free) and stores nothing, since a GET must not write."""
    pilot_of(conn, pilot)
    with heavy.slot("reports"):
        return attachment(render_report(conn, pilot, window, lang, fmt, persist=False))


def attachment(out: Output) -> Response:
    return Response(
        out.content,
        media_type=out.media_type,
        headers={"Content-Disposition": f'attachment; filename="{out.filename}"'},
    )


@router.get(
    "/pilots/{pilot}/reports/{job}",
    response_class=Response,
    responses={
        200: {
            "content": {"application/pdf": {}, "text/html": {}},
            "description": "The report, as an attachment.",
        },
        202: {"model": JobOut, "description": "Queued or running; poll again."},
        **error_responses(401, 403, 404, 422),
    },
)
def fetch_report(pilot: str, job: str, _: Reader, heavy: Heavy) -> Response:
    """The report file once its job is done; 202 with the job's state before."""
    found = heavy.get(job)
    if found is None or found.pilot != pilot:
        raise NotFound(f"pilot {pilot!r} has no report job {job!r}")
    if found.state == "failed" and found.error is not None:
        return error_response(found.error)
    if found.output is None:
        return SafeJSONResponse(
            JobOut.of(found).model_dump(mode="json"),
            status_code=status.HTTP_202_ACCEPTED,
            headers={"Retry-After": str(POLL_AFTER_S)},
        )
    return attachment(found.output)
