"""A broadcast through the real SDKs against a fake platform that fails some requests (429,
500, an answer lost after LINE accepted), with the worker killed once mid-way: every
recipient gets the announcement exactly once."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from bot.announcements import Segment, create_announcement, history, release_due
from bot.delivery import STUCK_AFTER, Claimed, Courier
from bot.pushers import LinePusher, TelegramPusher
from bot.runtime import Runtime
from bot.storage.models import Announcement
from tests.conftest import Clock
from tests.delivery.helpers import BroadcastFake, Sleeps, add_people, outbox, platform_pushers


class Killed(BaseException):
    """The worker process dying: nothing after this point runs (not even except Exception)."""


@pytest.fixture
def fake() -> Iterator[BroadcastFake]:
    platform = BroadcastFake()
    with platform.running():
        yield platform


@pytest.fixture
async def pushers(fake: BroadcastFake) -> AsyncIterator[tuple[LinePusher, TelegramPusher, Sleeps]]:
    sleeps = Sleeps()
    async with platform_pushers(fake, sleep=sleeps) as (line, telegram):
        yield line, telegram, sleeps


async def start(runtime: Runtime, clock: Clock, segment: Segment | None = None) -> int:
    async with runtime.sessions() as session, session.begin():
        ann = await create_announcement(
            session, staff_id=None, text_ja="空き家見学会のお知らせ", text_en="Vacant house tour",
            link_label="申込", link_url="https://example.jp/t", segment=segment or Segment(),
            send_at=None, now=clock(),
        )  # fmt: skip
        announcement_id = ann.id
    await release_due(runtime.sessions, clock())
    return announcement_id


async def drain(courier: Courier, clock: Clock, rounds: int = 12) -> None:
    """Ticks until the outbox is empty, moving the clock past each backoff (no sleeping)."""
    for _ in range(rounds):
        report = await courier.send_due()
        if report.retried == 0 and report.claimed == 0:
            return
        clock.advance(hours=1)
    raise AssertionError("the outbox did not drain")


async def assert_exactly_once(
    runtime: Runtime, fake: BroadcastFake, announcement_id: int, expected: set[str]
) -> None:
    assert set(fake.received) == expected
    duplicates = {who: n for who, n in fake.received.items() if n != 1}
    assert duplicates == {}
    rows = await outbox(runtime, announcement_id)
    assert {r.status for r in rows} == {"sent"}
    await release_due(runtime.sessions, runtime.clock())  # marks it sent
    async with runtime.sessions() as session:
        (report,) = await history(session)
        ann = await session.get(Announcement, announcement_id)
    assert ann is not None and ann.status == "sent"
    assert (report.delivered, report.failed, report.pending) == (len(expected), 0, 0)


async def test_a_lost_answer_is_retried_and_409_counts_as_delivered(
    runtime: Runtime, clock: Clock, fake: BroadcastFake, pushers: Any
) -> None:
    line, _, sleeps = pushers
    await add_people(runtime, 1100, prefix="U")
    ann = await start(runtime, clock)
    fake.lose_answers = 1  # LINE takes the first multicast, but the answer says 500
    courier = Courier(runtime.sessions, {"line": line}, clock)
    report = await courier.send_due()
    assert (report.sent, report.retried, report.failed) == (3, 0, 0)
    assert fake.conflicts == 1  # the retry under the same key got 409: not delivered twice
    assert len(sleeps) == 1 and 0.25 <= sleeps[0] <= 1.0  # backed off in-process once
    keys = [r.headers["x-line-retry-key"] for r in fake.multicasts()]
    assert len(keys) == 4 and len(set(keys)) == 3
    assert all(len(r.body["to"]) <= 500 for r in fake.multicasts())
    await assert_exactly_once(runtime, fake, ann, {f"line:U-{i}" for i in range(1100)})


class DiesMidSend:
    """The LINE pusher of a worker killed right after its n-th multicast reached LINE, before
    the outbox could record it."""

    def __init__(self, real: LinePusher, n: int) -> None:
        self.real, self.n, self.calls = real, n, 0

    async def multicast(self, recipients: Any, replies: Any, *, retry_key: str) -> None:
        self.calls += 1
        if self.calls > self.n:
            raise Killed
        await self.real.multicast(recipients, replies, retry_key=retry_key)
        if self.calls == self.n:
            raise Killed

    async def push(self, address: str, replies: Any, *, retry_key: str) -> None:
        raise Killed


async def test_line_worker_killed_mid_send_with_429_and_500(
    runtime: Runtime, clock: Clock, fake: BroadcastFake, pushers: Any
) -> None:
    line, _, _ = pushers
    await add_people(runtime, 2600, prefix="U")
    ann = await start(runtime, clock)
    fake.fail_next("/v2/bot/message/multicast", 429)
    fake.fail_next("/v2/bot/message/multicast", 500)
    # One batch fails more often than the in-process retries: it goes back to the outbox.
    for _ in range(5):
        fake.fail_next("/v2/bot/message/multicast", 503)

    doomed = Courier(runtime.sessions, {"line": DiesMidSend(line, 2)}, clock, concurrency=1)
    with pytest.raises(Killed):
        await doomed.send_due()
    stuck = [r.id for r in await outbox(runtime, ann) if r.status == "sending"]
    assert stuck  # claimed by the dead worker, one of them already delivered

    # A new worker: nothing is touched until the stuck rows' grace has passed.
    fresh = Courier(runtime.sessions, {"line": line}, clock)
    await fresh.send_due()
    assert [r.id for r in await outbox(runtime, ann) if r.status == "sending"] == stuck
    clock.advance(seconds=STUCK_AFTER.total_seconds() + 1)
    await drain(fresh, clock)
    assert fake.conflicts >= 1
    await assert_exactly_once(runtime, fake, ann, {f"line:U-{i}" for i in range(2600)})


class DiesAfterClaims(Courier):
    """A worker killed after its n-th claim committed: those rows stay `sending`, unsent.
    Which channel's claim is the n-th depends on how the concurrent lanes interleave, so
    the killing claim is kept for the test to look at."""

    def __init__(self, *args: Any, n: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.n, self.claims = n, 0
        self.killed_with: list[Claimed] = []

    async def _claim(self, channel: str, size: int) -> list[Claimed]:
        if self.claims >= self.n:
            raise Killed
        rows = await super()._claim(channel, size)
        self.claims += bool(rows)
        if self.claims == self.n:
            if rows:  # not an empty claim of another lane that ended after the killing one
                self.killed_with = rows
            raise Killed
        return rows


async def test_mixed_broadcast_killed_after_claims(
    runtime: Runtime, clock: Clock, fake: BroadcastFake, pushers: Any
) -> None:
    line, telegram, sleeps = pushers
    await add_people(runtime, 1200, prefix="U")
    await add_people(runtime, 30, language="en", prefix="E")
    chats = await add_people(runtime, 70, channel="telegram")
    await add_people(runtime, 20, reachable=False, prefix="gone")
    ann = await start(runtime, clock)
    fake.fail_next("/v2/bot/message/multicast", 429)
    fake.fail_next("/v2/bot/message/multicast", 500)
    fake.fail_next("/sendMessage", 429, {
        "ok": False, "error_code": 429, "description": "Too Many Requests: retry after 2",
        "parameters": {"retry_after": 2},
    })  # fmt: skip
    fake.fail_next("/sendMessage", 429, {
        "ok": False, "error_code": 429, "description": "Too Many Requests: retry after 40",
        "parameters": {"retry_after": 40},
    })  # fmt: skip
    fake.fail_next("/sendMessage", 500, {"ok": False, "error_code": 500,
                                         "description": "Internal Server Error"})  # fmt: skip
    # One Telegram chat blocked the bot since: skipped and marked unreachable.
    blocked = {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked"}
    fake.fail_next("/sendMessage", 403, blocked)

    pushers_map = {"line": line, "telegram": telegram}
    doomed = DiesAfterClaims(runtime.sessions, pushers_map, clock, n=3)
    with pytest.raises(Killed):
        await doomed.send_due()
    stuck = [r for r in await outbox(runtime, ann) if r.status == "sending"]
    # The killing claim's rows (LINE's or Telegram's, whichever lane claimed third) stay
    # `sending`, and none of their recipients has been sent anything yet.
    killed = doomed.killed_with
    assert killed and {r.id for r in stuck} == {c.id for c in killed}
    unsent = {f"{c.channel}:{who}" for c in killed for who in (c.recipients or [c.address])}
    assert unsent and not unsent & set(fake.received)

    clock.advance(seconds=STUCK_AFTER.total_seconds() + 1)
    await drain(Courier(runtime.sessions, pushers_map, clock), clock)

    assert 2.0 in sleeps  # Telegram's retry_after of 2 s was waited out in-process
    reached = [k for k, n in fake.received.items() if n == 1 and k.startswith("telegram:")]
    assert len(reached) == 69  # the 403 chat got nothing; every other chat exactly once
    rows = await outbox(runtime, ann)
    assert sorted(r.status for r in rows).count("skipped") == 1
    assert {r.status for r in rows} == {"sent", "skipped"}
    expected = (
        {f"line:U-{i}" for i in range(1200)}
        | {f"line:E-{1200 + i}" for i in range(30)}
        | {f"telegram:{100000 + c - 1}" for c in chats}
    )
    blocked_chat = expected - set(fake.received)
    assert len(blocked_chat) == 1
    assert {who: n for who, n in fake.received.items() if n != 1} == {}
    async with runtime.sessions() as session:
        (report,) = await history(session)
    assert (report.recipients, report.delivered, report.skipped) == (1300, 1299, 21)
