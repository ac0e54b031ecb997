"""How many messages the web chat takes from one visitor and from one client address.

Each key (a visitor's cookie, a client address) has an allowance that refills at `per_minute`
and holds at most `burst` messages: a person tapping through a form in a hurry stays well
inside it, a script posting in a loop is told to wait. The web chat is the one channel anyone
can post to without a platform in front (LINE and Telegram bound their own users), and each
message costs a FAQ match and a database transaction shared with the webhooks.

Kept in this process's memory, as one number per key (the generic cell rate algorithm:
the time the allowance will be full again). Why not the `limits` library: its storages read
the wall clock, while every limit here takes the runtime's injected clock so tests move time
by hand, and its memory storage runs a timer thread for expiry. With several web processes a
key gets the allowance once per process; that still bounds the work each process does.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from bot.config import WebChatSettings

# Keys remembered at most; beyond it the longest idle one is forgotten (it had a full
# allowance again long ago, or it gets a fresh one: either way memory stays bounded).
MAX_KEYS = 50_000


class Allowance:
    """At most `burst` messages at once per key, refilled at `per_minute`."""

    def __init__(self, per_minute: int, burst: int, *, max_keys: int = MAX_KEYS) -> None:
        self.interval = 60.0 / per_minute  # seconds one message takes to refill
        self.tolerance = self.interval * (burst - 1)
        self.max_keys = max_keys
        self._full_at: OrderedDict[str, float] = OrderedDict()

    def take(self, key: str, now: datetime) -> float:
        """Spend one message of `key`'s allowance at `now`: 0.0 when taken, else the seconds
        until one is free again (and nothing is spent)."""
        t = now.timestamp()
        full_at = max(self._full_at.pop(key, t), t)
        wait = full_at - t - self.tolerance
        if wait > 0:
            self._full_at[key] = full_at
            return wait
        self._full_at[key] = full_at + self.interval  # most recently used last
        while len(self._full_at) > self.max_keys:
            self._full_at.popitem(last=False)
        return 0.0


@dataclass(frozen=True)
class ChatLimits:
    """The web chat's two allowances: per visitor and per client address."""

    visitor: Allowance
    address: Allowance

    @classmethod
    def from_settings(cls, webchat: WebChatSettings) -> ChatLimits:
        return cls(
            Allowance(webchat.visitor_per_minute, webchat.visitor_burst),
            Allowance(webchat.address_per_minute, webchat.address_burst),
        )

    def wait(self, address: str, visitor: str | None, now: datetime) -> float:
        """Seconds to wait before this message is taken; 0.0 when it is taken now. The
        address pays first, so visitors without a cookie (or with new ones) share its
        allowance."""
        wait = self.address.take(address, now)
        if wait == 0.0 and visitor is not None:
            wait = self.visitor.take(visitor, now)
        return wait
