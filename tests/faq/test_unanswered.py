"""Every question not answered outright is kept for staff, grouped and counted."""

from __future__ import annotations

from bot.channels.fake import FakeChannel
from bot.runtime import Runtime
from bot.storage.unanswered import grouped
from tests.conftest import Clock


async def test_unanswered_questions_are_grouped_most_asked_first(
    runtime: Runtime, clock: Clock
) -> None:
    for user, question in [
        ("a", "パスポートの申請"),
        ("b", "パスポートの申請？"),
        ("c", "確定申告"),
    ]:
        await FakeChannel(runtime.engine, user_id=user).say(question)
    await FakeChannel(runtime.engine, user_id="d").press("faq:housing.akiya-bank")  # answered
    async with runtime.sessions() as session:
        rows = await grouped(session, now=clock.now)
    assert [(text, count) for text, count, _best in rows] == [
        ("パスポートの申請", 2),
        ("確定申告", 1),
    ]
