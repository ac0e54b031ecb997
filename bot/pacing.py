"""Pacing for the outbox: stay under a platform's rate, overall and per chat.

The overall rate is aiolimiter's leaky bucket with a capacity of one, so calls are spaced
evenly: a bucket of `rate` would let `rate` calls out at once and `rate` more within the
same second, twice what LINE's and Telegram's per-second limits allow. Evenly spaced calls
drift below the rate (every wake-up comes a little late and the bucket never gives that time
back), so a pace may allow a small burst to catch up and cap what any rolling second holds
(`per_second`) instead: that is how Telegram's 30/s is approached without going over.
Everything reads the event loop's clock, so tests drive it with a virtual-time loop instead
of sleeping.

A Pace holds within one process. Several workers on one PostgreSQL database share the
platform's rate through a `SharedRate` as well: each call reserves the next free slot of a
rate kept in the database (bot/storage/pace_slots.py), one slot every 1/rate seconds whoever
asks, so N workers together stay under the rate instead of sending N times it. The embedded
SQLite default runs one process and needs no shared rate.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiolimiter import AsyncLimiter

Then = Callable[[], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]


class SlotBook(Protocol):
    """Where the processes sharing a rate book their slots (the database, or memory)."""

    async def reserve(self, name: str, count: int, interval: float, now: float) -> float:
        """Books `count` slots `interval` seconds apart after every slot booked before, the
        first no earlier than `now`; returns the first one's time (seconds, wall clock)."""
        ...


class MemorySlots:
    """A SlotBook in this process's memory: pacers of one process, and tests."""

    def __init__(self) -> None:
        self._next: dict[str, float] = {}

    async def reserve(self, name: str, count: int, interval: float, now: float) -> float:
        first = max(self._next.get(name, -math.inf), now)
        self._next[name] = first + count * interval
        return first


class SharedRate:
    """One platform rate shared by every process booking in `book`: a call waits for a slot
    of its own, at most `rate` slots a second in all. Slots are booked a few at a time
    (about `block_seconds` of them) so that a fast rate (LINE's 1,900 pushes/s) costs a
    database write every 50 ms, not one per message; a booked slot that has passed unused is
    dropped rather than spent late, so an idle process never comes back with a burst.
    The wall clock (`clock`, seconds) is what the processes agree on; tests inject it."""

    def __init__(
        self,
        name: str,
        rate: float,
        book: SlotBook,
        *,
        block_seconds: float = 0.05,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.name, self.book, self.clock, self.sleep = name, book, clock, sleep
        self.interval = 1.0 / rate
        self.block = max(1, int(rate * block_seconds))
        self._slots: deque[float] = deque()
        self._turn = asyncio.Lock()

    async def take(self) -> None:
        async with self._turn:
            now = self.clock()
            while self._slots and self._slots[0] < now - self.interval:
                self._slots.popleft()  # passed unused: spending it now would bunch calls
            if not self._slots:
                first = await self.book.reserve(self.name, self.block, self.interval, now)
                self._slots.extend(first + i * self.interval for i in range(self.block))
            slot = self._slots.popleft()
            if slot > self.clock():
                await self.sleep(slot - self.clock())


# Per-chat times are pruned once there are this many (a broadcast to 10,000 chats would
# otherwise keep 10,000 of them).
_KEEP_KEYS = 1024


class Pace:
    """Wait before each call so that calls stay under `rate` per second overall and, when
    `per_key_interval` is given, at least that many seconds apart for each key (chat)."""

    def __init__(
        self,
        rate: float,
        *,
        per_key_interval: float | None = None,
        burst: int = 1,
        per_second: int | None = None,
        shared: SharedRate | None = None,
    ) -> None:
        if rate <= 0 or burst < 1 or (per_second is not None and per_second < 1):
            raise ValueError("rate, burst and per_second must be positive")
        self.rate = rate
        self.shared = shared  # the rate across processes, on top of this process's pace
        self.per_key_interval = per_key_interval
        # A burst of 2 lets a call that woke a few milliseconds late be caught up, instead of
        # every such delay lowering the pace; any one second then holds at most rate + 1.
        self._overall = AsyncLimiter(burst, burst / rate)
        self._last: dict[str, float] = {}  # key -> loop time of its last call
        self._busy: dict[str, asyncio.Lock] = {}
        # The loop times of the last `per_second` calls: the oldest must be a second old
        # before another call goes.
        self._recent: deque[float] | None = deque(maxlen=per_second) if per_second else None
        self._turn = asyncio.Lock()

    async def _acquire(self, then: Then | None) -> None:
        if self._recent is None:
            await self._overall.acquire()
            if self.shared is not None:
                await self.shared.take()
            if then is not None:
                await then()
            return
        async with self._turn:  # FIFO: the bucket and the window see calls in one order
            await self._overall.acquire()
            if self.shared is not None:
                await self.shared.take()
            loop = asyncio.get_running_loop()
            if len(self._recent) == self._recent.maxlen:
                free_at = self._recent[0] + 1.0
                if free_at > loop.time():
                    await asyncio.sleep(free_at - loop.time())
            if then is not None:
                # Inside the turn: a slow `then` (a database write) delays the calls behind
                # it instead of letting them leave in a bunch once it is done.
                await then()
            # Counted once `then` is done, when the request leaves: the cap holds for what
            # the platform receives.
            self._recent.append(loop.time())

    async def wait(self, key: str | None = None, *, then: Then | None = None) -> None:
        """Wait for this call's turn. `then` runs once the turn has come, before the next
        call's turn, and counts as part of this call (the request should follow it at once)."""
        if key is None or not self.per_key_interval:
            await self._acquire(then)
            return
        # One call per key at a time, spaced from that key's previous *call*, not from when
        # it joined the queue: the overall turn can come long after the key's own.
        lock = self._busy.setdefault(key, asyncio.Lock())
        async with lock:
            loop = asyncio.get_running_loop()
            ready_at = self._last.get(key, -math.inf) + self.per_key_interval
            if ready_at > loop.time():
                await asyncio.sleep(ready_at - loop.time())
            await self._acquire(then)
            self._last[key] = loop.time()
        if len(self._last) > _KEEP_KEYS:
            self._prune(loop.time())

    def _prune(self, now: float) -> None:
        # A key whose interval has passed and that nobody waits on holds nothing worth keeping.
        assert self.per_key_interval is not None
        for key in [k for k, t in self._last.items() if now - t >= self.per_key_interval]:
            lock = self._busy.get(key)
            if lock is None or not lock.locked():
                self._last.pop(key, None)
                self._busy.pop(key, None)


def unpaced() -> Pace:
    """A pace too fast to matter, for tests that exercise sending rather than pacing."""
    return Pace(1_000_000.0)
