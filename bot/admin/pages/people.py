"""A person's page: profile, sign-ups and messages, with export and erasure (all audited)."""

from __future__ import annotations

import json

from starlette.responses import Response
from starlette.routing import Route

from bot.admin import audit, people_data
from bot.admin.context import Console, Ctx, NotFound
from bot.admin.guard import guarded
from bot.storage.bookings import erase_person
from bot.storage.models import Person


def _person_id(ctx: Ctx) -> int:
    return ctx.path_id("person_id")


async def list_page(ctx: Ctx) -> Response:
    wanted = ctx.query("id").lstrip("#")
    if wanted.isascii() and wanted.isdigit():
        return ctx.redirect(f"/people/{int(wanted)}")
    channel = ctx.query("channel") or None
    async with ctx.sessions() as session:
        people = await people_data.recent_people(session, channel)
    return ctx.render("people.html", people=people, channel=channel or "")


async def show(ctx: Ctx) -> Response:
    person_id = _person_id(ctx)
    async with ctx.sessions() as session, session.begin():
        record = await people_data.person_record(session, person_id)
        if record is None:
            raise NotFound
        audit.record(session, ctx.me.id, "person.view", f"person:{person_id}", ctx.now())
    return ctx.render("person.html", r=record)


async def export(ctx: Ctx) -> Response:
    person_id = _person_id(ctx)
    runtime = ctx.runtime
    async with ctx.sessions() as session, session.begin():
        data = await people_data.export(session, runtime.policy, person_id, ctx.now())
        if data is None:
            raise NotFound
        audit.record(session, ctx.me.id, "person.export", f"person:{person_id}", ctx.now())
    body = json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8")
    return Response(
        body,
        media_type="application/json; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="person-{person_id}.json"',
            "Cache-Control": "no-store",
        },
    )


async def delete(ctx: Ctx) -> Response:
    person_id = _person_id(ctx)
    if ctx.field("confirm") != "yes":
        ctx.flash(ctx.t("people.delete_unconfirmed"), "error")
        return ctx.redirect(f"/people/{person_id}")
    async with ctx.sessions() as session, session.begin():
        if await session.get(Person, person_id) is None:
            raise NotFound
        await erase_person(session, ctx.runtime.policy, person_id, ctx.now())
        audit.record(session, ctx.me.id, "person.delete", f"person:{person_id}", ctx.now())
    ctx.flash(ctx.t("people.deleted", id=person_id))
    return ctx.redirect(f"/people/{person_id}")


def routes(console: Console) -> list[Route]:
    return [
        Route("/people", guarded(console, list_page), methods=["GET"]),
        Route("/people/{person_id:int}", guarded(console, show), methods=["GET"]),
        Route(
            "/people/{person_id:int}/export.json",
            guarded(console, export, data=True),
            methods=["POST"],
        ),
        Route("/people/{person_id:int}/delete", guarded(console, delete), methods=["POST"]),
    ]
