"""Who is using the console and in which language: a token and a language in cookies.

The token cookie is HttpOnly and SameSite=Strict (forms posted from another site carry no
token, so they cannot act for the firm). The token is resolved exactly as the API's bearer
token is (`auth.current_caller`); a missing or refused one sends the browser to sign in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Final

from fastapi import Depends, HTTPException, Request

from kcity.api.auth import Action, Caller, current_caller
from kcity.api.deps import Conn
from kcity.reports.i18n import LANGS, labels

TOKEN_COOKIE: Final = "kcity_console"
LANG_COOKIE: Final = "kcity_lang"
PREFIX: Final = "/console"
CONSOLE_ROLES: Final = frozenset({"admin", "operator", "evaluator"})


class SignInRequired(Exception):
    """No valid token: the handler redirects to the sign-in page."""


class ConsoleForbidden(Exception):
    """A page outside the caller's role or pilot: the handler renders a 403 page."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def lang_of(request: Request) -> str:
    """`?lang=` if given, else the cookie, else the browser's preference, else English."""
    asked = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE)
    if asked in LANGS:
        return asked
    accept = request.headers.get("accept-language", "")
    return "ko" if accept.lower().startswith("ko") else "en"


def words(lang: str) -> Mapping[str, str]:
    """The console's labels: the reports' translation table, `c_` keys without the prefix."""
    return {k[2:]: v for k, v in labels(lang).items() if k.startswith("c_")}


def console_caller(request: Request, conn: Conn) -> Caller:
    secret = request.cookies.get(TOKEN_COOKIE)
    if not secret:
        raise SignInRequired
    try:
        caller = current_caller(secret, conn)
    except HTTPException as exc:
        raise SignInRequired from exc
    if caller.role not in CONSOLE_ROLES:
        raise SignInRequired
    return caller


ConsoleCaller = Annotated[Caller, Depends(console_caller)]


def require(caller: Caller, action: Action, pilot: str) -> None:
    if not caller.may(action, pilot):
        raise ConsoleForbidden(caller.refusal(action, pilot))
