"""Rows for console tests, written straight into the app's database."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import Handoff, MessageLog, Person, Signup, Tour


def person(
    session: AsyncSession,
    *,
    channel: str = "line",
    user: str | None = None,
    language: str = "ja",
    audience: str = "resident",
    reachable: bool = True,
    created_at: datetime,
) -> Person:
    row = Person(
        channel=channel,
        platform_user_id=user or f"U{uuid.uuid4().hex}",
        language=language,
        audience=audience,
        reachable=reachable,
        consent=True,
        created_at=created_at,
        last_seen_at=created_at,
    )
    session.add(row)
    return row


def tour(
    session: AsyncSession, now: datetime, *, capacity: int = 10, title: str = "移住体験ツアー"
) -> Tour:
    start = now + timedelta(days=30)
    row = Tour(
        kind="experience",
        title_ja=title,
        title_en="Migration tour",
        starts_at=start,
        ends_at=start + timedelta(days=2),
        capacity=capacity,
        deadline=start - timedelta(days=5),
        place="小諸市",
        status="open",
        created_at=now,
    )
    session.add(row)
    return row


def signup(
    session: AsyncSession,
    tour: Tour,
    who: Person,
    now: datetime,
    *,
    status: str = "confirmed",
    seats: int = 1,
    name: str = "山田 太郎",
    interests: tuple[str, ...] = ("housing",),
    **details: Any,
) -> Signup:
    row = Signup(
        tour_id=tour.id,
        person_id=who.id,
        form_key=uuid.uuid4().hex,
        form="individual",
        status=status,
        seats=seats,
        details={
            "name": name,
            "contact": {"email": "taro@example.jp"},
            "adults": seats,
            "children": 0,
            "interests": list(interests),
            **details,
        },
        language=who.language,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    return row


def handoff(session: AsyncSession, who: Person, now: datetime, status: str = "waiting") -> Handoff:
    row = Handoff(
        person_id=who.id, status=status, reason="asked", created_at=now, last_activity_at=now
    )
    session.add(row)
    return row


def message(
    session: AsyncSession, who: Person, text: str, now: datetime, direction: str = "in"
) -> MessageLog:
    row = MessageLog(person_id=who.id, direction=direction, text=text, created_at=now)
    session.add(row)
    return row
