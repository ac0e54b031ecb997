"""Shared steps for delivery tests: people in bulk, a fake platform that keeps LINE's
retry-key promise and counts what each recipient got, and pushers wired to it."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from linebot.v3.messaging import AsyncApiClient, AsyncMessagingApi, Configuration
from sqlalchemy import insert, select
from telegram import Bot
from telegram.request import HTTPXRequest

from bot.pacing import Pace, unpaced
from bot.pushers import LinePusher, TelegramPusher
from bot.runtime import Runtime
from bot.storage.models import Delivery, Person, Signup
from tests.fakes.platform import FakePlatform, Recorded

TG_TOKEN = "123456:test-token"


async def no_sleep(seconds: float) -> None:
    """Injected instead of asyncio.sleep: tests never wait; backoffs are recorded instead."""


class Sleeps(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


async def add_people(
    runtime: Runtime,
    n: int,
    *,
    channel: str = "line",
    language: str = "ja",
    audience: str = "resident",
    reachable: bool = True,
    created_at: datetime | None = None,
    prefix: str | None = None,
) -> list[int]:
    """Insert n people in one statement; returns their ids in order."""
    tag = prefix or f"{channel}-{language}-{audience}-{reachable}"
    async with runtime.sessions() as session, session.begin():
        start = int(await session.scalar(select(Person.id).order_by(Person.id.desc())) or 0)
        when = created_at or runtime.clock()
        rows = [
            {
                "channel": channel,
                "platform_user_id": f"{tag}-{start + i}" if channel != "telegram"
                else str(100000 + start + i),
                "language": language,
                "audience": audience,
                "reachable": reachable,
                "created_at": when,
                "last_seen_at": when,
            }
            for i in range(n)
        ]  # fmt: skip
        await session.execute(insert(Person), rows)
        ids = await session.scalars(select(Person.id).where(Person.id > start).order_by(Person.id))
        return list(ids)


async def add_signup(
    runtime: Runtime, person_id: int, tour_id: int, *, status: str = "confirmed",
    interests: list[str] | None = None,
) -> None:  # fmt: skip
    async with runtime.sessions() as session, session.begin():
        session.add(
            Signup(
                tour_id=tour_id, person_id=person_id, form_key=f"k-{person_id}-{tour_id}",
                form="individual", status=status, seats=1,
                details={"name": "x", "interests": interests or []}, language="ja",
                created_at=runtime.clock(), updated_at=runtime.clock(),
            )
        )  # fmt: skip


async def outbox(runtime: Runtime, announcement_id: int | None = None) -> list[Delivery]:
    async with runtime.sessions() as session:
        query = select(Delivery).order_by(Delivery.id)
        if announcement_id is not None:
            query = query.where(Delivery.announcement_id == announcement_id)
        return list(await session.scalars(query))


class BroadcastFake(FakePlatform):
    """The shared fake platform, plus what a broadcast test needs: LINE answers 409 to a
    retry key it accepted before (as LINE does), and every delivery is counted per
    recipient. `lose_answers` makes LINE accept a multicast but answer 500, as when the
    answer is lost on the way back."""

    def __init__(self) -> None:
        super().__init__()
        self.accepted: set[str] = set()
        self.received: Counter[str] = Counter()
        self.lose_answers = 0
        self.conflicts = 0

    def _answer(self, rec: Recorded) -> tuple[int, Any]:
        path = rec.path.split("?")[0]
        if path == "/v2/bot/message/multicast":
            key = rec.headers.get("x-line-retry-key", "")
            with self._lock:
                if key and key in self.accepted:
                    self.conflicts += 1
                    return 409, {"message": "The retry key is already accepted"}
                self.accepted.add(key)
                for user in rec.body["to"]:
                    self.received[f"line:{user}"] += 1
                if self.lose_answers > 0:
                    self.lose_answers -= 1
                    return 500, {"message": "answer lost"}
            return 200, {}
        if path.startswith("/bot") and rec.tg_method == "sendMessage":
            with self._lock:
                self.received[f"telegram:{rec.body['chat_id']}"] += 1
        return super()._answer(rec)

    def multicasts(self) -> list[Recorded]:
        return [r for r in self.requests if r.path == "/v2/bot/message/multicast"]


@asynccontextmanager
async def platform_pushers(
    fake: FakePlatform, *, sleep: Any = no_sleep, pace: Pace | None = None
) -> AsyncIterator[tuple[LinePusher, TelegramPusher]]:
    """The real SDK clients pointed at the fake, unpaced unless a pace is given."""
    client = AsyncApiClient(Configuration(host=fake.url, access_token="line-test-token"))
    # A pool as wide as the courier's concurrency (Bot's own default is one connection).
    request = HTTPXRequest(connection_pool_size=32)
    bot = Bot(TG_TOKEN, base_url=f"{fake.url}/bot", request=request)
    await bot.initialize()
    try:
        line = LinePusher(
            AsyncMessagingApi(client),
            multicast_pace=pace or unpaced(),
            push_pace=pace or unpaced(),
            sleep=sleep,
        )
        yield line, TelegramPusher(bot, pace=pace or unpaced(), sleep=sleep)
    finally:
        await bot.shutdown()
        await client.close()


class RecordingPlatform:
    """Stands in for LINE or Telegram without HTTP: records pushes and multicasts."""

    def __init__(self) -> None:
        self.pushes: list[tuple[str, list[Any], str]] = []
        self.multicasts: list[tuple[list[str], list[Any], str]] = []

    async def push(self, address: str, replies: Any, *, retry_key: str) -> None:
        self.pushes.append((address, list(replies), retry_key))

    async def multicast(self, recipients: Any, replies: Any, *, retry_key: str) -> None:
        self.multicasts.append((list(recipients), list(replies), retry_key))

    def people(self) -> Counter[str]:
        got: Counter[str] = Counter(a for a, _, _ in self.pushes)
        for ids, _, _ in self.multicasts:
            got.update(ids)
        return got
