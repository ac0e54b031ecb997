"""Changing a tour from the console, without breaking the bookings already on it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.bookings import BookingPolicy, lock_tour, promote_waiting, seats_taken
from bot.storage.models import Signup, Tour
from bot.storage.tours import NewTour


class TourEditError(ValueError):
    """Why an edit is refused: a console catalog key (with values) for the staff member."""

    def __init__(self, key: str, **values: object) -> None:
        super().__init__(key)
        self.key = key
        self.values = values


async def edit_tour(
    session: AsyncSession, policy: BookingPolicy, tour_id: int, new: NewTour, now: datetime
) -> Tour:
    """Apply staff's edit. Dates stay as they are once people have signed up (their reminders
    and confirmations name them: cancel and create a new date instead); more seats fill from
    the waiting list at once; fewer seats than are already booked are refused."""
    tour = await lock_tour(session, tour_id)
    if tour is None:
        raise TourEditError("error.not_found")
    if tour.status == "cancelled":
        raise TourEditError("tours.edit_cancelled")
    active = await session.scalar(
        select(func.count())
        .select_from(Signup)
        .where(Signup.tour_id == tour.id, Signup.status.in_(("confirmed", "waitlisted")))
    )
    moved = (new.starts_at, new.ends_at) != (tour.starts_at, tour.ends_at)
    if active and moved:
        raise TourEditError("tours.edit_dates_locked")
    new.check(now)  # TourError (English, field named) for the shape of the input
    taken = (await seats_taken(session, [tour.id])).get(tour.id, 0)
    if new.capacity < taken:
        raise TourEditError("tours.edit_capacity_below", taken=taken)
    grew = new.capacity > tour.capacity
    tour.kind = new.kind
    tour.title_ja = new.title_ja.strip()
    tour.title_en = new.title_en.strip() or new.title_ja.strip()
    tour.description_ja = new.description_ja
    tour.description_en = new.description_en
    tour.starts_at, tour.ends_at, tour.deadline = new.starts_at, new.ends_at, new.deadline
    tour.place = new.place
    tour.capacity = new.capacity
    await session.flush()
    if grew:
        await promote_waiting(session, policy, tour, now)
    return tour
