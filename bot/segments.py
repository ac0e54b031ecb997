"""Who an announcement goes to: a segment of people, as SQL conditions and counts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, false, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import Person, Signup

# Channels an announcement can reach: LINE and Telegram by push, the web chat on its next
# poll. The console and test channels have nobody to tell.
DELIVERABLE = ("line", "telegram", "web")
AUDIENCES = ("resident", "company")
LANGUAGES = ("ja", "en")
# Sign-ups that still hold (or wait for) a place: "participants of a tour" includes the
# waiting list, who want to hear about the tour as much as those with a seat.
ACTIVE_SIGNUPS = ("confirmed", "waitlisted")


@dataclass(frozen=True)
class Segment:
    """Filters combined with AND; an empty tuple (or None) means "any"."""

    channels: tuple[str, ...] = ()
    audiences: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    interests: tuple[str, ...] = ()  # any of these among the interests given in a sign-up
    tour_id: int | None = None  # people with an active sign-up for this tour
    followed_since: datetime | None = None  # people who started talking to the bot since

    def to_json(self) -> dict[str, Any]:
        return {
            "channels": list(self.channels),
            "audiences": list(self.audiences),
            "languages": list(self.languages),
            "interests": list(self.interests),
            "tour_id": self.tour_id,
            "followed_since": self.followed_since.isoformat() if self.followed_since else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Segment:
        since = data.get("followed_since")
        tour = data.get("tour_id")
        return cls(
            channels=_strings(data.get("channels")),
            audiences=_strings(data.get("audiences")),
            languages=_strings(data.get("languages")),
            interests=_strings(data.get("interests")),
            tour_id=int(tour) if tour is not None else None,
            followed_since=datetime.fromisoformat(since) if since else None,
        )


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if value else ()


@dataclass(frozen=True)
class RecipientCount:
    """What the console shows before sending: reachable people per channel, their total,
    and how many matching people blocked or left the bot and will be skipped."""

    per_channel: dict[str, int] = field(default_factory=dict)
    total: int = 0
    unreachable: int = 0


async def conditions(session: AsyncSession, segment: Segment) -> list[ColumnElement[bool]]:
    """The segment as WHERE conditions on Person (reachability not included)."""
    channels = [c for c in segment.channels or DELIVERABLE if c in DELIVERABLE]
    where: list[ColumnElement[bool]] = [Person.channel.in_(channels)]
    if segment.audiences:
        where.append(Person.audience.in_(segment.audiences))
    if segment.languages:
        where.append(Person.language.in_(segment.languages))
    if segment.followed_since is not None:
        where.append(Person.created_at >= segment.followed_since)
    if segment.tour_id is not None:
        where.append(
            Person.id.in_(
                select(Signup.person_id).where(
                    Signup.tour_id == segment.tour_id, Signup.status.in_(ACTIVE_SIGNUPS)
                )
            )
        )
    if segment.interests:
        ids = await people_interested(session, segment.interests)
        where.append(Person.id.in_(ids) if ids else false())
    return where


async def people_interested(session: AsyncSession, interests: Iterable[str]) -> list[int]:
    """People who ticked any of `interests` in a sign-up. Matched in Python: the interests
    sit in a JSON column that SQLite and PostgreSQL query differently, and sign-ups are a
    few thousand rows at most, unlike the people."""
    wanted = set(interests)
    rows = await session.execute(
        select(Signup.person_id, Signup.details).where(Signup.status != "cancelled")
    )
    found: set[int] = set()
    for person_id, details in rows:
        given = details.get("interests") if isinstance(details, dict) else None
        if isinstance(given, list) and wanted.intersection(map(str, given)):
            found.add(person_id)
    return sorted(found)


async def count_recipients(session: AsyncSession, segment: Segment) -> RecipientCount:
    where = await conditions(session, segment)
    rows = await session.execute(
        select(Person.channel, Person.reachable, func.count())
        .where(*where)
        .group_by(Person.channel, Person.reachable)
    )
    per_channel: dict[str, int] = {}
    unreachable = 0
    for channel, reachable, n in rows:
        if reachable:
            per_channel[channel] = per_channel.get(channel, 0) + int(n)
        else:
            unreachable += int(n)
    return RecipientCount(per_channel, sum(per_channel.values()), unreachable)
