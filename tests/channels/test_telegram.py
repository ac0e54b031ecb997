"""Telegram end to end: updates with the secret token in, python-telegram-bot out to a fake."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from telegram import Bot, Update

from bot.channels.telegram import render
from bot.messages import Choice, Reply
from bot.storage.models import WebhookInbox
from tests.channels.conftest import DATA, TG_SECRET, FaqProbe, Running, tg_update
from tests.fakes.platform import FakePlatform, Recorded
from tests.fakes.spec import telegram_api, telegram_errors


def calls(fake: FakePlatform) -> list[Recorded]:
    """Every Bot API call after start-up's getMe, each checked against api.json."""
    made = [r for r in fake.requests if r.path.startswith("/bot") and r.tg_method != "getMe"]
    for rec in made:
        assert telegram_errors(rec.tg_method, rec.body) == [], rec.body
    return made


def sent_texts(fake: FakePlatform) -> list[str]:
    return [r.body["text"] for r in calls(fake) if r.tg_method == "sendMessage"]


def keyboard(rec: Recorded) -> list[dict[str, Any]]:
    markup = json.loads(rec.body["reply_markup"])
    return [button for row in markup["inline_keyboard"] for button in row]


async def rows(running: Running) -> list[WebhookInbox]:
    async with running.telegram.inbox.sessions() as session:
        return list(await session.scalars(select(WebhookInbox).order_by(WebhookInbox.id)))


# --- recorded payloads ----------------------------------------------------------------------
@pytest.mark.parametrize("path", sorted((DATA / "telegram").glob("*.json")), ids=lambda p: p.stem)
def test_recorded_updates_match_the_bot_api(path: Path) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    types = telegram_api()["types"]

    def check(obj: dict[str, Any], type_name: str) -> None:
        fields = {f["name"]: f for f in types[type_name]["fields"]}
        assert set(obj) <= set(fields), f"{type_name}: {set(obj) - set(fields)}"
        missing = [n for n, f in fields.items() if f["required"] and n not in obj]
        assert not missing, f"{type_name} lacks {missing}"

    check(data, "Update")
    for key in ("message", "edited_message"):
        if key in data:
            check(data[key], "Message")
    if "callback_query" in data:
        check(data["callback_query"], "CallbackQuery")
    update = Update.de_json(data, Bot("1:x"))
    assert update.update_id == data["update_id"]


# --- the conversation -----------------------------------------------------------------------
async def test_question_gets_the_faq_answer(
    platform_app_any_db: Running, fake: FakePlatform, faq_probe: FaqProbe
) -> None:
    update = tg_update("text_message", text=faq_probe.question)
    res = await platform_app_any_db.post_telegram(update)
    assert res.status_code == 200
    await platform_app_any_db.drain()
    [answer] = [r for r in calls(fake) if r.tg_method == "sendMessage"]
    assert answer.body["text"].startswith(faq_probe.answer)
    assert answer.body["chat_id"] == "812345678"
    assert [b["callback_data"] for b in keyboard(answer)] == ["menu"]


async def test_language_hint_comes_from_the_user(platform_app: Running, fake: FakePlatform) -> None:
    update = tg_update("text_message", text="Hello", language_code="en-GB", user=55501)
    await platform_app.post_telegram(update)
    await platform_app.drain()
    assert sent_texts(fake)[0].startswith("Hello! This is the Komoro City")


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("/start", "移住相談チャットボット"),
        ("/start from-city-site", "移住相談チャットボット"),
        ("/help@iju_test_bot", "使い方"),
        ("/lang", "言語を選んでください"),
        ("/cancel", "取り消す手続きはありません"),
        ("/menu", "知りたいことを選んでください"),
    ],
)
async def test_commands(
    platform_app: Running, fake: FakePlatform, command: str, expected: str
) -> None:
    await platform_app.post_telegram(tg_update("start", text=command))
    await platform_app.drain()
    assert expected in sent_texts(fake)[0]


async def test_button_press_is_answered_and_handled(
    platform_app: Running, fake: FakePlatform
) -> None:
    await platform_app.post_telegram(tg_update("start"))
    await platform_app.drain()
    [welcome] = [r for r in calls(fake) if r.tg_method == "sendMessage"]
    housing = next(b for b in keyboard(welcome) if b["callback_data"] == "topic:housing")
    fake.clear()
    await platform_app.post_telegram(tg_update("callback_query", data=housing["callback_data"]))
    await platform_app.drain()
    made = calls(fake)
    assert made[0].tg_method == "answerCallbackQuery"
    assert made[0].body["callback_query_id"] == "4382bfdwdsb323b2d9"
    assert sent_texts(fake)[0].startswith("「住まい」")


