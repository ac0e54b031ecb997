"""Log setup: JSON lines or text, a request id per HTTP request, and redaction of secrets."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import traceback
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


# Exceptions whose text is withheld in logs. SQLAlchemy puts a statement's parameters in its
# errors (hidden anyway: bot/storage/db.py passes hide_parameters), but the database's own
# message can quote a row ("Key (email)=(...) already exists"), and any exception raised
# with a person's words in it would carry them into uvicorn's traceback. So a logged
# exception keeps its type, its frames (code, never data) and only the parts of its text that
# cannot hold what a person wrote.
_WITHHELD = "message withheld: it may hold personal data"

# A client that closed its connection before the response: routine, not a server error.
# Matched by name so this module imports no web framework (starlette's ClientDisconnect).
_GONE_NAMES = frozenset({"ClientDisconnect", "ClientDisconnected"})


def describe_exception(exc: BaseException) -> str:
    """One line for a log: the exception's type and what of its text is safe to show."""
    name = type(exc).__qualname__
    module = type(exc).__module__
    if module not in ("builtins", "__main__"):
        name = f"{module}.{name}"
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{name}: [Errno {exc.errno}] {exc.strerror}"
    # SQLAlchemy's StatementError: the SQL is the code's, with placeholders for the values.
    statement = getattr(exc, "statement", None)
    if isinstance(statement, str):
        return f"{name}: ({_WITHHELD}) [SQL: {redact(statement)[:1000]}]"
    return f"{name} ({_WITHHELD})"


def scrubbed_traceback(exc: BaseException) -> str:
    """Like traceback.format_exception, causes and contexts included, with every
    exception's text replaced by describe_exception."""
    parts: list[str] = []
    seen: set[int] = set()

    def walk(current: BaseException) -> None:
        seen.add(id(current))
        cause = current.__cause__
        context = None if current.__suppress_context__ else current.__context__
        if cause is not None and id(cause) not in seen:
            walk(cause)
            parts.append("\nThe above exception was the direct cause of the following:\n\n")
        elif context is not None and id(context) not in seen:
            walk(context)
            parts.append(
                "\nDuring handling of the above exception, another exception occurred:\n\n"
            )
        if current.__traceback__ is not None:
            parts.append("Traceback (most recent call last):\n")
            parts.extend(traceback.format_tb(current.__traceback__))
        parts.append(describe_exception(current) + "\n")
        if isinstance(current, BaseExceptionGroup):
            for n, inner in enumerate(current.exceptions, 1):
                if id(inner) not in seen:
                    parts.append(f"+-- sub-exception {n} --\n")
                    walk(inner)

    walk(exc)
    return "".join(parts).rstrip("\n")


def _client_gone(exc: BaseException) -> bool:
    if type(exc).__name__ in _GONE_NAMES:
        return True
    if isinstance(exc, BaseExceptionGroup):
        return all(_client_gone(inner) for inner in exc.exceptions)
    return False


class RedactingFilter(logging.Filter):
    """Masks secrets and personal data in the message and any traceback, before formatting.
    Exceptions (logged with exc_info, or passed as arguments) show their type and frames, not
    their text; a client that went away is a line at INFO, not an error with a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and _client_gone(exc):
            if not logging.getLogger(record.name).isEnabledFor(logging.INFO):
                return False
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg, record.args = (
                "client went away before the response (%s)",
                (type(exc).__name__,),
            )
            record.exc_info, record.exc_text = None, None
        if record.name == "uvicorn.access" and isinstance(record.args, tuple):
            # If an operator turns uvicorn's access log on: a query string can hold what
            # staff searched for (a resident's name), so only the path is written.
            record.args = tuple(
                a.split("?", 1)[0] if n == 2 and isinstance(a, str) else a
                for n, a in enumerate(record.args)
            )
        if isinstance(record.msg, BaseException):
            record.msg = describe_exception(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                describe_exception(a) if isinstance(a, BaseException) else a for a in record.args
            )
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if exc is not None and record.exc_info:
            # Rendered here, scrubbed, and cached where every formatter looks first.
            record.exc_text = scrubbed_traceback(exc)
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
