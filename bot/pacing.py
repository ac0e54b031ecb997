"""Pacing for the outbox: stay under a platform's rate, overall and per chat.

The overall rate is aiolimiter's leaky bucket with a capacity of one, so calls are spaced
evenly: a bucket of `rate` would let `rate` calls out at once and `rate` more within the
same second, twice what LINE's and Telegram's per-second limits allow. Everything reads the
event loop's clock, so tests drive it with a virtual-time loop instead of sleeping.
"""

from __future__ import annotations

import asyncio
import math

from aiolimiter import AsyncLimiter

# Per-chat times are pruned once there are this many (a broadcast to 10,000 chats would
# otherwise keep 10,000 of them).
_KEEP_KEYS = 1024


class Pace:
    """Wait before each call so that calls stay under `rate` per second overall and, when
    `per_key_interval` is given, at least that many seconds apart for each key (chat)."""

    def __init__(
        self, rate: float, *, per_key_interval: float | None = None, burst: int = 1
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate and burst must be positive")
        self.rate = rate
        self.per_key_interval = per_key_interval
        # A burst of 2 lets a call that woke a few milliseconds late be caught up, instead of
        # every such delay lowering the pace; any one second then holds at most rate + 1.
        self._overall = AsyncLimiter(burst, burst / rate)
        self._last: dict[str, float] = {}  # key -> loop time of its last call
        self._busy: dict[str, asyncio.Lock] = {}

    async def wait(self, key: str | None = None) -> None:
        if key is None or not self.per_key_interval:
            await self._overall.acquire()
            return
        # One call per key at a time, spaced from that key's previous *call*, not from when
        # it joined the queue: the overall turn can come long after the key's own.
        lock = self._busy.setdefault(key, asyncio.Lock())
        async with lock:
            loop = asyncio.get_running_loop()
            ready_at = self._last.get(key, -math.inf) + self.per_key_interval
            if ready_at > loop.time():
                await asyncio.sleep(ready_at - loop.time())
            await self._overall.acquire()
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
