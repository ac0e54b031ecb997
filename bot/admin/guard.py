"""Every console endpoint goes through here: signed in, right role, CSRF token on POST."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot.admin import csrf
from bot.admin.context import (
    Console,
    Ctx,
    NotFound,
    Staff,
    language,
    login_redirect,
)
from bot.storage.models import StaffAccount

log = logging.getLogger(__name__)

Handler = Callable[[Ctx], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


def start_session(request: Request, staff_id: int, epoch: int, now: datetime) -> None:
    """A fresh session on login: whatever was in the cookie before (a planted one) is gone.
    `epoch` is the account's session epoch: bumping it (accounts.end_sessions) ends this
    session, wherever a copy of the cookie is."""
    lang = request.session.get("lang")
    request.session.clear()
    request.session.update(staff_id=staff_id, epoch=epoch, issued=now.timestamp())
    if lang:
        request.session["lang"] = lang
    csrf.rotate(request.session)


def end_session(request: Request) -> None:
    lang = request.session.get("lang")
    request.session.clear()
    if lang:
        request.session["lang"] = lang
    csrf.rotate(request.session)


async def current_staff(console: Console, request: Request) -> Staff | None:
    """The signed-in, still active account behind the session, or None. Checked against the
    database on every request, so logout, a new password, a role change or deactivation (each
    bumps the account's session epoch) takes effect at once, in every process."""
    staff_id = request.session.get("staff_id")
    issued = request.session.get("issued")
    if not isinstance(staff_id, int) or not isinstance(issued, int | float):
        return None
    runtime = console.runtime()
    if runtime.clock().timestamp() - issued > console.session_for.total_seconds():
        return None
    async with runtime.sessions() as session:
        account = await session.get(StaffAccount, staff_id)
        if account is None or not account.active:
            return None
        if request.session.get("epoch") != account.session_epoch:
            return None
        return Staff(account.id, account.email, account.role)


def guarded(
    console: Console, handler: Handler, *, role: str = "staff", data: bool = False
) -> Endpoint:
    """Wrap a page handler. `data` endpoints (JSON, CSV, downloads) answer 401/403 instead of
    redirecting to the login page, so a script or fetch() sees the refusal plainly."""

    async def endpoint(request: Request) -> Response:
        staff = await current_staff(console, request)
        ctx = Ctx(console, request, staff, lang=language(request))
        if staff is None:
            if data:
                return JSONResponse({"error": "login required"}, status_code=401)
            return login_redirect(console, request)
        if role == "admin" and not staff.is_admin:
            log.info("console: staff %d refused %s (needs admin)", staff.id, request.url.path)
            return ctx.forbidden(data)
        if request.method == "POST":
            ctx.form = await request.form()
            submitted = ctx.form.get(csrf.FIELD) or request.headers.get(csrf.HEADER)
            if not csrf.valid(request, submitted if isinstance(submitted, str) else None):
                log.info("console: CSRF token refused for staff %d", staff.id)
                if data:
                    return JSONResponse({"error": "invalid CSRF token"}, status_code=403)
                return ctx.render("message.html", status=403, title=ctx.t("error.csrf"))
        try:
            return await handler(ctx)
        except NotFound:
            if data:
                return JSONResponse({"error": "not found"}, status_code=404)
            return ctx.not_found()

    return endpoint
