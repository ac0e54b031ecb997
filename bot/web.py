"""The ASGI app: web chat, webhooks, staff console, health, readiness and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from alembic.script import ScriptDirectory
from sqlalchemy import func, inspect, select, text
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bot import body_limit, logs, metrics
from bot.admin.app import console_mount
from bot.channels.inbox import OPEN
from bot.channels.line import LineChannel
from bot.channels.telegram import TelegramChannel
from bot.channels.webchat import WebChat
from bot.channels.webchat_limits import ChatLimits
from bot.config import ConfigError, Settings, load_settings
from bot.engine import utc_now
from bot.runtime import Runtime, build_runtime
from bot.storage import migrate
from bot.storage.models import Delivery, WebhookInbox
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
    answer: bool = True,
) -> Starlette:
    """Build the app; the database engine, FAQ index and clients are made in its lifespan
    and closed on shutdown, never at import time. `background_worker` runs the reminder and
    delivery worker in this process (the single-machine `make run`); `seed_samples` adds a
    few future tours to an empty database so a newcomer can try a sign-up. `answer=False`
    makes a web process that only accepts webhooks, beside `python -m bot answer`
    processes that answer them (see the README's operator section)."""
    holder: dict[str, Runtime] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        runtime = await build_runtime(
            settings, clock=clock, migrate_schema=migrate_schema, library=library
        )
        holder["runtime"] = runtime
        app.state.runtime = runtime
        limits = ChatLimits.from_settings(settings.webchat)
        app.state.webchat = WebChat(runtime.engine, runtime.sessions, limits, clock=clock)
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(runtime.aclose)
            await start_platforms(app.state, stack, runtime, clock, answer=answer)
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
        # Liveness only: a database outage must not make the platform restart every web
        # process (the inbox keeps accepted events; /readyz says whether to send traffic).
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        report = await readiness(holder["runtime"])
        ready = all(value == "ok" for value in report.values())
        return JSONResponse(
            {"status": "ok" if ready else "unavailable", **report}, 200 if ready else 503
        )

    async def metrics_page(request: Request) -> Response:
        runtime = holder["runtime"]
        body = metrics.exposition(await outbox_pending(runtime), inbox=await inbox_pending(runtime))
        return Response(body, media_type=metrics.CONTENT_TYPE)

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
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_page, methods=["GET"]),
            Route("/webhooks/line", line_webhook, methods=["POST"]),
            Route("/webhooks/telegram", telegram_webhook, methods=["POST"]),
            console_mount(settings, lambda: holder["runtime"]),
        ],
        lifespan=lifespan,
        # Outermost first: the request id is set before anything logs, and the counter sees
        # the final status of every response, errors included.
        # Innermost, the body cap (chunked bodies too), so the counter sees its 413s.
        middleware=[
            Middleware(logs.RequestIdMiddleware),
            Middleware(metrics.ResponseCounter),
            Middleware(body_limit.BodyLimitMiddleware),
        ],
    )


