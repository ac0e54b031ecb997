"""The worker's clock: every few seconds, queue due reminders and send the outbox.

Reminders are rows, not APScheduler jobs: APScheduler 3 only runs one short interval job
here, so restarts stay fast with 100,000 reminders, and no job store is ever shared between
schedulers. Claiming a reminder and queueing its Delivery happen in one transaction, and the
Delivery key ("reminder:<sign-up>:<tour>:<kind>") is unique, so nothing is sent twice.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.announcement_release import finish_sent, release_due
from bot.delivery import Courier, DeliveryReport
from bot.storage import handoffs
from bot.storage.bookings import BookingPolicy, delivery_values, signup_view, tour_view
from bot.storage.models import Delivery, Person, Reminder, Signup, Tour
from bot.storage.retention import purge_message_log
from intents import notices

log = logging.getLogger(__name__)


def in_quiet_hours(moment: datetime, policy: BookingPolicy, start: time, end: time) -> bool:
    local = moment.astimezone(policy.tz).time()
    if start <= end:
        return start <= local < end
    return local >= start or local < end  # the usual case: 21:00 to 08:00 wraps midnight


@dataclass
class ReminderRun:
    queued: int = 0
    dropped: int = 0
    waiting: int = 0  # due, but held back by quiet hours


async def queue_due_reminders(
    sessions: async_sessionmaker[AsyncSession],
    policy: BookingPolicy,
    quiet: tuple[time, time],
    now: datetime,
    *,
    batch: int = 1000,
) -> ReminderRun:
    """Hand every due reminder to the outbox, in the person's language and channel. A
    reminder missed while the worker was down goes out late if the tour is still ahead and
    is dropped otherwise; at night it waits for the morning."""
    run = ReminderRun()
    if in_quiet_hours(now, policy, *quiet):
        async with sessions() as session:
            run.waiting = int(
                await session.scalar(
                    select(func.count())
                    .select_from(Reminder)
                    .where(Reminder.state == "pending", Reminder.due_at <= now)
                )
                or 0
            )
        return run
    conflicts = 0
    while True:
        try:
            if not await _queue_batch(sessions, policy, now, batch, run):
                return run
            conflicts = 0
        except (IntegrityError, OperationalError) as exc:
            # SQLite was busy, or (a safety net) the unique Delivery key refused a copy:
            # read again and carry on from what is left; give up only if nothing moves.
            conflicts += 1
            if conflicts > 20:
                raise
            log.info("reminder batch retried after %s", type(exc).__name__)


async def _queue_batch(
    sessions: async_sessionmaker[AsyncSession],
    policy: BookingPolicy,
    now: datetime,
    batch: int,
    run: ReminderRun,
) -> bool:
    """Queue one batch in one transaction; False when nothing was due.

    The batch is claimed by one conditional UPDATE (pending -> queued), so two workers never
    hold the same reminder, even on SQLite, which has no SKIP LOCKED."""
    due = (
        select(Reminder.id)
        .where(Reminder.state == "pending", Reminder.due_at <= now)
        .order_by(Reminder.due_at, Reminder.id)
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    async with sessions() as session, session.begin():
        claimed = (
            await session.scalars(
                update(Reminder)
                .where(Reminder.id.in_(due.scalar_subquery()), Reminder.state == "pending")
                .values(state="queued", queued_at=now)
                .returning(Reminder.id)
                .execution_options(synchronize_session=False)
            )
        ).all()
        if not claimed:
            return False
        rows = (
            await session.execute(
                select(Reminder, Signup, Tour, Person)
                .join(Signup, Signup.id == Reminder.signup_id)
                .join(Tour, Tour.id == Signup.tour_id)
                .join(Person, Person.id == Signup.person_id)
                .where(Reminder.id.in_(claimed))
            )
        ).all()
        outbox: list[dict[str, object]] = []
        done: list[int] = []
        late: list[int] = []
        for reminder, signup, tour, person in rows:
            if tour.starts_at <= now or signup.status != "confirmed" or tour.status == "cancelled":
                late.append(reminder.id)
                continue
            view = signup_view(signup, tour_view(tour, 0))
            replies = notices.reminder(
                policy.catalog, view.tour, view, signup.language, policy.tz, now
            )
            key = f"reminder:{signup.id}:{tour.id}:{reminder.kind}"
            outbox.append(
                delivery_values(
                    key, person.channel, person.platform_user_id, replies, now, person.id
                )
            )
            done.append(reminder.id)
        # Bulk statements: one round trip per batch, not per reminder.
        if outbox:
            await session.execute(insert(Delivery), outbox)
        if late:
            await session.execute(
                update(Reminder).where(Reminder.id.in_(late)).values(state="dropped")
            )
        queued, dropped = len(done), len(late)
    # Counted only once the transaction has committed.
    run.queued += queued
    run.dropped += dropped
    return True


class Worker:
    """What `python -m bot worker` (and `make run`, in-process) runs on a timer."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        policy: BookingPolicy,
        quiet: tuple[time, time],
        courier: Courier,
        clock: Callable[[], datetime],
        handoff_idle: timedelta = timedelta(hours=2),
        message_log_days: int = 90,
    ) -> None:
        self.sessions = sessions
        self.policy = policy
        self.quiet = quiet
        self.courier = courier
        self.clock = clock
        self.handoff_idle = handoff_idle
        self.message_log_days = message_log_days

    async def housekeeping(self) -> ReminderRun:
        """Close idle handoffs, purge the old message log, queue due reminders and release
        due announcements into the outbox. Quick: it never waits on a platform."""
        async with self.sessions() as session, session.begin():
            await handoffs.close_idle(session, self.policy, self.clock(), self.handoff_idle)
            await purge_message_log(session, self.clock(), self.message_log_days)
        reminders = await queue_due_reminders(self.sessions, self.policy, self.quiet, self.clock())
        await release_due(self.sessions, self.clock())
        if reminders.queued or reminders.dropped:
            log.info("worker: reminders queued %d dropped %d", reminders.queued, reminders.dropped)
        return reminders

    async def deliver(self) -> DeliveryReport:
        """Send what the outbox holds. A Telegram broadcast to 10,000 chats takes minutes at
        the platform's pace; it runs as its own job so housekeeping keeps its rhythm."""
        report = await self.courier.send_due()
        if report.claimed:
            await finish_sent(self.sessions, self.clock())
            log.info(
                "worker: deliveries sent %d skipped %d retried %d failed %d",
                report.sent, report.skipped, report.retried, report.failed,
            )  # fmt: skip
        return report

    async def tick(self) -> tuple[ReminderRun, DeliveryReport]:
        """Both jobs once, in order (tests, `tours` commands): due announcements and
        reminders become outbox rows first, so this tick already sends them."""
        return await self.housekeeping(), await self.deliver()

    async def _safe(self, job: Callable[[], Awaitable[object]]) -> None:
        try:
            await job()
        except Exception as exc:  # a DB hiccup must not kill the schedule; next run retries
            log.warning("worker job failed: %s", type(exc).__name__)

    def schedule(self, scheduler: AsyncIOScheduler, every_seconds: float = 15) -> None:
        # Two jobs, each one instance at a time and no catch-up burst after a pause: a run
        # already does everything that is due. Separate, so a long send never holds back
        # closing idle handoffs or queueing reminders (and the reverse).
        for name, job in (("housekeeping", self.housekeeping), ("delivery", self.deliver)):
            scheduler.add_job(
                self._safe,
                IntervalTrigger(seconds=every_seconds),
                args=[job],
                id=f"iju-worker-{name}",
                max_instances=1,
                coalesce=True,
                replace_existing=True,
            )
