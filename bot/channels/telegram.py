"""Telegram channel: check the secret token, keep updates in the inbox, answer through PTB."""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from telegram import (
    Bot,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Update,
)
from telegram.constants import ChatType
from telegram.error import TelegramError
from telegram.ext import Application, ApplicationBuilder

from bot.channels.inbox import Inbox, InboxItem, Meaning, replies_from_json
from bot.channels.payload import load_storable
from bot.channels.render import split_text
from bot.config import Settings
from bot.engine import Engine
from bot.messages import EventKind, Incoming, Reply
from bot.storage.models import WebhookInbox
from intents.i18n import Catalog

CHANNEL = "telegram"
log = logging.getLogger(__name__)

MAX_TEXT = 4096  # sendMessage: 1-4096 characters
MAX_CALLBACK_DATA = 64  # bytes
MAX_BODY = 1024 * 1024
# callback_data for a choice value too long for Telegram: "~<inbox row>.<choice index>";
# the value itself stays in that row's stored replies. No engine value starts with "~".
KEY_PREFIX = "~"
_KEY = re.compile(r"^~(\d{1,18})\.(\d{1,4})$")
# Commands the menu offers, as the postbacks the intents already understand (a postback,
# unlike the text "/help", says nothing about the language the person writes in).
COMMANDS = {"help": "help", "lang": "lang", "cancel": "cancel", "menu": "menu"}
# Telegram's update ids are positive and fit in 52 bits; beyond 63 bits a number cannot be an
# update, and its 100-digit text would not fit the inbox's event id (a 503 retried forever).
MAX_UPDATE_ID = 2**63 - 1
# Waits between getMe attempts while Telegram cannot be reached (seconds, the last repeats).
CONNECT_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


def build_application(settings: Settings) -> Application[Any, Any, Any, Any, Any, Any]:
    """python-telegram-bot without its own updater: updates come through our web server."""
    token = settings.secrets.telegram_bot_token
    if token is None:
        raise ValueError("TELEGRAM_BOT_TOKEN is required")
    return (
        ApplicationBuilder()
        .token(token.get_secret_value())
        .base_url(settings.telegram.api_base_url)
        .updater(None)
        .build()
    )


def callback_data(value: str, row_id: int, index: int) -> str:
    if len(value.encode("utf-8")) <= MAX_CALLBACK_DATA and not value.startswith(KEY_PREFIX):
        return value
    return f"{KEY_PREFIX}{row_id}.{index}"


def render(replies: Sequence[Reply], row_id: int) -> list[tuple[str, InlineKeyboardMarkup | None]]:
    """Each reply as messages of at most 4,096 characters; its choices (one per row, labels
    are often long questions) and links as an inline keyboard on its last message."""
    out: list[tuple[str, InlineKeyboardMarkup | None]] = []
    index = 0
    for reply in replies:
        rows: list[list[InlineKeyboardButton]] = []
        for choice in reply.choices:
            data = callback_data(choice.value, row_id, index)
            rows.append([InlineKeyboardButton(choice.label[:64], callback_data=data)])
            index += 1
        rows.extend([InlineKeyboardButton(x.label[:64], url=x.url)] for x in reply.links)
        pieces = split_text(reply.text, MAX_TEXT) or ([" "] if rows else [])
        for n, piece in enumerate(pieces):
            last = n == len(pieces) - 1
            out.append((piece, InlineKeyboardMarkup(rows) if last and rows else None))
    return out


