"""Shared steps for sign-up tests: make tours, fill forms, record pushes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.channels.fake import FakeChannel
from bot.messages import Reply
from bot.runtime import Runtime
from bot.storage.tours import NewTour, add_tour


async def make_tour(
    runtime: Runtime,
    now: datetime,
    *,
    kind: str = "experience",
    days_ahead: int = 30,
    capacity: int = 10,
    title: str = "移住体験ツアー",
) -> int:
    start = now + timedelta(days=days_ahead)
    async with runtime.sessions() as session, session.begin():
        tour = await add_tour(
            session,
            NewTour(
                kind, title, "Experience tour", start, start + timedelta(days=3), capacity,
                start - timedelta(days=3), "小諸駅",
            ),
            now,
        )  # fmt: skip
        return tour.id


def values(replies: Sequence[Reply]) -> list[str]:
    return [c.value for r in replies for c in r.choices]


def text(replies: Sequence[Reply]) -> str:
    return "\n".join(r.text for r in replies)


async def fill_individual(
    chan: FakeChannel, tour_id: int, *, adults: str = "2", children: str = "1"
) -> list[Reply]:
    """Answer every step up to the confirmation screen; returns that screen."""
    await chan.say("ツアーに申し込みたい")
    await chan.press(f"form:tour:{tour_id}")
    await chan.say("小諸 花子")
    await chan.say("こもろ はなこ")
    await chan.say("０９０－１２３４－５６７８")
    await chan.press(f"form:{adults}")
    await chan.press(f"form:{children}")
    await chan.say("東京")
    await chan.press("form:telework")
    await chan.press("form:toggle:housing")
    await chan.press("form:toggle:childcare")
    await chan.press("form:done")
    await chan.press("form:none")
    return await chan.press("form:agree")


@dataclass
class RecordingPusher:
    """Stands in for a platform: records what the outbox pushed, can fail on demand."""

    sent: list[tuple[str, list[Reply], str]] = field(default_factory=list)
    fail_with: Exception | None = None

    async def push(self, address: str, replies: Sequence[Reply], *, retry_key: str) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append((address, list(replies), retry_key))
