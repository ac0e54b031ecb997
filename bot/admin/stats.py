"""The dashboard's figures, each one query."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage import unanswered
from bot.storage.models import Handoff, MessageLog, Person, Signup, Tour


@dataclass(frozen=True)
class TourLoad:
    tour: Tour
    confirmed_seats: int
    waitlisted: int


@dataclass(frozen=True)
class Dashboard:
    followers: dict[str, int]  # reachable people per channel
    tours: list[TourLoad]
    messages_today: int
    unanswered_week: int
    waiting: int
    active: int


async def followers(session: AsyncSession) -> dict[str, int]:
    rows = (
        await session.execute(
            select(Person.channel, func.count())
            .where(Person.reachable.is_(True))
            .group_by(Person.channel)
            .order_by(Person.channel)
        )
    ).all()
    return {channel: int(n) for channel, n in rows}


async def open_tour_load(session: AsyncSession, now: datetime) -> list[TourLoad]:
    tours = (
        await session.scalars(
            select(Tour)
            .where(Tour.status == "open", Tour.ends_at > now)
            .order_by(Tour.starts_at, Tour.id)
        )
    ).all()
    ids = [t.id for t in tours]
    counts: dict[tuple[int, str], int] = {}
    if ids:
        rows = (
            await session.execute(
                select(
                    Signup.tour_id,
                    Signup.status,
                    func.sum(Signup.seats),
                    func.count(),
                )
                .where(Signup.tour_id.in_(ids), Signup.status.in_(("confirmed", "waitlisted")))
                .group_by(Signup.tour_id, Signup.status)
            )
        ).all()
        for tour_id, status, seats, n in rows:
            # Seats for the confirmed (capacity is in seats), sign-ups for the waiting list.
            counts[(tour_id, status)] = int(seats or 0) if status == "confirmed" else int(n)
    return [
        TourLoad(t, counts.get((t.id, "confirmed"), 0), counts.get((t.id, "waitlisted"), 0))
        for t in tours
    ]


def start_of_day(now: datetime, tz: tzinfo) -> datetime:
    local = now.astimezone(tz)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


async def dashboard(session: AsyncSession, now: datetime, tz: tzinfo) -> Dashboard:
    messages = await session.scalar(
        select(func.count())
        .select_from(MessageLog)
        .where(MessageLog.created_at >= start_of_day(now, tz))
    )
    rows = await session.execute(
        select(Handoff.status, func.count())
        .where(Handoff.status.in_(("waiting", "active")))
        .group_by(Handoff.status)
    )
    handoffs = {status: int(n) for status, n in rows.all()}
    return Dashboard(
        followers=await followers(session),
        tours=await open_tour_load(session, now),
        messages_today=int(messages or 0),
        unanswered_week=await unanswered.count_since(session, now - timedelta(days=7)),
        waiting=int(handoffs.get("waiting", 0)),
        active=int(handoffs.get("active", 0)),
    )
