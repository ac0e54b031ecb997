"""The first page after sign-in: how many people, sign-ups, messages, gaps and waiting chats."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from bot.admin import stats
from bot.admin.context import Console, Ctx
from bot.admin.guard import guarded


async def dashboard(ctx: Ctx) -> Response:
    async with ctx.sessions() as session:
        figures = await stats.dashboard(session, ctx.now(), ctx.runtime.settings.bot.tz)
    return ctx.render("dashboard.html", d=figures)


def routes(console: Console) -> list[Route]:
    return [Route("/", guarded(console, dashboard), methods=["GET"])]
