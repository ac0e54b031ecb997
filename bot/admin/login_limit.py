"""Sign-in attempts per client address: a sliding window kept in this process's memory.

Why memory and not the database: the limit is there to keep one address from spending this
process's CPU on password hashes (and from spraying passwords over many accounts); the
per-account lock-out, which must hold across processes, is already in the database. With
several web processes an address gets the limit once per process, which still bounds the
hashing each process does. Why not the `limits` library: its storages read the wall clock
(the console reads the runtime's injected clock, so tests move time by hand) and its memory
storage runs a timer thread for expiry; a window per address is the few lines below.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from datetime import datetime, timedelta

# Enough addresses to remember every client of a busy console; beyond it the longest idle
# address is forgotten, so a flood from many addresses cannot grow the memory without bound.
MAX_ADDRESSES = 10_000


class AddressLimit:
    """At most `attempts` sign-ins per address within any `window`."""

    def __init__(self, attempts: int, window: timedelta) -> None:
        self.attempts = attempts
        self.window = window
        self._seen: OrderedDict[str, deque[datetime]] = OrderedDict()

    def allow(self, address: str, now: datetime) -> bool:
        """Count an attempt from `address` at `now`; False (and not counted) when over."""
        times = self._seen.pop(address, None) or deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        self._seen[address] = times  # most recently seen last
        if len(times) >= self.attempts:
            return False
        times.append(now)
        while len(self._seen) > MAX_ADDRESSES:
            self._seen.popitem(last=False)
        return True

    def retry_after(self, address: str, now: datetime) -> int:
        """Seconds until `address` may try again (for the Retry-After header)."""
        times = self._seen.get(address)
        if not times or len(times) < self.attempts:
            return 0
        return max(1, math.ceil((times[0] + self.window - now).total_seconds()))
