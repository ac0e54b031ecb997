"""The ASGI app: web chat, health check (and later the webhooks and the staff console)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bot.admin.app import console_mount
from bot.channels.line import LineChannel
from bot.channels.telegram import TelegramChannel
from bot.channels.webchat import WebChat
from bot.config import Settings
from bot.engine import utc_now
from bot.runtime import Runtime, build_runtime
from bot.storage.tours import seed_samples as seed_samples_into
from faq.library import FaqLibrary

log = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utc_now,
    migrate_schema: bool | None = None,
    library: FaqLibrary | None = None,
    background_worker: bool = False,
    seed_samples: bool = False,
) -> Starlette:
    """Build the app; the database engine, FAQ index and clients are made in its lifespan
    and closed on shutdown, never at import time. `background_worker` runs the reminder and
    delivery worker in this process (the single-machine `make run`); `seed_samples` adds a
    few future tours to an empty database so a newcomer can try a sign-up."""
    holder: dict[str, Runtime] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        runtime = await build_runtime(
            settings, clock=clock, migrate_schema=migrate_schema, library=library
        )
        holder["runtime"] = runtime
        app.state.runtime = runtime
        app.state.webchat = WebChat(runtime.engine, runtime.sessions)
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(runtime.aclose)
            await _start_platforms(app, stack, runtime, clock)
            watch = asyncio.create_task(runtime.engine.services.library.watch())
            stack.callback(watch.cancel)
            if seed_samples:
                await _seed(runtime)
            if background_worker:
                await _start_worker(app, stack, runtime)
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

    async def chat_updates(request: Request) -> Response:
        webchat: WebChat = request.app.state.webchat
        return await webchat.updates(request)

    return Starlette(
        routes=[
            Route("/", chat_page, methods=["GET"]),
            Route("/api/chat", chat_message, methods=["POST"]),
            Route("/api/chat/updates", chat_updates, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/webhooks/line", line_webhook, methods=["POST"]),
            Route("/webhooks/telegram", telegram_webhook, methods=["POST"]),
            console_mount(settings, lambda: holder["runtime"]),
        ],
        lifespan=lifespan,
    )


async def _seed(runtime: Runtime) -> None:
    async with runtime.sessions() as session, session.begin():
        added = await seed_samples_into(session, runtime.clock(), runtime.settings.bot.tz)
    if added:
        log.info("added %d sample tours (the database had none)", added)


async def _start_worker(app: Starlette, stack: contextlib.AsyncExitStack, runtime: Runtime) -> None:
    """Reminders and the outbox in this process, through the platform clients the webhooks
    already hold (one client per platform per process)."""
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from bot.pushers import LinePusher, TelegramPusher

    if app.state.line is not None:
        runtime.pushers["line"] = LinePusher(app.state.line.api)
    if app.state.telegram is not None:
        runtime.pushers["telegram"] = TelegramPusher(app.state.telegram.bot)
    scheduler = AsyncIOScheduler(timezone=runtime.settings.bot.timezone)
    runtime.worker().schedule(scheduler)
    scheduler.start()
    stack.callback(scheduler.shutdown, False)


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
