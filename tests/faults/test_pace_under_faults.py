"""Telegram's pace when things are slow, on virtual time (nothing sleeps for real): the outbox
write that marks a row in flight takes a while (a busy database), sends take a few ms, and
some chats get several messages. The pace still fills at least 95 % of Telegram's 30/s and
never puts more than 30 requests in any second."""

from __future__ import annotations

import asyncio
import random

from bot.pushers import TELEGRAM_PER_CHAT, TELEGRAM_PER_SECOND, TelegramPusher
from tests.delivery.test_pacing import on_virtual_time, per_second


def test_telegram_pace_with_slow_marks_fills_95_percent_and_never_exceeds_30() -> None:
    rng = random.Random(30)

    async def main() -> list[float]:
        pace = TelegramPusher(bot=None).pace  # type: ignore[arg-type]  # the default pace
        loop = asyncio.get_running_loop()
        times: list[float] = []

        async def mark() -> None:  # the `pushing` commit: 0-30 ms, one in 100 takes 200 ms
            await asyncio.sleep(0.2 if rng.random() < 0.01 else rng.uniform(0, 0.03))

        async def one(chat: int) -> None:
            await pace.wait(str(chat), then=mark)
            times.append(loop.time())
            await asyncio.sleep(rng.uniform(0.002, 0.02))  # the request itself

        # 900 messages; every 10th chat gets two (one second apart at least).
        await asyncio.gather(*(one(i if i % 10 else i // 10) for i in range(900)))
        return times

    times = on_virtual_time(main)
    assert per_second(times) <= TELEGRAM_PER_SECOND <= 30
    rate = len(times) / (max(times) - min(times))
    assert rate >= 0.95 * 30, rate
    assert TELEGRAM_PER_CHAT == 1.0
