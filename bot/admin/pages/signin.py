"""Signing in and out, and the console language switch."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bot.admin import csrf
from bot.admin.accounts import HasherBusy, SignIn, end_sessions, sign_in
from bot.admin.context import Console, Ctx, language, safe_next
from bot.admin.guard import Handler, current_staff, end_session, guarded, start_session
from bot.admin.i18n import UI_LANGUAGES
from bot.storage.models import StaffAccount

log = logging.getLogger(__name__)


def routes(console: Console) -> list[Route]:
    async def login_page(request: Request) -> Response:
        ctx = Ctx(console, request, None, lang=language(request))
        if await current_staff(console, request) is not None:
            return RedirectResponse(safe_next(console, request.query_params.get("next")), 303)
        return ctx.render("login.html", next=safe_next(console, request.query_params.get("next")))

    async def login_submit(request: Request) -> Response:
        ctx = Ctx(console, request, None, lang=language(request))
        runtime = console.runtime()
        now = runtime.clock()
        # Counted before the form is even read: a flood from one address costs no hashing.
        client = request.client.host if request.client else "-"
        if not console.per_address.allow(client, now):
            log.info("console: sign-in refused (too many from one address)")
            return too_many(ctx, console.per_address.retry_after(client, now))
        ctx.form = await request.form()
        target = safe_next(console, ctx.field("next"))
        submitted = ctx.form.get(csrf.FIELD)
        if not csrf.valid(request, submitted if isinstance(submitted, str) else None):
            # Login CSRF: without this a site could sign a staff browser into its own account.
            return ctx.render("login.html", status=403, next=target, error=ctx.t("error.csrf"))
        email = ctx.field("email")
        password = ctx.form.get("password")
        if not isinstance(password, str):
            password = ""
        try:
            result = await sign_in(runtime.sessions, email, password, now, console.lockout)
        except HasherBusy:
            log.info("console: sign-in refused (hasher busy)")
            return too_many(ctx, 10)
        if result.outcome is SignIn.OK and result.staff_id is not None:
            start_session(request, result.staff_id, result.epoch, now)
            log.info("console: staff %d signed in", result.staff_id)
            return RedirectResponse(target, status_code=303)
        # No e-mail in the log line: a typo'd address is someone's personal data too.
        log.info("console: sign-in refused (%s)", result.outcome.value)
        key = "login.locked" if result.outcome is SignIn.LOCKED else "login.wrong"
        message = ctx.t(key, minutes=int(console.lockout.lock_for.total_seconds() // 60))
        return ctx.render("login.html", status=401, next=target, error=message, email=email)

    def too_many(ctx: Ctx, seconds: int) -> Response:
        minutes = max(1, -(-seconds // 60))
        page = ctx.render(
            "login.html",
            status=429,
            next=safe_next(console, ctx.request.query_params.get("next")),
            error=ctx.t("login.too_many", minutes=minutes),
        )
        page.headers["retry-after"] = str(max(1, seconds))
        return page

    async def logout(ctx: Ctx) -> Response:
        # Ends every session of the account, so a copy of this cookie is worthless too.
        async with ctx.sessions() as session, session.begin():
            account = await session.get(StaffAccount, ctx.me.id, with_for_update=True)
            if account is not None:
                end_sessions(account)
        end_session(ctx.request)
        log.info("console: staff %d signed out", ctx.me.id)
        return ctx.redirect("/login")

    async def switch_language(request: Request) -> Response:
        lang = request.query_params.get("to")
        if lang in UI_LANGUAGES:
            request.session["lang"] = lang
        return RedirectResponse(safe_next(console, request.query_params.get("next")), 303)

    logout_handler: Handler = logout
    return [
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login_submit, methods=["POST"]),
        Route("/logout", guarded(console, logout_handler), methods=["POST"]),
        Route("/lang", switch_language, methods=["GET"]),
    ]
