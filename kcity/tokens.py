"""API bearer tokens: who may call the HTTP API, in which role, for which pilot.

The CLI creates and revokes them, the API resolves them on every request. A token is shown
once, when it is created; only its SHA-256 hash is stored (tokens are 256-bit random
strings, so a fast hash is enough: there is nothing to brute-force). Every token expires
(90 days by default); an expired token is refused like an unknown one.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal, get_args

import psycopg

from kcity.errors import DatabaseError, KcityError, NotFound
from kcity.registry import get_pilot

Role = Literal["admin", "operator", "evaluator", "viewer"]
ROLES: Final[tuple[Role, ...]] = get_args(Role)
TOKEN_PREFIX: Final = "kct_"
_COLUMNS: Final = "id, role, pilot_id, label, created_at, revoked_at, expires_at"
DEFAULT_DAYS: Final = 90


class TokenError(KcityError):
    """A token request that contradicts the role rules (operator without pilot, ...)."""


@dataclass(frozen=True, slots=True)
class ApiToken:
    """One stored token, without its secret."""

    id: int
    role: Role
    pilot_id: str | None
    label: str | None
    created_at: datetime
    revoked_at: datetime | None
    expires_at: datetime

    @property
    def active(self) -> bool:
        return self.revoked_at is None and self.expires_at > datetime.now(UTC)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "role": self.role,
            "pilot": self.pilot_id,
            "label": self.label,
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "expires_at": self.expires_at.isoformat(),
        }


def hash_token(token: str) -> str:
    """The stored form of a token: hex SHA-256."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token() -> str:
    """A fresh 256-bit secret, prefixed so that leaked tokens are easy to grep for."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def check_role(role: str, pilot_id: str | None) -> Role:
    """The role, if it exists and agrees with the pilot binding; `TokenError` otherwise."""
    if role not in ROLES:
        raise TokenError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    if role == "operator" and pilot_id is None:
        raise TokenError("an operator token is bound to one pilot: give --pilot PILOT")
    if role != "operator" and pilot_id is not None:
        raise TokenError(f"only operator tokens are bound to a pilot; a {role} sees all pilots")
    return role


def create_token(
    conn: psycopg.Connection,
    role: str,
    pilot_id: str | None = None,
    label: str | None = None,
    *,
    days: float = DEFAULT_DAYS,
) -> tuple[str, ApiToken]:
    """Store a new token valid for `days`; return its secret (shown once) and its record."""
    checked = check_role(role, pilot_id)
    if not 0 < days <= 3650:
        raise TokenError(f"--expires must be 1 to 3650 days, not {days}")
    if pilot_id is not None:
        get_pilot(conn, pilot_id)  # NotFound for an unknown pilot
    secret = new_token()
    row = _one(
        conn,
        "INSERT INTO api_tokens (token_hash, role, pilot_id, label, expires_at)"
        f" VALUES (%s, %s, %s, %s, now() + make_interval(secs => %s)) RETURNING {_COLUMNS}",
        (hash_token(secret), checked, pilot_id, label, days * 86400.0),
    )
    assert row is not None
    return secret, ApiToken(*row)


def revoke_token(conn: psycopg.Connection, token_id: int) -> ApiToken:
    """Revoke a token (idempotent); `NotFound` if there is no such token."""
    row = _one(
        conn,
        f"UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = %s"
        f" RETURNING {_COLUMNS}",
        (token_id,),
    )
    if row is None:
        raise NotFound(f"unknown token {token_id}: see 'kcity tokens list'")
    return ApiToken(*row)


def list_tokens(conn: psycopg.Connection) -> list[ApiToken]:
    """Every token, revoked ones included, oldest first."""
    try:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM api_tokens ORDER BY id").fetchall()
    except psycopg.Error as exc:
        raise _failed(exc) from exc
    return [ApiToken(*row) for row in rows]


def resolve_token(conn: psycopg.Connection, secret: str) -> ApiToken | None:
    """The active token whose secret is `secret`, or None (unknown, revoked or expired)."""
    row = _one(
        conn,
        f"SELECT {_COLUMNS} FROM api_tokens WHERE token_hash = %s AND revoked_at IS NULL"
        " AND expires_at > now()",
        (hash_token(secret),),
    )
    return None if row is None else ApiToken(*row)


def _failed(exc: psycopg.Error) -> DatabaseError:
    detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if isinstance(exc, psycopg.errors.UndefinedTable):
        detail += " (run 'kcity db migrate')"
    return DatabaseError(f"token query failed: {detail}")


def _one(conn: psycopg.Connection, sql: str, params: tuple[object, ...]) -> tuple[Any, ...] | None:
    try:
        row: tuple[Any, ...] | None = conn.execute(sql, params).fetchone()
    except psycopg.Error as exc:
        raise _failed(exc) from exc
    return row
