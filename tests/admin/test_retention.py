"""The message log is kept for `privacy.message_log_days`, then purged by the worker."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot.runtime import Runtime
from bot.storage.models import MessageLog
from bot.storage.retention import purge_message_log
from tests.admin import data


async def test_purge_deletes_only_messages_past_the_retention(runtime: Runtime) -> None:
    now = runtime.clock()
    async with runtime.sessions() as session, session.begin():
        who = data.person(session, created_at=now)
        await session.flush()
        data.message(session, who, "old", now - timedelta(days=91))
        data.message(session, who, "edge", now - timedelta(days=89, hours=23))
        data.message(session, who, "new", now)
    async with runtime.sessions() as session, session.begin():
        assert await purge_message_log(session, now, 90) == 1
    async with runtime.sessions() as session:
        left = (await session.scalars(select(MessageLog.text).order_by(MessageLog.id))).all()
    assert left == ["edge", "new"]


async def test_worker_tick_purges_with_the_configured_days(runtime: Runtime) -> None:
    now = runtime.clock()
    async with runtime.sessions() as session, session.begin():
        who = data.person(session, created_at=now)
        await session.flush()
        data.message(session, who, "old", now - timedelta(days=91))
        data.message(session, who, "recent", now - timedelta(days=10))
    assert runtime.settings.privacy.message_log_days == 90
    await runtime.worker().tick()
    async with runtime.sessions() as session:
        left = (await session.scalars(select(MessageLog.text))).all()
    assert left == ["recent"]
