"""Staff accounts and the audit log: admins only."""

from __future__ import annotations

from sqlalchemy import select
from starlette.responses import Response
from starlette.routing import Route

from bot.admin import audit
from bot.admin.accounts import (
    ROLES,
    AccountError,
    check_new_password,
    count_admins,
    create_staff,
    end_sessions,
    hash_password,
    parse_test_recipients,
)
from bot.admin.context import Console, Ctx, NotFound
from bot.admin.guard import guarded
from bot.storage.models import StaffAccount

ACTIONS = (
    "activate", "deactivate", "unlock", "make_admin", "make_staff", "password", "test_recipients",
)  # fmt: skip


async def list_page(ctx: Ctx, *, error: str = "", email: str = "") -> Response:
    async with ctx.sessions() as session:
        accounts = (await session.scalars(select(StaffAccount).order_by(StaffAccount.id))).all()
    return ctx.render(
        "staff.html",
        status=400 if error else 200,
        accounts=accounts,
        roles=ROLES,
        error=error,
        email=email,
        now=ctx.now(),
    )


async def show(ctx: Ctx) -> Response:
    return await list_page(ctx)


async def create(ctx: Ctx) -> Response:
    email = ctx.field("email")
    password = ctx.form.get("password") if ctx.form is not None else None
    try:
        async with ctx.sessions() as session, session.begin():
            account = await create_staff(
                session,
                email,
                password if isinstance(password, str) else "",
                ctx.field("role", "staff"),
                ctx.now(),
            )
            audit.record(session, ctx.me.id, "staff.create", f"staff:{account.id}", ctx.now())
    except AccountError as exc:
        return await list_page(ctx, error=ctx.t(str(exc), min=12), email=email)
    ctx.flash(ctx.t("staff.created", email=account.email))
    return ctx.redirect("/staff")


async def change(ctx: Ctx) -> Response:
    staff_id = ctx.path_id("staff_id")
    action = ctx.field("action")
    if action not in ACTIONS:
        return await list_page(ctx, error=ctx.t("error.bad_request"))
    try:
        async with ctx.sessions() as session, session.begin():
            account = await session.get(StaffAccount, staff_id)
            if account is None:
                raise NotFound
            removes_admin = action in ("deactivate", "make_staff") and account.role == "admin"
            if removes_admin and account.id == ctx.me.id:
                raise AccountError("staff.not_yourself")
            if removes_admin and await count_admins(session) <= 1:
                raise AccountError("staff.last_admin")
            if action == "activate":
                account.active = True
            elif action == "deactivate":
                account.active = False
                end_sessions(account)
            elif action == "unlock":
                account.locked_until, account.failed_logins = None, 0
            elif action in ("make_admin", "make_staff"):
                if account.role != action.removeprefix("make_"):
                    account.role = action.removeprefix("make_")
                    end_sessions(account)  # signs in again under the new role
            elif action == "test_recipients":
                account.test_recipients = parse_test_recipients(ctx.field("test_recipients"))
            else:
                new_password = ctx.form.get("password") if ctx.form is not None else None
                new_password = new_password if isinstance(new_password, str) else ""
                check_new_password(new_password)
                account.password_hash = await hash_password(new_password)
                account.locked_until, account.failed_logins = None, 0
                end_sessions(account)  # whoever knew the old password is signed out
            audit.record(session, ctx.me.id, f"staff.{action}", f"staff:{staff_id}", ctx.now())
    except AccountError as exc:
        return await list_page(ctx, error=ctx.t(str(exc), min=12))
    ctx.flash(ctx.t("staff.changed"))
    return ctx.redirect("/staff")


async def audit_page(ctx: Ctx) -> Response:
    async with ctx.sessions() as session:
        entries = await audit.recent(session)
    return ctx.render("audit.html", entries=entries)


def routes(console: Console) -> list[Route]:
    return [
        Route("/staff", guarded(console, show, role="admin"), methods=["GET"]),
        Route("/staff", guarded(console, create, role="admin"), methods=["POST"]),
        Route("/staff/{staff_id:int}", guarded(console, change, role="admin"), methods=["POST"]),
        Route("/audit", guarded(console, audit_page, role="admin"), methods=["GET"]),
    ]
