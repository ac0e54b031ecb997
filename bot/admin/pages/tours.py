"""Tours and their sign-ups: everyone reads; admins create, edit, close and cancel."""

from __future__ import annotations

from datetime import datetime, tzinfo

from starlette.responses import Response
from starlette.routing import Route

from bot.admin import audit
from bot.admin.context import Console, Ctx, NotFound
from bot.admin.guard import guarded
from bot.admin.tour_edit import TourEditError, edit_tour
from bot.storage import tours as tour_ops
from bot.storage.bookings import load_tour_view
from bot.storage.models import Tour
from intents.ports import TOUR_KINDS

FIELDS = (
    "kind", "title_ja", "title_en", "description_ja", "description_en",
    "starts_at", "ends_at", "deadline", "place", "capacity",
)  # fmt: skip


class FormError(ValueError):
    def __init__(self, key: str, **values: object) -> None:
        super().__init__(key)
        self.key, self.values = key, values


def _when(value: str, tz: tzinfo, name: str) -> datetime:
    # <input type="datetime-local"> sends "2026-12-20T13:00", in the city's time zone.
    for fmt in ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=tz)
        except ValueError:
            continue
    raise FormError("tours.bad_date", field=name)


def parse_tour_form(ctx: Ctx) -> tuple[tour_ops.NewTour, dict[str, str]]:
    values = {name: ctx.field(name) for name in FIELDS}
    tz = ctx.runtime.settings.bot.tz
    try:
        capacity = int(values["capacity"])
    except ValueError:
        raise FormError("tours.bad_capacity") from None
    starts = _when(values["starts_at"], tz, ctx.t("field.starts_at"))
    new = tour_ops.NewTour(
        kind=values["kind"],
        title_ja=values["title_ja"],
        title_en=values["title_en"],
        starts_at=starts,
        ends_at=_when(values["ends_at"], tz, ctx.t("field.ends_at")),
        capacity=capacity,
        deadline=(
            _when(values["deadline"], tz, ctx.t("field.deadline")) if values["deadline"] else starts
        ),
        place=values["place"],
        description_ja=values["description_ja"],
        description_en=values["description_en"],
    )
    return new, values


def form_values(tour: Tour, tz: tzinfo) -> dict[str, str]:
    def local(d: datetime) -> str:
        return d.astimezone(tz).strftime("%Y-%m-%dT%H:%M")

    return {
        "kind": tour.kind,
        "title_ja": tour.title_ja,
        "title_en": tour.title_en,
        "description_ja": tour.description_ja,
        "description_en": tour.description_en,
        "starts_at": local(tour.starts_at),
        "ends_at": local(tour.ends_at),
        "deadline": local(tour.deadline),
        "place": tour.place,
        "capacity": str(tour.capacity),
    }


async def list_page(ctx: Ctx) -> Response:
    async with ctx.sessions() as session:
        views = await tour_ops.list_tours(session)
    return ctx.render("tours.html", tours=views)


def _form_page(ctx: Ctx, values: dict[str, str], tour_id: int | None, error: str = "") -> Response:
    return ctx.render(
        "tour_form.html",
        status=400 if error else 200,
        values=values,
        tour_id=tour_id,
        kinds=TOUR_KINDS,
        error=error,
    )


async def new_form(ctx: Ctx) -> Response:
    return _form_page(ctx, dict.fromkeys(FIELDS, "") | {"kind": "experience"}, None)


async def create(ctx: Ctx) -> Response:
    values = {name: ctx.field(name) for name in FIELDS}
    try:
        new, values = parse_tour_form(ctx)
        async with ctx.sessions() as session, session.begin():
            tour = await tour_ops.add_tour(session, new, ctx.now())
            audit.record(session, ctx.me.id, "tour.create", f"tour:{tour.id}", ctx.now())
            tour_id = tour.id
    except FormError as exc:
        return _form_page(ctx, values, None, ctx.t(exc.key, **exc.values))
    except tour_ops.TourError as exc:
        return _form_page(ctx, values, None, str(exc))
    ctx.flash(ctx.t("tours.created", id=tour_id))
    return ctx.redirect("/tours")


def _tour_id(ctx: Ctx) -> int:
    return ctx.path_id("tour_id")


async def edit_form(ctx: Ctx) -> Response:
    async with ctx.sessions() as session:
        tour = await session.get(Tour, _tour_id(ctx))
        if tour is None:
            raise NotFound
        values = form_values(tour, ctx.runtime.settings.bot.tz)
    return _form_page(ctx, values, tour.id)


