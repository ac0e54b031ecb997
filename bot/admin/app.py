"""Assemble the console: its pages, the signed session cookie, static files, error pages."""

from __future__ import annotations

import html
import logging
import secrets
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from bot.admin.accounts import LockoutPolicy
from bot.admin.context import Console
from bot.admin.i18n import console_catalog
from bot.admin.login_limit import AddressLimit
from bot.admin.pages import (
    announcements,
    dashboard,
    faq,
    inbox,
    people,
    signin,
    staff,
    tours,
)
from bot.admin.render import SECURITY_HEADERS, build_environment
from bot.config import Settings
from bot.runtime import Runtime

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
COOKIE = "iju_console"
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def cookie_https_only(settings: Settings) -> bool:
    """Secure cookies unless the operator said the console is plain HTTP on loopback."""
    if not settings.console.plain_http_on_loopback:
        return True
    if settings.web.host not in _LOOPBACK:
        log.warning(
            "console: plain_http_on_loopback is set but web.host is %s: the session cookie "
            "travels unencrypted if staff reach the console from another machine",
            settings.web.host,
        )
    return False


def session_secret(settings: Settings) -> str:
    secret = settings.secrets.console_secret_key
    if secret is not None:
        return secret.get_secret_value()
    # Fine for `make run` on one machine; with several web processes, or to keep staff signed
    # in across restarts, CONSOLE_SECRET_KEY must be set.
    log.warning("console: CONSOLE_SECRET_KEY unset; a random key is used (sign-ins end on restart)")
    return secrets.token_urlsafe(48)


def build_console(
    settings: Settings, runtime: Callable[[], Runtime], *, prefix: str = "/admin"
) -> Starlette:
    """The console as an ASGI app to mount at `prefix`; `runtime` is read per request, since
    the runtime is only built in the main app's lifespan."""
    catalog = console_catalog()
    console = Console(
        runtime=runtime,
        env=build_environment(settings.bot.tz),
        catalog=catalog,
        lockout=LockoutPolicy(
            max_failures=settings.console.max_failed_logins,
            lock_for=timedelta(minutes=settings.console.lockout_minutes),
        ),
        session_for=timedelta(hours=settings.console.session_hours),
        per_address=AddressLimit(
            settings.console.logins_per_address,
            timedelta(minutes=settings.console.login_window_minutes),
        ),
        prefix=prefix,
    )
    routes: list[BaseRoute] = [Mount("/static", app=StaticFiles(directory=STATIC), name="static")]
    for area in (signin, dashboard, tours, announcements, inbox, people, faq, staff):
        routes.extend(area.routes(console))

    async def not_found(request: Request, exc: Exception) -> Response:
        return HTMLResponse(
            _plain_page(catalog.text("error.not_found", "ja")),
            status_code=404,
            headers=SECURITY_HEADERS,
        )

    async def server_error(request: Request, exc: Exception) -> Response:
        # The type only: an exception's text can hold what a person wrote.
        log.error("console: %s on %s", type(exc).__name__, request.url.path)
        if request.url.path.endswith((".csv", ".json")) or "json" in request.headers.get(
            "accept", ""
        ):
            return JSONResponse({"error": "server error"}, status_code=500)
        return HTMLResponse(
            _plain_page(catalog.text("error.server", "ja")),
            status_code=500,
            headers=SECURITY_HEADERS,
        )

    return Starlette(
        routes=routes,
        middleware=[
            Middleware(
                SessionMiddleware,
                secret_key=session_secret(settings),
                session_cookie=COOKIE,
                max_age=int(console.session_for.total_seconds()),
                path=prefix,
                same_site="lax",
                https_only=cookie_https_only(settings),
            )
        ],
        exception_handlers={404: not_found, 500: server_error, Exception: server_error},
    )


def _plain_page(title: str) -> str:
    # Outside the session (no language, no staff): a bare page that can never fail itself.
    text = html.escape(title)
    return (
        '<!doctype html><html lang="ja"><meta charset="utf-8">'
        f'<title>{text}</title><p>{text}</p><p><a href="/admin/">/admin</a></p></html>'
    )


def console_mount(settings: Settings, runtime: Callable[[], Runtime]) -> Mount:
    """The route bot.web adds: the console under /admin."""
    return Mount("/admin", app=build_console(settings, runtime, prefix="/admin"))
