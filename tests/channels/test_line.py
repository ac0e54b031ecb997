"""LINE end to end: signed webhooks in, the real line-bot-sdk client out to a local fake LINE."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from linebot.v3.webhooks import Event
from sqlalchemy import func, select, update

from bot.channels.line import render, retry_key
from bot.channels.render import utf16_len
from bot.messages import Choice, Link, Reply
from bot.storage.models import Person, WebhookInbox
from faq.library import FaqLibrary
from tests.channels.conftest import (
    DATA,
    FaqProbe,
    Running,
    line_body,
    line_event,
    platform_settings,
    running_app,
    sign,
)
from tests.conftest import Clock
from tests.fakes.platform import FakePlatform, Recorded
from tests.fakes.spec import line_path_exists, line_request_schema, openapi_errors


def assert_valid_send(rec: Recorded) -> None:
    """A reply/push body as the spec and LINE's documented limits allow."""
    assert line_path_exists(rec.path, rec.method)
    assert openapi_errors("messaging-api.yml", line_request_schema(rec.path), rec.body) == []
    messages = rec.body["messages"]
    assert 1 <= len(messages) <= 5
    for message in messages:
        if message["type"] == "text":
            assert 1 <= utf16_len(message["text"]) <= 5000
        items = message.get("quickReply", {}).get("items", [])
        assert len(items) <= 13
        assert all(len(i["action"]["label"]) <= 20 for i in items)
    assert rec.headers["authorization"] == "Bearer line-test-access-token"


def texts(rec: Recorded) -> list[str]:
    return [m["text"] for m in rec.body["messages"] if m["type"] == "text"]


async def inbox_rows(running: Running) -> list[WebhookInbox]:
    async with running.line.inbox.sessions() as session:
        return list(await session.scalars(select(WebhookInbox).order_by(WebhookInbox.id)))


# --- recorded payloads ----------------------------------------------------------------------
@pytest.mark.parametrize("path", sorted((DATA / "line").glob("*.json")), ids=lambda p: p.stem)
def test_recorded_payloads_match_the_webhook_spec(path: Path) -> None:
    body = json.loads(path.read_text(encoding="utf-8"))
    errors = openapi_errors("webhook.yml", "CallbackRequest", body)
    if path.stem == "unknown_type":  # kept outside the spec on purpose: a type LINE may add
        assert errors and "not in the spec's mapping" in " ".join(errors)
        return
    assert errors == []
    for event in body["events"]:
        assert Event.from_dict(event) is not None  # and the SDK's own models read it


# --- the conversation -----------------------------------------------------------------------
async def test_question_gets_the_faq_answer_by_reply(
    platform_app_any_db: Running, fake: FakePlatform, clock: Clock, faq_probe: FaqProbe
) -> None:
    platform_app = platform_app_any_db
    event = line_event("text_message", clock, text=faq_probe.question)
    res = await platform_app.post_line(line_body(event))
    assert res.status_code == 200
    await platform_app.drain()
    [sent] = fake.line_sends()
    assert sent.path == "/v2/bot/message/reply"
    assert sent.body["replyToken"] == event["replyToken"]
    assert_valid_send(sent)
    assert texts(sent)[0].startswith(faq_probe.answer)
    [row] = await inbox_rows(platform_app)
    assert row.status == "sent" and row.replies and row.event_id == event["webhookEventId"]


async def test_postback_and_quick_reply_round_trip(
    platform_app: Running, fake: FakePlatform, clock: Clock
) -> None:
    await platform_app.post_line(line_body(line_event("postback", clock, data="menu")))
    await platform_app.drain()
    [menu] = fake.line_sends()
    assert_valid_send(menu)
    items = menu.body["messages"][-1]["quickReply"]["items"]
    housing = next(i["action"] for i in items if i["action"]["data"] == "topic:housing")
    assert housing["type"] == "postback" and housing["displayText"] == housing["label"]
    fake.clear()
    await platform_app.post_line(line_body(line_event("postback", clock, data=housing["data"])))
    await platform_app.drain()
    [topic] = fake.line_sends()
    assert_valid_send(topic)
    assert texts(topic)[0].startswith("「住まい」")


