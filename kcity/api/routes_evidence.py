"""`GET /api/v1/pilots/{pilot}/export`: an evidence bundle, for evaluators and admins.

The bundle is written inside the request while it holds a heavy slot (429 when none is
free), into a scratch file that is then streamed back in blocks and removed. It stores
nothing: where no result of the window is stored, the bundle carries one computed on the
spot (a GET never writes).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from kcity.api.auth import Action, Caller, allowed_on_pilot
from kcity.api.deps import API_PREFIX, Conn, Heavy
from kcity.api.errors import COMMON_ERRORS, error_responses
from kcity.api.params import EvalWindow
from kcity.api.routes_pilots import pilot_of
from kcity.evidence.export import export_bundle

router = APIRouter(prefix=API_PREFIX, tags=["evidence"], responses=COMMON_ERRORS)
Exporter = Annotated[Caller, Depends(allowed_on_pilot(Action.EXPORT_EVIDENCE))]
_BLOCK = 1 << 20


def _stream(path: Path, scratch: tempfile.TemporaryDirectory[str]) -> Iterator[bytes]:
    try:
        with path.open("rb") as fh:
            yield from iter(lambda: fh.read(_BLOCK), b"")
    finally:
        scratch.cleanup()


@router.get(
    "/pilots/{pilot}/export",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/zip": {}}, "description": "The evidence bundle."},
        **error_responses(401, 403, 404, 422, 429),
    },
)
def export(
    pilot: str,
    conn: Conn,
    _: Exporter,
    window: EvalWindow,
    heavy: Heavy,
    fmt: Annotated[Literal["parquet", "csv"], Query(alias="format")] = "parquet",
) -> StreamingResponse:
    """The raw rows, definition, registry and results of a window as one zip that
    `kcity verify` re-computes offline; its SHA-256 is in the `X-Bundle-SHA256` header."""
    pilot_of(conn, pilot)
    scratch = tempfile.TemporaryDirectory(prefix="kcity-export-")
    name = f"kcity-{pilot}-{window.start}-{window.end}-evidence.zip"
    try:
        with heavy.slot("exports"):
            done = export_bundle(conn, pilot, window, Path(scratch.name, name), fmt=fmt)
    except BaseException:
        scratch.cleanup()
        raise
    return StreamingResponse(
        _stream(done.path, scratch),
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Bundle-SHA256": done.sha256,
        },
    )
