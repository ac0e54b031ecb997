"""The webhook inbox: keep each platform event before answering 200, then process and send it.

A webhook route calls `accept()` (one short transaction) and answers at once; the work runs
in background tasks, one queue per person so their messages are answered in order. The engine
stores its replies in the inbox row inside its own transaction, so after a crash a row is
either `accepted` (run the engine again: it has left no trace) or `processed` (send the
stored replies). Nothing here knows LINE or Telegram: a channel supplies an `InboxAdapter`.

Several processes share one inbox. A row is worked on under a lease (`owner`,
`claimed_until`) that its process renews while it works; a process that answers its own
webhooks takes the lease when it inserts the row, and every answering process runs a pump
that claims unowned or expired rows (`FOR UPDATE SKIP LOCKED` on PostgreSQL, claims
serialised by an advisory lock so a person's events never run out of order in two
processes). A SIGKILLed process's rows are so answered by the others once its lease runs
out, not only at someone's next start-up. A web process can also only accept
(`answer=False`) and leave all answering to `python -m bot answer` processes.

Per-person order holds on every path: an event is answered only when it is its person's
oldest unanswered one, or the one after an event this same process is answering. Whoever
holds the older one (a live process, a dead one whose lease has not run out, nobody while a
failed try waits out its pause), a newer event waits in the table for the pump.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import (
    ColumnElement,
    Executable,
    and_,
    bindparam,
    exists,
    false,
    literal_column,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from bot.channels.payload import without_nul
from bot.engine import Engine
from bot.logs import request_id
from bot.messages import Incoming, Reply, reply_from_dict, reply_to_dict
from bot.storage.models import WebhookInbox

log = logging.getLogger(__name__)

ACCEPTED, PROCESSED, SENT, FAILED = "accepted", "processed", "sent", "failed"
# After this many failed tries a row is left `failed` for staff instead of retried forever.
MAX_ATTEMPTS = 5
# Engine runs at once per process: more only queue on the database pool (and on SQLite's
# single writer) while holding memory; fewer would leave the platform's replies waiting.
CONCURRENCY = 16
SQLITE_CONCURRENCY = 4
OPEN = (ACCEPTED, PROCESSED)
# How long a claim holds without renewal: a killed process's events wait at most this long
# (plus one poll) before another process answers them. Renewed every LEASE/3 while working.
LEASE = timedelta(seconds=10)
# An idle pump looks for work this often; a busy one claims again as soon as it has room.
POLL_SECONDS = 0.2
# While a process holds rows it claims only once there is room for a batch (half its slots)
# and looks for that room this often. Claims are serialised across processes and each one
# reads the open rows: claiming one row per answered event was most of PostgreSQL's work.
HELD_POLL_SECONDS = 0.02
# A failed try waits 2, 4, 8... seconds (at most this) before any process retries it.
MAX_BACKOFF = timedelta(minutes=1)
# Claims are serialised across processes (one short transaction each): "iju-inbx" in ASCII.
CLAIM_LOCK = 0x69_6A_75_2D_69_6E_62_78


def _is_open(table: Any) -> ColumnElement[bool]:
    """status IN ('accepted', 'processed') with the values written into the SQL, not bound:
    PostgreSQL reuses a generic plan for a prepared statement after a few runs, and only
    literal values let that plan use the partial indexes over the open rows (migration 0008)."""
    condition: ColumnElement[bool] = table.status.in_([literal_column(f"'{s}'") for s in OPEN])
    return condition


@functools.cache
def _marking(processed: bool) -> Executable:
    """Built once: every answered event runs it (building it each time cost more CPU than
    the round trip)."""
    w = WebhookInbox
    values: dict[str, Any] = {
        "status": bindparam("new_status"),
        "claimed_until": bindparam("until", type_=w.claimed_until.type),
    }
    if processed:
        values["replies"] = bindparam("stored", type_=w.replies.type)
        values["processed_at"] = bindparam("at", type_=w.processed_at.type)
    return update(w).where(w.id == bindparam("row_id"), w.owner == bindparam("me")).values(**values)


class LeaseLost(Exception):
    """Another process claimed this row after this one's lease ran out."""