async def update(ctx: Ctx) -> Response:
    tour_id = _tour_id(ctx)
    values = {name: ctx.field(name) for name in FIELDS}
    try:
        new, values = parse_tour_form(ctx)
        async with ctx.sessions() as session, session.begin():
            await edit_tour(session, ctx.runtime.policy, tour_id, new, ctx.now())
            audit.record(session, ctx.me.id, "tour.edit", f"tour:{tour_id}", ctx.now())
    except (FormError, TourEditError) as exc:
        if exc.key == "error.not_found":
            raise NotFound from None
        return _form_page(ctx, values, tour_id, ctx.t(exc.key, **exc.values))
    except tour_ops.TourError as exc:
        return _form_page(ctx, values, tour_id, str(exc))
    ctx.flash(ctx.t("tours.updated", id=tour_id))
    return ctx.redirect("/tours")


async def close(ctx: Ctx) -> Response:
    tour_id = _tour_id(ctx)
    try:
        async with ctx.sessions() as session, session.begin():
            await tour_ops.close_tour(session, tour_id)
            audit.record(session, ctx.me.id, "tour.close", f"tour:{tour_id}", ctx.now())
    except tour_ops.TourError as exc:
        ctx.flash(str(exc), "error")
        return ctx.redirect("/tours")
    ctx.flash(ctx.t("tours.closed", id=tour_id))
    return ctx.redirect("/tours")


async def cancel(ctx: Ctx) -> Response:
    tour_id = _tour_id(ctx)
    if ctx.field("confirm") != "yes":
        ctx.flash(ctx.t("tours.cancel_unconfirmed"), "error")
        return ctx.redirect("/tours")
    try:
        async with ctx.sessions() as session, session.begin():
            told = await tour_ops.cancel_tour(session, ctx.runtime.policy, tour_id, ctx.now())
            audit.record(
                session, ctx.me.id, "tour.cancel", f"tour:{tour_id}", ctx.now(), f"told {told}"
            )
    except tour_ops.TourError as exc:
        ctx.flash(str(exc), "error")
        return ctx.redirect("/tours")
    ctx.flash(ctx.t("tours.cancelled", id=tour_id, n=told))
    return ctx.redirect("/tours")


async def signups_page(ctx: Ctx) -> Response:
    tour_id = _tour_id(ctx)
    async with ctx.sessions() as session, session.begin():
        tour = await session.get(Tour, tour_id)
        if tour is None:
            raise NotFound
        view = await load_tour_view(session, tour)
        signups = await tour_ops.signups_for_tour(session, tour_id)
        audit.record(session, ctx.me.id, "tour.signups.view", f"tour:{tour_id}", ctx.now())
    by_status = {
        status: [s for s in signups if s.status == status]
        for status in ("confirmed", "waitlisted", "cancelled")
    }
    # The waiting list in the order seats are offered: first come, first served.
    by_status["waitlisted"].sort(key=lambda s: (s.created_at, s.id))
    return ctx.render("signups.html", tour=view, groups=by_status)


async def signups_csv(ctx: Ctx) -> Response:
    tour_id = _tour_id(ctx)
    async with ctx.sessions() as session, session.begin():
        if await session.get(Tour, tour_id) is None:
            raise NotFound
        signups = await tour_ops.signups_for_tour(session, tour_id)
        audit.record(
            session, ctx.me.id, "tour.signups.export", f"tour:{tour_id}", ctx.now(),
            f"{len(signups)} rows",
        )  # fmt: skip
    return Response(
        tour_ops.signups_csv(signups).encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="tour-{tour_id}-signups.csv"',
            "Cache-Control": "no-store",
        },
    )


def routes(console: Console) -> list[Route]:
    return [
        Route("/tours", guarded(console, list_page), methods=["GET"]),
        Route("/tours/new", guarded(console, new_form, role="admin"), methods=["GET"]),
        Route("/tours/new", guarded(console, create, role="admin"), methods=["POST"]),
        Route(
            "/tours/{tour_id:int}/edit", guarded(console, edit_form, role="admin"), methods=["GET"]
        ),
        Route(
            "/tours/{tour_id:int}/edit", guarded(console, update, role="admin"), methods=["POST"]
        ),
        Route(
            "/tours/{tour_id:int}/close", guarded(console, close, role="admin"), methods=["POST"]
        ),
        Route(
            "/tours/{tour_id:int}/cancel", guarded(console, cancel, role="admin"), methods=["POST"]
        ),
        Route("/tours/{tour_id:int}/signups", guarded(console, signups_page), methods=["GET"]),
        Route(
            "/tours/{tour_id:int}/signups.csv",
            guarded(console, signups_csv, data=True),
            methods=["GET"],
        ),
    ]
