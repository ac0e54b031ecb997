"""Conversations handed to staff: open, list, reply from the console, return to the bot."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.messages import Reply
from bot.storage.bookings import BookingPolicy, enqueue, notify_staff
from bot.storage.models import Handoff, MessageLog, Person

OPEN = ("waiting", "active")


class HandoffError(ValueError):
    """A console action that does not apply (closed handoff, empty reply...), in Japanese."""


@dataclass(frozen=True)
class OpenHandoff:
    handoff: Handoff
    person: Person


def latest_open(what: Any, person_id: Any) -> Select[Any]:
    """`what` (the Handoff, or a column of it) of the person's newest open handoff."""
    return (
        select(what)
        .where(Handoff.person_id == person_id, Handoff.status.in_(OPEN))
        .order_by(Handoff.id.desc())
        .limit(1)
    )


async def open_for(session: AsyncSession, person_id: int) -> Handoff | None:
    handoff: Handoff | None = await session.scalar(latest_open(Handoff, person_id))
    return handoff


async def open_handoff(
    session: AsyncSession,
    policy: BookingPolicy,
    person_id: int,
    channel: str,
    reason: str,
    now: datetime,
) -> Handoff:
    """Start (or keep) a handoff for this person and tell the staff."""
    existing = await open_for(session, person_id)
    if existing is not None:
        existing.last_activity_at = now
        return existing
    handoff = Handoff(
        person_id=person_id, status="waiting", reason=reason, created_at=now, last_activity_at=now
    )
    session.add(handoff)
    await session.flush()
    text = policy.catalog.text("handoff.staff_notice", "ja", channel=channel, id=handoff.id)
    notify_staff(session, policy, f"handoff:{handoff.id}", [Reply(text)], now)
    return handoff


async def list_open(session: AsyncSession) -> list[OpenHandoff]:
    """Waiting first (oldest first: they have waited longest), then the active ones."""
    rows = (
        await session.execute(
            select(Handoff, Person)
            .join(Person, Person.id == Handoff.person_id)
            .where(Handoff.status.in_(OPEN))
            .order_by(Handoff.status.desc(), Handoff.created_at)
        )
    ).all()
    return [OpenHandoff(h, p) for h, p in rows]


async def conversation(session: AsyncSession, person_id: int, limit: int = 100) -> list[MessageLog]:
    """The person's latest messages, oldest first, for the inbox page."""
    rows = (
        await session.scalars(
            select(MessageLog)
            .where(MessageLog.person_id == person_id)
            .order_by(MessageLog.created_at.desc(), MessageLog.id.desc())
            .limit(limit)
        )
    ).all()
    return list(reversed(rows))


async def _open(session: AsyncSession, handoff_id: int) -> tuple[Handoff, Person]:
    row = (
        await session.execute(
            select(Handoff, Person)
            .join(Person, Person.id == Handoff.person_id)
            .where(Handoff.id == handoff_id)
            .with_for_update(of=Handoff)
        )
    ).first()
    if row is None:
        raise HandoffError(f"受付{handoff_id}は見つかりません。")
    handoff, person = row
    if handoff.status not in OPEN:
        raise HandoffError(f"受付{handoff_id}はすでに終了しています。")
    return handoff, person


async def staff_reply(
    session: AsyncSession, handoff_id: int, staff_id: int | None, text: str, now: datetime
) -> None:
    """Send staff's words to the person on their own channel (through the outbox), and
    keep them in the conversation log; the handoff becomes `active` (staff own it)."""
    text = text.strip()
    if not text:
        raise HandoffError("返信の本文を入力してください。")
    if len(text) > 4000:
        raise HandoffError("返信は4,000文字以内にしてください。")
    handoff, person = await _open(session, handoff_id)
    handoff.status = "active"
    handoff.staff_id = staff_id
    handoff.last_activity_at = now
    session.add(
        MessageLog(person_id=person.id, direction="out", text=text, intent="staff", created_at=now)
    )
    enqueue(
        session,
        key=f"staff-reply:{handoff.id}:{uuid.uuid4().hex}",
        channel=person.channel,
        address=person.platform_user_id,
        replies=[Reply(text)],
        now=now,
        person_id=person.id,
    )


async def return_to_bot(
    session: AsyncSession,
    policy: BookingPolicy,
    handoff_id: int,
    now: datetime,
    *,
    by: str = "staff",
) -> None:
    """Close the handoff and tell the person the bot answers again."""
    handoff, person = await _open(session, handoff_id)
    handoff.status = "closed"
    handoff.closed_at = now
    handoff.closed_by = by
    key = "handoff.returned_idle" if by == "idle" else "handoff.returned_by_staff"
    enqueue(
        session,
        key=f"handoff-closed:{handoff.id}",
        channel=person.channel,
        address=person.platform_user_id,
        replies=[Reply(policy.catalog.text(key, person.language))],
        now=now,
        person_id=person.id,
    )


async def close_idle(
    session: AsyncSession, policy: BookingPolicy, now: datetime, idle: timedelta
) -> int:
    """Hand quiet conversations back to the bot (run by the worker)."""
    stale = (
        await session.scalars(
            select(Handoff.id).where(
                Handoff.status.in_(OPEN), Handoff.last_activity_at < now - idle
            )
        )
    ).all()
    for handoff_id in stale:
        await return_to_bot(session, policy, handoff_id, now, by="idle")
    return len(stale)
