"""Pacing and backoff on virtual time: the real aiolimiter buckets run on an event loop whose
clock only moves when every task waits, so nothing here sleeps for real."""

from __future__ import annotations

import asyncio
import itertools
import selectors
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import pytest
from linebot.v3.messaging import ApiException

from bot.delivery import RetryLater
from bot.messages import Reply
from bot.pacing import Pace
from bot.pushers import LinePusher, TelegramPusher
from tests.delivery.helpers import Sleeps

T = TypeVar("T")


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose time() jumps to the next timer instead of waiting for it."""

    def __init__(self) -> None:
        super().__init__(selectors.DefaultSelector())
        self.virtual = 0.0
        real_select = self._selector.select  # type: ignore[attr-defined]

        def select(timeout: float | None = None) -> Any:
            if timeout is not None and not self._ready:  # type: ignore[attr-defined]
                # Waiting for a timer: jump to it, and by at least a microsecond as a real
                # clock would move (aiolimiter re-arms a timer due a few ULPs ahead, which
                # would otherwise never come due).
                self.virtual += max(timeout, 1e-6)
            return real_select(0)

        self._selector.select = select  # type: ignore[attr-defined]

    def time(self) -> float:
        return self.virtual


def on_virtual_time(main: Callable[[], Awaitable[T]]) -> T:
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(main())  # type: ignore[arg-type]


def per_second(times: Sequence[float]) -> int:
    """The most calls that fell in any one-second window."""
    ordered = sorted(times)
    return max(sum(1 for t in ordered if s <= t < s + 1 - 1e-9) for s in ordered)


def test_overall_rate_is_never_exceeded() -> None:
    async def main() -> list[float]:
        pace = Pace(29)
        loop = asyncio.get_running_loop()
        times: list[float] = []

        async def one() -> None:
            await pace.wait()
            times.append(loop.time())

        await asyncio.gather(*(one() for _ in range(290)))
        return times

    times = on_virtual_time(main)
    assert per_second(times) <= 29
    assert 9.5 <= max(times) <= 10.1  # and it keeps that pace: 290 calls in about 10 s


def test_telegram_pace_with_its_burst_of_two_stays_within_30() -> None:
    async def main() -> list[float]:
        pace = Pace(29, per_key_interval=1.0, burst=2)
        loop = asyncio.get_running_loop()
        times: list[float] = []

        async def one(chat: int) -> None:
            await pace.wait(str(chat))
            times.append(loop.time())
            await asyncio.sleep(0.003 * (chat % 3))  # a send that takes a few ms

        await asyncio.gather(*(one(i) for i in range(600)))
        return times

    times = on_virtual_time(main)
    assert per_second(times) <= 30
    assert len(times) / max(times) >= 28.5  # at least 95 % of Telegram's 30/s


def test_one_per_second_per_chat_and_30_overall() -> None:
    async def main() -> dict[str, list[float]]:
        pace = Pace(29, per_key_interval=1.0)
        loop = asyncio.get_running_loop()
        sent: dict[str, list[float]] = {}

        async def one(chat: str) -> None:
            await pace.wait(chat)
            sent.setdefault(chat, []).append(loop.time())

        # Three messages for one chat among a crowd of 100 other chats.
        await asyncio.gather(*(one("busy") for _ in range(3)), *(one(f"c{i}") for i in range(100)))
        return sent

    sent = on_virtual_time(main)
    busy = sent["busy"]
    assert all(b - a >= 1.0 - 1e-6 for a, b in itertools.pairwise(busy))
    assert per_second([t for times in sent.values() for t in times]) <= 29


class ScriptedLineApi:
    """Answers multicasts with a script of statuses (then 200), recording the loop time."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.calls: list[tuple[float, str]] = []

    async def multicast(self, request: Any, *, x_line_retry_key: str, **_: Any) -> object:
        self.calls.append((asyncio.get_running_loop().time(), x_line_retry_key))
        if self.statuses:
            raise ApiException(status=self.statuses.pop(0))
        return {}


def test_line_backs_off_exponentially_on_429_and_5xx_with_one_retry_key() -> None:
    api = ScriptedLineApi([429, 500, 503])
    sleeps = Sleeps()
    pusher = LinePusher(api, multicast_pace=Pace(190), sleep=sleeps)
    on_virtual_time(lambda: pusher.multicast(["U1"], [Reply("hi")], retry_key="k-1"))
    assert [key for _, key in api.calls] == ["k-1"] * 4
    assert len(sleeps) == 3 and sleeps[0] < sleeps[1] < sleeps[2]  # 0.5, 1, 2 s (+ jitter)
    assert sleeps[0] == pytest.approx(0.5, abs=0.26)


def test_line_gives_the_row_back_after_its_attempts() -> None:
    api = ScriptedLineApi([429] * 4)
    pusher = LinePusher(api, multicast_pace=Pace(190), sleep=Sleeps())
    with pytest.raises(RetryLater):
        on_virtual_time(lambda: pusher.multicast(["U1"], [Reply("hi")], retry_key="k"))


def test_multicasts_stay_under_200_per_second() -> None:
    api = ScriptedLineApi([])
    pusher = LinePusher(api, sleep=Sleeps())

    async def main() -> None:
        await asyncio.gather(
            *(pusher.multicast(["U"], [Reply("hi")], retry_key=str(i)) for i in range(600))
        )

    on_virtual_time(main)
    assert per_second([t for t, _ in api.calls]) <= 190


class ScriptedBot:
    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures
        self.sent: list[tuple[float, str]] = []

    async def send_message(self, *, chat_id: str, text: str, reply_markup: Any) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append((asyncio.get_running_loop().time(), chat_id))


def test_telegram_honours_retry_after() -> None:
    from telegram.error import RetryAfter

    bot = ScriptedBot([RetryAfter(3)])
    sleeps = Sleeps()
    pusher = TelegramPusher(bot, pace=Pace(29, per_key_interval=1.0), sleep=sleeps)  # type: ignore[arg-type]
    on_virtual_time(lambda: pusher.push("42", [Reply("hi")], retry_key="k"))
    assert sleeps == [3.0] and [c for _, c in bot.sent] == ["42"]
    # A long wait is not held in-process: the outbox keeps the row for that long.
    bot = ScriptedBot([RetryAfter(60)])
    pusher = TelegramPusher(bot, pace=Pace(29), sleep=Sleeps())  # type: ignore[arg-type]
    with pytest.raises(RetryLater) as caught:
        on_virtual_time(lambda: pusher.push("42", [Reply("hi")], retry_key="k"))
    assert caught.value.after == 60.0


def test_a_long_telegram_text_is_paced_within_its_chat() -> None:
    bot = ScriptedBot([])
    pusher = TelegramPusher(bot, pace=Pace(29, per_key_interval=1.0))  # type: ignore[arg-type]
    on_virtual_time(lambda: pusher.push("7", [Reply("あ。" * 5000)], retry_key="k"))
    times = [t for t, _ in bot.sent]
    assert len(times) == 3 and times[2] - times[0] >= 2.0 - 1e-6
