"""Web chat: the page at / and its JSON endpoint; also what a city embeds on its portal."""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from bot.announcements import take_web_replies
from bot.channels.payload import load_storable
from bot.engine import Engine
from bot.messages import EventKind, Incoming, reply_to_dict

log = logging.getLogger(__name__)

CHANNEL = "web"
COOKIE = "iju_chat"
MAX_BODY = 64 * 1024
MAX_TEXT = 10_000
PAGE = Path(__file__).with_name("webchat.html")


def _visitor(request: Request) -> tuple[str, bool]:
    """The visitor's id from their cookie, or a new random one (True when new)."""
    token = request.cookies.get(COOKIE, "")
    if 16 <= len(token) <= 64 and token.replace("-", "").replace("_", "").isalnum():
        return token, False
    return secrets.token_urlsafe(24), True


def _with_cookie(response: Response, token: str) -> Response:
    response.set_cookie(COOKIE, token, max_age=60 * 60 * 24 * 180, httponly=True, samesite="lax")
    return response


def _error(status: int, ja: str, en: str) -> JSONResponse:
    return JSONResponse({"error": {"ja": ja, "en": en}}, status_code=status)


class WebChat:
    def __init__(self, engine: Engine, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.engine = engine
        self.sessions = sessions
        self._page = PAGE.read_text(encoding="utf-8")

    async def updates(self, request: Request) -> Response:
        """Messages the city sent this visitor unprompted (staff replies, reminders,
        announcements): the web chat cannot be pushed to, so the page asks now and then."""
        token, new = _visitor(request)
        if new:
            return JSONResponse({"replies": []})
        async with self.sessions() as session, session.begin():
            replies = await take_web_replies(session, token, datetime.now(UTC))
        return JSONResponse({"replies": [reply_to_dict(r) for r in replies]})

    async def page(self, request: Request) -> Response:
        token, new = _visitor(request)
        response = HTMLResponse(self._page)
        return _with_cookie(response, token) if new else response

    async def message(self, request: Request) -> Response:
        token, new = _visitor(request)
        body = await request.body()
        if len(body) > MAX_BODY:
            return _error(413, "メッセージが長すぎます。", "The message is too long.")
        try:
            data = load_storable(body)
        except ValueError:  # UnicodeDecodeError included
            return _error(
                400, "送信内容を読み取れませんでした。", "The request was not valid JSON."
            )
        incoming = self._incoming(data, token)
        if incoming is None:
            return _error(
                400,
                "text か postback を文字列で送ってください。",
                "Send a JSON object with a string 'text' or 'postback'.",
            )
        try:
            replies = await self.engine.handle(incoming)
        except Exception as exc:  # the database is down: an answer the page can show, not a 500
            log.error("web chat: could not answer (%s)", type(exc).__name__)
            return _error(
                503,
                "ただいま応答できません。少し時間をおいて、もう一度送ってください。",
                "The chat cannot answer right now. Please try again in a moment.",
            )
        response = JSONResponse({"replies": [reply_to_dict(r) for r in replies]})
        return _with_cookie(response, token) if new else response

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
            "event_id": event_id,
            "timestamp": datetime.now(UTC),
        }
        if isinstance(postback, str) and postback:
            return Incoming(kind=EventKind.POSTBACK, postback=postback[:300], **common)
        if data.get("event") == "open":
            return Incoming(kind=EventKind.FOLLOW, **common)
        if isinstance(text, str):
            return Incoming(kind=EventKind.TEXT, text=text[:MAX_TEXT], **common)
        return None
