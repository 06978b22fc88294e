"""Errors of the ``dashboards`` package, so that callers can catch one base class.

Tree::

    DashboardsError
    ├── WriteError     the built JSON could not be written to the output directory
    └── PushError      Grafana refused a request or could not be reached (status, path)
"""

from __future__ import annotations


class DashboardsError(Exception):
    """Base class of every error raised by the ``dashboards`` package."""


class WriteError(DashboardsError):
    """The dashboard JSON files could not be written."""


class PushError(DashboardsError):
    """Grafana's HTTP API refused a request or could not be reached."""

    def __init__(self, action: str, reason: str, status: int | None = None) -> None:
        self.action = action
        self.reason = reason
        self.status = status
        code = f" (HTTP {status})" if status is not None else ""
        super().__init__(f"grafana: {action} failed{code}: {reason}")
