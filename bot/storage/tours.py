"""Staff operations on tours and their sign-ups: add, list, close, cancel, export."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.bookings import (
    BookingPolicy,
    cancel_reminders,
    enqueue,
    load_tour_view,
    seats_taken,
    signup_view,
    tour_view,
)
from bot.storage.models import Person, Signup, Tour
from intents import notices
from intents.ports import TOUR_KINDS, TourView


class TourError(ValueError):
    """A staff input problem, worded for the person who typed it."""


@dataclass(frozen=True)
class NewTour:
    kind: str
    title_ja: str
    title_en: str
    starts_at: datetime
    ends_at: datetime
    capacity: int
    deadline: datetime
    place: str = ""
    description_ja: str = ""
    description_en: str = ""

    def check(self, now: datetime) -> None:
        if self.kind not in TOUR_KINDS:
            raise TourError(f"kind: use one of {', '.join(TOUR_KINDS)} (got {self.kind!r})")
        if not self.title_ja.strip():
            raise TourError("title-ja: a Japanese title is required")
        if any(d.tzinfo is None for d in (self.starts_at, self.ends_at, self.deadline)):
            raise TourError("dates must carry a time zone")
        if self.starts_at <= now:
            raise TourError("start: the tour must start in the future")
        if self.ends_at <= self.starts_at:
            raise TourError("end: must be after the start")
        if self.deadline > self.starts_at:
            raise TourError("deadline: must be before the start")
        if not 1 <= self.capacity <= 1000:
            raise TourError(f"capacity: a number of seats from 1 to 1000 (got {self.capacity})")


async def add_tour(session: AsyncSession, new: NewTour, now: datetime) -> Tour:
    new.check(now)
    tour = Tour(
        kind=new.kind,
        title_ja=new.title_ja.strip(),
        title_en=new.title_en.strip() or new.title_ja.strip(),
        description_ja=new.description_ja,
        description_en=new.description_en,
        starts_at=new.starts_at,
        ends_at=new.ends_at,
        place=new.place,
        capacity=new.capacity,
        deadline=new.deadline,
        status="open",
        created_at=now,
    )
    session.add(tour)
    await session.flush()
    return tour


async def list_tours(
    session: AsyncSession, *, ending_after: datetime | None = None
) -> list[TourView]:
    query = select(Tour).order_by(Tour.starts_at, Tour.id)
    if ending_after is not None:
        query = query.where(Tour.ends_at > ending_after)
    tours = (await session.scalars(query)).all()
    taken = await seats_taken(session, [t.id for t in tours])
    return [tour_view(t, taken.get(t.id, 0)) for t in tours]


async def close_tour(session: AsyncSession, tour_id: int) -> TourView:
    tour = await session.get(Tour, tour_id)
    if tour is None:
        raise TourError(f"tour {tour_id}: no such tour")
    if tour.status == "cancelled":
        raise TourError(f"tour {tour_id}: already cancelled")
    tour.status = "closed"
    return await load_tour_view(session, tour)


async def cancel_tour(
    session: AsyncSession, policy: BookingPolicy, tour_id: int, now: datetime
) -> int:
    """Cancel a tour: every sign-up is cancelled, its reminders dropped, and each person is
    told in their own language on their own channel. Returns how many were told."""
    tour = await session.scalar(select(Tour).where(Tour.id == tour_id).with_for_update())
    if tour is None:
        raise TourError(f"tour {tour_id}: no such tour")
    if tour.status == "cancelled":
        return 0
    view = await load_tour_view(session, tour)
    tour.status = "cancelled"
    rows = (
        await session.execute(
            select(Signup, Person)
            .join(Person, Person.id == Signup.person_id)
            .where(Signup.tour_id == tour_id, Signup.status.in_(("confirmed", "waitlisted")))
        )
    ).all()
    for signup, person in rows:
        signup.status = "cancelled"
        signup.updated_at = now
        await cancel_reminders(session, signup.id)
        enqueue(
            session,
            key=f"tour-cancelled:{signup.id}",
            channel=person.channel,
            address=person.platform_user_id,
            replies=notices.tour_cancelled(
                policy.catalog, signup_view(signup, view), signup.language, policy.tz
            ),
            now=now,
            person_id=person.id,
        )
    return len(rows)


async def signups_for_tour(session: AsyncSession, tour_id: int) -> list[Signup]:
    return list(
        (
            await session.scalars(
                select(Signup)
                .where(Signup.tour_id == tour_id)
                .order_by(Signup.status, Signup.created_at, Signup.id)
            )
        ).all()
    )


CSV_FIELDS = (
    "id", "status", "form", "seats", "created_at", "name", "furigana", "email", "phone",
    "adults", "children", "prefecture", "work", "interests", "company", "contact_person",
    "visitors", "purpose", "format", "slots", "note", "consent", "language", "attending",
)  # fmt: skip


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return " / ".join(str(v) for v in value)
    if value is None:
        return ""
    text = str(value)
    # Excel runs a cell starting with these as a formula: keep names like "=SUM()" as text.
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def signups_csv(signups: Sequence[Signup]) -> str:
    """One row per sign-up with every field; UTF-8 with BOM so Excel shows Japanese."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_FIELDS)
    for s in signups:
        details = dict(s.details)
        contact = details.pop("contact", {}) or {}
        row: dict[str, Any] = {
            **details,
            **contact,
            "id": s.id,
            "status": s.status,
            "form": s.form,
            "seats": s.seats,
            "created_at": s.created_at.isoformat(),
            "language": s.language,
            "attending": "yes" if s.attending else "",
        }
        writer.writerow([_cell(row.get(field)) for field in CSV_FIELDS])
    return "\ufeff" + out.getvalue()


async def seed_samples(session: AsyncSession, now: datetime, tz: Any) -> int:
    """A few future tours so a newcomer can try a sign-up at once (only into an empty table)."""
    if await session.scalar(select(Tour.id).limit(1)) is not None:
        return 0
    base = (now.astimezone(tz) + timedelta(days=21)).replace(
        hour=13, minute=0, second=0, microsecond=0
    )
    experience = ("テレワーク移住体験ツアー（3泊4日）", "Telework migration tour (3 nights)")
    samples = [
        NewTour("experience", *experience,
                base, base + timedelta(days=3, hours=2), 12, base - timedelta(days=7),
                "小諸市内（集合場所は参加者にご案内します）"),
        NewTour("experience", *experience,
                base + timedelta(days=35), base + timedelta(days=38, hours=2), 12,
                base + timedelta(days=28), "小諸市内（集合場所は参加者にご案内します）"),
        NewTour("site_visit", "企業向け現地視察ツアー", "Site-visit tour for companies",
                base + timedelta(days=7), base + timedelta(days=7, hours=5), 10,
                base + timedelta(days=2), "小諸市内のサテライトオフィス候補地"),
        NewTour("online_meeting", "オンライン相談（企業向け）", "Online meetings for companies",
                base - timedelta(days=7), base + timedelta(days=60), 20,
                base - timedelta(days=8), "オンライン（URLは確定後にご連絡します）"),
    ]  # fmt: skip
    for sample in samples:
        await add_tour(session, sample, now)
    return len(samples)
