"""Pushers for the outbox: how a queued message reaches LINE or Telegram unprompted.

Both are paced under the platform's limits (bot/pacing.py) and retry a transient failure a
few times in-process with exponential backoff before handing the row back to the outbox,
whose own backoff is minutes long: a broadcast should not stall on one 429.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp
import httpx
from linebot.v3.messaging import (
    ApiException,
    AsyncApiClient,
    AsyncMessagingApi,
    Configuration,
    MulticastRequest,
    PushMessageRequest,
)
from telegram import Bot
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from bot.channels import line as line_channel
from bot.channels import telegram as telegram_channel
from bot.delivery import UNSURE, BeforeSend, Rejected, RetryLater, Unreachable
from bot.messages import Reply
from bot.pacing import Pace, SharedRate
from bot.runtime import Runtime
from bot.storage.pace_slots import DatabaseSlots

log = logging.getLogger(__name__)

# python-telegram-bot 22 is moving RetryAfter.retry_after from seconds to a timedelta and warns
# on every read until a program opts in; _seconds() takes either, so opt in (PTB's documented
# switch, read when the attribute is read) and the next major version changes nothing here.
os.environ.setdefault("PTB_TIMEDELTA", "true")

Sleep = Callable[[float], Awaitable[None]]

# LINE: multicast allows 200 requests/s, push 2,000/s; we stay a little under both.
LINE_MULTICAST_RATE = 190.0
LINE_PUSH_RATE = 1900.0
MULTICAST_MAX = 500  # user ids per multicast request
# Telegram: about 30 messages/s overall and 1 per second in one chat. Never more than 30 in
# any rolling second by our clock, counted when each request leaves; spaced at 30.5/s with a
# burst of 5 so that the cap, not the spacing, is what binds, and a stall (a late wake-up, a
# slow outbox write) is caught up. Evenly spaced calls alone drift late: 28.5/s with a burst
# of 2 and no cap ran at 93 % of 30/s.
TELEGRAM_RATE = 30.5
TELEGRAM_PER_SECOND = 30
TELEGRAM_BURST = 5
TELEGRAM_PER_CHAT = 1.0
# Several workers on PostgreSQL book their slots in one shared rate (bot/pacing.py), a little
# under 30/s: a slot is booked before the outbox mark and the request, which take a different
# time in each process, so the requests reach Telegram less evenly than the slots are spaced:
# two workers booking at 30/s put 32 requests in one second, at 28/s two or three workers
# never put more than 30 (bench/pace_workers.py).
TELEGRAM_SHARED_RATE = 28.0
# A Telegram retry_after up to this long is waited out in-process; longer goes back to the
# outbox with that delay.
TELEGRAM_INLINE_WAIT = 5.0
TIMEOUT = 30.0  # seconds for one request (the SDK's default is five minutes)


class _Transient(Exception):
    """A failure worth trying again soon with the same retry key (429, 5xx, timeouts)."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


def _retrying(attempts: int, sleep: Sleep) -> AsyncRetrying:
    return AsyncRetrying(
        retry=retry_if_exception_type(_Transient),
        stop=stop_after_attempt(attempts),
        wait=wait_exponential_jitter(multiplier=0.5, max=8.0, jitter=0.25),
        sleep=sleep,
        reraise=True,
    )


