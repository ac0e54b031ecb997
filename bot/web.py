"""The ASGI app: web chat, health check (and later the webhooks and the staff console)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bot.channels.line import LineChannel
from bot.channels.telegram import TelegramChannel
from bot.channels.webchat import WebChat
from bot.config import Settings
from bot.engine import utc_now
from bot.runtime import Runtime, build_runtime

log = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utc_now,
    migrate_schema: bool | None = None,
) -> Starlette:
    """Build the app; the database engine, FAQ index and clients are made in its lifespan
    and closed on shutdown, never at import time."""
    holder: dict[str, Runtime] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        runtime = await build_runtime(settings, clock=clock, migrate_schema=migrate_schema)
        holder["runtime"] = runtime
        app.state.runtime = runtime
        app.state.webchat = WebChat(runtime.engine)
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(runtime.aclose)
            await _start_platforms(app, stack, runtime, clock)
            yield

    async def line_webhook(request: Request) -> Response:
        line: LineChannel | None = getattr(request.app.state, "line", None)
        if line is None:  # LINE secrets unset: the route does not exist for callers
            return PlainTextResponse("Not Found", status_code=404)
        return await line.webhook(request)

    async def telegram_webhook(request: Request) -> Response:
        telegram: TelegramChannel | None = getattr(request.app.state, "telegram", None)
        if telegram is None:
            return PlainTextResponse("Not Found", status_code=404)
        return await telegram.webhook(request)

    async def healthz(request: Request) -> Response:
        try:
            async with holder["runtime"].db.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:  # any DB failure means "not healthy", never a 500 page
            log.warning("health check: database unreachable (%s)", type(exc).__name__)
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, 503)
        return JSONResponse({"status": "ok", "database": "ok"})

    async def chat_page(request: Request) -> Response:
        webchat: WebChat = request.app.state.webchat
        return await webchat.page(request)

    async def chat_message(request: Request) -> Response:
        webchat: WebChat = request.app.state.webchat
        return await webchat.message(request)

    return Starlette(
        routes=[
            Route("/", chat_page, methods=["GET"]),
            Route("/api/chat", chat_message, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/webhooks/line", line_webhook, methods=["POST"]),
            Route("/webhooks/telegram", telegram_webhook, methods=["POST"]),
        ],
        lifespan=lifespan,
    )


async def _start_platforms(
    app: Starlette,
    stack: contextlib.AsyncExitStack,
    runtime: Runtime,
    clock: Callable[[], datetime],
) -> None:
    """One long-lived client per configured platform (closed by `stack` on shutdown), then
    the events a previous process accepted but did not finish."""
    settings = runtime.settings
    app.state.line = app.state.telegram = None
    if LineChannel.configured(settings):
        line, client = LineChannel.create(
            settings, sessions=runtime.sessions, engine=runtime.engine, clock=clock
        )
        stack.push_async_callback(client.close)
        stack.push_async_callback(line.aclose)  # runs first: finish sends, then close client
        app.state.line = line
        await line.inbox.recover()
    else:
        log.info("LINE: LINE_CHANNEL_SECRET / LINE_CHANNEL_ACCESS_TOKEN unset, /webhooks/line off")
    if TelegramChannel.configured(settings):
        telegram = await TelegramChannel.start(
            settings, sessions=runtime.sessions, engine=runtime.engine, clock=clock
        )
        stack.push_async_callback(telegram.aclose)
        app.state.telegram = telegram
        await telegram.inbox.recover()
    else:
        log.info("Telegram: TELEGRAM_BOT_TOKEN / TELEGRAM_WEBHOOK_SECRET unset, webhook off")
