"""Web chat: the page at / and its JSON endpoint; also what a city embeds on its portal."""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from bot.announcements import take_web_replies
from bot.channels.payload import load_storable
from bot.channels.webchat_limits import ChatLimits
from bot.engine import Engine, utc_now
from bot.messages import EventKind, Incoming, reply_to_dict
from bot.storage.models import Person

log = logging.getLogger(__name__)

CHANNEL = "web"
COOKIE = "iju_chat"
MAX_BODY = 64 * 1024
MAX_TEXT = 10_000
PAGE = Path(__file__).with_name("webchat.html")


def _visitor(request: Request) -> str | None:
    """The visitor's id from their cookie (the page at / gives one), if it has a usable one."""
    token = request.cookies.get(COOKIE, "")
    if 16 <= len(token) <= 64 and token.replace("-", "").replace("_", "").isalnum():
        return token
    return None


def _event_id(visitor: str, client_id: str) -> str:
    """The page's message id, made the visitor's own: a double submit is dropped, while
    another visitor's page choosing the same id (or a script forging it) drops nothing of
    anyone else's. Hashed, so the stored id stays short and does not hold the cookie."""
    return "w" + hashlib.blake2b(f"{visitor}\0{client_id}".encode(), digest_size=16).hexdigest()


def _with_cookie(response: Response, token: str) -> Response:
    response.set_cookie(COOKIE, token, max_age=60 * 60 * 24 * 180, httponly=True, samesite="lax")
    return response


class WebChat:
    def __init__(
        self,
        engine: Engine,
        sessions: async_sessionmaker[AsyncSession],
        limits: ChatLimits,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.engine = engine
        self.sessions = sessions
        self.limits = limits
        self.clock = clock
        self._page = PAGE.read_text(encoding="utf-8")

    def _error(self, status: int, key: str, **values: object) -> JSONResponse:
        """A notice the page shows as it is, in both languages (it does not know which one
        the visitor reads before they write)."""
        catalog = self.engine.services.catalog
        texts = {lang: catalog.text(f"webchat.{key}", lang, **values) for lang in ("ja", "en")}
        return JSONResponse({"error": texts}, status_code=status)

    async def updates(self, request: Request) -> Response:
        """Messages the city sent this visitor unprompted (staff replies, reminders,
        announcements): the web chat cannot be pushed to, so the page asks now and then."""
        token = _visitor(request)
        if token is None:
            return JSONResponse({"replies": []})
        async with self.sessions() as session, session.begin():
            replies = await take_web_replies(session, token, datetime.now(UTC))
        return JSONResponse({"replies": [reply_to_dict(r) for r in replies]})

    async def page(self, request: Request) -> Response:
        response = HTMLResponse(self._page)
        if _visitor(request) is None:
            return _with_cookie(response, secrets.token_urlsafe(24))
        return response

    async def message(self, request: Request) -> Response:
        token = _visitor(request)
        address = request.client.host if request.client is not None else ""
        wait = self.limits.wait(address, token, self.clock())
        if wait > 0:
            # No person's text in the log line: the address is enough to find a flood.
            log.info("web chat: message refused, over the limit (%s)", address or "unknown")
            seconds = math.ceil(wait)
            refused = self._error(429, "too_many", seconds=seconds)
            refused.headers["Retry-After"] = str(seconds)
            return refused
        body = await request.body()
        if len(body) > MAX_BODY:
            return self._error(413, "too_long")
        try:
            data = load_storable(body)
        except ValueError:  # UnicodeDecodeError included
            return self._error(400, "not_json")
        incoming = self._incoming(data, token or secrets.token_urlsafe(24))
        if incoming is None:
            return self._error(400, "bad_message")
        try:
            if incoming.kind is EventKind.FOLLOW and not await self._known(incoming.user_id):
                # The page was opened: welcome, but keep no person until they say something.
                replies = await self.engine.preview(incoming)
            elif token is None:
                # Only the page's cookie ties messages to one conversation; without it every
                # message would make a new person (300 cookie-less posts made 300).
                return self._error(400, "cookie_needed")
            else:
                replies = await self.engine.handle(incoming)
        except Exception as exc:  # the database is down: an answer the page can show, not a 500
            log.error("web chat: could not answer (%s)", type(exc).__name__)
            return self._error(503, "unavailable")
        response = JSONResponse({"replies": [reply_to_dict(r) for r in replies]})
        return _with_cookie(response, incoming.user_id) if token is None else response

    async def _known(self, visitor: str) -> bool:
        """Whether this visitor has said something before (the city keeps them as a person)."""
        async with self.sessions() as session:
            found = await session.scalar(
                select(Person.id).where(
                    Person.channel == CHANNEL, Person.platform_user_id == visitor
                )
            )
        return found is not None

    @staticmethod
    def _incoming(data: Any, visitor: str) -> Incoming | None:
        if not isinstance(data, dict):
            return None
        text, postback, event_id = data.get("text"), data.get("postback"), data.get("id")
        # printable: the id is stored for the double-submit check, and PostgreSQL refuses NUL
        if event_id is not None and not (
            isinstance(event_id, str) and 0 < len(event_id) <= 64 and event_id.isprintable()
        ):
            return None
        common: dict[str, Any] = {
            "channel": CHANNEL,
            "user_id": visitor,
            "event_id": None if event_id is None else _event_id(visitor, event_id),
            "timestamp": datetime.now(UTC),
        }
        if isinstance(postback, str) and postback:
            return Incoming(kind=EventKind.POSTBACK, postback=postback[:300], **common)
        if data.get("event") == "open":
            return Incoming(kind=EventKind.FOLLOW, **common)
        if isinstance(text, str):
            return Incoming(kind=EventKind.TEXT, text=text[:MAX_TEXT], **common)
        return None
