"""Pacing across processes (issue 15, defect 11): with N workers each pacing itself,
Telegram got N x 30 messages a second. Workers now book their send slots in one shared
book (the database on PostgreSQL), so together they stay under the platform's rate.

The pacers run on virtual time (tests/delivery/test_pacing.py's loop: its clock jumps to
the next timer) with the loop's clock injected as the wall clock, so nothing sleeps."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable

import pytest

from bot.pacing import MemorySlots, Pace, SharedRate, SlotBook
from bot.pushers import TELEGRAM_SHARED_RATE, telegram_pace
from bot.storage import migrate
from bot.storage.db import create_engine, session_factory
from bot.storage.pace_slots import DatabaseSlots
from tests.delivery.test_pacing import on_virtual_time, per_second


def test_two_workers_sharing_telegrams_rate_stay_within_30_a_second() -> None:
    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        book = MemorySlots()  # what both workers' database is to them

        def worker() -> Pace:  # each worker process builds its own pace, as register_pushers does
            return telegram_pace(
                SharedRate("telegram", TELEGRAM_SHARED_RATE, book, clock=loop.time)
            )

        first, second = worker(), worker()
        times: list[float] = []

        async def send(pace: Pace, chat: str) -> None:
            await pace.wait(chat)
            times.append(loop.time())

        await asyncio.gather(
            *(send(first, f"a{n}") for n in range(150)),
            *(send(second, f"b{n}") for n in range(150)),
        )
        return times

    times = on_virtual_time(main)
    assert len(times) == 300
    assert per_second(times) <= 30  # each alone keeps to 30/s: two unshared would send ~60
    # and together they keep the shared pace (28/s: margin for the spread between processes)
    assert max(times) - min(times) <= 300 / TELEGRAM_SHARED_RATE + 0.5


def test_a_worker_back_from_idle_gets_no_catch_up_burst() -> None:
    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        rate = SharedRate("line-push", 100, MemorySlots(), clock=loop.time)
        times: list[float] = []
        for _ in range(20):  # books 5 slots at a time (50 ms of them), uses 20
            await rate.take()
            times.append(loop.time())
        await asyncio.sleep(30)  # idle: the slots booked and left over have passed
        for _ in range(20):
            await rate.take()
            times.append(loop.time())
        return times

    times = on_virtual_time(main)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.01 - 1e-9  # never two calls closer than 1/rate


@pytest.fixture
async def two_books(database_url: str) -> AsyncIterator[tuple[SlotBook, SlotBook]]:
    """Two workers' views of one database: each its own engine (its own connections)."""
    engines = [create_engine(database_url), create_engine(database_url)]
    await migrate.upgrade(engines[0])
    try:
        yield DatabaseSlots(session_factory(engines[0])), DatabaseSlots(session_factory(engines[1]))
    finally:
        for engine in engines:
            await engine.dispose()


async def test_workers_booking_at_once_in_the_database_never_share_a_slot(
    two_books: tuple[SlotBook, SlotBook],
) -> None:
    now, interval = 1_800_000_000.0, 1 / 30
    first, second = two_books

    def booking(book: SlotBook) -> Callable[[], asyncio.Future[float]]:
        return lambda: asyncio.ensure_future(book.reserve("telegram", 1, interval, now))

    slots = await asyncio.gather(*(booking(b)() for _ in range(20) for b in (first, second)))
    # 40 bookings made together, by two processes, at one instant: 40 distinct slots one
    # interval apart, so any second holds 30 of them.
    assert sorted(round((s - now) / interval) for s in slots) == list(range(40))
    assert sum(1 for s in slots if s < now + 1 - 1e-6) == 30  # (float sums: 30 x 1/30 < 1)

    # Blocks of slots, and a rate that has been idle: booking starts from now, not before.
    later = now + 60
    block = await first.reserve("telegram", 5, interval, later)
    assert block == later
    assert await second.reserve("telegram", 1, interval, later) == pytest.approx(
        later + 5 * interval
    )
    # Rates are separate: LINE's push slots do not wait behind Telegram's.
    assert await second.reserve("line-push", 1, 1 / 1900, now) == now
