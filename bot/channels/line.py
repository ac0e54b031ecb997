"""LINE channel: verify the webhook signature, keep events in the inbox, answer via line-bot-sdk."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from linebot.v3 import SignatureValidator
from linebot.v3.messaging import (
    ApiException,
    AsyncApiClient,
    AsyncMessagingApi,
    ButtonsTemplate,
    Configuration,
    Message,
    PostbackAction,
    PushMessageRequest,
    QuickReply,
    QuickReplyItem,
    ReplyMessageRequest,
    TemplateMessage,
    TextMessage,
    URIAction,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from bot.channels.inbox import Inbox, InboxItem, Meaning
from bot.channels.payload import load_storable
from bot.channels.render import numbered, split_text, utf16_len
from bot.config import Settings
from bot.engine import Engine
from bot.messages import EventKind, Incoming, Link, Reply
from intents.i18n import Catalog

CHANNEL = "line"
log = logging.getLogger(__name__)

# LINE's limits (Messaging API reference): messages per reply/push, text length in UTF-16
# code units, quick-reply buttons, button label length, postback data length.
MAX_MESSAGES = 5
MAX_TEXT = 5000
MAX_QUICK_REPLIES = 13
MAX_LABEL = 20
MAX_POSTBACK_DATA = 300
MAX_TEMPLATE_ACTIONS = 4
MAX_TEMPLATE_TEXT = 160
MAX_ALT_TEXT = 400
# A reply token works once, for about a minute after the event; past this we push instead.
REPLY_WINDOW = timedelta(seconds=50)
# A webhook body is a few KB; a 5,000-character message in a batch stays far below this.
MAX_BODY = 1024 * 1024
# Fixed namespace so the retry key of an event is the same in every process and restart.
RETRY_KEY_NAMESPACE = uuid.UUID("5b0c1d1e-7f0a-4c41-9a3e-1c5e2f7a9d10")
MEDIA_TYPES = frozenset({"sticker", "image", "video", "audio", "file", "location"})


def retry_key(event_id: str) -> str:
    """X-Line-Retry-Key for the push answering one event: a retried push is then dropped by
    LINE instead of delivered twice (LINE answers 409 to the copy)."""
    return str(uuid.uuid5(RETRY_KEY_NAMESPACE, f"{CHANNEL}:{event_id}"))


def line_configuration(settings: Settings) -> Configuration:
    token = settings.secrets.line_channel_access_token
    return Configuration(
        host=settings.line.api_base_url,
        access_token=token.get_secret_value() if token else "",
    )


def data_api_configuration(settings: Settings) -> Configuration:
    """Uploads (rich-menu images) go to api-data.line.me; a local fake serves both."""
    host = settings.line.api_base_url
    if host == "https://api.line.me":
        host = "https://api-data.line.me"
    token = settings.secrets.line_channel_access_token
    return Configuration(host=host, access_token=token.get_secret_value() if token else "")


# --- rendering ------------------------------------------------------------------------------
def render(replies: Sequence[Reply]) -> list[Message]:
    """Replies as at most 5 LINE messages: choices as quick replies on the last message when
    LINE can show them (else numbered lines the engine understands when typed back), links
    as URI buttons, long text split on sentence ends."""
    choices = [c for r in replies for c in r.choices]
    quick = bool(choices) and _fits_quick_reply(choices)
    if quick or not choices:
        texts = [r.text for r in replies]
    else:
        texts = numbered([replace(r, links=()) for r in replies])
    pieces = [p for t in texts for p in split_text(t, MAX_TEXT)]
    links = [link for r in replies for link in r.links]
    template = _link_buttons(links)
    if links and template is None:
        lines = "\n".join(f"{link.label}: {link.url}" for link in links)
        pieces.extend(split_text(lines, MAX_TEXT))
    slots = MAX_MESSAGES - (1 if template else 0)
    if len(pieces) > slots:
        # Never happens with FAQ-sized answers; if it does, keep everything readable in the
        # last message rather than dropping the end silently.
        log.warning("reply needs %d LINE messages; merging the rest into the last", len(pieces))
        tail = "\n".join(pieces[slots - 1 :])
        if utf16_len(tail) > MAX_TEXT:
            tail = split_text(tail, MAX_TEXT - 1)[0] + "…"
        pieces = [*pieces[: slots - 1], tail]
    messages: list[Message] = [TextMessage(text=p) for p in pieces]
    if template is not None:
        messages.append(template)
    if quick and messages:
        messages[-1].quick_reply = QuickReply(
            items=[
                QuickReplyItem(
                    action=PostbackAction(label=c.label, data=c.value, display_text=c.label)
                )
                for c in choices
            ]
        )
    return messages


def _fits_quick_reply(choices: Sequence[Any]) -> bool:
    return len(choices) <= MAX_QUICK_REPLIES and all(
        0 < len(c.label) <= MAX_LABEL and 0 < len(c.value) <= MAX_POSTBACK_DATA for c in choices
    )


def _link_buttons(links: Sequence[Link]) -> TemplateMessage | None:
    usable = (
        0 < len(links) <= MAX_TEMPLATE_ACTIONS
        and all(0 < len(x.label) <= MAX_LABEL for x in links)
        and all(x.url.startswith(("https://", "http://", "tel:")) for x in links)
        and all(len(x.url) <= 1000 for x in links)
    )
    if not usable:
        return None
    alt = "\n".join(f"{x.label}: {x.url}" for x in links)[:MAX_ALT_TEXT]
    return TemplateMessage(
        alt_text=alt,
        template=ButtonsTemplate(
            text=" / ".join(x.label for x in links)[:MAX_TEMPLATE_TEXT],
            actions=[URIAction(label=x.label, uri=x.url) for x in links],
        ),
    )


# --- the channel ----------------------------------------------------------------------------
class LineChannel:
    """The /webhooks/line endpoint and the sender; one long-lived API client per process."""

    channel = CHANNEL

    def __init__(
        self,
        *,
        channel_secret: str,
        api: AsyncMessagingApi,
        sessions: async_sessionmaker[AsyncSession],
        engine: Engine,
        catalog: Catalog,
        clock: Callable[[], datetime],
        default_language: str = "ja",
        answer: bool = True,
    ) -> None:
        self._validator = SignatureValidator(channel_secret)
        self.api = api
        self.catalog = catalog
        self.clock = clock
        self.default_language = default_language
        self.inbox = Inbox(self, sessions, engine, clock=clock, answer=answer)

    @staticmethod
    def configured(settings: Settings) -> bool:
        s = settings.secrets
        return bool(s.line_channel_secret and s.line_channel_access_token)

    @classmethod
    def create(
        cls,
        settings: Settings,
        *,
        sessions: async_sessionmaker[AsyncSession],
        engine: Engine,
        clock: Callable[[], datetime],
        answer: bool = True,
    ) -> tuple[LineChannel, AsyncApiClient]:
        """The channel and its API client (aiohttp wants to be made inside the running loop;
        the caller closes the client on shutdown)."""
        secret = settings.secrets.line_channel_secret
        if secret is None or not cls.configured(settings):
            raise ValueError("LINE_CHANNEL_SECRET and LINE_CHANNEL_ACCESS_TOKEN are required")
        client = AsyncApiClient(line_configuration(settings))
        channel = cls(
            channel_secret=secret.get_secret_value(),
            api=AsyncMessagingApi(client),
            sessions=sessions,
            engine=engine,
            catalog=engine.services.catalog,
            clock=clock,
            answer=answer,
            default_language=settings.bot.default_language,
        )
        return channel, client

    # --- the webhook ----------------------------------------------------------------------
    async def webhook(self, request: Request) -> Response:
        """Verify, store, answer 200; the events are processed after the response."""
        if int(request.headers.get("content-length") or 0) > MAX_BODY:
            return PlainTextResponse("body too large", status_code=413)
        raw = await request.body()
        signature = request.headers.get("x-line-signature", "")
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            body = None  # LINE always sends UTF-8: this cannot carry a valid signature
        if not signature or body is None or not self._validator.validate(body, signature):
            log.warning("line webhook: missing or invalid signature, refused")
            return PlainTextResponse("invalid signature", status_code=401)
        try:
            data = load_storable(body)
        except ValueError:
            return PlainTextResponse("body is not JSON", status_code=400)
        if not isinstance(data, dict) or not isinstance(data.get("events"), list):
            return PlainTextResponse("expected an object with an events list", status_code=400)
        events: list[tuple[str, dict[str, Any]]] = []
        for event in data["events"]:
            event_id = event.get("webhookEventId") if isinstance(event, dict) else None
            if isinstance(event_id, str) and 0 < len(event_id) <= 128 and event_id.isprintable():
                events.append((event_id, event))
            else:
                log.warning("line webhook: event without a webhookEventId skipped")
        try:
            await self.inbox.accept(events)
        except Exception as exc:  # database down: LINE redelivers what we did not take
            log.error("line webhook: could not store events (%s)", type(exc).__name__)
            return PlainTextResponse("try again later", status_code=503)
        return PlainTextResponse("OK")

    # --- InboxAdapter ---------------------------------------------------------------------
    def queue_key(self, payload: dict[str, Any]) -> str:
        source = _part(payload, "source")
        return str(source.get("userId") or source.get("groupId") or source.get("roomId") or "")

    def interpret(self, payload: dict[str, Any]) -> Meaning:
        """The event in the engine's terms. Every type in the spec is handled or knowingly
        ignored; unknown types and fields are ignored, never an error."""
        kind = payload.get("type")
        if payload.get("mode") == "standby":
            return None  # another module owns the chat right now: LINE wants us silent
        source = _part(payload, "source")
        if source.get("type") in ("group", "room"):
            # We talk with one person at a time; in a group only say so, once, on joining.
            if kind == "join":
                return [Reply(self.catalog.text("group_chat_not_supported", self.default_language))]
            return None
        user_id = source.get("userId")
        # LINE's user ids are 33 characters; a longer one (forged or broken) would not fit
        # the people table's column and fail on every retry: nobody to answer.
        if source.get("type") != "user" or not isinstance(user_id, str) or len(user_id) > 128:
            return None
        common: dict[str, Any] = {
            "channel": CHANNEL,
            "user_id": user_id,
            "event_id": payload.get("webhookEventId"),
            "timestamp": _timestamp(payload),
        }
        if kind == "message":
            message = _part(payload, "message")
            if message.get("type") == "text":
                return Incoming(kind=EventKind.TEXT, text=str(message.get("text", "")), **common)
            if message.get("type") not in MEDIA_TYPES:
                log.info("line: unknown message type answered as media")
            return Incoming(kind=EventKind.MEDIA, **common)
        if kind == "postback":
            data = _part(payload, "postback").get("data")
            return Incoming(kind=EventKind.POSTBACK, postback=str(data or ""), **common)
        if kind == "follow":
            return Incoming(kind=EventKind.FOLLOW, **common)
        if kind == "unfollow":
            return Incoming(kind=EventKind.UNFOLLOW, **common)
        return None  # unsend, beacon, accountLink, membership, videoPlayComplete, unknown...

    async def prepare(self, incoming: Incoming, payload: dict[str, Any]) -> Incoming:
        return incoming

    async def deliver(self, delivery: InboxItem) -> None:
        messages = render(delivery.replies)
        if not messages:
            return
        payload = delivery.payload
        token = payload.get("replyToken")
        sent_at = _timestamp(payload)
        if isinstance(token, str) and sent_at and self.clock() - sent_at < REPLY_WINDOW:
            try:
                await self.api.reply_message(
                    ReplyMessageRequest(reply_token=token, messages=messages)
                )
                return
            except ApiException as exc:
                if exc.status is None or not 400 <= exc.status < 500 or exc.status == 429:
                    raise
                if delivery.resend and _token_refused(exc):
                    # A reply token works once and takes no retry key (LINE refuses the
                    # header on replies), so a push could not be matched to the reply: the
                    # earlier run used the token, the person has this answer already.
                    log.info("line: reply token used by an earlier try, not sent again")
                    return
                # The token was refused (expired): the push below still answers.
                log.info("line: reply token refused (%s), pushing instead", exc.status)
        to = self.queue_key(payload)
        if not to:
            return
        try:
            await self.api.push_message(
                PushMessageRequest(to=to, messages=messages),
                x_line_retry_key=retry_key(delivery.event_id),
            )
        except ApiException as exc:
            if exc.status == 409:
                return  # LINE already accepted a push with this retry key: it was delivered
            raise

    async def aclose(self) -> None:
        await self.inbox.close()


def _token_refused(exc: ApiException) -> bool:
    """LINE's 400 for a reply token used before (or expired): "Invalid reply token"."""
    return exc.status == 400 and "reply token" in str(exc.body or "").lower()


def _part(payload: dict[str, Any], key: str) -> dict[str, Any]:
    """A nested object of the event, or {} when absent or not an object (tolerant parsing)."""
    value = payload.get(key)
    return value if isinstance(value, dict) else {}


def _timestamp(payload: dict[str, Any]) -> datetime | None:
    value = payload.get("timestamp")
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        try:
            return datetime.fromtimestamp(value / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None