async def test_duplicate_and_redelivered_events_get_one_reply(
    platform_app_any_db: Running, fake: FakePlatform, clock: Clock
) -> None:
    platform_app = platform_app_any_db
    event = line_event("text_message", clock)
    body = line_body(event)
    first = await platform_app.post_line(body)
    again = await platform_app.post_line(body)  # the same POST twice
    redelivered = dict(event, deliveryContext={"isRedelivery": True})
    third = await platform_app.post_line(line_body(redelivered))
    both = await platform_app.post_line(line_body(event, event))  # twice in one body
    assert [r.status_code for r in (first, again, third, both)] == [200] * 4
    await platform_app.drain()
    assert len(fake.line_sends()) == 1
    assert len(await inbox_rows(platform_app)) == 1


@pytest.mark.parametrize(
    "signature",
    ["", "not-base64", sign(b"another body"), sign(b"x", secret="wrong-secret")],
    ids=["missing", "garbage", "other-body", "wrong-secret"],
)
async def test_forged_signature_is_refused_and_nothing_stored(
    platform_app: Running, fake: FakePlatform, clock: Clock, signature: str
) -> None:
    body = line_body(line_event("text_message", clock))
    if signature:
        res = await platform_app.post_line(body, signature=signature)
    else:  # no header at all
        res = await platform_app.client.post("/webhooks/line", content=body)
    assert res.status_code == 401
    await platform_app.drain()
    assert await inbox_rows(platform_app) == [] and fake.line_sends() == []


@pytest.mark.parametrize("name", ["sticker", "image", "location"])
async def test_media_gets_the_polite_reply(
    platform_app: Running, fake: FakePlatform, clock: Clock, name: str
) -> None:
    await platform_app.post_line(line_body(line_event(name, clock)))
    await platform_app.drain()
    [sent] = fake.line_sends()
    assert_valid_send(sent)
    assert "スタンプや画像" in texts(sent)[0]


async def test_follow_welcomes_and_unfollow_marks_unreachable(
    platform_app: Running, fake: FakePlatform, clock: Clock
) -> None:
    await platform_app.post_line(line_body(line_event("follow", clock)))
    await platform_app.drain()
    [welcome] = fake.line_sends()
    assert_valid_send(welcome)
    assert "小諸市" in texts(welcome)[0] and welcome.body["messages"][-1]["quickReply"]
    fake.clear()
    await platform_app.post_line(line_body(line_event("unfollow", clock)))
    await platform_app.drain()
    assert fake.line_sends() == []
    async with platform_app.line.inbox.sessions() as session:
        person = await session.scalar(select(Person).where(Person.channel == "line"))
    assert person is not None and person.reachable is False


async def test_group_events_never_crash(
    platform_app: Running, fake: FakePlatform, clock: Clock
) -> None:
    await platform_app.post_line(line_body(line_event("group_text", clock)))
    await platform_app.drain()
    assert fake.line_sends() == []  # we do not chat in groups
    await platform_app.post_line(line_body(line_event("join", clock)))
    await platform_app.drain()
    [sent] = fake.line_sends()  # ...but say so once when added
    assert_valid_send(sent)
    assert "1対1" in texts(sent)[0]
    statuses = {row.status for row in await inbox_rows(platform_app)}
    assert statuses == {"sent"}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"", 400),
        (b"{not json", 400),
        (b"[1, 2]", 400),
        (b'{"destination": "U1"}', 400),
        (b'{"destination": "U1", "events": []}', 200),  # LINE's "Verify" button sends this
        (b'{"events": [1, "x", {"type": "message"}]}', 200),  # no event ids: nothing to do
    ],
    ids=["empty", "malformed", "array", "no-events-key", "no-events", "junk-events"],
)
async def test_odd_bodies_get_a_sensible_status(
    platform_app: Running, fake: FakePlatform, body: bytes, status: int
) -> None:
    res = await platform_app.post_line(body)
    assert res.status_code == status and "Traceback" not in res.text
    await platform_app.drain()
    assert fake.line_sends() == []


