"""Log setup: JSON lines or text, a request id per HTTP request, and redaction of secrets."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["json", "text"]

# Set by RequestIdMiddleware for the duration of one HTTP request. Tasks created while
# handling it (the LINE / Telegram inbox answering after the 200) copy the context, so the
# engine's lines for that event carry the same id.
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

# A caller's X-Request-Id is kept only when it cannot smuggle anything into a log line.
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

# A safety net, not the main defence (the code logs types and ids, not people's text):
# anything shaped like a token, an e-mail address or a Japanese phone number is masked.
_REDACTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Telegram bot token: <bot id>:<35 characters>. Not `\b`: in the Bot API's URLs, which
    # httpx logs at INFO for every call, the token follows "/bot" with no word boundary.
    (re.compile(r"(?<!\d)\d{6,12}:[A-Za-z0-9_-]{30,}"), "[telegram-token]"),
    # LINE channel access token (long-lived: ~170 base64 characters) and other long opaque
    # strings such as bearer tokens.
    (re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{100,}={0,2}"), "[token]"),
    # LINE channel secret: 32 hexadecimal characters.
    (re.compile(r"\b[0-9a-fA-F]{32}\b"), "[secret]"),
    (re.compile(r"Bearer\s+\S+", re.IGNORECASE), "Bearer [token]"),
    (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"), "[email]"),
    # 090-1234-5678, 03-1234-5678, 0267(22)1234, 09012345678, +81 90 1234 5678,
    # full-width digits included (people type them on Japanese keyboards).
    (
        re.compile(
            r"(?<![\d０-９])(?:\+81[\s-]?|[0０])[\d０-９]{1,4}[\s\-－ー(（)）]{0,2}"
            r"[\d０-９]{1,4}[\s\-－ー(（)）]{0,2}[\d０-９]{3,4}(?![\d０-９])"
        ),
        "[phone]",
    ),
)


def redact(text: str) -> str:
    for pattern, mask in _REDACTIONS:
        text = pattern.sub(mask, text)
    return text


class RedactingFilter(logging.Filter):
    """Masks secrets and personal data in the message and any traceback, before formatting."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (+ request_id, exc_info)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None)
        if rid:
            entry["request_id"] = rid
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc_info"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = getattr(record, "request_id", None)
        return f"{line} [{rid}]" if rid else line


def log_format_from(value: str | None, default: LogFormat = "text") -> LogFormat:
    if not value:
        return default
    if value.lower() in ("json", "text"):
        return "json" if value.lower() == "json" else "text"
    raise ValueError(f"LOG_FORMAT: expected json or text (got {value!r})")


def make_handler(fmt: LogFormat = "text", stream: Any = None) -> logging.Handler:
    """A stream handler (stderr by default) that tags the request id, redacts, formats."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    return handler


def configure(
    level: str | int = "INFO", fmt: LogFormat = "text", stream: Any = None
) -> logging.Handler:
    """Replace the root handlers with one that redacts, tags the request id and formats.
    uvicorn's own loggers are pointed at it too, so a JSON deployment has no stray text."""
    handler = make_handler(fmt, stream)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uv = logging.getLogger(name)
        uv.handlers.clear()
        uv.propagate = True
    return handler


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class RequestIdMiddleware:
    """Pure ASGI (no framework import): one id per HTTP request, echoed as X-Request-Id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"")
        try:
            candidate = given.decode("ascii")
        except UnicodeDecodeError:
            candidate = ""
        rid = candidate if _SANE_ID.match(candidate) else str(uuid.uuid4())
        token = request_id.set(rid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                headers.append((b"x-request-id", rid.encode("ascii")))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)
