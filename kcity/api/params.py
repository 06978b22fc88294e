"""Query parameters shared by several routes, checked before anything reaches the database.

An evaluation window is `from`/`to` local dates (`to` excluded), as for the CLI. Beyond
what `Window.parse` checks, the API bounds it: dates within `EARLIEST`..`LATEST` (the
ingest refuses readings before 2015 anyway) and at most `api_max_window_days` long (a
setting, 400 by default), so that a mistyped year cannot start a century-long computation
on a shared server.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Final

from fastapi import Depends, HTTPException, Query, status

from devices.ids import ID_PATTERN
from kcity.api.deps import AppSettings
from kcity.window import Window

EARLIEST: Final = date(2015, 1, 1)
LATEST: Final = date(2100, 1, 1)
_ID_RE: Final = re.compile(ID_PATTERN)


def is_id(value: str) -> bool:
    """Whether `value` could name a pilot or device (else it cannot exist: 404)."""
    return _ID_RE.fullmatch(value) is not None


def window(
    start: Annotated[
        date, Query(alias="from", description="First local date included (YYYY-MM-DD).")
    ],
    end: Annotated[date, Query(alias="to", description="First local date excluded (YYYY-MM-DD).")],
    settings: AppSettings,
) -> Window:
    """The evaluation window; 422 naming the parameter when it is out of bounds."""
    for name, day in (("from", start), ("to", end)):
        if not EARLIEST <= day <= LATEST:
            raise unprocessable(f"{name} ({day}) must be between {EARLIEST} and {LATEST}")
    if end <= start:
        raise unprocessable(f"to ({end}) must be after from ({start})")
    longest = settings.api_max_window_days
    if (end - start).days > longest:
        raise unprocessable(f"the window {start} → {end} is longer than {longest} days; split it")
    return Window.parse(start, end)


EvalWindow = Annotated[Window, Depends(window)]


def unprocessable(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail)