class LinePusher:
    """LINE push and multicast with X-Line-Retry-Key: a retried request under the same key
    gets LINE's 409 instead of reaching anyone twice, so retrying after a timeout, a 5xx or a
    crash is safe."""

    idempotent = True  # X-Line-Retry-Key: the outbox may send a claimed row again
    claim_size = 100  # multicast rows per claim: half a second at 190 requests/s
    lanes = 2  # a batch waits for its slowest row (a backoff); the other keeps the pace

    def __init__(
        self,
        api: AsyncMessagingApi,
        *,
        multicast_pace: Pace | None = None,
        push_pace: Pace | None = None,
        attempts: int = 4,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.api = api
        self.multicast_pace = multicast_pace or Pace(LINE_MULTICAST_RATE)
        self.push_pace = push_pace or Pace(LINE_PUSH_RATE)
        self.attempts = attempts
        self.sleep = sleep

    async def push(self, address: str, replies: Sequence[Reply], *, retry_key: str) -> None:
        messages = line_channel.render(replies)
        if not messages:
            return
        request = PushMessageRequest(to=address, messages=messages)
        await self._send(
            self.push_pace,
            lambda: self.api.push_message(
                request, x_line_retry_key=retry_key, _request_timeout=TIMEOUT
            ),
        )

    async def multicast(
        self, recipients: Sequence[str], replies: Sequence[Reply], *, retry_key: str
    ) -> None:
        """One request for up to 500 user ids. LINE skips blocked users itself without an
        error, so a multicast never reports anyone unreachable."""
        if len(recipients) > MULTICAST_MAX:
            raise Rejected(f"multicast to {len(recipients)} ids (max {MULTICAST_MAX})")
        messages = line_channel.render(replies)
        if not messages or not recipients:
            return
        request = MulticastRequest(to=list(recipients), messages=messages)
        await self._send(
            self.multicast_pace,
            lambda: self.api.multicast(
                request, x_line_retry_key=retry_key, _request_timeout=TIMEOUT
            ),
        )

    async def _send(self, pace: Pace, call: Callable[[], Awaitable[Any]]) -> None:
        try:
            async for attempt in _retrying(self.attempts, self.sleep):
                with attempt:
                    await pace.wait()
                    await self._once(call)
        except _Transient as exc:
            raise RetryLater from exc  # LINE sends no Retry-After: the outbox backs off

    @staticmethod
    async def _once(call: Callable[[], Awaitable[Any]]) -> None:
        try:
            await call()
        except ApiException as exc:
            status = exc.status or 0
            if status == 409:
                return  # accepted before under this retry key: delivered once already
            if status in (403, 404):
                raise Unreachable from None
            if status == 429 or status >= 500 or status == 0:
                raise _Transient(f"LINE answered {status}") from None
            raise Rejected(f"LINE answered {status}") from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _Transient(type(exc).__name__) from None


class TelegramPusher:
    """Telegram sendMessage, one chat at a time; honours retry_after, and a 403 means the
    person blocked us. python-telegram-bot's AIORateLimiter paces overall only, so the
    per-chat second is kept here."""

    # No retry key: the outbox commits each row's outcome on its own and marks it just before
    # its request leaves (`before_send`), so a crash leaves only in-flight rows in doubt.
    idempotent = False
    claim_size = 10  # a third of a second of sending
    lanes = 3  # batches in flight: one waiting out a retry_after does not stall the pace

    def __init__(
        self,
        bot: Bot,
        *,
        pace: Pace | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.bot = bot
        self.pace = pace or telegram_pace()
        self.sleep = sleep

    async def push(
        self,
        address: str,
        replies: Sequence[Reply],
        *,
        retry_key: str,
        before_send: BeforeSend | None = None,
    ) -> None:
        # Outbox choices (booking:attend:<id> ...) fit Telegram's 64-byte callback data, so no
        # stored key is needed (row 0 is never a stored row).
        for text, keyboard in telegram_channel.render(replies, 0):
            await self._send_one(address, text, keyboard, before_send)
            before_send = None  # once per row: from then on the row is in doubt anyway

    async def _send_one(
        self, address: str, text: str, keyboard: Any, before_send: BeforeSend | None
    ) -> None:
        waited = False
        while True:
            # The mark is written inside the pace's turn: its time counts against the pace.
            await self.pace.wait(address, then=before_send)
            before_send = None
            try:
                await self.bot.send_message(chat_id=address, text=text, reply_markup=keyboard)
                return
            except Forbidden:
                raise Unreachable from None
            except RetryAfter as exc:
                seconds = _seconds(exc.retry_after)
                if waited or seconds > TELEGRAM_INLINE_WAIT:
                    raise RetryLater(seconds) from None
                waited = True  # Telegram's own word: wait exactly that long, once
                await self.sleep(seconds)
            except BadRequest as exc:
                raise Rejected(f"Telegram refused: {type(exc).__name__}") from None
            except (TimedOut, NetworkError) as exc:
                if _maybe_delivered(exc):
                    raise Rejected(UNSURE) from None  # at-most-once, as after a crash
                raise RetryLater from None


def _maybe_delivered(exc: Exception) -> bool:
    """Whether Telegram may have taken a request we got no answer to: the request went out
    and the answer was lost (a read timeout, a dropped connection). An error answer (5xx) or
    a connection never made (connect / pool timeout) reached nobody, and is retried."""
    cause = exc.__cause__
    return isinstance(cause, httpx.ReadTimeout | httpx.ReadError | httpx.RemoteProtocolError)


def _seconds(after: Any) -> float:
    return float(after.total_seconds()) if hasattr(after, "total_seconds") else float(after)


def line_pusher(base_url: str, token: str) -> tuple[LinePusher, AsyncApiClient]:
    """A pusher with its own client (for the worker process and benchmarks)."""
    client = AsyncApiClient(Configuration(host=base_url, access_token=token))
    return LinePusher(AsyncMessagingApi(client)), client


def telegram_pace(shared: SharedRate | None = None) -> Pace:
    return Pace(
        TELEGRAM_RATE,
        per_key_interval=TELEGRAM_PER_CHAT,
        burst=TELEGRAM_BURST,
        per_second=TELEGRAM_PER_SECOND,
        shared=shared,
    )


def shared_rate(runtime: Runtime, name: str, rate: float) -> SharedRate | None:
    """On PostgreSQL, where several workers send, each platform rate is booked in the
    database so that they stay under it together (bot/pacing.py); the embedded SQLite
    default runs one process, whose own pace is enough."""
    if runtime.db.dialect.name != "postgresql":
        return None
    return SharedRate(name, rate, DatabaseSlots(runtime.sessions))


async def register_pushers(runtime: Runtime) -> list[Any]:
    """Pushers for every configured platform, added to runtime.pushers. Returns what must be
    closed on shutdown. Unconfigured platforms are skipped with a log line."""
    settings = runtime.settings
    closers: list[Any] = []
    if line_channel.LineChannel.configured(settings):
        client = AsyncApiClient(line_channel.line_configuration(settings))
        runtime.pushers["line"] = LinePusher(
            AsyncMessagingApi(client),
            multicast_pace=Pace(
                LINE_MULTICAST_RATE,
                shared=shared_rate(runtime, "line-multicast", LINE_MULTICAST_RATE),
            ),
            push_pace=Pace(
                LINE_PUSH_RATE, shared=shared_rate(runtime, "line-push", LINE_PUSH_RATE)
            ),
        )
        closers.append(client.close)
    else:
        log.info("worker: LINE not configured, LINE messages stay queued")
    if telegram_channel.TelegramChannel.configured(settings):
        application = telegram_channel.build_application(settings)
        try:
            await application.initialize()  # getMe: a wrong token shows here, at start-up
        except Exception as exc:
            # Telegram down must not stop LINE's messages and the reminders: sendMessage
            # needs no getMe, and the outbox retries Telegram's rows until it answers.
            log.warning("worker: Telegram getMe failed (%s); its messages are retried",
                        type(exc).__name__)  # fmt: skip
        runtime.pushers["telegram"] = TelegramPusher(
            application.bot,
            pace=telegram_pace(shared_rate(runtime, "telegram", TELEGRAM_SHARED_RATE)),
        )
        closers.append(application.shutdown)
    else:
        log.info("worker: Telegram not configured, Telegram messages stay queued")
    return closers
