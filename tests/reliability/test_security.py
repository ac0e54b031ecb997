"""Security: bodies that used to reach a 5xx, replays long after the first delivery,
hostile names and messages as the staff console shows them, and login lock-out."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from bot.admin.accounts import create_staff
from bot.config import Settings
from bot.storage.models import Handoff, Person
from bot.web import create_app
from faq.library import FaqLibrary
from tests.channels.conftest import (
    Running,
    line_body,
    line_event,
    platform_settings,
    running_app,
    tg_update,
)
from tests.conftest import Clock
from tests.fakes.platform import FakePlatform

DEEP = b"[" * 20_000 + b"]" * 20_000  # 40 kB, deeper than Python's JSON parser recurses


async def test_deeply_nested_json_is_a_400_not_a_500(platform_app: Running) -> None:
    line = await platform_app.post_line(b'{"destination": "U", "events": ' + DEEP + b"}")
    telegram = await platform_app.post_telegram(DEEP)
    chat = await platform_app.client.post(
        "/api/chat", content=DEEP, headers={"content-type": "application/json"}
    )
    assert [line.status_code, telegram.status_code, chat.status_code] == [400, 400, 400]
    assert "Recursion" not in line.text + telegram.text + chat.text


@pytest.mark.parametrize("event_id", ["01ABC\x00", "\u202e" * 3, " \n"])
async def test_unstorable_event_id_is_skipped_not_a_503(
    platform_app: Running, fake: FakePlatform, clock: Clock, event_id: str
) -> None:
    """An event id that is no ULID (NUL, which PostgreSQL cannot store, controls, RTL marks)
    is skipped like a missing one; the other events of the body are answered."""
    odd = line_event("text_message", clock, webhookEventId=event_id)
    fine = line_event("text_message", clock, user="U" + "b" * 32)
    payload = {"destination": "U" + "0" * 32, "events": [odd, fine]}
    body = json.dumps(payload, ensure_ascii=True).encode()  # the surrogate as a \\ud800 escape
    res = await platform_app.post_line(body)
    assert res.status_code == 200
    await platform_app.drain()
    assert len(fake.line_sends()) == 1  # the well-formed event in the same body is answered


@pytest.mark.parametrize("field", ["user", "text", "replyToken"])
async def test_lone_surrogates_are_a_400_not_a_503(
    platform_app: Running, fake: FakePlatform, clock: Clock, field: str
) -> None:
    """A lone surrogate (valid JSON as a \\ud800 escape, not valid UTF-8) in a signed body
    used to fail the inbox insert: a 503 for ever, as LINE kept redelivering it."""
    event = line_event("text_message", clock, **{field: "a\ud800b"})
    body = json.dumps({"destination": "U" + "0" * 32, "events": [event]}).encode()
    assert (await platform_app.post_line(body)).status_code == 400
    update = {"update_id": 5, "message": {"message_id": 1, "date": 0, "text": "\udfff",
              "chat": {"id": 7, "type": "private"}, "from": {"id": 7, "is_bot": False,
              "first_name": "\ud800"}}}  # fmt: skip
    assert (await platform_app.post_telegram(json.dumps(update).encode())).status_code == 400
    # The web chat's text went to the analyser, which failed on it (an ERROR and no answer).
    chat = await platform_app.client.post("/api/chat", content=b'{"text": "\\ud800?"}')
    assert chat.status_code == 400 and "error" in chat.json()
    await platform_app.drain()
    assert fake.line_sends() == [] and fake.telegram("sendMessage") == []


async def test_replays_hours_later_and_after_a_restart_are_answered_once(
    sqlite_url: str, fake: FakePlatform, clock: Clock, faq_library: FaqLibrary
) -> None:
    """A captured, correctly signed request sent again later (by LINE's redelivery or by
    someone replaying it) is accepted with 200 and answered no second time."""
    settings = platform_settings(sqlite_url, fake)
    body = line_body(line_event("text_message", clock))
    update = tg_update("text_message")
    async with running_app(settings, clock, faq_library) as app:
        assert (await app.post_line(body)).status_code == 200
        assert (await app.post_telegram(update)).status_code == 200
        await app.drain()
    clock.advance(hours=6)
    async with running_app(settings, clock, faq_library) as app:  # a new process, same DB
        assert (await app.post_line(body)).status_code == 200
        assert (await app.post_telegram(update)).status_code == 200
        await app.drain()
    assert len(fake.line_sends()) == 1
    assert len(fake.telegram("sendMessage")) == 1


async def test_hostile_names_and_messages_from_the_channels_are_escaped_in_the_console(
    platform_app: Running, clock: Clock
) -> None:
    """HTML and SQL in a Telegram profile name and in messages, arrived through the real
    webhooks and a handoff, shown as text on the inbox and person pages; tables intact."""
    xss, sqli = "<img src=x onerror=alert(1)>", "Robert'); DROP TABLE people;--"
    for text in (f"{xss} {sqli}", "担当者と話したい", f"<script>alert('{sqli}')</script>"):
        update = tg_update("text_message", text=text, user=6660001)
        update["message"]["from"].update(first_name=xss, last_name=sqli, username="a<b>")
        assert (await platform_app.post_telegram(update)).status_code == 200
        await platform_app.drain()
    runtime = platform_app.app.state.runtime
    async with runtime.sessions() as session, session.begin():
        await create_staff(session, "staff@city.example.jp", "a long enough password", "staff",
                           clock())  # fmt: skip
        [handoff] = list(await session.scalars(select(Handoff)))
        people = await session.scalar(select(func.count()).select_from(Person))
    assert people == 1  # the DROP TABLE was text, the table is there
    client = platform_app.client
    login = await client.get("/admin/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
    assert token
    res = await client.post("/admin/login", data={
        "email": "staff@city.example.jp", "password": "a long enough password",
        "csrf_token": token.group(1), "next": "/admin/"})  # fmt: skip
    assert res.status_code == 303
    pages = ["/admin/inbox", f"/admin/inbox/{handoff.id}", f"/admin/people/{handoff.person_id}",
             "/admin/people", "/admin/"]  # fmt: skip
    for path in pages:
        page = await client.get(path)
        assert page.status_code == 200, path
        assert "<img src=x" not in page.text and "<script>alert(" not in page.text, path
    conversation = (await client.get(f"/admin/inbox/{handoff.id}")).text
    assert "&lt;img src=x onerror=alert(1)&gt;" in conversation
    assert "&lt;script&gt;" in conversation and "DROP TABLE people;--" in conversation


def test_lock_out_cannot_be_dodged_by_spelling_the_address_differently(
    settings: Settings, clock: Clock, faq_library: FaqLibrary
) -> None:
    """Five wrong passwords spread over "A@x", " a@X ", "A@X" lock the one account, even
    against the right password, and the lock holds in a freshly started process."""
    from tests.admin.conftest import ADMIN, HTTPS, PASSWORD, Console

    app = create_app(settings, clock=clock, migrate_schema=True, library=faq_library)
    with TestClient(
        app, base_url=HTTPS, raise_server_exceptions=False, follow_redirects=False
    ) as client:
        console = Console(client)
        console.add_staff(ADMIN, "admin")
        spellings = [ADMIN.upper(), f"  {ADMIN} ", ADMIN.title(), ADMIN, ADMIN.swapcase()]
        for spelling in spellings:
            assert console.login(spelling, "wrong password!").status_code == 401
        assert console.login(ADMIN).status_code == 401  # locked
    clock.advance(minutes=5)
    again = create_app(settings, clock=clock, migrate_schema=True, library=faq_library)
    with TestClient(
        again, base_url=HTTPS, raise_server_exceptions=False, follow_redirects=False
    ) as client:
        locked = Console(client).login(ADMIN, PASSWORD)
        assert locked.status_code == 401 and "ロックされています" in locked.text


@pytest.mark.parametrize(
    "name, part, field, value",
    [
        ("text_message", "message", "text", 5),
        ("callback_query", "callback_query", "data", [1]),
        ("text_message", "from", "language_code", 5),
        ("text_message", "chat", "id", "abc"),
        ("text_message", "from", "id", 1.5),
    ],
    ids=["text-5", "data-list", "language-code-5", "chat-id-text", "user-id-float"],
)
async def test_telegram_fields_of_the_wrong_type_are_ignored_not_retried(
    platform_app: Running,
    fake: FakePlatform,
    caplog: pytest.LogCaptureFixture,
    name: str,
    part: str,
    field: str,
    value: object,
) -> None:
    """python-telegram-bot keeps a field's value whatever its type; such an update failed in
    the engine (AttributeError), was retried and given up, with an ERROR each time."""
    update = tg_update(name)
    kind = "message" if "message" in update else "callback_query"
    target = update[kind][part] if part in ("from", "chat") else update[kind]
    target[field] = value
    caplog.set_level("INFO")
    assert (await platform_app.post_telegram(update)).status_code == 200
    await platform_app.drain()
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []
    assert fake.telegram("sendMessage") == []
