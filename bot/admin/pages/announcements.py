"""Announcements: compose, see who it reaches, preview per channel, test, send or schedule,
cancel, and the history with delivered / failed / skipped counts."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot import announcements as ann
from bot.admin import audit
from bot.admin.accounts import may_test_send
from bot.admin.context import Console, Ctx, NotFound
from bot.admin.guard import guarded
from bot.admin.outreach import (
    AUDIENCES,
    DELIVERABLE,
    INTERESTS,
    LANGUAGES,
    ComposeForm,
    FormError,
    release_now,
)
from bot.storage.models import Announcement, StaffAccount, Tour

log = logging.getLogger(__name__)

PREVIEW_CHANNELS = ("line", "telegram")


def read_form(ctx: Ctx) -> ComposeForm:
    return ComposeForm(
        text_ja=ctx.field("text_ja"),
        text_en=ctx.field("text_en"),
        link_label=ctx.field("link_label"),
        link_url=ctx.field("link_url"),
        channels=ctx.fields("channels"),
        audiences=ctx.fields("audiences"),
        languages=ctx.fields("languages"),
        interests=ctx.fields("interests"),
        tour_id=ctx.field("tour_id"),
        followed_since=ctx.field("followed_since"),
        mode=ctx.field("mode", "now"),
        send_at=ctx.field("send_at"),
    )


def _error_text(ctx: Ctx, exc: Exception) -> str:
    if isinstance(exc, ann.AnnouncementError):
        return exc.en if ctx.lang == "en" else exc.ja
    if isinstance(exc, FormError):
        return ctx.t(exc.key)
    raise exc


async def compose_page(
    ctx: Ctx,
    form: ComposeForm | None = None,
    *,
    count: ann.RecipientCount | None = None,
    previews: dict[tuple[str, str], list[Any]] | None = None,
    error: str = "",
) -> Response:
    async with ctx.sessions() as session:
        reports = await ann.history(session)
        tours = (
            await session.scalars(
                select(Tour).where(Tour.status != "cancelled").order_by(Tour.starts_at)
            )
        ).all()
    return ctx.render(
        "announcements.html",
        status=400 if error else 200,
        form=form or ComposeForm(),
        count=count,
        previews=previews or {},
        error=error,
        reports=reports,
        tours=tours,
        channels=DELIVERABLE,
        audiences=AUDIENCES,
        languages=LANGUAGES,
        interests=INTERESTS,
    )


async def show_compose(ctx: Ctx) -> Response:
    return await compose_page(ctx)


async def submit(ctx: Ctx) -> Response:
    """One form, three buttons: count the recipients, preview, or send/schedule."""
    form = read_form(ctx)
    tz = ctx.runtime.settings.bot.tz
    action = ctx.field("do", "count")
    try:
        segment = form.segment(tz)
        async with ctx.sessions() as session:
            count = await ann.count_recipients(session, segment)
        if action == "preview":
            texts = ann.AnnouncementTexts(
                form.text_ja, form.text_en, form.link_label, form.link_url
            )
            ann.validate(texts, segment)
            previews = {
                (channel, lang): ann.preview(texts, channel, lang)
                for channel in PREVIEW_CHANNELS
                for lang in LANGUAGES
            }
            return await compose_page(ctx, form, count=count, previews=previews)
        if action != "send":
            return await compose_page(ctx, form, count=count)
        async with ctx.sessions() as session, session.begin():
            created = await ann.create_announcement(
                session,
                staff_id=ctx.me.id,
                text_ja=form.text_ja,
                text_en=form.text_en,
                link_label=form.link_label,
                link_url=form.link_url,
                segment=segment,
                send_at=form.when(tz),
                now=ctx.now(),
            )
            audit.record(
                session, ctx.me.id, "announcement.create", f"announcement:{created.id}",
                ctx.now(), f"{count.total} recipients",
            )  # fmt: skip
            announcement_id = created.id
    except (ann.AnnouncementError, FormError) as exc:
        return await compose_page(ctx, form, error=_error_text(ctx, exc))
    key = "ann.scheduled" if form.mode == "later" else "ann.queued"
    ctx.flash(ctx.t(key, id=announcement_id, n=count.total))
    return ctx.redirect(f"/announcements/{announcement_id}")


async def count_json(ctx: Ctx) -> Response:
    """The recipient count as the form changes (fetch() from the compose page)."""
    try:
        segment = read_form(ctx).segment(ctx.runtime.settings.bot.tz)
    except FormError as exc:
        return JSONResponse({"error": ctx.t(exc.key)}, status_code=400)
    async with ctx.sessions() as session:
        count = await ann.count_recipients(session, segment)
    return JSONResponse(
        {"total": count.total, "per_channel": count.per_channel, "unreachable": count.unreachable}
    )


def _announcement_id(ctx: Ctx) -> int:
    return ctx.path_id("announcement_id")


async def detail(ctx: Ctx, *, error: str = "", status: int = 400) -> Response:
    announcement_id = _announcement_id(ctx)
    async with ctx.sessions() as session:
        row = await session.get(Announcement, announcement_id)
        if row is None:
            raise NotFound
        report = next(
            (r for r in await ann.history(session, limit=1000) if r.id == announcement_id), None
        )
        count = await ann.count_recipients(session, ann.Segment.from_json(row.segment))
        tour = None
        if row.segment.get("tour_id"):
            tour = await session.get(Tour, int(row.segment["tour_id"]))
        me = await session.get(StaffAccount, ctx.me.id)
        test_recipients = list(me.test_recipients or []) if me is not None else []
    previews = {
        (channel, lang): ann.preview(row, channel, lang)
        for channel in PREVIEW_CHANNELS
        for lang in LANGUAGES
    }
    return ctx.render(
        "announcement.html",
        status=status if error else 200,
        a=row,
        report=report,
        count=count,
        tour=tour,
        previews=previews,
        error=error,
        channels=DELIVERABLE,
        test_recipients=test_recipients,
    )


async def show(ctx: Ctx) -> Response:
    return await detail(ctx)


async def send_test(ctx: Ctx) -> Response:
    """A test copy to one address: staff's own test recipients (admins: any address), and in
    the audit log, since a test looks like the real announcement to whoever gets it."""
    announcement_id = _announcement_id(ctx)
    channel, address = ctx.field("channel"), ctx.field("address")
    # No platform id is longer than 128 characters (the column's size: longer was a 500).
    if not address or len(address) > 128:
        return await detail(ctx, error=ctx.t("ann.test_address"))
    try:
        async with ctx.sessions() as session, session.begin():
            if await session.get(Announcement, announcement_id) is None:
                raise NotFound
            me = await session.get(StaffAccount, ctx.me.id)
            if me is None or not may_test_send(me, channel, address):
                refused = True
            else:
                refused = False
                delivery = await ann.send_test(
                    session,
                    announcement_id,
                    channel,
                    address,
                    ctx.now(),
                    lang=ctx.field("lang") or None,
                )
                # The person's row id, never the platform address (see bot.admin.audit).
                to = f"person:{delivery.person_id}" if delivery.person_id else "no person"
                audit.record(
                    session, ctx.me.id, "announcement.test", f"announcement:{announcement_id}",
                    ctx.now(), f"{channel} to {to}",
                )  # fmt: skip
    except ann.AnnouncementError as exc:
        return await detail(ctx, error=_error_text(ctx, exc))
    if refused:
        log.info("console: staff %d refused a test-send outside their test recipients", ctx.me.id)
        return await detail(ctx, error=ctx.t("ann.test_not_yours"), status=403)
    ctx.flash(ctx.t("ann.test_queued"))
    return ctx.redirect(f"/announcements/{announcement_id}")


async def send_now(ctx: Ctx) -> Response:
    announcement_id = _announcement_id(ctx)
    async with ctx.sessions() as session, session.begin():
        if await session.get(Announcement, announcement_id) is None:
            raise NotFound
        moved = await release_now(session, announcement_id, ctx.now())
        if moved:
            audit.record(
                session, ctx.me.id, "announcement.send_now", f"announcement:{announcement_id}",
                ctx.now(),
            )  # fmt: skip
    ctx.flash(
        ctx.t("ann.queued_now") if moved else ctx.t("ann.too_late"), "ok" if moved else "error"
    )
    return ctx.redirect(f"/announcements/{announcement_id}")


async def cancel(ctx: Ctx) -> Response:
    announcement_id = _announcement_id(ctx)
    async with ctx.sessions() as session, session.begin():
        if await session.get(Announcement, announcement_id) is None:
            raise NotFound
        cancelled = await ann.cancel_announcement(session, announcement_id, ctx.now())
        if cancelled:
            audit.record(
                session, ctx.me.id, "announcement.cancel", f"announcement:{announcement_id}",
                ctx.now(),
            )  # fmt: skip
    if cancelled:
        ctx.flash(ctx.t("ann.cancelled", id=announcement_id))
    else:
        ctx.flash(ctx.t("ann.too_late"), "error")
    return ctx.redirect(f"/announcements/{announcement_id}")


def routes(console: Console) -> list[Route]:
    base = "/announcements"
    one = base + "/{announcement_id:int}"
    return [
        Route(base, guarded(console, show_compose), methods=["GET"]),
        Route(base, guarded(console, submit), methods=["POST"]),
        Route(base + "/count", guarded(console, count_json, data=True), methods=["POST"]),
        Route(one, guarded(console, show), methods=["GET"]),
        Route(one + "/test", guarded(console, send_test), methods=["POST"]),
        Route(one + "/send-now", guarded(console, send_now), methods=["POST"]),
        Route(one + "/cancel", guarded(console, cancel), methods=["POST"]),
    ]
