"""The handoff inbox: people waiting for a person, their conversation, reply, return to bot."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from bot.admin import audit
from bot.admin.context import Console, Ctx, NotFound
from bot.admin.guard import guarded
from bot.storage import handoffs
from bot.storage.models import Handoff, Person


def _handoff_id(ctx: Ctx) -> int:
    return ctx.path_id("handoff_id")


async def list_page(ctx: Ctx) -> Response:
    async with ctx.sessions() as session:
        rows = await handoffs.list_open(session)
    return ctx.render("inbox.html", rows=rows)


async def conversation_page(ctx: Ctx, *, error: str = "", draft: str = "") -> Response:
    handoff_id = _handoff_id(ctx)
    async with ctx.sessions() as session, session.begin():
        handoff = await session.get(Handoff, handoff_id)
        if handoff is None:
            raise NotFound
        person = await session.get(Person, handoff.person_id)
        if person is None:
            raise NotFound
        messages = await handoffs.conversation(session, person.id)
        audit.record(
            session, ctx.me.id, "handoff.view", f"person:{person.id}", ctx.now(),
            f"handoff {handoff.id}",
        )  # fmt: skip
    return ctx.render(
        "conversation.html",
        status=400 if error else 200,
        handoff=handoff,
        person=person,
        messages=messages,
        error=error,
        draft=draft,
    )


async def show(ctx: Ctx) -> Response:
    return await conversation_page(ctx)


async def reply(ctx: Ctx) -> Response:
    handoff_id = _handoff_id(ctx)
    text = ctx.field("text")
    try:
        async with ctx.sessions() as session, session.begin():
            handoff = await session.get(Handoff, handoff_id)
            if handoff is None:
                raise NotFound
            await handoffs.staff_reply(session, handoff_id, ctx.me.id, text, ctx.now())
            audit.record(
                session, ctx.me.id, "handoff.reply", f"person:{handoff.person_id}", ctx.now(),
                f"handoff {handoff_id}",
            )  # fmt: skip
    except handoffs.HandoffError as exc:
        return await conversation_page(ctx, error=str(exc), draft=text)
    ctx.flash(ctx.t("inbox.sent"))
    return ctx.redirect(f"/inbox/{handoff_id}")


async def return_to_bot(ctx: Ctx) -> Response:
    handoff_id = _handoff_id(ctx)
    try:
        async with ctx.sessions() as session, session.begin():
            handoff = await session.get(Handoff, handoff_id)
            if handoff is None:
                raise NotFound
            await handoffs.return_to_bot(session, ctx.runtime.policy, handoff_id, ctx.now())
            audit.record(
                session, ctx.me.id, "handoff.return", f"person:{handoff.person_id}", ctx.now(),
                f"handoff {handoff_id}",
            )  # fmt: skip
    except handoffs.HandoffError as exc:
        ctx.flash(str(exc), "error")
        return ctx.redirect("/inbox")
    ctx.flash(ctx.t("inbox.returned"))
    return ctx.redirect("/inbox")


def routes(console: Console) -> list[Route]:
    return [
        Route("/inbox", guarded(console, list_page), methods=["GET"]),
        Route("/inbox/{handoff_id:int}", guarded(console, show), methods=["GET"]),
        Route("/inbox/{handoff_id:int}/reply", guarded(console, reply), methods=["POST"]),
        Route("/inbox/{handoff_id:int}/return", guarded(console, return_to_bot), methods=["POST"]),
    ]
