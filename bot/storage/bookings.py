"""Tours, sign-ups and their reminders in SQL: the TourDesk intents use, plus staff actions."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.messages import Reply, reply_to_dict
from bot.storage.models import (
    ConversationState,
    Delivery,
    MessageLog,
    Person,
    Reminder,
    Signup,
    Tour,
    UnansweredQuestion,
)
from intents import notices
from intents.i18n import Catalog
from intents.ports import Booked, BookingResult, SignupView, TourView

ACTIVE = ("confirmed", "waitlisted")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BookingPolicy:
    """What booking needs from config: local time zone, reminder times, staff chat."""

    tz: tzinfo
    reminder_days: Sequence[int]
    reminder_at: time
    staff_chat: str  # Telegram chat id for staff notices, "" for the log only
    catalog: Catalog


def tour_view(tour: Tour, seats_taken: int) -> TourView:
    return TourView(
        id=tour.id,
        kind=tour.kind,
        title={"ja": tour.title_ja, "en": tour.title_en or tour.title_ja},
        description={"ja": tour.description_ja, "en": tour.description_en or tour.description_ja},
        starts_at=tour.starts_at,
        ends_at=tour.ends_at,
        place=tour.place,
        capacity=tour.capacity,
        seats_left=max(0, tour.capacity - seats_taken),
        deadline=tour.deadline,
        status=tour.status,
    )


def signup_view(signup: Signup, tour: TourView) -> SignupView:
    return SignupView(
        id=signup.id,
        tour=tour,
        form=signup.form,
        status=signup.status,
        seats=signup.seats,
        details=dict(signup.details),
        form_key=signup.form_key,
        created_at=signup.created_at,
    )


async def seats_taken(session: AsyncSession, tour_ids: Sequence[int]) -> dict[int, int]:
    if not tour_ids:
        return {}
    rows = await session.execute(
        select(Signup.tour_id, func.coalesce(func.sum(Signup.seats), 0))
        .where(Signup.tour_id.in_(tour_ids), Signup.status == "confirmed")
        .group_by(Signup.tour_id)
    )
    return {tour_id: int(total) for tour_id, total in rows.all()}


async def load_tour_view(session: AsyncSession, tour: Tour) -> TourView:
    return tour_view(tour, (await seats_taken(session, [tour.id])).get(tour.id, 0))


def reminder_times(policy: BookingPolicy, tour_start: datetime) -> dict[str, datetime]:
    """Due times, e.g. {"7d": 10:00 local seven days before the first day}."""
    first_day = tour_start.astimezone(policy.tz).date()
    return {
        f"{days}d": datetime.combine(
            first_day - timedelta(days=days), policy.reminder_at, tzinfo=policy.tz
        )
        for days in policy.reminder_days
    }


async def plan_reminders(
    session: AsyncSession, policy: BookingPolicy, signup: Signup, tour: Tour, now: datetime
) -> None:
    """Create a newly confirmed sign-up's reminders (new, promoted from the waiting list, or
    moved to another date after its old reminders were deleted: the unique (sign-up, kind)
    key refuses a second set). Ones already due are skipped, since a "7 days before"
    message makes no sense for someone who signs up 3 days before."""
    for kind, due in reminder_times(policy, tour.starts_at).items():
        if now < due < tour.starts_at:
            session.add(Reminder(signup_id=signup.id, kind=kind, due_at=due, state="pending"))


async def cancel_reminders(session: AsyncSession, signup_id: int) -> None:
    await session.execute(
        update(Reminder)
        .where(Reminder.signup_id == signup_id, Reminder.state == "pending")
        .values(state="cancelled")
    )


def enqueue(
    session: AsyncSession,
    *,
    key: str,
    channel: str,
    address: str,
    replies: Sequence[Reply],
    now: datetime,
    person_id: int | None = None,
) -> Delivery:
    """Put a message in the outbox. `key` is unique: the same notice is never queued twice."""
    delivery = Delivery(**delivery_values(key, channel, address, replies, now, person_id))
    session.add(delivery)
    return delivery


def delivery_values(
    key: str,
    channel: str,
    address: str,
    replies: Sequence[Reply],
    now: datetime,
    person_id: int | None = None,
) -> dict[str, Any]:
    """One outbox row as plain values, for a single add or a bulk insert."""
    return {
        "key": key,
        # Derived from the key, so a re-queued copy would carry the same LINE retry key.
        "retry_key": str(uuid.uuid5(uuid.NAMESPACE_URL, f"iju-bot:{key}")),
        "person_id": person_id,
        "channel": channel,
        "address": address,
        "replies": [reply_to_dict(r) for r in replies],
        "status": "pending",
        "attempts": 0,
        "not_before": now,
        "created_at": now,
    }


def notify_staff(
    session: AsyncSession, policy: BookingPolicy, key: str, replies: list[Reply], now: datetime
) -> None:
    # The log line carries no personal data: the kind of notice and the reference number.
    log.info("staff notice: %s", key)
    if policy.staff_chat:
        enqueue(
            session,
            key=f"staff:{key}",
            channel="telegram",
            address=policy.staff_chat,
            replies=replies,
            now=now,
        )


async def promote_waiting(
    session: AsyncSession, policy: BookingPolicy, tour: Tour, now: datetime
) -> list[Signup]:
    """Fill freed seats from the waiting list, first come first served, and tell each person."""
    promoted: list[Signup] = []
    if tour.status != "open" or tour.starts_at <= now:
        return promoted
    taken = (await seats_taken(session, [tour.id])).get(tour.id, 0)
    waiting = await session.scalars(
        select(Signup)
        .where(Signup.tour_id == tour.id, Signup.status == "waitlisted")
        .order_by(Signup.created_at, Signup.id)
    )
    for signup in waiting.all():
        if taken + signup.seats > tour.capacity:
            continue  # a smaller party further down may still fit
        signup.status = "confirmed"
        signup.updated_at = now
        taken += signup.seats
        await session.flush()
        await plan_reminders(session, policy, signup, tour, now)
        person = await session.get(Person, signup.person_id)
        view = signup_view(signup, tour_view(tour, taken))
        if person is not None:
            enqueue(
                session,
                key=f"promoted:{signup.id}",
                channel=person.channel,
                address=person.platform_user_id,
                replies=notices.promoted(policy.catalog, view, signup.language),
                now=now,
                person_id=person.id,
            )
        notify_staff(
            session,
            policy,
            f"promoted:{signup.id}",
            notices.staff_new(policy.catalog, view, policy.tz),
            now,
        )
        promoted.append(signup)
    return promoted


async def lock_tour(session: AsyncSession, tour_id: int) -> Tour | None:
    """The tour row, locked for this transaction on PostgreSQL: seat counting for one tour
    happens one booking at a time. (SQLite serializes writers and the engine retries.)"""
    return await session.scalar(select(Tour).where(Tour.id == tour_id).with_for_update())


class SqlTourDesk:
    """TourDesk for one person within one transaction (see intents.ports)."""

    def __init__(
        self, session: AsyncSession, policy: BookingPolicy, person_id: int, now: datetime
    ) -> None:
        self.session = session
        self.policy = policy
        self.person_id = person_id
        self.now = now

    async def open_tours(self, kinds: Sequence[str]) -> list[TourView]:
        tours = (
            await self.session.scalars(
                select(Tour)
                .where(
                    Tour.kind.in_(kinds),
                    Tour.status == "open",
                    Tour.deadline > self.now,
                    Tour.starts_at > self.now,
                )
                .order_by(Tour.starts_at)
                .limit(20)
            )
        ).all()
        taken = await seats_taken(self.session, [t.id for t in tours])
        return [tour_view(t, taken.get(t.id, 0)) for t in tours]

    async def tour(self, tour_id: int) -> TourView | None:
        tour = await self.session.get(Tour, tour_id)
        return None if tour is None else await load_tour_view(self.session, tour)

    async def book(
        self,
        *,
        tour_id: int,
        form: str,
        form_key: str,
        seats: int,
        details: Mapping[str, Any],
        language: str,
        waitlist: bool,
    ) -> BookingResult:
        existing = await self.session.scalar(select(Signup).where(Signup.form_key == form_key))
        if existing is not None:
            tour = await self.session.get(Tour, existing.tour_id)
            assert tour is not None
            booked = signup_view(existing, await load_tour_view(self.session, tour))
            return BookingResult(Booked.ALREADY, booked)
        tour = await lock_tour(self.session, tour_id)
        if tour is None:
            return BookingResult(Booked.GONE)
        view = await load_tour_view(self.session, tour)
        if not view.accepting(self.now):
            return BookingResult(Booked.CLOSED)
        fits = seats <= view.seats_left
        if not fits and not waitlist:
            return BookingResult(Booked.FULL)
        signup = Signup(
            tour_id=tour.id,
            person_id=self.person_id,
            form_key=form_key,
            form=form,
            status="confirmed" if fits else "waitlisted",
            seats=seats,
            details=dict(details),
            language=language,
            attending=False,
            created_at=self.now,
            updated_at=self.now,
        )
        self.session.add(signup)
        await self.session.flush()
        if fits:
            await plan_reminders(self.session, self.policy, signup, tour, self.now)
        result = signup_view(signup, await load_tour_view(self.session, tour))
        notify_staff(
            self.session,
            self.policy,
            f"new:{signup.id}",
            notices.staff_new(self.policy.catalog, result, self.policy.tz),
            self.now,
        )
        return BookingResult(Booked.CONFIRMED if fits else Booked.WAITLISTED, result)

    async def _own(self, signup_id: int) -> tuple[Signup, Tour] | None:
        signup = await self.session.scalar(
            select(Signup).where(
                Signup.id == signup_id,
                Signup.person_id == self.person_id,
                Signup.status.in_(ACTIVE),
            )
        )
        if signup is None:
            return None
        tour = await lock_tour(self.session, signup.tour_id)
        return None if tour is None else (signup, tour)

    async def my_signups(self) -> list[SignupView]:
        rows = (
            await self.session.execute(
                select(Signup, Tour)
                .join(Tour, Tour.id == Signup.tour_id)
                .where(
                    Signup.person_id == self.person_id,
                    Signup.status.in_(ACTIVE),
                    Tour.ends_at > self.now,
                )
                .order_by(Tour.starts_at)
            )
        ).all()
        taken = await seats_taken(self.session, [t.id for _s, t in rows])
        return [signup_view(s, tour_view(t, taken.get(t.id, 0))) for s, t in rows]

    async def cancel_signup(self, signup_id: int) -> SignupView | None:
        own = await self._own(signup_id)
        if own is None:
            return None
        signup, tour = own
        was_confirmed = signup.status == "confirmed"
        signup.status = "cancelled"
        signup.updated_at = self.now
        await cancel_reminders(self.session, signup.id)
        await self.session.flush()
        view = signup_view(signup, await load_tour_view(self.session, tour))
        notify_staff(
            self.session,
            self.policy,
            f"cancelled:{signup.id}",
            notices.staff_cancelled(self.policy.catalog, view, self.policy.tz),
            self.now,
        )
        if was_confirmed:
            await promote_waiting(self.session, self.policy, tour, self.now)
        return view

    async def move_signup(self, signup_id: int, tour_id: int) -> BookingResult:
        own = await self._own(signup_id)
        if own is None:
            return BookingResult(Booked.GONE)
        signup, old_tour = own
        if tour_id == old_tour.id:
            return BookingResult(
                Booked.ALREADY, signup_view(signup, await load_tour_view(self.session, old_tour))
            )
        new_tour = await lock_tour(self.session, tour_id)
        if new_tour is None:
            return BookingResult(Booked.GONE)
        new_view = await load_tour_view(self.session, new_tour)
        if not new_view.accepting(self.now) or new_tour.kind != old_tour.kind:
            return BookingResult(Booked.CLOSED)
        if signup.seats > new_view.seats_left:
            return BookingResult(Booked.FULL)
        was_confirmed = signup.status == "confirmed"
        signup.tour_id = new_tour.id
        signup.status = "confirmed"
        signup.updated_at = self.now
        await self.session.flush()
        # A new date gets its own reminders, even those already sent for the old date.
        await self.session.execute(delete(Reminder).where(Reminder.signup_id == signup.id))
        await plan_reminders(self.session, self.policy, signup, new_tour, self.now)
        if was_confirmed:
            await promote_waiting(self.session, self.policy, old_tour, self.now)
        view = signup_view(signup, await load_tour_view(self.session, new_tour))
        return BookingResult(Booked.CONFIRMED, view)

    async def mark_attending(self, signup_id: int) -> SignupView | None:
        own = await self._own(signup_id)
        if own is None:
            return None
        signup, tour = own
        signup.attending = True
        signup.updated_at = self.now
        return signup_view(signup, await load_tour_view(self.session, tour))

    async def my_data(self) -> dict[str, Any]:
        person = await self.session.get(Person, self.person_id)
        signups = (
            await self.session.scalars(
                select(Signup).where(Signup.person_id == self.person_id).order_by(Signup.id)
            )
        ).all()
        messages = await self.session.scalar(
            select(func.count())
            .select_from(MessageLog)
            .where(MessageLog.person_id == self.person_id)
        )
        return {
            "channel": person.channel if person else None,
            "language": person.language if person else None,
            "signups": [
                {"id": s.id, "tour_id": s.tour_id, "status": s.status, **dict(s.details)}
                for s in signups
            ],
            "messages_kept": int(messages or 0),
        }

    async def delete_my_data(self) -> None:
        await erase_person(self.session, self.policy, self.person_id, self.now)


async def erase_person(
    session: AsyncSession, policy: BookingPolicy, person_id: int, now: datetime
) -> None:
    """Delete a person's sign-ups (freeing their seats for the waiting list), reminders,
    pending messages, message log and unanswered questions; reset their profile. The person
    row stays so the bot still knows whether it may message them."""
    signups = (
        await session.scalars(
            select(Signup).where(Signup.person_id == person_id, Signup.status == "confirmed")
        )
    ).all()
    freed = {s.tour_id for s in signups}
    await session.execute(delete(Signup).where(Signup.person_id == person_id))
    await session.execute(
        delete(Delivery).where(Delivery.person_id == person_id, Delivery.status == "pending")
    )
    await session.execute(delete(MessageLog).where(MessageLog.person_id == person_id))
    await session.execute(
        delete(UnansweredQuestion).where(UnansweredQuestion.person_id == person_id)
    )
    await session.execute(
        update(ConversationState).where(ConversationState.person_id == person_id).values(data={})
    )
    await session.flush()
    for tour_id in sorted(freed):
        tour = await lock_tour(session, tour_id)
        if tour is not None:
            await promote_waiting(session, policy, tour, now)
