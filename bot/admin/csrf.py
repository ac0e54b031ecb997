"""CSRF protection: a synchronizer token kept in the signed session cookie.

Why this and not a library: the console already has a signed (itsdangerous) session, so the
OWASP "synchronizer token" pattern is a random token in that session, printed into every
form and compared in constant time on every POST — a few lines we can read in full. The
ASGI CSRF middlewares we looked at (asgi-csrf, starlette-csrf) parse or buffer the request
body ahead of the app and have one maintainer each. As defence in depth the session cookie is
SameSite=Lax and a POST whose Origin names another site is refused before the token is read.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import MutableMapping
from typing import Any

from starlette.requests import Request

FIELD = "csrf_token"
HEADER = "x-csrf-token"
_KEY = "csrf"


def token(session: MutableMapping[str, Any]) -> str:
    """The session's token, made on first use (also before login, for the login form)."""
    value = session.get(_KEY)
    if not isinstance(value, str) or len(value) < 32:
        value = secrets.token_urlsafe(32)
        session[_KEY] = value
    return value


def rotate(session: MutableMapping[str, Any]) -> str:
    """A new token, at login and logout, so a token seen before login is worthless after."""
    session[_KEY] = secrets.token_urlsafe(32)
    return str(session[_KEY])


def same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        # Old browsers and some privacy settings send no Origin: the token still decides.
        return origin is None
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1].rstrip("/") == host


def valid(request: Request, submitted: str | None) -> bool:
    expected = request.session.get(_KEY)
    if not isinstance(expected, str) or not submitted or not same_origin(request):
        return False
    return hmac.compare_digest(expected.encode(), submitted.encode())
