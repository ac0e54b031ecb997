"""The platforms failing under a broadcast, through the real SDKs against the fake platform:
429 with Retry-After, 500, answers that never come, and the worker dying with Telegram
requests in flight. Nothing is lost, and nobody gets a message twice."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import pytest
from telegram import Bot
from telegram.request import HTTPXRequest

from bot import pushers as pushers_module
from bot.announcements import history
from bot.delivery import STUCK_AFTER, UNSURE, BeforeSend, Courier
from bot.messages import Reply
from bot.pacing import unpaced
from bot.pushers import LinePusher, TelegramPusher
from bot.runtime import Runtime
from tests.conftest import Clock
from tests.delivery.helpers import (
    TG_TOKEN,
    BroadcastFake,
    Sleeps,
    add_people,
    no_sleep,
    outbox,
    platform_pushers,
)
from tests.delivery.test_broadcast import drain, start
from tests.fakes.platform import Recorded


class SlowFake(BroadcastFake):
    """Takes the next `slow` matching requests, then answers them too late for the client
    (it has already given up), as when the answer is lost on the way back."""

    def __init__(self) -> None:
        super().__init__()
        self.slow: dict[str, int] = {}
        self.delay = 0.5

    def _answer(self, rec: Recorded) -> tuple[int, Any]:
        answer = super()._answer(rec)  # accepted (and counted) before the answer is late
        path = rec.path.split("?")[0]
        for suffix, left in list(self.slow.items()):
            if path.endswith(suffix) and left > 0:
                self.slow[suffix] = left - 1
                # A real sleep in the fake's own thread: the client's timeout is what is
                # tested, and only a late answer can trigger it.
                threading.Event().wait(self.delay)
        return answer


@pytest.fixture
def fake() -> Iterator[SlowFake]:
    platform = SlowFake()
    with platform.running():
        yield platform


@pytest.fixture
async def pushers(fake: SlowFake) -> AsyncIterator[tuple[LinePusher, TelegramPusher, Sleeps]]:
    sleeps = Sleeps()
    async with platform_pushers(fake, sleep=sleeps) as (line, telegram):
        yield line, telegram, sleeps


def too_many(after: int) -> dict[str, Any]:
    return {"ok": False, "error_code": 429, "parameters": {"retry_after": after},
            "description": f"Too Many Requests: retry after {after}"}  # fmt: skip


async def test_line_429_500_and_a_lost_answer_deliver_everyone_once(
    runtime: Runtime, clock: Clock, fake: SlowFake, pushers: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    line, _, sleeps = pushers
    monkeypatch.setattr(pushers_module, "TIMEOUT", 0.1)
    await add_people(runtime, 1600, prefix="U")
    ann = await start(runtime, clock)
    fake.fail_next("/v2/bot/message/multicast", 429)
    fake.fail_next("/v2/bot/message/multicast", 500)
    fake.slow["/v2/bot/message/multicast"] = 1  # LINE took it, the answer timed out
    await drain(Courier(runtime.sessions, {"line": line}, clock, concurrency=1), clock)

    multicasts = fake.multicasts()
    keys = [r.headers["x-line-retry-key"] for r in multicasts]
    assert len(multicasts) == 4 + 3  # four batches; three retried in-process
    assert len(set(keys)) == 4  # each retry went under its batch's own key
    assert fake.conflicts == 1  # the retry after the lost answer got 409, not a 2nd delivery
    assert (len(sleeps) == 3 and sleeps == sorted(sleeps)) or all(s > 0 for s in sleeps)
    assert set(fake.received.values()) == {1} and len(fake.received) == 1600
    assert {r.status for r in await outbox(runtime, ann)} == {"sent"}


async def test_telegram_429_waits_the_platforms_word_and_500_is_retried(
    runtime: Runtime, clock: Clock, fake: SlowFake, pushers: Any
) -> None:
    _, telegram, sleeps = pushers
    await add_people(runtime, 25, channel="telegram")
    ann = await start(runtime, clock)
    fake.fail_next("/sendMessage", 429, too_many(3))
    fake.fail_next("/sendMessage", 429, too_many(90))  # too long to wait in-process
    fake.fail_next("/sendMessage", 500, {"ok": False, "error_code": 500, "description": "x"})
    courier = Courier(runtime.sessions, {"telegram": telegram}, clock, concurrency=1)
    first = await courier.send_due()
    assert 3.0 in sleeps  # Retry-After of 3 s waited out in-process, exactly
    assert first.retried == 2  # the 90 s one and the 500 went back to the outbox
    delayed = [r for r in await outbox(runtime, ann) if r.status == "pending"]
    assert sorted((r.not_before - clock()).total_seconds() for r in delayed) == [30.0, 90.0]
    clock.advance(seconds=90)
    await drain(courier, clock)
    assert set(fake.received.values()) == {1} and len(fake.received) == 25
    assert {r.status for r in await outbox(runtime, ann)} == {"sent"}


async def test_telegram_read_timeout_is_not_resent(
    runtime: Runtime, clock: Clock, fake: SlowFake
) -> None:
    """Telegram has no retry key: a request that went out and got no answer may have arrived.
    It is marked for staff (at-most-once) rather than risk a second copy."""
    bot = Bot(TG_TOKEN, base_url=f"{fake.url}/bot", request=HTTPXRequest(read_timeout=0.1))
    await bot.initialize()
    await add_people(runtime, 5, channel="telegram")
    ann = await start(runtime, clock)
    fake.slow["/sendMessage"] = 1
    try:
        telegram = TelegramPusher(bot, pace=unpaced(), sleep=no_sleep)
        await drain(Courier(runtime.sessions, {"telegram": telegram}, clock), clock)
    finally:
        await bot.shutdown()
    rows = await outbox(runtime, ann)
    assert sorted(r.status for r in rows) == ["failed", "sent", "sent", "sent", "sent"]
    assert [r.error for r in rows if r.status == "failed"] == [UNSURE]
    assert set(fake.received.values()) == {1} and len(fake.received) == 5


class DiesInFlight:
    """The Telegram pusher of a worker that dies while its n-th request is on the wire:
    Telegram got it, the answer never reaches the outbox."""

    idempotent = False
    claim_size = TelegramPusher.claim_size
    lanes = TelegramPusher.lanes

    def __init__(self, real: TelegramPusher, n: int) -> None:
        self.real, self.n, self.calls = real, n, 0
        self.in_flight = asyncio.Event()

    async def push(
        self, address: str, replies: Sequence[Reply], *, retry_key: str,
        before_send: BeforeSend | None = None,
    ) -> None:  # fmt: skip
        self.calls += 1
        await self.real.push(address, replies, retry_key=retry_key, before_send=before_send)
        if self.calls >= self.n:
            self.in_flight.set()
            await asyncio.Event().wait()  # the answer never comes: the process is gone


async def test_worker_killed_with_telegram_requests_in_flight_sends_nothing_twice(
    runtime: Runtime, clock: Clock, fake: SlowFake, pushers: Any
) -> None:
    _, telegram, _ = pushers
    await add_people(runtime, 60, channel="telegram")
    ann = await start(runtime, clock)
    dying = DiesInFlight(telegram, n=17)
    task = asyncio.create_task(
        Courier(runtime.sessions, {"telegram": dying}, clock, concurrency=1).send_due()
    )
    await dying.in_flight.wait()
    task.cancel()  # the SIGKILL: nothing after this point is written
    with pytest.raises(asyncio.CancelledError):
        await task
    before = dict(fake.received)
    assert len(before) >= 17 - TelegramPusher.lanes  # those the dead worker got out

    clock.advance(seconds=STUCK_AFTER.total_seconds() + 1)
    await drain(Courier(runtime.sessions, {"telegram": telegram}, clock), clock)

    rows = await outbox(runtime, ann)
    unsure = [r for r in rows if r.status == "failed"]
    assert all(r.error == UNSURE for r in unsure)
    # Only the requests on the wire at the kill are in doubt: one per lane at most.
    assert 1 <= len(unsure) <= TelegramPusher.lanes
    assert {r.status for r in rows} == {"sent", "failed"}
    # Nobody got it twice; everyone not in doubt got it exactly once.
    assert set(fake.received.values()) == {1}
    sent_chats = {f"telegram:{r.address}" for r in rows if r.status == "sent"}
    assert sent_chats <= set(fake.received)
    await asyncio.sleep(0)
    async with runtime.sessions() as session:
        (report,) = await history(session)
    assert (report.delivered, report.failed, report.pending) == (60 - len(unsure), len(unsure), 0)
