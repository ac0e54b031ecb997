"""Signing in and out, and the console language switch."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bot.admin import csrf
from bot.admin.accounts import SignIn, sign_in
from bot.admin.context import Console, Ctx, language, safe_next
from bot.admin.guard import Handler, current_staff, end_session, guarded, start_session
from bot.admin.i18n import UI_LANGUAGES

log = logging.getLogger(__name__)


def routes(console: Console) -> list[Route]:
    async def login_page(request: Request) -> Response:
        ctx = Ctx(console, request, None, lang=language(request))
        if await current_staff(console, request) is not None:
            return RedirectResponse(safe_next(console, request.query_params.get("next")), 303)
        return ctx.render("login.html", next=safe_next(console, request.query_params.get("next")))

    async def login_submit(request: Request) -> Response:
        ctx = Ctx(console, request, None, lang=language(request))
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
        runtime = console.runtime()
        now = runtime.clock()
        async with runtime.sessions() as session, session.begin():
            result = await sign_in(session, email, password, now, console.lockout)
            if result.outcome is SignIn.OK and result.account is not None:
                start_session(request, result.account, now)
                log.info("console: staff %d signed in", result.account.id)
                return RedirectResponse(target, status_code=303)
        # No e-mail in the log line: a typo'd address is someone's personal data too.
        log.info("console: sign-in refused (%s)", result.outcome.value)
        key = "login.locked" if result.outcome is SignIn.LOCKED else "login.wrong"
        message = ctx.t(key, minutes=int(console.lockout.lock_for.total_seconds() // 60))
        return ctx.render("login.html", status=401, next=target, error=message, email=email)

    async def logout(ctx: Ctx) -> Response:
        end_session(ctx.request)
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
