"""The handoff inbox: the conversation, a staff reply into the outbox, return to the bot."""

from __future__ import annotations

from sqlalchemy import select

from bot.storage.models import AuditEntry, Delivery, Handoff, MessageLog
from tests.admin import data
from tests.admin.conftest import Console


def _waiting(console: Console, channel: str = "telegram") -> dict[str, int]:
    now = console.runtime.clock()

    async def make(session):  # type: ignore[no-untyped-def]
        who = data.person(session, channel=channel, user="chat-4242", created_at=now)
        await session.flush()
        data.message(session, who, "空き家バンクの登録方法を教えてください", now)
        data.message(session, who, "担当者と話したい", now)
        handoff = data.handoff(session, who, now)
        await session.flush()
        return {"person": who.id, "handoff": handoff.id}

    return console.db(make)


def test_inbox_lists_waiting_conversations_with_history(staff: Console) -> None:
    ids = _waiting(staff)
    inbox = staff.client.get("/admin/inbox")
    assert f"/admin/inbox/{ids['handoff']}" in inbox.text and "対応待ち" in inbox.text
    page = staff.client.get(f"/admin/inbox/{ids['handoff']}")
    assert "空き家バンクの登録方法" in page.text and "担当者と話したい" in page.text

    async def audited(session):  # type: ignore[no-untyped-def]
        return (await session.execute(select(AuditEntry.action, AuditEntry.subject))).all()

    assert ("handoff.view", f"person:{ids['person']}") in staff.db(audited)


def test_staff_reply_goes_to_the_outbox_on_the_persons_channel(staff: Console) -> None:
    ids = _waiting(staff)
    page = f"/admin/inbox/{ids['handoff']}"
    res = staff.post(f"{page}/reply", {"text": "登録は市のサイトからできます。"}, page=page)
    assert res.status_code == 303

    async def state(session):  # type: ignore[no-untyped-def]
        delivery = await session.scalar(select(Delivery).where(Delivery.key.like("staff-reply:%")))
        handoff = await session.get(Handoff, ids["handoff"])
        logged = await session.scalar(select(MessageLog).where(MessageLog.intent == "staff"))
        return delivery, handoff, logged

    delivery, handoff, logged = staff.db(state)
    assert delivery.channel == "telegram" and delivery.address == "chat-4242"
    assert delivery.replies[0]["text"] == "登録は市のサイトからできます。"
    assert delivery.status == "pending"
    assert handoff.status == "active" and handoff.staff_id is not None
    assert logged.text == "登録は市のサイトからできます。"
    shown = staff.client.get(page).text
    assert "対応中" in shown and "登録は市のサイトからできます。" in shown


def test_empty_reply_is_refused_with_the_reason(staff: Console) -> None:
    ids = _waiting(staff)
    page = f"/admin/inbox/{ids['handoff']}"
    res = staff.post(f"{page}/reply", {"text": "   "}, page=page)
    assert res.status_code == 400 and "返信の本文を入力してください" in res.text


def test_return_to_the_bot_tells_the_person(staff: Console) -> None:
    ids = _waiting(staff, channel="line")
    page = f"/admin/inbox/{ids['handoff']}"
    res = staff.post(f"{page}/return", page=page, follow=True)
    assert "ボットの対応に戻しました" in res.text

    async def state(session):  # type: ignore[no-untyped-def]
        handoff = await session.get(Handoff, ids["handoff"])
        notice = await session.scalar(select(Delivery).where(Delivery.key.like("handoff-closed:%")))
        return handoff, notice

    handoff, notice = staff.db(state)
    assert handoff.status == "closed" and handoff.closed_by == "staff"
    assert notice.channel == "line"
    closed = staff.client.get(page)
    assert "この会話は終了しています" in closed.text and "reply-form" not in closed.text
    again = staff.post(f"{page}/return", page="/admin/inbox", follow=True)
    assert "すでに終了しています" in again.text


def test_unknown_handoff_is_404(staff: Console) -> None:
    assert staff.client.get("/admin/inbox/999").status_code == 404
    assert staff.post("/admin/inbox/999/reply", {"text": "x"}).status_code == 404
