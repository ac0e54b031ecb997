"""Sign-in, sessions, lock-out, CSRF and roles: nothing under /admin answers without them."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from bot.config import Settings
from bot.storage.models import AuditEntry, StaffAccount
from bot.web import create_app
from tests.admin.conftest import ADMIN, PASSWORD, STAFF, Console, app_kwargs
from tests.conftest import ROOT, Clock, make_settings

PAGES = [
    "/admin/", "/admin/tours", "/admin/tours/new", "/admin/tours/1/edit", "/admin/tours/1/signups",
    "/admin/inbox", "/admin/inbox/1", "/admin/people", "/admin/people/1", "/admin/faq",
    "/admin/staff", "/admin/audit", "/admin/announcements", "/admin/announcements/1",
]  # fmt: skip
POSTS = [
    "/admin/logout", "/admin/tours/new", "/admin/tours/1/edit", "/admin/tours/1/close",
    "/admin/tours/1/cancel", "/admin/inbox/1/reply", "/admin/inbox/1/return",
    "/admin/people/1/delete", "/admin/staff", "/admin/staff/1", "/admin/announcements",
    "/admin/announcements/1/cancel", "/admin/announcements/1/test",
    "/admin/announcements/1/send-now",
]  # fmt: skip
ADMIN_ONLY = ["/admin/tours/new", "/admin/tours/1/edit", "/admin/staff", "/admin/audit"]
ADMIN_POSTS = [
    "/admin/tours/new", "/admin/tours/1/edit", "/admin/tours/1/close", "/admin/tours/1/cancel",
    "/admin/staff", "/admin/staff/1",
]  # fmt: skip


def test_pages_redirect_to_login_without_a_session(console: Console) -> None:
    for path in PAGES:
        res = console.client.get(path)
        assert res.status_code == 303, path
        assert res.headers["location"].startswith("/admin/login?next="), path


def test_posts_without_a_session_change_nothing(console: Console) -> None:
    for path in POSTS:
        res = console.client.post(path, data={"text": "x", "confirm": "yes"})
        assert res.status_code == 303 and "/admin/login" in res.headers["location"], path


def test_data_endpoints_answer_401_without_a_session(console: Console) -> None:
    csv = console.client.get("/admin/tours/1/signups.csv")
    assert csv.status_code == 401 and csv.json() == {"error": "login required"}
    export = console.client.post("/admin/people/1/export.json")
    assert export.status_code == 401
    count = console.client.post("/admin/announcements/count")
    assert count.status_code == 401


def test_login_page_is_japanese_first_and_switches_to_english(console: Console) -> None:
    page = console.client.get("/admin/login")
    assert page.status_code == 200 and "ログイン" in page.text and 'lang="ja"' in page.text
    console.client.get("/admin/lang?to=en&next=/admin/login")
    assert "Sign in" in console.client.get("/admin/login").text


def test_login_logout_and_the_session_cookie(console: Console) -> None:
    console.add_staff(ADMIN, "admin")
    res = console.login(ADMIN)
    assert res.status_code == 303 and res.headers["location"] == "/admin/"
    cookie = res.headers["set-cookie"]
    assert "iju_console=" in cookie and "httponly" in cookie.lower()
    assert "samesite=lax" in cookie.lower() and "path=/admin" in cookie
    home = console.client.get("/admin/")
    assert home.status_code == 200 and ADMIN in home.text
    assert home.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in home.headers["content-security-policy"]
    assert console.post("/admin/logout").status_code == 303
    assert console.client.get("/admin/").status_code == 303


def test_wrong_password_and_unknown_email_get_the_same_answer(console: Console) -> None:
    console.add_staff(ADMIN, "admin")
    wrong = console.login(ADMIN, "not the password")
    unknown = console.login("nobody@city.example.jp", PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    assert "メールアドレスまたはパスワードが違います" in wrong.text
    assert "メールアドレスまたはパスワードが違います" in unknown.text
    assert console.client.get("/admin/").status_code == 303


def test_lock_out_after_five_failures_for_fifteen_minutes(console: Console, clock: Clock) -> None:
    console.add_staff(ADMIN, "admin")
    for _ in range(4):
        assert console.login(ADMIN, "wrong password!").status_code == 401
    fifth = console.login(ADMIN, "wrong password!")
    assert "ロックされています" in fifth.text
    # Locked: even the right password is refused.
    locked = console.login(ADMIN)
    assert locked.status_code == 401 and "ロックされています" in locked.text
    clock.advance(minutes=14)
    assert console.login(ADMIN).status_code == 401
    clock.advance(minutes=2)
    assert console.login(ADMIN).status_code == 303


def test_admin_unlocks_an_account(console: Console) -> None:
    console.add_staff(ADMIN, "admin")
    staff_id = console.add_staff(STAFF)
    for _ in range(5):
        console.login(STAFF, "wrong password!")
    assert console.login(ADMIN).status_code == 303
    page = console.client.get("/admin/staff")
    assert "ロック中" in page.text
    assert console.post(f"/admin/staff/{staff_id}", {"action": "unlock"}).status_code == 303
    console.post("/admin/logout")
    assert console.login(STAFF).status_code == 303


def test_csrf_token_is_required_on_every_post(admin: Console) -> None:
    for path in POSTS:
        missing = admin.client.post(path, data={"confirm": "yes", "text": "x"})
        assert missing.status_code == 403, path
        forged = admin.client.post(path, data={"csrf_token": "forged" * 8, "confirm": "yes"})
        assert forged.status_code == 403, path
    assert admin.client.get("/admin/").status_code == 200  # still signed in


def test_post_from_another_origin_is_refused_even_with_the_token(admin: Console) -> None:
    token = admin.csrf("/admin/")
    res = admin.client.post(
        "/admin/logout",
        data={"csrf_token": token},
        headers={"origin": "https://evil.example"},
    )
    assert res.status_code == 403
    assert admin.client.get("/admin/").status_code == 200


def test_login_form_needs_its_token(console: Console) -> None:
    console.add_staff(ADMIN, "admin")
    res = console.client.post("/admin/login", data={"email": ADMIN, "password": PASSWORD})
    assert res.status_code == 403
    assert console.client.get("/admin/").status_code == 303


def test_staff_role_is_refused_admin_pages(staff: Console) -> None:
    for path in ADMIN_ONLY:
        res = staff.client.get(path)
        assert res.status_code == 403, path
        assert "管理者の権限" in res.text
    for path in ADMIN_POSTS:
        assert staff.post(path, {"confirm": "yes", "action": "unlock"}).status_code == 403, path
    nav = staff.client.get("/admin/").text
    assert "/admin/staff" not in nav and "/admin/audit" not in nav


def test_session_ends_after_its_hours(admin: Console, clock: Clock) -> None:
    assert admin.client.get("/admin/").status_code == 200
    clock.advance(hours=8, minutes=1)
    assert admin.client.get("/admin/").status_code == 303


def test_deactivated_account_is_signed_out_at_once(console: Console) -> None:
    console.add_staff(ADMIN, "admin")
    staff_id = console.add_staff(STAFF)
    other = Console(console.client)
    assert other.login(STAFF).status_code == 303

    async def deactivate(session):  # type: ignore[no-untyped-def]
        account = await session.get(StaffAccount, staff_id)
        account.active = False

    console.db(deactivate)
    assert console.client.get("/admin/").status_code == 303


def test_login_never_redirects_off_site(console: Console) -> None:
    console.add_staff(ADMIN, "admin")
    token = console.csrf()
    for target in ("https://evil.example/", "//evil.example/admin/", "/elsewhere"):
        res = console.client.post(
            "/admin/login",
            data={"email": ADMIN, "password": PASSWORD, "csrf_token": token, "next": target},
        )
        assert res.headers["location"] == "/admin/", target
        console.post("/admin/logout")
        token = console.csrf()


def test_login_is_not_audited_but_password_never_logged(
    console: Console, caplog: pytest.LogCaptureFixture
) -> None:
    console.add_staff(ADMIN, "admin")
    caplog.set_level("INFO")  # what `serve` logs (library DEBUG lines echo SQL parameters)
    console.login(ADMIN, "hunter2-secret-typo")
    console.login(ADMIN)
    assert "hunter2" not in caplog.text and PASSWORD not in caplog.text
    assert ADMIN not in caplog.text

    async def entries(session):  # type: ignore[no-untyped-def]
        return (await session.scalars(select(AuditEntry))).all()

    assert console.db(entries) == []


# --- the cookie is Secure in production (defect 9) ------------------------------------------
def test_session_cookie_is_secure_with_the_shipped_config(console: Console) -> None:
    """config.toml says web.host = "127.0.0.1" and the Procfile binds 0.0.0.0 (or a proxy on
    the same machine talks to 127.0.0.1): the host must not turn Secure off."""
    assert console.runtime.settings.web.host == "127.0.0.1"
    console.add_staff(ADMIN, "admin")
    cookie = console.login(ADMIN).headers["set-cookie"].lower()
    assert "; secure" in cookie


def test_plain_http_on_loopback_only_when_the_operator_says_so(
    database_url: str, clock: Clock, request: pytest.FixtureRequest
) -> None:
    """`make run` sets CONSOLE_PLAIN_HTTP_ON_LOOPBACK=1 and signs in over http://127.0.0.1."""
    from bot.config import load_settings

    settings: Settings = load_settings(
        ROOT / "config.toml",
        environ={"DATABASE_URL": database_url, "CONSOLE_PLAIN_HTTP_ON_LOOPBACK": "1"},
    )
    app = create_app(settings, clock=clock, migrate_schema=True, **app_kwargs(request))
    with TestClient(app, base_url="http://127.0.0.1:8000", follow_redirects=False) as client:
        console = Console(client)
        console.add_staff(ADMIN, "admin")
        res = console.login(ADMIN)
        assert res.status_code == 303 and "secure" not in res.headers["set-cookie"].lower()
        assert client.get("/admin/").status_code == 200
    assert not make_settings(database_url).console.plain_http_on_loopback  # off unless said


