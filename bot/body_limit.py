"""A cap on request bodies, enforced while they arrive (pure ASGI, no framework import).

The routes check Content-Length themselves, but a chunked request (`Transfer-Encoding:
chunked`, no Content-Length) is read whole by `await request.body()` before any check can
run: a caller could make a web process buffer gigabytes. This middleware counts the bytes
as the server hands them over and answers 413 as soon as the limit is passed, for both kinds
of request, before the application sees the rest.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

KIB = 1024
# Longest matching prefix wins. The webhooks carry at most a few dozen events (LINE) or one
# update (Telegram): 1 MiB is far above any real body and equals the channels' own
# MAX_BODY. The web chat sends one message of at most 10,000 characters (64 KiB, as
# bot.channels.webchat.MAX_BODY). The console posts forms with no uploads.
LIMITS: tuple[tuple[str, int], ...] = (
    ("/webhooks/", 1024 * KIB),
    ("/api/chat", 64 * KIB),
    ("/admin", 1024 * KIB),
)
# Any other path: no route reads a larger body.
DEFAULT_LIMIT = 1024 * KIB

# JSON, so the web chat page shows it like its own errors; the webhooks only read the status.
_BODY = json.dumps(
    {"error": {"ja": "送信内容が大きすぎます。", "en": "The request is too large."}},
    ensure_ascii=False,
).encode("utf-8")


class _TooLarge(Exception):
    """Raised from receive() inside the app; caught by the middleware, never shown."""


class BodyLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        limits: Sequence[tuple[str, int]] = LIMITS,
        default: int | None = DEFAULT_LIMIT,
    ) -> None:
        self.app = app
        self.limits = sorted(limits, key=lambda item: len(item[0]), reverse=True)
        self.default = default

    def limit_for(self, path: str) -> int | None:
        for prefix, limit in self.limits:
            if path.startswith(prefix):
                return limit
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(str(scope.get("path", "")))
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send)  # said at once, without reading a byte of the body
            return

        received = 0
        exceeded = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # the app answered after all (it caught the error): ours goes out
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        with contextlib.suppress(_TooLarge):
            await self.app(scope, counting_receive, guarded_send)
        if exceeded and not started:
            await _refuse(send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers") or ():
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses such a request before it gets here
    return None


async def _refuse(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json; charset=utf-8"),
                (b"content-length", str(len(_BODY)).encode("ascii")),
                # The rest of the body is not read: the connection cannot carry a next request.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": _BODY})
