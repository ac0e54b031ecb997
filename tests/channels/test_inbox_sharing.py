"""Several processes on one inbox: work shared without double replies, person order kept, a
dead process's events taken over once its lease runs out, failed tries retried by the pump.

Each `Inbox` here stands for one process (its own owner name); they share one database and
one injected clock, so leases expire when the test moves the clock, never by sleeping.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bot.channels.inbox import LEASE, Inbox, InboxItem
from bot.messages import EventKind, Incoming
from bot.runtime import Runtime
from bot.storage.models import WebhookInbox
from bot.web import create_app
from faq.library import FaqLibrary
from tests.channels.conftest import Running, line_body, line_event, platform_settings
from tests.conftest import Clock
from tests.fakes.platform import FakePlatform
from tests.ops.test_health_metrics import sample

_order = itertools.count()


class Recorder:
    """An InboxAdapter for a fake platform: records every send with a global sequence."""

    channel = "line"

    def __init__(self, name: str, sent: list[tuple[int, str, str, str]]) -> None:
        self.name = name
        self.sent = sent  # (sequence, process, person, event id), shared by all processes
        self.hold: asyncio.Event | None = None  # set: this process hangs before the engine
        self.fail_next = 0

    def interpret(self, payload: dict[str, Any]) -> Incoming:
        return Incoming(
            channel="line",
            user_id=payload["user"],
            kind=EventKind.TEXT,
            text=payload["text"],
            event_id=payload["id"],
        )

    def queue_key(self, payload: dict[str, Any]) -> str:
        return str(payload["user"])

    async def prepare(self, incoming: Incoming, payload: dict[str, Any]) -> Incoming:
        if self.hold is not None:
            await self.hold.wait()  # "killed": never gets further
        return incoming

    async def deliver(self, delivery: InboxItem) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("platform down")
        person = delivery.payload["user"]
        self.sent.append((next(_order), self.name, person, delivery.event_id))


def events(people: int, each: int) -> list[tuple[str, dict[str, Any]]]:
    """`each` messages from every one of `people`, interleaved as they would arrive."""
    out = []
    for n in range(each):
        for p in range(people):
            event_id = f"ev-{p}-{n}"
            out.append((event_id, {"id": event_id, "user": f"U{p}", "text": "こんにちは"}))
    return out


@pytest.fixture
async def processes(runtime: Runtime, clock: Clock) -> AsyncIterator[dict[str, Any]]:
    sent: list[tuple[int, str, str, str]] = []
    made: dict[str, Any] = {"sent": sent}
    for name, answer in (("web", False), ("a", True), ("b", True)):
        adapter = Recorder(name, sent)
        made[name] = Inbox(
            adapter, runtime.sessions, runtime.engine, clock=clock, answer=answer, owner=name
        )
        made[f"{name}_adapter"] = adapter
    yield made
    for name in ("web", "a", "b"):
        await made[name].close(grace=0)


async def rows(runtime: Runtime) -> list[WebhookInbox]:
    async with runtime.sessions() as session:
        return list(await session.scalars(select(WebhookInbox).order_by(WebhookInbox.id)))


def assert_once_each_in_person_order(sent: list[tuple[int, str, str, str]], expected: int) -> None:
    ids = [event_id for _, _, _, event_id in sent]
    assert len(ids) == expected and len(set(ids)) == expected, "an event answered twice or never"
    by_person: dict[str, list[int]] = {}
    for _, _, person, event_id in sorted(sent):
        by_person.setdefault(person, []).append(int(event_id.rsplit("-", 1)[1]))
    for person, numbers in by_person.items():
        assert numbers == sorted(numbers), f"{person} answered out of order: {numbers}"


async def test_two_processes_share_the_work_once_each_in_order(
    runtime: Runtime, processes: dict[str, Any]
) -> None:
    web, a, b = processes["web"], processes["a"], processes["b"]
    incoming = events(people=6, each=4)
    assert await web.accept(incoming) == len(incoming)
    await web.drain()
    assert web.room() > 0 and processes["sent"] == []  # the accepting process answers nothing
    # The two answering processes take turns claiming small batches, as their pumps would.
    for _ in range(40):
        claimed = await a.claim(5) + await b.claim(5)
        await asyncio.gather(a.drain(), b.drain())
        if not claimed and all(r.status == "sent" for r in await rows(runtime)):
            break
    sent = processes["sent"]
    assert_once_each_in_person_order(sent, len(incoming))
    assert {process for _, process, _, _ in sent} == {"a", "b"}, "one process did everything"
    assert [r.status for r in await rows(runtime)] == ["sent"] * len(incoming)


async def test_a_dead_process_is_taken_over_when_its_lease_runs_out(
    runtime: Runtime, processes: dict[str, Any], clock: Clock
) -> None:
    a, b = processes["a"], processes["b"]
    processes["a_adapter"].hold = asyncio.Event()  # a accepts, then hangs like a killed process
    incoming = events(people=3, each=2)
    await a.accept(incoming)
    # While a's lease runs, nobody else touches its events; on PostgreSQL (several
    # processes) not even another process's start-up (SQLite runs one process: a new one
    # takes everything at start-up, the old one is gone).
    if runtime.db.dialect.name == "postgresql":
        assert await b.recover() == 0
    clock.advance(seconds=LEASE.total_seconds() - 1)
    assert await b.claim() == 0
    clock.advance(seconds=2)
    # Each person's oldest first; their next once that one is answered (never two of one
    # person at once, even in one process: the first could fail and wait out a pause).
    assert await b.claim() == 3
    await b.drain()
    assert await b.claim() == 3
    await b.drain()
    assert_once_each_in_person_order(processes["sent"], len(incoming))
    assert {process for _, process, _, _ in processes["sent"]} == {"b"}
    assert await a.renew() == 0  # a's leases are gone: it cannot take them back


async def test_a_failed_send_is_retried_by_the_pump_after_a_pause(
    runtime: Runtime, processes: dict[str, Any], clock: Clock
) -> None:
    a = processes["a"]
    processes["a_adapter"].fail_next = 1
    await a.accept(events(people=1, each=2))
    await a.drain()
    [first, second] = await rows(runtime)
    assert (first.status, first.attempts, first.owner) == ("processed", 1, None)
    # The person's second message waits behind the first: answered before it, its answer
    # would come first and their words would land on the wrong step of a form.
    assert (second.status, second.owner) == ("accepted", None)
    assert processes["sent"] == []
    assert await a.pump_once() == 0  # not before its pause
    clock.advance(seconds=3)
    for _ in range(2):  # the first, then the one behind it
        assert await a.pump_once() == 1
        await a.drain()
    assert [r.status for r in await rows(runtime)] == ["sent", "sent"]
    assert_once_each_in_person_order(processes["sent"], 2)


async def test_a_clean_shutdown_lets_go_at_once(
    runtime: Runtime, processes: dict[str, Any]
) -> None:
    a, b = processes["a"], processes["b"]
    processes["a_adapter"].hold = asyncio.Event()
    await a.accept(events(people=2, each=1))
    await a.close(grace=0)  # SIGTERM: the two events are still unanswered
    assert [r.owner for r in await rows(runtime)] == [None, None]
    assert await b.claim() == 2  # no need to wait for a lease to run out
    await b.drain()
    assert sorted(e for _, _, _, e in processes["sent"]) == ["ev-0-0", "ev-1-0"]


async def test_an_accepting_web_process_shows_its_backlog_in_metrics(
    sqlite_url: str, fake: FakePlatform, clock: Clock, faq_library: FaqLibrary
) -> None:
    """WEB_ANSWERS=0: the web process stores and acknowledges, answers nothing itself, and
    /metrics tells the operator how much waits for the answer processes and for how long."""
    settings = platform_settings(sqlite_url, fake)
    app = create_app(settings, clock=clock, migrate_schema=True, library=faq_library, answer=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            running = Running(app, client, settings)
            for _ in range(3):
                res = await running.post_line(line_body(line_event("text_message", clock)))
                assert res.status_code == 200
            await running.drain()
            clock.advance(seconds=42)
            text = (await client.get("/metrics")).text
    assert fake.line_sends() == []
    assert sample(text, "iju_inbox_pending", channel="line", status="accepted") == 3
    assert sample(text, "iju_inbox_pending", channel="telegram", status="accepted") == 0
    assert sample(text, "iju_inbox_oldest_seconds", channel="line") == 42


async def test_a_process_whose_lease_ran_out_leaves_the_event_to_the_new_holder(
    runtime: Runtime, processes: dict[str, Any], clock: Clock
) -> None:
    """A process starved of CPU past its lease: the one that took the row over answers,
    the slow one's engine result is rolled back, and the row is not disturbed."""
    a, b = processes["a"], processes["b"]
    hold = processes["a_adapter"].hold = asyncio.Event()
    await a.accept(events(people=1, each=1))
    clock.advance(seconds=LEASE.total_seconds() + 1)
    b_waits = processes["b_adapter"].hold = asyncio.Event()
    assert await b.claim() == 1
    hold.set()  # a wakes up first and runs the engine on a row that is no longer its own
    await a.drain()
    assert processes["sent"] == []
    [row] = await rows(runtime)
    assert (row.owner, row.status, row.attempts) == ("b", "accepted", 0)
    b_waits.set()
    await b.drain()
    assert [(process, event) for _, process, _, event in processes["sent"]] == [("b", "ev-0-0")]
    assert [r.status for r in await rows(runtime)] == ["sent"]
