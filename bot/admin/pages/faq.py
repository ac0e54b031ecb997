"""The FAQ as its files stand, their validation problems, and what people asked unanswered."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.routing import Route

from bot.admin.context import Console, Ctx
from bot.admin.guard import guarded
from bot.storage import unanswered
from faq.kb import TOPICS, Entry, KnowledgeBase, KnowledgeBaseError, load_kb

PERIODS = (7, 30, 90)


def by_topic(entries: Iterable[Entry]) -> dict[str, list[Entry]]:
    topics: dict[str, list[Entry]] = {topic: [] for topic in TOPICS}
    for entry in entries:
        topics.setdefault(entry.topic, []).append(entry)
    return {topic: found for topic, found in topics.items() if found}


async def faq_page(ctx: Ctx) -> Response:
    directory = ctx.runtime.settings.faq_dir
    kb: KnowledgeBase | None = None
    problems: list[str] = []
    try:
        # The files are read afresh, so staff see a mistake in what they just edited;
        # the running bot keeps the set it loaded at start-up.
        kb = await run_in_threadpool(load_kb, directory)
    except KnowledgeBaseError as exc:
        problems = list(exc.problems)
    days_param = ctx.query("days", "30")
    days = int(days_param) if days_param in {str(p) for p in PERIODS} else 30
    async with ctx.sessions() as session:
        questions = await unanswered.grouped(session, days=days, limit=200, now=ctx.now())
    return ctx.render(
        "faq.html",
        topics=by_topic(kb) if kb is not None else {},
        total=len(kb) if kb is not None else 0,
        problems=problems,
        questions=questions,
        days=days,
        periods=PERIODS,
        directory=str(directory),
    )


def routes(console: Console) -> list[Route]:
    return [Route("/faq", guarded(console, faq_page), methods=["GET"])]
