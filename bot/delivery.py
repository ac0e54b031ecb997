"""The outbox sender: claims due Delivery rows and pushes them through each channel's Pusher.

Rows are claimed in their own short transaction (FOR UPDATE SKIP LOCKED on PostgreSQL, so
several workers share the work), pushed, then marked. A worker that dies mid-send leaves
rows in `sending`; after a grace period they are pushed again with the same retry key, which
LINE deduplicates.

Telegram has no such key, so its pusher says `idempotent = False` and each of its rows is
walked through its own states, each committed at once: `sending` (claimed, not yet on the
wire), `pushing` (written just before the request leaves), then its outcome. A worker killed
mid-broadcast leaves at most the requests that were in flight as `pushing`; nobody can know
whether Telegram delivered those, and we choose at-most-once for them: they become `failed`
with UNSURE as the error, for staff to see, instead of being sent a second time. The rows
still `sending` were never sent and go out normally.

Each channel drains in its own loop, so a slow Telegram broadcast (30 messages/s) does not
hold LINE multicasts (200 requests/s of 500 people each) behind it. A pusher may ask for
several loops (`lanes`): a batch waits for its slowest row (a retry_after), and another batch
in flight keeps the pace meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import metrics
from bot.messages import Reply, reply_from_dict
from bot.storage.models import Delivery, Person

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
STUCK_AFTER = timedelta(minutes=10)
# The error of a row whose request was in flight when its worker died, on a platform without
# an idempotency key: it may have arrived, so it is not sent again (at-most-once).
UNSURE = "interrupted in flight: may have arrived; not resent"


class Unreachable(Exception):
    """The person blocked or left the bot: stop messaging them."""


class Rejected(Exception):
    """The platform refused this message for good (a malformed request): do not retry."""


class RetryLater(Exception):
    """The platform asked us to slow down or failed for now."""

    def __init__(self, after: float | None = None) -> None:
        super().__init__(f"retry after {after}s" if after else "retry later")
        self.after = after


BeforeSend = Callable[[], Awaitable[None]]


class Pusher(Protocol):
    async def push(self, address: str, replies: Sequence[Reply], *, retry_key: str) -> None:
        """Send replies to one person/chat; raise Unreachable or RetryLater on those answers.

        A pusher whose platform has no idempotency key sets `idempotent = False` and accepts
        a keyword `before_send`, awaited once right before its first request leaves (after
        any pacing wait), so the outbox knows which rows were really in flight."""
        ...


@runtime_checkable
class MulticastPusher(Protocol):
    """A pusher that can send one message to many people in one request (LINE multicast).
    A pusher may also set `claim_size`: how many rows to claim at once for its channel."""

    async def multicast(
        self, recipients: Sequence[str], replies: Sequence[Reply], *, retry_key: str
    ) -> None: ...


@dataclass
class DeliveryReport:
    sent: int = 0
    skipped: int = 0
    retried: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def claimed(self) -> int:
        return self.sent + self.skipped + self.retried + self.failed


@dataclass(frozen=True)
class Claimed:
    """A claimed outbox row: what sending it needs, detached from any session."""

    id: int
    person_id: int | None
    channel: str
    address: str
    replies: list[dict[str, Any]]
    retry_key: str
    attempts: int
    recipients: list[str] | None = None  # LINE multicast: the user ids of this one request


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(3600, 30 * 2 ** max(0, attempts - 1)))


class Courier:
    """Sends what the outbox holds for channels that can push (LINE, Telegram...)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        pushers: Mapping[str, Pusher],
        clock: Callable[[], datetime],
        *,
        batch: int = 500,
        concurrency: int = 16,
    ) -> None:
        self.sessions = sessions
        self.pushers = pushers
        self.clock = clock
        self.batch = batch
        self.concurrency = concurrency

    async def send_due(self) -> DeliveryReport:
        """Send every due delivery, batch by batch, until none is left; channels in parallel."""
        report = DeliveryReport()
        await self._release_stuck()
        # Every drain runs to its end before an error is raised: a failed channel must not
        # leave another one sending outside the tick that owns it.
        drains = [
            self._drain(channel, report)
            for channel, pusher in self.pushers.items()
            for _ in range(max(1, int(getattr(pusher, "lanes", 1))))
        ]
        outcomes = await asyncio.gather(*drains, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return report

    async def _drain(self, channel: str, report: DeliveryReport) -> None:
        size = int(getattr(self.pushers[channel], "claim_size", self.batch))
        while True:
            claimed = await self._claim(channel, min(size, self.batch))
            if not claimed:
                return
            await self._send(claimed, report)

    async def _release_stuck(self) -> None:
        now = self.clock()
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(Delivery)
                .where(Delivery.status == "sending", Delivery.not_before < now - STUCK_AFTER)
                .values(status="pending")
            )
            # Only non-idempotent pushers write `pushing`: at-most-once for those.
            await session.execute(
                update(Delivery)
                .where(Delivery.status == "pushing", Delivery.not_before < now - STUCK_AFTER)
                .values(status="failed", error=UNSURE)
            )

    async def _claim(self, channel: str, size: int) -> list[Claimed]:
        """Mark a batch `sending` in one statement. The status condition inside the UPDATE
        makes the claim atomic even on SQLite, which has no SKIP LOCKED."""
        now = self.clock()
        due = (
            select(Delivery.id)
            .where(
                Delivery.status == "pending",
                Delivery.not_before <= now,
                Delivery.channel == channel,
            )
            .order_by(Delivery.id)
            .limit(size)
            .with_for_update(skip_locked=True)
            # A CTE, not a subquery: PostgreSQL may run a LIMIT ... SKIP LOCKED subquery
            # inside UPDATE ... IN (...) more than once and claim more rows than the limit
            # (seen: 70 rows for a limit of 30); a locking CTE is evaluated once.
            .cte("due")
        )
        async with self.sessions() as session, session.begin():
            result = await session.execute(
                update(Delivery)
                .where(Delivery.id.in_(select(due.c.id)), Delivery.status == "pending")
                .values(status="sending", attempts=Delivery.attempts + 1, not_before=now)
                .returning(
                    Delivery.id,
                    Delivery.person_id,
                    Delivery.channel,
                    Delivery.address,
                    Delivery.replies,
                    Delivery.retry_key,
                    Delivery.attempts,
                    Delivery.recipients,
                )
                .execution_options(synchronize_session=False)
            )
            return sorted((Claimed(*row) for row in result.all()), key=lambda c: c.id)

    async def _send(self, rows: list[Claimed], report: DeliveryReport) -> None:
        gate = asyncio.Semaphore(self.concurrency)
        if not rows:
            return
        if getattr(self.pushers[rows[0].channel], "idempotent", True):
            # A retried request is harmless (retry keys): one write for the whole batch.
            results: list[tuple[Claimed, tuple[str, str | None, float | None]]] = []

            async def one(row: Claimed) -> None:
                async with gate:
                    results.append((row, await self._push(row)))

            await asyncio.gather(*(one(r) for r in rows))
            await self._record(results, report)
            return

        # No idempotency key: every row's outcome is committed as soon as it is known, so a
        # crash leaves only the requests then in flight unaccounted for.
        async def lone(row: Claimed) -> None:
            async with gate:
                outcome = await self._push(row, before_send=lambda: self._mark_pushing(row.id))
                await self._record([(row, outcome)], report)

        await asyncio.gather(*(lone(r) for r in rows))

    async def _mark_pushing(self, row_id: int) -> None:
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(Delivery)
                .where(Delivery.id == row_id, Delivery.status == "sending")
                .values(status="pushing")
            )

    async def _record(
        self,
        results: Sequence[tuple[Claimed, tuple[str, str | None, float | None]]],
        report: DeliveryReport,
    ) -> None:
        now = self.clock()
        sent: list[int] = []
        skipped: list[int] = []
        failed: dict[str | None, list[int]] = {}  # by error, kept for staff to read
        unreachable: list[int] = []
        # Rows to try again, grouped by (wait, error): one statement per group, not per row.
        retry: dict[tuple[timedelta, str | None], list[int]] = {}
        async with self.sessions() as session, session.begin():
            for row, (outcome, error, after) in results:
                if error:
                    report.errors.append(error)
                if outcome == "sent":
                    sent.append(row.id)
                elif outcome == "skipped":
                    skipped.append(row.id)
                    if row.person_id is not None:
                        unreachable.append(row.person_id)
                elif outcome == "failed" or row.attempts >= MAX_ATTEMPTS:
                    failed.setdefault(error, []).append(row.id)
                else:
                    wait = backoff(row.attempts)
                    if after is not None:  # Telegram's retry_after is the platform's own word
                        wait = timedelta(seconds=after)
                    report.retried += 1
                    retry.setdefault((wait, error), []).append(row.id)
            for (wait, error), ids in retry.items():
                await session.execute(
                    update(Delivery)
                    .where(Delivery.id.in_(ids))
                    .values(status="pending", not_before=now + wait, error=error)
                )
            # Outcomes shared by many rows are written in one statement each.
            if sent:
                await session.execute(
                    update(Delivery).where(Delivery.id.in_(sent)).values(status="sent", sent_at=now)
                )
            if skipped:
                await session.execute(
                    update(Delivery).where(Delivery.id.in_(skipped)).values(status="skipped")
                )
            for error, ids in failed.items():
                await session.execute(
                    update(Delivery)
                    .where(Delivery.id.in_(ids))
                    .values(status="failed", error=error)
                )
            if unreachable:
                await session.execute(
                    update(Person).where(Person.id.in_(unreachable)).values(reachable=False)
                )
        failed_ids = [i for ids in failed.values() for i in ids]
        metrics.count_deliveries([row for row, _ in results], sent, skipped, failed_ids)
        report.sent += len(sent)
        report.skipped += len(skipped)
        report.failed += len(failed_ids)

    async def _push(
        self, row: Claimed, before_send: BeforeSend | None = None
    ) -> tuple[str, str | None, float | None]:
        pusher = self.pushers[row.channel]
        replies = [reply_from_dict(r) for r in row.replies]
        try:
            if row.recipients is not None:
                if not isinstance(pusher, MulticastPusher):
                    return "failed", f"{row.channel} cannot multicast", None
                await pusher.multicast(row.recipients, replies, retry_key=row.retry_key)
            elif before_send is not None:
                push: Any = pusher.push  # a non-idempotent pusher takes before_send
                await push(row.address, replies, retry_key=row.retry_key, before_send=before_send)
            else:
                await pusher.push(row.address, replies, retry_key=row.retry_key)
        except Unreachable:
            return "skipped", None, None
        except Rejected as exc:
            return "failed", str(exc)[:200], None
        except RetryLater as exc:
            return "pending", str(exc)[:200], exc.after
        except Exception as exc:  # a platform outage must not stop the other deliveries
            log.warning("delivery %s to %s failed: %s", row.id, row.channel, type(exc).__name__)
            return "pending", type(exc).__name__, None
        return "sent", None, None
