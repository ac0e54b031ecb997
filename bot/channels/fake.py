"""A collecting channel for tests: drives the real engine end to end, keeps what it said."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from bot.engine import Engine
from bot.messages import EventKind, Incoming, Reply


@dataclass
class FakeChannel:
    engine: Engine
    user_id: str = "tester"
    channel: str = "test"
    language_hint: str | None = None
    received: list[Reply] = field(default_factory=list)

    async def _send(self, incoming: Incoming) -> list[Reply]:
        replies = await self.engine.handle(incoming)
        self.received.extend(replies)
        return replies

    def _incoming(self, kind: EventKind, **kw: str | None) -> Incoming:
        event_id = kw.pop("event_id", None) or f"{self.user_id}-{uuid.uuid4().hex}"
        return Incoming(
            channel=self.channel,
            user_id=self.user_id,
            kind=kind,
            language_hint=self.language_hint,
            event_id=event_id,
            **kw,  # type: ignore[arg-type]
        )

    async def say(self, text: str, *, event_id: str | None = None) -> list[Reply]:
        return await self._send(self._incoming(EventKind.TEXT, text=text, event_id=event_id))

    async def press(self, value: str) -> list[Reply]:
        return await self._send(self._incoming(EventKind.POSTBACK, postback=value))

    async def follow(self) -> list[Reply]:
        return await self._send(self._incoming(EventKind.FOLLOW))

    async def send(self, kind: EventKind) -> list[Reply]:
        return await self._send(self._incoming(kind))