def process_owner() -> str:
    """This process's name in `owner`: readable in the table, unique across restarts."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class InboxItem:
    """One inbox row's work: its event, and once the engine has run, the replies to send.
    (Not the outbox's `Delivery`: that is a message the bot starts, this one answers.)"""

    row_id: int
    event_id: str
    payload: dict[str, Any]
    replies: list[Reply]
    attempts: int
    # The replies were stored by an earlier run, which may have sent them before it died
    # or failed: the adapter must not let them reach the person a second time.
    resend: bool = False


# What an adapter makes of an event: the engine's business, replies of its own, or nothing.
Meaning = Incoming | list[Reply] | None


class InboxAdapter(Protocol):
    channel: str

    def interpret(self, payload: dict[str, Any]) -> Meaning:
        """Turn a stored platform event into an Incoming (or direct replies, or None)."""
        ...

    def queue_key(self, payload: dict[str, Any]) -> str:
        """Events with the same key are handled one after another (normally: the person)."""
        ...

    async def prepare(self, incoming: Incoming, payload: dict[str, Any]) -> Incoming:
        """Last platform work before the engine (e.g. acknowledge a button press)."""
        ...

    async def deliver(self, item: InboxItem) -> None:
        """Send the replies; raise to have the row retried later."""
        ...


def replies_to_json(replies: Iterable[Reply]) -> list[dict[str, Any]]:
    return [reply_to_dict(r) for r in replies]


def replies_from_json(data: Iterable[dict[str, Any]] | None) -> list[Reply]:
    return [reply_from_dict(r) for r in data or ()]


class Inbox:
    """Durable accept, ordered background processing, and start-up recovery for one channel."""

    def __init__(
        self,
        adapter: InboxAdapter,
        sessions: async_sessionmaker[AsyncSession],
        engine: Engine,
        *,
        clock: Callable[[], datetime],
        concurrency: int = CONCURRENCY,
        answer: bool = True,
        owner: str | None = None,
        lease: timedelta = LEASE,
    ) -> None:
        self.adapter = adapter
        self.channel = adapter.channel
        self.sessions = sessions
        self.engine = engine
        self.clock = clock
        # False: this process only accepts (a web process beside `answer` processes).
        self.answer = answer
        self.owner = owner or process_owner()
        self.lease = lease
        self._held: set[int] = set()  # rows this process works on, under its lease
        self._pump_task: asyncio.Task[None] | None = None
        self._renewed = 0.0
        self._tasks: set[asyncio.Task[bool]] = set()
        self._tails: dict[str, asyncio.Task[bool]] = {}
        # Event id -> the webhook request that brought it: a group commit schedules other
        # requests' events, whose tasks would otherwise log under the flusher's request id.
        self._request_ids: dict[str, str | None] = {}
        # SQLite has one writer: concurrent write transactions only meet in its busy handler,
        # whose growing sleeps pushed webhook answers past LINE's 2 s. Taking turns here
        # keeps every wait short; PostgreSQL writes concurrently and needs no lock. Few
        # workers on SQLite, so a webhook's insert never queues behind many engine turns.
        bind = sessions.kw.get("bind")
        single_writer = bind is not None and bind.dialect.name == "sqlite"
        self._postgres = bind is not None and bind.dialect.name == "postgresql"
        self._writer: asyncio.Lock | None = asyncio.Lock() if single_writer else None
        self._concurrency = min(concurrency, SQLITE_CONCURRENCY) if single_writer else concurrency
        self._slots = asyncio.Semaphore(self._concurrency)
        # Group commit: accepts and "sent" marks that arrive while a transaction runs are
        # written together in the next one (one commit for many webhooks under load).
        self._accepts: list[tuple[dict[str, dict[str, Any]], asyncio.Future[int]]] = []
        self._sent: list[tuple[int, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    def _writing(self) -> contextlib.AbstractAsyncContextManager[Any]:
        return self._writer if self._writer is not None else contextlib.nullcontext()

    # --- accepting ----------------------------------------------------------------------
    async def accept(self, events: list[tuple[str, dict[str, Any]]]) -> int:
        """Store the events not seen before and queue them; return how many were new.
        Returns only after the rows are committed, so answering 200 after it is safe."""
        unique: dict[str, dict[str, Any]] = {}
        for event_id, payload in events:
            unique.setdefault(event_id, without_nul(payload))
        if not unique:
            return 0
        self._request_ids.update(dict.fromkeys(unique, request_id.get()))
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._accepts.append((unique, done))
        self._kick()
        return await done

    def _kick(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name=f"{self.channel}-inbox-flush")

    async def _flush(self) -> None:
        """Write everything waiting (new events, sent marks) in one transaction, repeat."""
        while self._accepts or self._sent:
            batch, self._accepts = self._accepts, []
            sent, self._sent = self._sent, []
            wanted: dict[str, dict[str, Any]] = {}
            for unique, _ in batch:
                for event_id, payload in unique.items():
                    wanted.setdefault(event_id, payload)
            try:
                rows = await self._insert(wanted, [row_id for row_id, _ in sent])
            except Exception as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                if sent:  # still `processed`: whoever takes the row over sends them again
                    log.error("%s: could not mark %d sent (%s)", self.channel, len(sent),
                              type(exc).__name__)  # fmt: skip
                continue
            finally:
                for _, marked in sent:  # the senders waiting for their mark go on
                    if not marked.done():
                        marked.set_result(None)
            new = {event_id: row_id for row_id, event_id, _, _ in rows}
            for row_id, event_id, payload, answer_now in rows:
                if answer_now:  # else an `answer` process (or this one's pump) claims it
                    self._schedule(InboxItem(row_id, event_id, payload, [], 0), ACCEPTED)
            claimed: set[str] = set()
            for unique, done in batch:
                mine = [e for e in unique if e in new and e not in claimed]
                claimed.update(mine)
                if len(mine) < len(unique):
                    log.info("%s: dropped %d duplicate event(s)", self.channel,
                             len(unique) - len(mine))  # fmt: skip
                if not done.done():
                    done.set_result(len(mine))
        self._request_ids.clear()  # every accepted batch is handled: the rest were duplicates

    async def _insert(
        self, unique: dict[str, dict[str, Any]], sent: list[int]
    ) -> list[tuple[int, str, dict[str, Any], bool]]:
        for _attempt in range(3):
            try:
                async with self._writing():
                    return await self._insert_once(unique, sent)
            except IntegrityError:
                # Another process took one of these events at the same moment: look again.
                log.info("%s: concurrent duplicate delivery, re-checking", self.channel)
        raise RuntimeError("webhook inbox insert kept conflicting")

    async def _insert_once(
        self, unique: dict[str, dict[str, Any]], sent: list[int]
    ) -> list[tuple[int, str, dict[str, Any], bool]]:
        """Store the new events; each comes back with whether this process answers it now
        (True) or leaves it for the pump's claims (False)."""
        now = self.clock()
        async with self.sessions() as session, session.begin():
            if self.answer and self._postgres and unique:
                # Taken with the claims' lock: two answering processes accepting one
                # person's events at the same moment each see the other's committed row.
                await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": CLAIM_LOCK})
            if sent:
                await session.execute(
                    update(WebhookInbox)
                    .where(WebhookInbox.id.in_(sent))
                    .values(status=SENT, sent_at=now, owner=None, claimed_until=None)
                )
            if not unique:
                return []
            seen = set(
                await session.scalars(
                    select(WebhookInbox.event_id).where(
                        WebhookInbox.channel == self.channel,
                        WebhookInbox.event_id.in_(list(unique)),
                    )
                )
            )
            keys = {
                event_id: self._key(event_id, payload)[:128]
                for event_id, payload in unique.items()
                if event_id not in seen
            }
            waiting = (
                await self._waiting_people(session, set(keys.values())) if self.answer else set()
            )
            fresh = [
                WebhookInbox(
                    channel=self.channel,
                    event_id=event_id,
                    payload=payload,
                    status=ACCEPTED,
                    attempts=0,
                    received_at=now,
                    queue_key=keys[event_id],
                    # Answered here: the row is ours from the start, so no pump elsewhere
                    # takes it. Not when an earlier event of the person waits elsewhere.
                    owner=self.owner if mine else None,
                    claimed_until=now + self.lease if mine else None,
                )
                for event_id, payload in unique.items()
                if event_id in keys
                for mine in [self.answer and keys[event_id] not in waiting]
            ]
            session.add_all(fresh)
            await session.flush()
            if waiting:
                log.info("%s: event(s) queued behind an earlier one of the same person",
                         self.channel)  # fmt: skip
            return [(row.id, row.event_id, row.payload, row.owner is not None) for row in fresh]

    async def _waiting_people(self, session: AsyncSession, keys: set[str]) -> set[str]:
        """Which of these people have an unanswered event this process is not working on
        (held by another process, alive or dead, or by nobody): their new events must wait
        their turn in the table. Events this process works on are ordered here (`_tails`)."""
        if not keys:
            return set()
        w = WebhookInbox
        query = select(w.queue_key).where(
            w.channel == self.channel, _is_open(w), w.queue_key.in_(list(keys))
        )
        if self._held:
            query = query.where(w.id.not_in(list(self._held)))
        return set(await session.scalars(query.distinct()))

    # --- background work ----------------------------------------------------------------
    def _key(self, event_id: str, payload: dict[str, Any]) -> str:
        try:
            return self.adapter.queue_key(payload) or f"event:{event_id}"
        except Exception:  # a malformed payload still gets processed, just not ordered
            return f"event:{event_id}"

    def _schedule(self, item: InboxItem, status: str) -> None:
        key = self._key(item.event_id, item.payload)
        self._held.add(item.row_id)
        previous = self._tails.get(key)
        rid = self._request_ids.pop(item.event_id, None)

        async def run() -> bool:
            request_id.set(rid)  # this task's own context copy
            if previous is not None:
                await asyncio.wait([previous])  # keep the person's order; never raises
                if not previous.cancelled() and (previous.exception() or not previous.result()):
                    # The earlier event failed and waits out its pause in the table: this
                    # one must not overtake it. Back to the table, behind it, for the pump.
                    with contextlib.suppress(Exception):  # else its lease runs out
                        await self._let_go([item.row_id])
                    return False
            async with self._slots:
                return await self._work(item, status)

        task = asyncio.create_task(run(), name=f"{self.channel}-inbox-{item.row_id}")
        self._tasks.add(task)
        self._tails[key] = task

        def done(t: asyncio.Task[bool]) -> None:
            self._tasks.discard(t)
            if not t.cancelled():  # cancelled at shutdown: still ours for release()
                self._held.discard(item.row_id)
            if self._tails.get(key) is t:
                del self._tails[key]

        task.add_done_callback(done)

    async def _work(self, item: InboxItem, status: str) -> bool:
        """Answer one row; whether it is done with (answered, or left to its new holder)."""
        try:
            ready: InboxItem | None = item
            if status == ACCEPTED:
                ready = await self._process(item)
            elif not await self._still_mine(item.row_id):
                raise LeaseLost
            else:
                ready = dataclasses.replace(item, resend=True)
            if ready is not None:
                await self._send(ready)
            return True
        except asyncio.CancelledError:
            raise  # shutting down: the row stays as it is and recover() picks it up
        except LeaseLost:
            # This process was too slow to renew (starved of CPU) and another one claimed
            # the row: it answers, this one must neither send nor touch the row.
            log.warning("%s: event %s was taken over by another process", self.channel,
                        item.row_id)  # fmt: skip
            return False
        except Exception as exc:
            # Only the exception's type: its text may quote the person's message or a token.
            log.error(
                "%s: event %s failed (%s); will retry after a pause",
                self.channel,
                item.row_id,
                type(exc).__name__,
            )
            await self._failed(item.row_id)
            return False

    async def _process(self, item: InboxItem) -> InboxItem | None:
        """Run the engine (or take the adapter's own replies); None when nothing is to send."""
        meaning = self.adapter.interpret(item.payload)
        stored: list[Reply] | None = None
        if isinstance(meaning, Incoming):
            meaning = await self.adapter.prepare(meaning, item.payload)

            async def keep(session: AsyncSession, replies: list[Reply]) -> None:
                nonlocal stored
                stored = replies
                await self._mark(session, item.row_id, PROCESSED, replies)

            async with self._writing():
                await self.engine.handle(meaning, on_replies=keep)
            # `keep` not called: the engine had seen this event id (a copy that bypassed the
            # inbox's own check); it has nothing to say a second time.
        elif meaning:
            stored = meaning
            async with self._writing(), self.sessions() as session, session.begin():
                await self._mark(session, item.row_id, PROCESSED, stored)
        if not stored:
            await self._mark_sent(item.row_id)
            return None
        return InboxItem(item.row_id, item.event_id, item.payload, stored, item.attempts)

    async def _send(self, item: InboxItem) -> None:
        await self.adapter.deliver(item)
        await self._mark_sent(item.row_id)

    async def _mark_sent(self, row_id: int) -> None:
        """Return once the row is `sent` in the database (the next group commit, a few
        milliseconds): only then does the person's next event go out, so a crash can send
        again at most the replies in flight, never ones that went out before them."""
        marked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sent.append((row_id, marked))
        self._kick()
        await marked

    async def _mark(
        self, session: AsyncSession, row_id: int, status: str, replies: list[Reply] | None
    ) -> None:
        params: dict[str, Any] = {"row_id": row_id, "me": self.owner, "new_status": status,
                                  "until": self.clock() + self.lease}  # fmt: skip
        if status == PROCESSED:
            params["stored"] = replies_to_json(replies or [])
            params["at"] = self.clock()
        # Only while the row is still ours: else the engine's transaction rolls back and the
        # process holding the row now answers (once). The lease is renewed for the send.
        result = await session.execute(_marking(status == PROCESSED), params)
        if not getattr(result, "rowcount", 1):
            raise LeaseLost

    async def _still_mine(self, row_id: int) -> bool:
        """Renew one row's lease if this process still holds it (before sending stored
        replies): a row another process took over is left to that process."""
        async with self._writing(), self.sessions() as session, session.begin():
            result = await session.execute(
                update(WebhookInbox)
                .where(WebhookInbox.id == row_id, WebhookInbox.owner == self.owner)
                .values(claimed_until=self.clock() + self.lease)
            )
        return bool(getattr(result, "rowcount", 1))

    async def _failed(self, row_id: int) -> None:
        try:
            async with self._writing(), self.sessions() as session, session.begin():
                row = await session.get(WebhookInbox, row_id)
                if row is None or row.owner not in (self.owner, None):
                    return  # another process holds it now: its try, not ours
                row.attempts += 1
                # Let go, with a growing pause before any process (this one too) retries.
                row.owner = None
                row.claimed_until = self.clock() + min(
                    timedelta(seconds=2**row.attempts), MAX_BACKOFF
                )
                if row.attempts >= MAX_ATTEMPTS:
                    row.status = FAILED
                    log.error("%s: event %s given up after %d tries", self.channel, row_id,
                              row.attempts)  # fmt: skip
        except Exception as exc:  # the database itself is down: recovery will see the row
            log.error("%s: could not count a failed try (%s)", self.channel, type(exc).__name__)

    # --- sharing the work between processes ------------------------------------------------
    async def claim(self, limit: int | None = None, *, startup: bool = False) -> int:
        """Take up to `limit` open rows nobody holds (oldest first) and queue them here;
        return how many. A row waits while an earlier event of the same person is open,
        whoever holds it (a live process, a dead one, nobody during a failed try's pause),
        so a person is answered in order even across processes. At start-up
        rows let go after a failure are retried at once, and on SQLite (one process by
        the project's rules) every open row is this process's: the previous one is gone."""
        now = self.clock()
        w = WebhookInbox
        earlier = aliased(WebhookInbox)
        single = self._writer is not None
        free = or_(w.claimed_until.is_(None), w.claimed_until < now)
        if startup:
            free = or_(free, w.owner.is_(None), true() if single else false())
        # On SQLite at start-up nothing is held by anyone else: no order check needed.
        in_order = (
            true()
            if startup and single
            else ~exists().where(
                earlier.channel == w.channel,
                earlier.queue_key == w.queue_key,
                earlier.id < w.id,
                _is_open(earlier),
            )
        )
        query = (
            select(w.id, w.event_id, w.payload, w.status, w.replies, w.attempts)
            .where(
                and_(w.channel == self.channel, _is_open(w), free, in_order),
                w.id.not_in(self._held) if self._held else true(),
            )
            .order_by(w.id)
            .limit(limit)
            .with_for_update(of=w, skip_locked=True)
        )
        async with self._writing(), self.sessions() as session, session.begin():
            if self._postgres:
                # One claim at a time across processes: the "earlier event held" check then
                # sees every committed claim, so two processes never split one person.
                await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": CLAIM_LOCK})
            rows = (await session.execute(query)).all()
            if rows:
                await session.execute(
                    update(w)
                    .where(w.id.in_([r.id for r in rows]))
                    .values(owner=self.owner, claimed_until=now + self.lease)
                )
        for row_id, event_id, payload, status, replies, attempts in rows:
            item = InboxItem(row_id, event_id, payload, replies_from_json(replies), attempts)
            self._schedule(item, status)
        if rows:
            log.info("%s: claimed %d event(s)", self.channel, len(rows))
        return len(rows)

    async def renew(self) -> int:
        """Push this process's leases forward; return how many rows it still holds."""
        held = list(self._held)
        if not held:
            return 0
        async with self._writing(), self.sessions() as session, session.begin():
            result = await session.execute(
                update(WebhookInbox)
                .where(WebhookInbox.id.in_(held), WebhookInbox.owner == self.owner)
                .values(claimed_until=self.clock() + self.lease)
            )
        return int(getattr(result, "rowcount", 0) or 0)

    async def release(self) -> None:
        """Let go of rows still held (clean shutdown): others take them at once."""
        await self._let_go(list(self._held))

    async def _let_go(self, held: list[int]) -> None:
        if not held:
            return
        async with self._writing(), self.sessions() as session, session.begin():
            await session.execute(
                update(WebhookInbox)
                .where(
                    WebhookInbox.id.in_(held),
                    WebhookInbox.owner == self.owner,
                    WebhookInbox.status.in_(OPEN),
                )
                .values(owner=None, claimed_until=None)
            )

    def room(self) -> int:
        """How many more rows this process should hold: enough to keep every slot busy,
        few enough that a second process still finds work."""
        return max(0, 2 * self._concurrency - len(self._held))

    async def _renew_due(self) -> None:
        if time.monotonic() - self._renewed > self.lease.total_seconds() / 3:
            await self.renew()
            self._renewed = time.monotonic()

    async def pump_once(self) -> int:
        """One pass of the pump: renew leases (every LEASE/3), claim what fits."""
        await self._renew_due()
        room = self.room()
        return await self.claim(room) if room else 0

    async def _pump(self, poll: float) -> None:
        batch = max(1, self._concurrency // 2)
        while True:
            busy = False
            try:
                if not self._held or self.room() >= batch:
                    busy = await self.pump_once() > 0 and self.room() >= batch
                else:
                    await self._renew_due()
            except Exception as exc:  # database down: keep trying, the rows are safe
                log.warning("%s: inbox pump failed (%s)", self.channel, type(exc).__name__)
            await asyncio.sleep(0 if busy else HELD_POLL_SECONDS if self._held else poll)

    def start(self, poll: float = POLL_SECONDS) -> None:
        """Run the pump in the background until close()."""
        if self._pump_task is None:
            self._pump_task = asyncio.create_task(self._pump(poll), name=f"{self.channel}-pump")

    # --- lifecycle ----------------------------------------------------------------------
    async def recover(self) -> int:
        """At start-up: queue the rows nobody is working on (all of them on SQLite; on
        PostgreSQL what fits, the pump takes the rest); return how many."""
        single = self._writer is not None
        count = await self.claim(None if single else max(self.room(), 1), startup=True)
        if count:
            log.info("%s: recovering %d unfinished event(s)", self.channel, count)
        return count

    async def drain(self) -> None:
        """Wait until every queued event has been handled (tests, shutdown)."""
        while self._tasks or (self._flusher is not None and not self._flusher.done()):
            pending = [*self._tasks, *([self._flusher] if self._flusher else [])]
            await asyncio.gather(*pending, return_exceptions=True)

    async def close(self, grace: float = 5.0) -> None:
        """Finish what is running within `grace` seconds; the rest is let go for others."""
        if self._pump_task is not None:
            self._pump_task.cancel()
            await asyncio.gather(self._pump_task, return_exceptions=True)
            self._pump_task = None
        if self._tasks:
            _done, pending = await asyncio.wait(list(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
                log.warning("%s: %d event(s) left for another process", self.channel,
                            len(pending))  # fmt: skip
        if self._flusher is not None:  # the last "sent" marks
            await asyncio.wait([self._flusher], timeout=grace)
        try:
            await self.release()
        except Exception as exc:  # their leases run out instead
            log.warning("%s: could not let go of held events (%s)", self.channel,
                        type(exc).__name__)  # fmt: skip