async def test_unknown_event_type_and_unsend_are_ignored(
    platform_app: Running, fake: FakePlatform, clock: Clock
) -> None:
    unknown = line_event("unknown_type", clock)
    res = await platform_app.post_line(line_body(unknown, line_event("unsend", clock)))
    assert res.status_code == 200
    await platform_app.drain()
    assert fake.line_sends() == []
    assert {row.status for row in await inbox_rows(platform_app)} == {"sent"}


async def test_long_message_and_undecodable_body(
    platform_app: Running, fake: FakePlatform, clock: Clock
) -> None:
    huge = line_event("text_message", clock, text="あ" * 10_000)
    res = await platform_app.post_line(line_body(huge))
    assert res.status_code == 200
    bad = b'{"events": ["\xff\xfe"]}'
    assert (await platform_app.post_line(bad)).status_code == 401  # cannot be LINE's UTF-8
    await platform_app.drain()
    [sent] = fake.line_sends()
    assert_valid_send(sent)


# --- reply token expiry, retries, crash recovery --------------------------------------------
async def test_expired_reply_token_falls_back_to_push_with_retry_key(
    platform_app: Running, fake: FakePlatform, clock: Clock
) -> None:
    event = line_event("text_message", clock)
    clock.advance(minutes=2)  # the event waited (slow processing, redelivery...)
    await platform_app.post_line(line_body(event))
    await platform_app.drain()
    [push] = fake.line_sends()
    assert push.path == "/v2/bot/message/push"
    assert push.body["to"] == event["source"]["userId"]
    key = push.headers["x-line-retry-key"]
    assert key == retry_key(event["webhookEventId"]) and uuid.UUID(key).version == 5
    assert_valid_send(push)


async def test_refused_reply_token_is_answered_by_push(
    platform_app: Running, fake: FakePlatform, clock: Clock
) -> None:
    fake.fail_next("/v2/bot/message/reply", 400, {"message": "Invalid reply token"})
    await platform_app.post_line(line_body(line_event("text_message", clock)))
    await platform_app.drain()
    assert [r.path for r in fake.line_sends()] == ["/v2/bot/message/reply", "/v2/bot/message/push"]


async def test_failed_push_is_retried_at_start_up_with_the_same_key(
    database_url: str, fake: FakePlatform, clock: Clock, faq_library: FaqLibrary
) -> None:
    settings = platform_settings(database_url, fake)
    event = line_event("text_message", clock)
    clock.advance(minutes=5)
    fake.fail_next("/v2/bot/message/push", 500)
    async with running_app(settings, clock, faq_library) as first:
        await first.post_line(line_body(event))
        await first.drain()
        [row] = await inbox_rows(first)
        assert row.status == "processed" and row.attempts == 1
    # the next process sends the stored replies, with the same retry key: LINE drops a copy
    fake.fail_next("/v2/bot/message/push", 409, {"message": "The retry key is already accepted"})
    async with running_app(settings, clock, faq_library) as second:
        await second.drain()
        [row] = await inbox_rows(second)
        assert row.status == "sent"
    pushes = fake.line_sends()
    assert len(pushes) == 2
    assert {p.headers["x-line-retry-key"] for p in pushes} == {retry_key(event["webhookEventId"])}