# --- sessions end when they should (defect 4) -----------------------------------------------
def _cookie(console: Console) -> str:
    value = console.client.cookies.get("iju_console")
    assert value
    return value


def _with_cookie(console: Console, cookie: str) -> int:
    """GET the dashboard as a browser holding `cookie` (a copy of a console cookie)."""
    # An explicit Cookie header: the client's own jar is left out of this one request.
    res = console.client.get("/admin/", headers={"cookie": f"iju_console={cookie}"})
    return int(res.status_code)


def test_logout_ends_a_copied_cookie(console: Console) -> None:
    console.add_staff(ADMIN, "admin")
    assert console.login(ADMIN).status_code == 303
    copied = _cookie(console)
    assert _with_cookie(console, copied) == 200
    assert console.post("/admin/logout").status_code == 303
    assert _with_cookie(console, copied) == 303  # back to the login page
    # Signing in again works, with a new session.
    assert console.login(ADMIN).status_code == 303
    assert console.client.get("/admin/").status_code == 200


@pytest.mark.parametrize(
    "action", ["password", "make_admin", "deactivate"], ids=["password", "role", "removal"]
)
def test_an_admin_change_ends_the_accounts_sessions_at_once(console: Console, action: str) -> None:
    console.add_staff(ADMIN, "admin")
    staff_id = console.add_staff(STAFF)
    assert console.login(STAFF).status_code == 303
    staff_cookie = _cookie(console)
    assert _with_cookie(console, staff_cookie) == 200
    console.client.cookies.clear()
    assert console.login(ADMIN).status_code == 303
    admin_cookie = _cookie(console)
    changed = console.post(
        f"/admin/staff/{staff_id}", {"action": action, "password": "a brand new passphrase"}
    )
    assert changed.status_code == 303
    assert _with_cookie(console, staff_cookie) == 303, action
    assert _with_cookie(console, admin_cookie) == 200  # the admin stays signed in


def test_a_hash_from_before_one_lane_still_signs_in_and_is_redone(console: Console) -> None:
    from argon2 import PasswordHasher

    staff_id = console.add_staff(ADMIN, "admin")

    async def four_lanes(session):  # type: ignore[no-untyped-def]
        account = await session.get(StaffAccount, staff_id)
        account.password_hash = PasswordHasher(parallelism=4).hash(PASSWORD)

    console.db(four_lanes)
    assert console.login(ADMIN).status_code == 303

    async def stored(session):  # type: ignore[no-untyped-def]
        return (await session.get(StaffAccount, staff_id)).password_hash

    assert ",p=1$" in console.db(stored)
    assert console.client.get("/admin/").status_code == 200  # the rehash kept the session
