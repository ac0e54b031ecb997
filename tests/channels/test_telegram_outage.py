"""A Telegram outage at start-up stops nothing else (issue 15, defect 10): LINE, the web chat
and the console start and answer, Telegram's updates are stored meanwhile, and they are
answered once getMe works again."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from bot.messages import Reply
from bot.pushers import register_pushers
from bot.runtime import build_runtime
from bot.storage.models import WebhookInbox
from faq.library import FaqLibrary
from tests.channels.conftest import (
    FaqProbe,
    line_body,
    line_event,
    platform_settings,
    running_app,
    tg_update,
)
from tests.conftest import Clock
from tests.fakes.platform import FakePlatform


async def test_telegram_down_at_start_up_stops_no_other_channel(
    sqlite_url: str,
    fake: FakePlatform,
    clock: Clock,
    faq_library: FaqLibrary,
    faq_probe: FaqProbe,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for _ in range(20):  # every getMe fails, the start-up one and the background retries
        fake.fail_next("/getMe", 502, {"ok": False, "description": "Bad Gateway"})
    caplog.set_level(logging.INFO)
    async with running_app(platform_settings(sqlite_url, fake), clock, faq_library) as app:
        assert any("getMe failed" in r.getMessage() for r in caplog.records)

        # LINE answers as usual.
        body = line_body(line_event("text_message", clock, text=faq_probe.question))
        assert (await app.post_line(body)).status_code == 200
        await app.drain()
        assert any(faq_probe.answer in str(r.body) for r in fake.line_sends())

        # So do the web chat and the console.
        await app.client.get("/")
        chat = await app.client.post("/api/chat", json={"text": faq_probe.question})
        assert chat.status_code == 200 and faq_probe.answer in chat.text
        assert (await app.client.get("/admin/login")).status_code == 200

        # Telegram's update is taken (Telegram would otherwise resend it) and kept.
        update = tg_update("text_message", text=faq_probe.question)
        assert (await app.post_telegram(update)).status_code == 200
        await app.drain()
        assert fake.telegram("sendMessage") == []
        runtime = app.app.state.runtime
        async with runtime.sessions() as session:
            stored = (await session.scalars(select(WebhookInbox.channel))).all()
        assert "telegram" in stored

        # Telegram is back: the next try connects and the kept update is answered.
        with fake._lock:
            fake._failures.clear()
        assert await app.telegram.connect()
        await app.drain()
        sent = fake.telegram("sendMessage")
        assert len(sent) == 1 and faq_probe.answer in str(sent[0].body)


async def test_telegram_down_does_not_stop_the_workers_other_pushers(
    sqlite_url: str, fake: FakePlatform, clock: Clock, faq_library: FaqLibrary
) -> None:
    """The worker (reminders, announcements, staff replies) starts with LINE's pusher and
    a Telegram one that sends once Telegram answers again."""
    fake.fail_next("/getMe", 502, {"ok": False, "description": "Bad Gateway"})
    runtime = await build_runtime(
        platform_settings(sqlite_url, fake), clock=clock, migrate_schema=True, library=faq_library
    )
    try:
        closers = await register_pushers(runtime)
        assert set(runtime.pushers) == {"line", "telegram"}
        await runtime.pushers["telegram"].push("42", [Reply("こんにちは")], retry_key="k")
        assert [str(r.body["chat_id"]) for r in fake.telegram("sendMessage")] == ["42"]
        for close in closers:
            await close()
    finally:
        await runtime.aclose()
