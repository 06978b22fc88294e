"""Who is calling and what they may do: bearer tokens resolved to a role and a scope.

Roles (DESIGN §8), as the table `GRANTS` below:

    admin      everything
    operator   a firm: everything about its own pilot (the token's pilot) and nothing else
    evaluator  read everything, download reports; no device provisioning
    viewer     the ministry: pilots and their savings/coverage/quality summaries only

The checks run in this order, so that answers leak as little as possible: 401 (no valid
token), 403 (role or pilot outside the token's scope, before the pilot's existence is
looked up: an operator learns nothing about other pilots), then 404 and 422 in the route.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, Final

from fastapi import Depends, HTTPException, Security, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from kcity.api.deps import Conn
from kcity.tokens import Role, resolve_token


class Action(StrEnum):
    """What a request does, in words fit for a 403 message."""

    LIST_PILOTS = "list pilots"
    READ_PILOT = "read pilots"
    READ_SUMMARIES = "read savings, coverage and quality"
    READ_DEVICES = "list devices"
    MANAGE_DEVICES = "provision or revoke devices"
    READ_TELEMETRY = "read raw telemetry"
    DOWNLOAD_REPORTS = "download reports"
    SEND_COMMANDS = "send commands to devices"
    EXPORT_EVIDENCE = "export evidence bundles"


_ALL: Final = frozenset(Action)
GRANTS: Final[Mapping[Role, frozenset[Action]]] = MappingProxyType(
    {
        "admin": _ALL,
        # ... within its own pilot only, see Caller.may; a firm does not export the
        # evidence it is judged on (evaluators and admins do)
        "operator": _ALL - {Action.EXPORT_EVIDENCE},
        "evaluator": _ALL - {Action.MANAGE_DEVICES, Action.SEND_COMMANDS},
        "viewer": frozenset({Action.LIST_PILOTS, Action.READ_PILOT, Action.READ_SUMMARIES}),
    }
)


@dataclass(frozen=True, slots=True)
class Caller:
    """The resolved token of a request."""

    token_id: int
    role: Role
    pilot_id: str | None  # set for operators: the one pilot they may touch

    def sees(self, pilot: str) -> bool:
        """Whether `pilot` is within this caller's pilots."""
        return self.role != "operator" or pilot == self.pilot_id

    def may(self, action: Action, pilot: str | None = None) -> bool:
        """Whether this caller may do `action` (on `pilot`, if the action is about one)."""
        return action in GRANTS[self.role] and (pilot is None or self.sees(pilot))

    def refusal(self, action: Action, pilot: str | None = None) -> str:
        """Why `may` said no, in one line."""
        if action not in GRANTS[self.role]:
            return f"a {self.role} token may not {action}"
        return f"this operator token is for pilot {self.pilot_id!r}, not {pilot!r}"


bearer = HTTPBearer(
    auto_error=False,
    description="A token from `kcity tokens create --role ROLE [--pilot PILOT]`.",
)


def presented_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> str:
    """401 when no bearer token was sent, before any database work."""
    if credentials is None or not credentials.credentials:
        raise _unauthorized(
            "missing bearer token: send 'Authorization: Bearer TOKEN'"
            " (create one with 'kcity tokens create')"
        )
    return credentials.credentials


def current_caller(secret: Annotated[str, Depends(presented_token)], conn: Conn) -> Caller:
    """401 unless the request carries an active token."""
    token = resolve_token(conn, secret)
    if token is None:
        raise _unauthorized("unknown, revoked or expired token")
    return Caller(token.id, token.role, token.pilot_id)


CurrentCaller = Annotated[Caller, Depends(current_caller)]


def allowed(action: Action) -> Callable[[CurrentCaller], Caller]:
    """Dependency: 403 unless the caller may do `action` at all (routes without a pilot)."""

    def check(caller: CurrentCaller) -> Caller:
        if not caller.may(action):
            raise HTTPException(status.HTTP_403_FORBIDDEN, caller.refusal(action))
        return caller

    return check


def allowed_on_pilot(action: Action) -> Callable[[str, CurrentCaller], Caller]:
    """Dependency: 403 unless the caller may do `action` on the path's `{pilot}`."""

    def check(pilot: str, caller: CurrentCaller) -> Caller:
        if not caller.may(action, pilot):
            raise HTTPException(status.HTTP_403_FORBIDDEN, caller.refusal(action, pilot))
        return caller

    return check


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"}
    )