async def test_event_accepted_before_a_crash_is_processed_at_start_up(
    database_url: str,
    fake: FakePlatform,
    clock: Clock,
    faq_probe: FaqProbe,
    faq_library: FaqLibrary,
) -> None:
    settings = platform_settings(database_url, fake)
    event = line_event("text_message", clock, text=faq_probe.question)
    async with running_app(settings, clock, faq_library) as first:
        await first.post_line(line_body(event))
        await first.drain()
        # Make it look as if the process died between accepting and processing.
        async with first.line.inbox.sessions() as session, session.begin():
            await session.execute(
                update(WebhookInbox).values(status="accepted", replies=None, processed_at=None)
            )
            from bot.storage.models import InboundEvent

            await session.execute(InboundEvent.__table__.delete())
    fake.clear()
    clock.advance(minutes=3)
    async with running_app(settings, clock, faq_library) as second:
        await second.drain()
        [push] = fake.line_sends()
        assert push.path == "/v2/bot/message/push"
        assert texts(push)[0].startswith(faq_probe.answer)
        assert [r.status for r in await inbox_rows(second)] == ["sent"]


async def test_routes_answer_404_without_secrets(
    sqlite_url: str, fake: FakePlatform, clock: Clock, faq_library: FaqLibrary
) -> None:
    settings = platform_settings(
        sqlite_url, fake, LINE_CHANNEL_SECRET="", TELEGRAM_BOT_TOKEN="", TELEGRAM_WEBHOOK_SECRET=""
    )
    async with running_app(settings, clock, faq_library) as running:
        body = line_body(line_event("text_message", clock))
        assert (await running.post_line(body)).status_code == 404
        assert (await running.post_telegram({"update_id": 1})).status_code == 404
        assert (await running.client.get("/healthz")).status_code == 200
    assert fake.requests == []


# --- rendering ------------------------------------------------------------------------------
def render_json(replies: list[Reply]) -> dict[str, Any]:
    body = {"to": "U1", "messages": [m.to_dict() for m in render(replies)]}
    assert openapi_errors("messaging-api.yml", "PushMessageRequest", body) == []
    return body


def test_long_text_is_split_on_sentences_within_five_messages() -> None:
    sentence = "小諸市は長野県の東部にあり、浅間山のふもとに広がるまちです。"
    body = render_json([Reply(sentence * 400)])  # ~12,000 UTF-16 units
    parts = [m["text"] for m in body["messages"]]
    assert len(parts) == 3 and all(utf16_len(p) <= 5000 for p in parts)
    assert all(p.endswith("です。") for p in parts) and "".join(parts) == sentence * 400
    huge = render_json([Reply("😀" * 40_000)])
    assert len(huge["messages"]) == 5
    assert all(utf16_len(m["text"]) <= 5000 for m in huge["messages"])


def test_many_or_long_choices_become_numbered_text() -> None:
    many = [Choice(f"話題{i}", f"topic:{i}") for i in range(14)]
    body = render_json([Reply("選んでください", choices=tuple(many))])
    assert "quickReply" not in body["messages"][-1]
    assert "  14. 話題13" in body["messages"][0]["text"]
    title = "とても長い質問のタイトルがここに入ります。"  # 21 characters
    long = render_json([Reply("x", choices=(Choice(title, "faq:a"),))])
    assert "  1. とても長い" in long["messages"][0]["text"]
    fits = render_json([Reply("a"), Reply("b", choices=tuple(many[:13]))])
    assert len(fits["messages"][-1]["quickReply"]["items"]) == 13


def test_links_become_uri_buttons() -> None:
    body = render_json(
        [
            Reply(
                "詳しくは市のサイトへ",
                links=(Link("市のサイト", "https://www.city.komoro.lg.jp/"),),
            )
        ]
    )
    template = body["messages"][-1]
    assert template["type"] == "template"
    assert template["template"]["actions"][0] == {
        "type": "uri",
        "label": "市のサイト",
        "uri": "https://www.city.komoro.lg.jp/",
    }
    odd = render_json([Reply("x", links=(Link("a very long link label indeed", "https://e.jp"),))])
    assert "https://e.jp" in odd["messages"][-1]["text"]


async def test_inbox_counts_nothing_for_signature_failures(platform_app: Running) -> None:
    async with platform_app.line.inbox.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(WebhookInbox)) == 0
