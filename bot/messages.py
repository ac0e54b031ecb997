"""Channel-neutral message types: what a channel hands the engine, and what it gets back."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class EventKind(StrEnum):
    TEXT = "text"
    POSTBACK = "postback"  # a button/quick-reply/inline-keyboard press carrying a value
    FOLLOW = "follow"  # the person added the bot (LINE follow, Telegram /start)
    UNFOLLOW = "unfollow"  # the person blocked or removed the bot
    MEDIA = "media"  # sticker, image, video, audio, file, location: nothing we can read


@dataclass(frozen=True)
class Incoming:
    channel: str  # "line", "telegram", "web", "console", "test"
    user_id: str  # the platform's id for the person, unique within the channel
    kind: EventKind
    text: str = ""
    postback: str | None = None
    language_hint: str | None = None  # from the platform, e.g. Telegram's language_code
    event_id: str | None = None  # the platform's event id, for dropping redeliveries
    timestamp: datetime | None = None


@dataclass(frozen=True)
class Choice:
    label: str  # what the person sees on the button
    value: str  # what comes back as the postback when they press it


@dataclass(frozen=True)
class Link:
    label: str
    url: str


@dataclass(frozen=True)
class Reply:
    text: str
    choices: tuple[Choice, ...] = field(default_factory=tuple)
    links: tuple[Link, ...] = field(default_factory=tuple)


def reply_to_dict(reply: Reply) -> dict[str, Any]:
    """A Reply as JSON-ready data, for the outbox and the webhook inbox."""
    return {
        "text": reply.text,
        "choices": [{"label": c.label, "value": c.value} for c in reply.choices],
        "links": [{"label": link.label, "url": link.url} for link in reply.links],
    }


def reply_from_dict(data: dict[str, Any]) -> Reply:
    return Reply(
        text=str(data.get("text", "")),
        choices=tuple(Choice(str(c["label"]), str(c["value"])) for c in data.get("choices", ())),
        links=tuple(Link(str(x["label"]), str(x["url"])) for x in data.get("links", ())),
    )
