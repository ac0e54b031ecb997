"""Numbers and characters no database column can hold, from outside: a polite reply or a
clear 4xx, never a 500 or a 503 the sender retries forever (issue 15, defect 7)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from bot.config import Settings
from bot.web import create_app
from faq.library import FaqLibrary
from tests.admin.conftest import Console, admin, console
from tests.channels.conftest import Running, tg_update


@pytest.fixture
def chat(settings: Settings, faq_library: FaqLibrary) -> Iterator[TestClient]:
    app = create_app(settings, migrate_schema=True, library=faq_library)
    with TestClient(app, raise_server_exceptions=False) as c:
        c.get("/")  # the visitor's cookie
        yield c


@pytest.mark.parametrize(
    "postback",
    [
        "booking:cancel-yes:99999999999",  # past PostgreSQL's integer
        "booking:cancel:2147483648",
        "booking:attend:99999999999999999999",  # past SQLite's 64-bit integer too
        "booking:move:99999999999",
        "booking:moveto:1:99999999999",
        "booking:cancel-yes:²",  # a digit to str.isdigit, not to int()
    ],
)
def test_a_forged_booking_id_gets_a_polite_reply(chat: TestClient, postback: str) -> None:
    res = chat.post("/api/chat", json={"postback": postback})
    assert res.status_code == 200, res.text
    assert res.json()["replies"], "the visitor hears something back"


async def test_an_update_id_no_update_can_have_is_a_clear_400(
    platform_app_any_db: Running,
) -> None:
    """A 129-digit update_id was a 503 on PostgreSQL (its text did not fit the inbox), which
    Telegram retries for ever; a user id past 64 bits could only fail later."""
    update = tg_update("text_message")
    update["update_id"] = int("9" * 129)
    res = await platform_app_any_db.post_telegram(update)
    assert res.status_code == 400 and "update_id" in res.text
    huge_user = tg_update("text_message", user=int("9" * 129))
    assert (await platform_app_any_db.post_telegram(huge_user)).status_code == 200
    await platform_app_any_db.drain()  # taken, and left unanswered without an error


__all__ = ["admin", "console"]  # the console's fixtures, for the tests below


# --- the staff console --------------------------------------------------------------------
TOO_BIG = ["2147483648", "99999999999999999999"]  # past PostgreSQL's integer; past 64 bits


@pytest.mark.parametrize("number", TOO_BIG)
@pytest.mark.parametrize(
    "path",
    [
        "/admin/people/{n}",
        "/admin/inbox/{n}",
        "/admin/announcements/{n}",
        "/admin/tours/{n}/edit",
        "/admin/tours/{n}/signups",
        "/admin/tours/{n}/signups.csv",
        "/admin/people?id={n}",
    ],
)
def test_a_console_id_no_row_can_have_is_not_found(admin: Console, path: str, number: str) -> None:
    res = admin.client.get(path.format(n=number), follow_redirects=True)
    assert res.status_code == 404, res.text[:300]


@pytest.mark.parametrize("number", TOO_BIG)
@pytest.mark.parametrize(
    "path",
    [
        "/admin/people/{n}/delete",
        "/admin/people/{n}/export.json",
        "/admin/inbox/{n}/reply",
        "/admin/inbox/{n}/return",
        "/admin/announcements/{n}/test",
        "/admin/announcements/{n}/cancel",
        "/admin/tours/{n}/close",
        "/admin/staff/{n}",
    ],
)
def test_a_console_form_for_an_id_no_row_can_have_is_not_found(
    admin: Console, path: str, number: str
) -> None:
    data = {"text": "hello", "channel": "web", "address": "x" * 20, "role": "staff"}
    res = admin.post(path.format(n=number), data)
    assert res.status_code == 404, res.text[:300]


def test_nul_in_console_filters_and_forms_is_never_a_server_error(admin: Console) -> None:
    assert admin.client.get("/admin/people?channel=web%00").status_code < 500
    assert admin.client.get("/admin/faq?days=3%000").status_code < 500
    assert admin.client.get("/admin/faq?days=%C2%B2").status_code < 500  # "²", a digit
    tour = {
        "kind": "experience", "title_ja": "体験\x00ツアー", "title_en": "Tour\x00",
        "start": "2027-01-10 13:00", "end": "2027-01-12 12:00", "capacity": "10",
        "place_ja": "\x00", "place_en": "",
    }  # fmt: skip
    res = admin.post("/admin/tours/new", tour, page="/admin/tours/new")
    assert res.status_code < 500, res.text[:300]
    compose = {"text_ja": "お知らせ\x00", "text_en": "", "do": "preview"}
    res = admin.post("/admin/announcements", compose, page="/admin/announcements")
    assert res.status_code < 500, res.text[:300]
    staff = {"email": "a\x00@city.example.jp", "role": "staff", "password": "x" * 20}
    assert admin.post("/admin/staff", staff, page="/admin/staff").status_code < 500


def test_a_test_address_longer_than_any_platform_id_is_a_clear_400(admin: Console) -> None:
    compose = {"text_ja": "お知らせです", "text_en": "News", "do": "send", "mode": "now"}
    made = admin.post("/admin/announcements", compose, page="/admin/announcements")
    assert made.status_code == 303, made.text[:300]
    page = made.headers["location"]
    data = {"channel": "line", "address": "U" + "0" * 200, "lang": ""}
    res = admin.post(page.removeprefix("https://testserver") + "/test", data, page=page)
    assert res.status_code == 400, res.text[:300]
