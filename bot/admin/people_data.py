"""What the console shows and exports about one person."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage import handoffs
from bot.storage.bookings import BookingPolicy, SqlTourDesk
from bot.storage.models import Handoff, MessageLog, Person, Signup, Tour


@dataclass(frozen=True)
class PersonRecord:
    person: Person
    signups: list[tuple[Signup, Tour]]
    messages: list[MessageLog]
    handoffs: list[Handoff]


async def recent_people(
    session: AsyncSession, channel: str | None = None, limit: int = 100
) -> list[Person]:
    query = select(Person).order_by(Person.last_seen_at.desc(), Person.id.desc()).limit(limit)
    if channel:
        query = query.where(Person.channel == channel)
    return list((await session.scalars(query)).all())


async def person_record(session: AsyncSession, person_id: int) -> PersonRecord | None:
    person = await session.get(Person, person_id)
    if person is None:
        return None
    signups = (
        await session.execute(
            select(Signup, Tour)
            .join(Tour, Tour.id == Signup.tour_id)
            .where(Signup.person_id == person_id)
            .order_by(Signup.created_at, Signup.id)
        )
    ).all()
    cases = (
        await session.scalars(
            select(Handoff).where(Handoff.person_id == person_id).order_by(Handoff.id.desc())
        )
    ).all()
    return PersonRecord(
        person=person,
        signups=[(s, t) for s, t in signups],
        messages=await handoffs.conversation(session, person_id, limit=200),
        handoffs=list(cases),
    )


async def export(
    session: AsyncSession, policy: BookingPolicy, person_id: int, now: datetime
) -> dict[str, Any] | None:
    """The same data a person gets by asking in chat, plus their profile and the messages we
    keep: everything the city holds on them, as one JSON document."""
    person = await session.get(Person, person_id)
    if person is None:
        return None
    data = await SqlTourDesk(session, policy, person_id, now).my_data()
    messages = await session.scalars(
        select(MessageLog)
        .where(MessageLog.person_id == person_id)
        .order_by(MessageLog.created_at, MessageLog.id)
    )
    return {
        "exported_at": now.isoformat(),
        "person": {
            "id": person.id,
            "channel": person.channel,
            "platform_user_id": person.platform_user_id,
            "language": person.language,
            "audience": person.audience,
            "consent": person.consent,
            "reachable": person.reachable,
            "created_at": person.created_at.isoformat(),
            "last_seen_at": person.last_seen_at.isoformat(),
        },
        **data,
        "messages": [
            {"at": m.created_at.isoformat(), "direction": m.direction, "text": m.text}
            for m in messages.all()
        ],
    }