async def test_long_choice_values_travel_as_short_keys(
    platform_app: Running, fake: FakePlatform
) -> None:
    await platform_app.post_telegram(tg_update("start"))
    await platform_app.drain()
    [row] = await rows(platform_app)
    # The key names the inbox row whose stored replies hold the full value (here choice 1).
    await platform_app.post_telegram(tg_update("callback_query", data=f"~{row.id}.1"))
    await platform_app.drain()
    assert any(t.startswith("「子育て・教育」") for t in sent_texts(fake))
    # A key of another person's row, or of a row no longer kept, shows the menu instead.
    fake.clear()
    await platform_app.post_telegram(tg_update("callback_query", data=f"~{row.id}.1", user=999))
    await platform_app.post_telegram(tg_update("callback_query", data="~99999.0"))
    await platform_app.drain()
    assert sent_texts(fake) == ["知りたいことを選んでください。"] * 2


async def test_duplicate_update_gets_one_answer(
    platform_app_any_db: Running, fake: FakePlatform
) -> None:
    update = tg_update("text_message")
    for _ in range(3):
        assert (await platform_app_any_db.post_telegram(update)).status_code == 200
    await platform_app_any_db.drain()
    assert len(sent_texts(fake)) == 1 and len(await rows(platform_app_any_db)) == 1


@pytest.mark.parametrize("secret", [None, "", "wrong", TG_SECRET + "x"])
async def test_wrong_secret_is_refused_and_nothing_stored(
    platform_app: Running, fake: FakePlatform, secret: str | None
) -> None:
    res = await platform_app.post_telegram(tg_update("text_message"), secret=secret)
    assert res.status_code == 403
    await platform_app.drain()
    assert await rows(platform_app) == [] and calls(fake) == []


@pytest.mark.parametrize("name", ["sticker", "photo", "document"])
async def test_media_gets_the_polite_reply(
    platform_app: Running, fake: FakePlatform, name: str
) -> None:
    await platform_app.post_telegram(tg_update(name))
    await platform_app.drain()
    assert "スタンプや画像" in sent_texts(fake)[0]


async def test_edits_and_group_chats(platform_app: Running, fake: FakePlatform) -> None:
    await platform_app.post_telegram(tg_update("edited_message"))
    await platform_app.post_telegram(tg_update("group_text"))
    await platform_app.drain()
    assert calls(fake) == []  # silence: the first version was answered; no chatting in groups
    await platform_app.post_telegram(tg_update("added_to_group"))
    await platform_app.drain()
    [said] = [r for r in calls(fake) if r.tg_method == "sendMessage"]
    assert "1対1" in said.body["text"] and said.body["chat_id"] == "-1001234567890"
    assert {r.status for r in await rows(platform_app)} == {"sent"}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"", 400),
        (b"{not json", 400),
        (b"[]", 400),
        (b'{"message": {}}', 400),
        (b'{"update_id": "7"}', 400),
        (b'{"update_id": 7, "future_update_kind": {"x": 1}}', 200),
        (b'{"update_id": 8, "message": {"text": "no chat, no date"}}', 200),
    ],
    ids=["empty", "malformed", "array", "no-id", "string-id", "unknown-kind", "broken-message"],
)
async def test_odd_bodies_get_a_sensible_status(
    platform_app: Running, fake: FakePlatform, body: bytes, status: int
) -> None:
    res = await platform_app.post_telegram(body)
    assert res.status_code == status
    await platform_app.drain()
    assert calls(fake) == []


async def test_ten_thousand_characters(platform_app: Running, fake: FakePlatform) -> None:
    res = await platform_app.post_telegram(tg_update("text_message", text="あ" * 10_000))
    assert res.status_code == 200
    await platform_app.drain()
    assert sent_texts(fake) and all(len(t) <= 4096 for t in sent_texts(fake))


# --- rendering ------------------------------------------------------------------------------
def test_render_splits_text_and_keys_long_choices() -> None:
    long_value = "faq:" + "x" * 80
    choices = (Choice("短い", "menu"), Choice("長い", long_value))
    out = render([Reply("あ。" * 3000, choices=choices)], 42)
    assert [len(text) for text, _ in out] == [4096, 1904]
    assert out[0][1] is None
    buttons = [b for row in out[1][1].inline_keyboard for b in row]  # type: ignore[union-attr]
    assert [b.callback_data for b in buttons] == ["menu", "~42.1"]
    assert (
        telegram_errors(
            "sendMessage",
            {"chat_id": 1, "text": out[1][0], "reply_markup": out[1][1].to_json()},  # type: ignore[union-attr]
        )
        == []
    )
