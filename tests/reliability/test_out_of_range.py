"""Numbers and characters no database column can hold, from outside: a polite reply or a
clear 4xx, never a 500 or a 503 the sender retries forever (issue 15, defect 7)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from bot.config import Settings
from bot.web import create_app
from faq.library import FaqLibrary
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