def app_from_env(environ: Mapping[str, str] | None = None) -> Starlette:
    """The Procfile's web process: `uvicorn --factory bot.web:app_from_env --workers N`.
    Every uvicorn worker calls this: settings from $IJU_CONFIG (default config.toml) and
    the environment, logs as $LOG_FORMAT (json unless told otherwise)."""
    env = os.environ if environ is None else environ
    try:
        fmt = logs.log_format_from(env.get("LOG_FORMAT"), default="json")
        settings = load_settings(env.get("IJU_CONFIG", "config.toml"), environ=env)
    except (ConfigError, ValueError) as exc:
        # Said once, plainly, instead of uvicorn's traceback of the factory call.
        print(f"configuration error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    logs.configure(env.get("LOG_LEVEL", "INFO"), fmt)
    # WEB_ANSWERS=0: accept only, `python -m bot answer` processes answer (README).
    answer = env.get("WEB_ANSWERS", "1").strip().lower() not in ("0", "false", "no", "off")
    return create_app(settings, answer=answer)


async def readiness(runtime: Runtime) -> dict[str, str]:
    """Which of the things a web process needs are there: the database, the newest schema."""
    try:
        async with runtime.db.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:  # any DB failure means "not ready", never a 500 page
        log.warning("readiness: database unreachable (%s)", type(exc).__name__)
        return {"database": "unreachable", "migrations": "unknown"}
    try:
        current = await _schema_is_current(runtime)
    except Exception as exc:
        log.warning("readiness: schema version unreadable (%s)", type(exc).__name__)
        return {"database": "ok", "migrations": "unknown"}
    return {"database": "ok", "migrations": "ok" if current else "behind"}


@functools.cache
def _code_head() -> str | None:
    return ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()


async def _schema_is_current(runtime: Runtime) -> bool:
    # migrate.is_current, minus Alembic's two INFO lines per call and its re-reading of every
    # migration file: probes come every few seconds from every web process.
    async with runtime.db.connect() as conn:
        if not await conn.run_sync(lambda c: inspect(c).has_table("alembic_version")):
            return False  # an empty database: never migrated
        version = await conn.scalar(text("SELECT version_num FROM alembic_version"))
    return version is not None and version == _code_head()


async def outbox_pending(runtime: Runtime) -> dict[str, int]:
    """Deliveries waiting to be sent, by channel; empty (and a log line) if the DB is down."""
    query = (
        select(Delivery.channel, func.count())
        .where(Delivery.status == "pending")
        .group_by(Delivery.channel)
    )
    try:
        async with runtime.sessions() as session:
            rows = (await session.execute(query)).all()
    except Exception as exc:  # the process metrics are still worth serving
        log.warning("metrics: outbox depth unreadable (%s)", type(exc).__name__)
        return {}
    # The pushing channels always appear, so an empty outbox reads 0 rather than no data.
    depth = {"line": 0, "telegram": 0}
    depth.update({str(channel): int(count) for channel, count in rows})
    return depth


async def inbox_pending(runtime: Runtime) -> metrics.InboxDepth:
    """Webhook events not yet answered, by channel and status, and the oldest one's age:
    the backlog a burst leaves, read by every scrape (empty if the DB is down)."""
    query = (
        select(WebhookInbox.channel, WebhookInbox.status, func.count(),
               func.min(WebhookInbox.received_at))
        .where(WebhookInbox.status.in_(OPEN))
        .group_by(WebhookInbox.channel, WebhookInbox.status)
    )  # fmt: skip
    try:
        async with runtime.sessions() as session:
            rows = (await session.execute(query)).all()
    except Exception as exc:
        log.warning("metrics: inbox depth unreadable (%s)", type(exc).__name__)
        return metrics.InboxDepth({}, {})
    now = runtime.clock()
    counts = {(c, st): 0 for c in ("line", "telegram") for st in OPEN}
    oldest = {"line": 0.0, "telegram": 0.0}
    for channel, status, count, first in rows:
        counts[(str(channel), str(status))] = int(count)
        if first is not None:
            if first.tzinfo is None:  # SQLite's min() hands back the stored text's value
                first = first.replace(tzinfo=UTC)
            age = max((now - first).total_seconds(), 0.0)
            oldest[str(channel)] = max(oldest.get(str(channel), 0.0), age)
    return metrics.InboxDepth(counts, oldest)


async def _seed(runtime: Runtime) -> None:
    async with runtime.sessions() as session, session.begin():
        added = await seed_samples_into(session, runtime.clock(), runtime.settings.bot.tz)
    if added:
        log.info("added %d sample tours (the database had none)", added)


async def _start_worker(app: Starlette, stack: contextlib.AsyncExitStack, runtime: Runtime) -> None:
    """Reminders and the outbox in this process, through the platform clients the webhooks
    already hold (one client per platform per process)."""
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from bot.leader import Leadership
    from bot.pushers import LinePusher, TelegramPusher

    if app.state.line is not None:
        runtime.pushers["line"] = LinePusher(app.state.line.api)
    if app.state.telegram is not None:
        runtime.pushers["telegram"] = TelegramPusher(app.state.telegram.bot)
    worker = runtime.worker()

    def start() -> Callable[[], None]:
        scheduler = AsyncIOScheduler(timezone=runtime.settings.bot.timezone)
        worker.schedule(scheduler)
        scheduler.start()
        return lambda: scheduler.shutdown(wait=False)

    # Elected like the Procfile's workers: several `serve --with-worker` processes on one
    # PostgreSQL (or one beside a `worker`) must not run two schedulers.
    stop = asyncio.Event()
    leadership = Leadership(runtime.db)
    await leadership.try_acquire()  # decided before start-up ends (and visible to tests)
    app.state.leadership = leadership
    task = asyncio.create_task(leadership.serve(stop, start, follow=worker.courier.send_due))

    async def finish() -> None:
        stop.set()
        await asyncio.gather(task, return_exceptions=True)

    stack.push_async_callback(finish)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def start_platforms(
    state: Any,
    stack: contextlib.AsyncExitStack,
    runtime: Runtime,
    clock: Callable[[], datetime],
    *,
    answer: bool = True,
) -> None:
    """One long-lived client per configured platform (closed by `stack` on shutdown), set
    as `state.line` / `state.telegram`; when this process answers, the events a previous
    process left and the pump that keeps claiming unanswered ones."""
    settings = runtime.settings
    state.line = state.telegram = None
    if LineChannel.configured(settings):
        line, client = LineChannel.create(
            settings, sessions=runtime.sessions, engine=runtime.engine, clock=clock, answer=answer
        )
        stack.push_async_callback(client.close)
        stack.push_async_callback(line.aclose)  # runs first: finish sends, then close client
        state.line = line
        if answer:
            await line.inbox.recover()
            line.inbox.start()
    else:
        log.info("LINE: LINE_CHANNEL_SECRET / LINE_CHANNEL_ACCESS_TOKEN unset, /webhooks/line off")
    if TelegramChannel.configured(settings):
        telegram = TelegramChannel.create(
            settings, sessions=runtime.sessions, engine=runtime.engine, clock=clock, answer=answer
        )
        stack.push_async_callback(telegram.aclose)
        state.telegram = telegram
        # getMe in the background, retried: while Telegram cannot be reached its updates are
        # stored (the webhook needs no getMe) and every other channel works as usual.
        if not await telegram.connect():
            connecting = asyncio.create_task(telegram.keep_connecting(), name="telegram-getMe")
            stack.push_async_callback(_cancel, connecting)  # runs before aclose
    else:
        log.info("Telegram: TELEGRAM_BOT_TOKEN / TELEGRAM_WEBHOOK_SECRET unset, webhook off")
