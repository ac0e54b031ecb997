"""The worker process (`python -m bot worker`) SIGKILLed in the middle of an announcement to
LINE and Telegram people, then started again: everyone on LINE gets it exactly once (retry
keys), and nobody on Telegram gets it twice. Telegram has no retry key: the requests that
were on the wire at the kill are not sent again but marked for staff (at-most-once).

The kill point comes from a seeded RNG: FAULT_SEED=<n> replays a run (the seed is printed)."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, update

from bot.announcements import Segment, create_announcement, release_due
from bot.delivery import STUCK_AFTER, UNSURE
from bot.pushers import TelegramPusher
from bot.storage import migrate
from bot.storage.db import create_engine, session_factory
from bot.storage.models import Delivery, Person
from tests.delivery.helpers import BroadcastFake
from tests.faults.processes import BotProcess, wait_for

SEED = int(os.environ.get("FAULT_SEED", "8"))
LINE_PEOPLE = 1500
TELEGRAM_CHATS = 60


@pytest.fixture
def fake() -> Iterator[BroadcastFake]:
    platform = BroadcastFake()
    with platform.running():
        yield platform


async def prepare(database_url: str) -> None:
    engine = create_engine(database_url)
    await migrate.upgrade(engine)
    sessions = session_factory(engine)
    now = datetime.now(UTC)
    people: list[dict[str, Any]] = [
        {"channel": "line", "platform_user_id": f"U{i:032x}", "language": "ja",
         "reachable": True, "created_at": now, "last_seen_at": now}
        for i in range(LINE_PEOPLE)
    ] + [
        {"channel": "telegram", "platform_user_id": str(10_000_000 + i), "language": "ja",
         "reachable": True, "created_at": now, "last_seen_at": now}
        for i in range(TELEGRAM_CHATS)
    ]  # fmt: skip
    async with sessions() as session, session.begin():
        await session.execute(insert(Person), people)
        await create_announcement(
            session, staff_id=None, text_ja="移住フェアのお知らせ", text_en="Migration fair",
            link_label="詳しく", link_url="https://example.jp/fair", segment=Segment(),
            send_at=None, now=now,
        )  # fmt: skip
    await release_due(sessions, now)
    await engine.dispose()


async def outbox(database_url: str) -> list[tuple[str, str, str | None]]:
    engine = create_engine(database_url)
    async with session_factory(engine)() as session:
        rows = await session.execute(select(Delivery.channel, Delivery.status, Delivery.error))
        found = [tuple(r) for r in rows.all()]
    await engine.dispose()
    return found  # type: ignore[return-value]


async def as_if_later(database_url: str) -> None:
    """The restarted worker finds the dead one's rows STUCK_AFTER later (moved in the table,
    since a real worker reads the real clock)."""
    engine = create_engine(database_url)
    async with session_factory(engine)() as session, session.begin():
        await session.execute(
            update(Delivery)
            .where(Delivery.status.in_(("sending", "pushing")))
            .values(not_before=datetime.now(UTC) - STUCK_AFTER * 2)
        )
    await engine.dispose()


async def test_worker_killed_mid_broadcast_sends_nothing_twice(
    database_url: str, fake: BroadcastFake, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    kill_after = rng.randint(5, TELEGRAM_CHATS - 20)  # Telegram messages seen by the fake
    print(f"FAULT_SEED={SEED}: kill after {kill_after} Telegram messages")
    await prepare(database_url)
    worker = BotProcess(["worker", "--every", "0.5"], database_url, fake, tmp_path, "worker")

    def telegram_seen() -> int:
        return sum(1 for k in list(fake.received) if k.startswith("telegram:"))

    async def killed_point() -> bool:
        if not worker.alive():
            raise AssertionError(f"the worker exited\n{worker.tail()}")
        return telegram_seen() >= kill_after

    async def outbox_empty() -> bool:
        return not [
            r for r in await outbox(database_url) if r[1] in ("pending", "sending", "pushing")
        ]

    worker.start()
    try:
        await wait_for("the worker to send", killed_point, 120, worker.log)
        worker.kill()
        seen_at_kill = telegram_seen()
        assert seen_at_kill < TELEGRAM_CHATS, "killed too late to test anything"
        await as_if_later(database_url)
        worker.start()
        await wait_for("the outbox to drain", outbox_empty, 120, worker.log)
    finally:
        worker.stop()

    rows = await outbox(database_url)
    assert {status for _, status, _ in rows} <= {"sent", "failed"}
    unsure = [r for r in rows if r[1] == "failed"]
    assert all(error == UNSURE for _, _, error in unsure)
    assert {channel for channel, _, _ in unsure} <= {"telegram"}
    # At most the rows between their turn and their outcome's commit at the kill: no more
    # than the claimed batches (a handful at 30/s; the window is what the commits take).
    assert len(unsure) <= TelegramPusher.lanes * TelegramPusher.claim_size
    print(f"Telegram: {seen_at_kill} sent before the kill, {len(unsure)} in doubt, not resent")
    # LINE: everyone exactly once. Telegram: nobody twice, everybody not in doubt once.
    line = {k: n for k, n in fake.received.items() if k.startswith("line:")}
    telegram = {k: n for k, n in fake.received.items() if k.startswith("telegram:")}
    assert len(line) == LINE_PEOPLE and set(line.values()) == {1}
    assert set(telegram.values()) == {1}
    assert TELEGRAM_CHATS - len(unsure) <= len(telegram) <= TELEGRAM_CHATS
