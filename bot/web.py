"""The ASGI app: web chat, health check (and later the webhooks and the staff console)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

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
        try:
            yield
        finally:
            await runtime.aclose()

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
        ],
        lifespan=lifespan,
    )
