"""Text PostgreSQL refuses to store (NUL characters, ids longer than their columns) must not
turn a signed event into a 503 that LINE redelivers for ever, nor into a retried failure:
SQLite stores such text, so only these tests on PostgreSQL show the difference."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from bot.storage.models import WebhookInbox
from tests.channels.conftest import FaqProbe, Running, line_body, line_event
from tests.conftest import Clock
from tests.fakes.platform import FakePlatform


async def test_nul_in_a_message_is_stored_and_answered(
    platform_app_any_db: Running, fake: FakePlatform, clock: Clock, faq_probe: FaqProbe,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    # NUL inside the text and the user id: PostgreSQL's text and JSON refuse U+0000.
    event = line_event("text_message", clock, text=faq_probe.question + "\x00")
    event["source"]["userId"] = "U\x00" + "a" * 31
    with caplog.at_level(logging.ERROR):
        res = await platform_app_any_db.post_line(line_body(event))
        await platform_app_any_db.drain()
    assert res.status_code == 200
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    [sent] = fake.line_sends()  # answered once, not retried
    assert faq_probe.answer in sent.body["messages"][0]["text"]


async def test_an_overlong_user_id_is_ignored_not_retried(
    platform_app_any_db: Running, fake: FakePlatform, clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    event = line_event("text_message", clock)
    event["source"]["userId"] = "U" + "f" * 199  # LINE's are 33 characters
    with caplog.at_level(logging.ERROR):
        res = await platform_app_any_db.post_line(line_body(event))
        await platform_app_any_db.drain()
    assert res.status_code == 200
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    async with platform_app_any_db.line.inbox.sessions() as session:
        statuses = list(await session.scalars(select(WebhookInbox.status)))
    assert statuses == ["sent"]  # handled (nothing to say to nobody), not left to retry


async def test_a_deeply_nested_field_with_a_nul_is_still_accepted(
    platform_app_any_db: Running, fake: FakePlatform, clock: Clock, faq_probe: FaqProbe
) -> None:
    # json.loads takes ~900 levels; taking the NULs out must not recurse past Python's limit.
    event = line_event("text_message", clock, text=faq_probe.question)
    deep: list[object] = ["\x00"]
    for _ in range(900):
        deep = [deep]
    event["extra"] = deep
    res = await platform_app_any_db.post_line(line_body(event))
    await platform_app_any_db.drain()
    assert res.status_code == 200
    [sent] = fake.line_sends()
    assert faq_probe.answer in sent.body["messages"][0]["text"]


@pytest.mark.parametrize("number", ["NaN", "-Infinity", "1e999"])
async def test_a_number_json_cannot_hold_is_a_400_not_a_503_for_ever(
    platform_app_any_db: Running, fake: FakePlatform, clock: Clock, number: str,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    # Python's parser reads NaN and Infinity; PostgreSQL's JSON refuses them, so a signed body
    # holding one was a 503 on every redelivery there (found by the hostile-input tests).
    body = line_body(line_event("text_message", clock)).replace(
        b'"events"', b'"x": %s, "events"' % number.encode()
    )
    with caplog.at_level(logging.ERROR):
        res = await platform_app_any_db.post_line(body)
        await platform_app_any_db.drain()
    assert res.status_code == 400
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    async with platform_app_any_db.line.inbox.sessions() as session:
        assert list(await session.scalars(select(WebhookInbox.status))) == []
    assert fake.line_sends() == []