class TelegramChannel:
    """The /webhooks/telegram endpoint and the sender; one Application (one Bot) per process."""

    channel = CHANNEL

    def __init__(
        self,
        *,
        webhook_secret: str,
        application: Application[Any, Any, Any, Any, Any, Any],
        sessions: async_sessionmaker[AsyncSession],
        engine: Engine,
        catalog: Catalog,
        clock: Callable[[], datetime],
        answer: bool = True,
    ) -> None:
        self._secret = webhook_secret.encode("utf-8")
        self.application = application
        self.sessions = sessions
        self.catalog = catalog
        # Until getMe has answered this process only stores updates (connect() turns answering
        # on): an answer could not be sent, and would be retried into `failed` meanwhile.
        self.inbox = Inbox(self, sessions, engine, clock=clock, answer=False)
        self._answer = answer
        self.ready = False
        self._connecting = asyncio.Lock()  # the start-up try and the background retries

    @property
    def bot(self) -> Bot:
        bot: Bot = self.application.bot
        return bot

    @staticmethod
    def configured(settings: Settings) -> bool:
        s = settings.secrets
        return bool(s.telegram_bot_token and s.telegram_webhook_secret)

    @classmethod
    def create(
        cls,
        settings: Settings,
        *,
        sessions: async_sessionmaker[AsyncSession],
        engine: Engine,
        clock: Callable[[], datetime],
        answer: bool = True,
    ) -> TelegramChannel:
        """The channel, without calling Telegram: its webhook stores updates at once, and
        `connect()` (getMe) makes it answer them. Telegram being unreachable at start-up
        must not stop LINE, the web chat or the console starting beside it."""
        secret = settings.secrets.telegram_webhook_secret
        if secret is None or not cls.configured(settings):
            raise ValueError("TELEGRAM_BOT_TOKEN and TELEGRAM_WEBHOOK_SECRET are required")
        return cls(
            webhook_secret=secret.get_secret_value(),
            application=build_application(settings),
            sessions=sessions,
            engine=engine,
            catalog=engine.services.catalog,
            clock=clock,
            answer=answer,
        )

    async def connect(self) -> bool:
        """One getMe; True once it has answered. Then, in an answering process, the updates
        stored meanwhile (and those left by a previous process) are answered."""
        async with self._connecting:
            if self.ready:
                return True
            try:
                await self.application.initialize()
            except Exception as exc:  # network down, Telegram 5xx, a revoked token...
                log.warning(
                    "Telegram: getMe failed (%s); updates are stored and answered once it works",
                    type(exc).__name__,
                )
                return False
            self.ready = True
            log.info("Telegram: getMe answered, the bot is connected")
            if self._answer:
                self.inbox.answer = True
                await self.inbox.recover()
                self.inbox.start()
            return True

    async def keep_connecting(
        self, wait: Callable[[float], Awaitable[None]] = asyncio.sleep
    ) -> None:
        """connect() until it works, waiting longer between tries (run in the background)."""
        for attempt in range(10**9):
            if await self.connect():
                return
            await wait(CONNECT_DELAYS[min(attempt, len(CONNECT_DELAYS) - 1)])

    # --- the webhook ----------------------------------------------------------------------
    async def webhook(self, request: Request) -> Response:
        given = request.headers.get("x-telegram-bot-api-secret-token", "").encode("utf-8")
        if not hmac.compare_digest(given, self._secret):
            log.warning("telegram webhook: missing or wrong secret token, refused")
            return PlainTextResponse("forbidden", status_code=403)
        if int(request.headers.get("content-length") or 0) > MAX_BODY:
            return PlainTextResponse("body too large", status_code=413)
        try:
            data = load_storable(await request.body())
        except ValueError:  # UnicodeDecodeError included
            return PlainTextResponse("body is not JSON", status_code=400)
        update_id = data.get("update_id") if isinstance(data, dict) else None
        if (
            not isinstance(update_id, int)
            or isinstance(update_id, bool)
            or not 0 <= update_id <= MAX_UPDATE_ID
        ):
            return PlainTextResponse(
                "expected an Update with an update_id from 0 to 2**63-1", status_code=400
            )
        try:
            await self.inbox.accept([(str(update_id), data)])
        except Exception as exc:  # database down: Telegram retries what we did not take
            log.error("telegram webhook: could not store update (%s)", type(exc).__name__)
            return PlainTextResponse("try again later", status_code=503)
        return Response(status_code=200)

    # --- InboxAdapter ---------------------------------------------------------------------
    def _update(self, payload: dict[str, Any]) -> Update | None:
        try:
            return Update.de_json(payload, self.bot)
        except Exception as exc:  # a field we do not know in a shape we did not expect
            log.warning("telegram: update not understood (%s)", type(exc).__name__)
            return None

    def queue_key(self, payload: dict[str, Any]) -> str:
        for key in ("message", "edited_message", "callback_query", "my_chat_member"):
            part = payload.get(key)
            if isinstance(part, dict):
                who = part.get("from") or part.get("chat") or {}
                return str(who.get("id", ""))
        return ""

    def interpret(self, payload: dict[str, Any]) -> Meaning:
        if not _ids_are_numbers(payload):
            # Telegram's chat and user ids are integers; with anything else the reply could
            # only fail (and be retried) at the API.
            log.warning("telegram: update not understood (an id is not a number)")
            return None
        try:
            meaning = self._interpret(payload)
        except (AttributeError, TypeError, ValueError) as exc:  # PTB keeps wrong-typed fields
            log.warning("telegram: update not understood (%s)", type(exc).__name__)
            return None  # (a "text": 5 raised here on every retry, then was given up)
        if isinstance(meaning, Incoming):
            texts = (meaning.text, meaning.postback, meaning.language_hint)
            if not all(isinstance(v, str | None) for v in texts):
                # e.g. callback "data": [1] or "language_code": 5 failed later in the engine
                log.warning("telegram: update not understood (a text field is not text)")
                return None
        return meaning

    def _interpret(self, payload: dict[str, Any]) -> Meaning:
        update = self._update(payload)
        if update is None:
            return None
        if update.callback_query is not None:
            return self._callback(update.callback_query, update.update_id)
        message = update.message
        if message is None:
            # Edited messages, channel posts, membership changes...: the answer to the first
            # version stands; a group that adds the bot hears once that we talk one to one.
            member = update.my_chat_member
            if (
                member is not None
                and member.chat.type != ChatType.PRIVATE
                and member.new_chat_member.status in ("member", "administrator")
            ):
                return [Reply(self.catalog.text("group_chat_not_supported", "ja"))]
            return None
        if message.chat.type != ChatType.PRIVATE or message.from_user is None:
            return None  # group chats: silence (see my_chat_member above)
        user = message.from_user
        common: dict[str, Any] = {
            "channel": CHANNEL,
            "user_id": str(user.id),
            "event_id": str(update.update_id),
            "language_hint": user.language_code,
            "timestamp": message.date.astimezone(UTC) if message.date else None,
        }
        text = message.text
        if text is None:
            return Incoming(kind=EventKind.MEDIA, **common)  # sticker, photo, document...
        if text.startswith("/"):
            command = text[1:].split(maxsplit=1)[0].split("@", 1)[0].lower() if text[1:] else ""
            if command == "start":  # also deep links: /start <payload>
                return Incoming(kind=EventKind.FOLLOW, **common)
            if command in COMMANDS:
                return Incoming(kind=EventKind.POSTBACK, postback=COMMANDS[command], **common)
        return Incoming(kind=EventKind.TEXT, text=text, **common)

    def _callback(self, query: CallbackQuery, update_id: int) -> Meaning:
        if query.message is not None and query.message.chat.type != ChatType.PRIVATE:
            return None
        return Incoming(
            channel=CHANNEL,
            user_id=str(query.from_user.id),
            kind=EventKind.POSTBACK,
            postback=query.data or "",  # a "~row.index" key is resolved in _resolve()
            language_hint=query.from_user.language_code,
            event_id=str(update_id),
        )

    async def deliver(self, delivery: InboxItem) -> None:
        update = self._update(delivery.payload)
        if update is None:
            return
        chat = update.effective_chat
        chat_id = chat.id if chat is not None else None
        if chat_id is None and update.callback_query is not None:
            chat_id = update.callback_query.from_user.id  # private chat id == user id
        if chat_id is None:
            return
        for text, keyboard in render(delivery.replies, delivery.row_id):
            await self.bot.send_message(chat_id=chat_id, text=text, reply_markup=keyboard)

    async def answer_callback(self, payload: dict[str, Any]) -> None:
        """Stop the button's spinner. Best effort: an old query (after a restart) expires."""
        query = payload.get("callback_query")
        if not isinstance(query, dict) or not isinstance(query.get("id"), str):
            return
        try:
            await self.bot.answer_callback_query(query["id"])
        except TelegramError as exc:
            log.info("telegram: callback query not answered (%s)", type(exc).__name__)

    async def resolve_choice(self, data: str, user_id: str) -> str:
        """A "~row.index" callback key back to the choice value stored in that row."""
        match = _KEY.match(data)
        if match is None:
            return data
        row_id, index = int(match.group(1)), int(match.group(2))
        async with self.sessions() as session:
            row = await session.scalar(
                select(WebhookInbox).where(
                    WebhookInbox.id == row_id, WebhookInbox.channel == CHANNEL
                )
            )
        if row is None or self.queue_key(row.payload) != user_id:
            return "menu"  # a button from a message we no longer keep: show the menu
        choices = [c.value for r in replies_from_json(row.replies) for c in r.choices]
        return choices[index] if index < len(choices) else "menu"

    async def prepare(self, incoming: Incoming, payload: dict[str, Any]) -> Incoming:
        """Before the engine: answer the button press and resolve a long choice's key."""
        if incoming.kind is not EventKind.POSTBACK:
            return incoming
        await self.answer_callback(payload)
        value = await self.resolve_choice(incoming.postback or "", incoming.user_id)
        if value == incoming.postback:
            return incoming
        return Incoming(
            channel=incoming.channel,
            user_id=incoming.user_id,
            kind=incoming.kind,
            postback=value,
            language_hint=incoming.language_hint,
            event_id=incoming.event_id,
            timestamp=incoming.timestamp,
        )

    async def aclose(self) -> None:
        await self.inbox.close()
        if self.ready:
            await self.application.shutdown()


def _ids_are_numbers(payload: dict[str, Any]) -> bool:
    """Every `from` / `chat` id in the update's parts (and a callback's message) is an int
    of at most 64 bits."""
    parts = [payload.get(k) for k in ("message", "edited_message", "callback_query",
                                      "my_chat_member")]  # fmt: skip
    parts += [p.get("message") for p in parts if isinstance(p, dict)]
    for part in parts:
        if not isinstance(part, dict):
            continue
        for key in ("from", "chat"):
            who = part.get(key)
            if isinstance(who, dict) and "id" in who:
                ident = who["id"]
                if not isinstance(ident, int) or isinstance(ident, bool):
                    return False
                if not -MAX_UPDATE_ID <= ident <= MAX_UPDATE_ID:  # stored as text of <= 128
                    return False
    return True
